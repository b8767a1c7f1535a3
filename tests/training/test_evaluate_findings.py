"""``odontoscan evaluate PRED GT``: findings metrics that count what a reader would count."""

import json

import pytest

from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.findings_schema import (
    Finding, FindingKind, Findings, Measurement, ModelInfo, ScanInfo, Severity, Tooth, ToothStatus, Unit,
)
from odontoscan.datasets.labels import FDI_TEETH
from odontoscan.training.evaluate import evaluate_outputs
from odontoscan.training.evaluate_findings import compare


def _findings(missing=(18, 28), findings=()) -> Findings:
    teeth = [Tooth(fdi=f, status=ToothStatus.MISSING if f in missing else ToothStatus.PRESENT, confidence=0.9) for f in FDI_TEETH]
    return Findings(
        scan=ScanInfo(modality="CT", shape=[10, 10, 10], spacing_mm=[1.0, 1.0, 1.0]),
        model=ModelInfo(name="m", version="1", sha256="0"),
        teeth=teeth,
        findings=list(findings),
    )


def _finding(kind, fdi, location, **measures):
    return Finding(
        id=f"{kind.value}-{fdi}-1", kind=kind, fdi=fdi, confidence=0.9, severity=Severity.LOW, location_mm=list(location),
        measurements={k: Measurement(value=v, unit=Unit.MM) for k, v in measures.items()},
    )


TRUTH = _findings(findings=[
    _finding(FindingKind.CANAL_PROXIMITY, 38, (0, 0, 0), distance_mm=1.0),
    _finding(FindingKind.CANAL_PROXIMITY, 48, (50, 0, 0), distance_mm=3.0),
    _finding(FindingKind.CARIES, 36, (10, 0, 0)),
    _finding(FindingKind.CARIES, None, (20, 20, 20)),
])


def test_identical_findings_score_perfectly():
    metrics = compare(TRUTH, TRUTH).metrics()
    assert metrics["tooth_status_accuracy"] == 1.0 and metrics["missing_f1"] == 1.0
    assert metrics["caries_sensitivity"] == metrics["caries_precision"] == 1.0
    assert metrics["canal_proximity.distance_mm_mae"] == 0.0


def test_errors_are_counted_exactly():
    pred = _findings(missing=(18, 27), findings=[
        _finding(FindingKind.CANAL_PROXIMITY, 38, (0, 0, 0), distance_mm=1.5),  # 0.5 mm off
        _finding(FindingKind.CANAL_PROXIMITY, 48, (50, 0, 0), distance_mm=2.0),  # 1.0 mm off
        _finding(FindingKind.CARIES, 46, (10, 0, 0)),  # wrong tooth: no match (both have a tooth)
        _finding(FindingKind.CARIES, None, (23, 20, 20)),  # no tooth: matched by location (3 mm)
        _finding(FindingKind.PERIAPICAL_LESION, 11, (0, 0, 0)),  # not in the truth
    ])
    metrics = compare(pred, TRUTH).metrics()
    assert metrics["tooth_status_accuracy"] == pytest.approx(30 / 32)  # 27 and 28 wrong
    assert metrics["missing_f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert metrics["caries_sensitivity"] == 0.5 and metrics["caries_precision"] == 0.5
    assert metrics["periapical_lesion_precision"] == 0.0 and "periapical_lesion_sensitivity" not in metrics
    assert metrics["canal_proximity.distance_mm_mae"] == pytest.approx(0.75)
    assert compare(pred, TRUTH).mistakes == [  # what a developer reads to see why
        "chart 27: present -> missing", "chart 28: missing -> present",
        "missed caries 36", "false caries 46", "false periapical_lesion 11",
    ]


def test_evaluate_outputs_on_folders(tmp_path):
    for case in ("a", "b"):
        (tmp_path / "pred" / case).mkdir(parents=True)
        (tmp_path / "gt" / case).mkdir(parents=True)
        (tmp_path / "pred" / case / "findings.json").write_text(TRUTH.model_dump_json())
        (tmp_path / "gt" / case / "ground_truth.json").write_text(_findings(missing=(18,)).model_dump_json())
    report = evaluate_outputs(tmp_path / "pred", tmp_path / "gt", tmp_path / "out")
    assert report.findings["tooth_status_accuracy"] == pytest.approx(31 / 32)
    assert report.findings["caries_precision"] == 0.0  # predicted caries the truth lacks
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["findings"]["tooth_status_accuracy"] == pytest.approx(31 / 32)
    assert "tooth_status_accuracy" in (tmp_path / "out" / "report.md").read_text()
    expected = ["chart 28: present -> missing", "false canal_proximity 38", "false canal_proximity 48",
                "false caries 36", "false caries (no tooth)"]
    assert [(case["case_id"], case["mistakes"]) for case in saved["cases"]] == [("a", expected), ("b", expected)]
    assert f"- a: {'; '.join(expected)}" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(ConfigError, match="No case to compare"):
        evaluate_outputs(tmp_path / "gt", tmp_path / "pred", tmp_path / "out2")
