"""``odontoscan analyze`` end to end, run as a real subprocess like a user would: a phantom
CBCT series in, every output of DESIGN.md out, nothing identifying, nothing half-written."""

import json
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from odontoscan.datasets import load_scan
from odontoscan.datasets.findings_schema import Findings
from odontoscan.datasets.phantom.cbct import generate_cbct, write_phantom_dicom
from odontoscan.models.registry import available_models

SECRETS = ("Secret^Patient", "ID-SECRET-4711", "19700101")

pytestmark = pytest.mark.slow


def odontoscan(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "odontoscan.serving.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    phantom = generate_cbct(2003, "small")
    write_phantom_dicom(phantom, root / "case")
    (root / "case" / "dicom").rename(root / "dicom")
    for path in (root / "dicom").iterdir():  # give the series identifiers that must not leak
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = SECRETS
        ds.save_as(path)
    result = odontoscan("analyze", root / "dicom", "--out", root / "out", "--dicom-out")
    assert result.returncode == 0, result.stderr
    return phantom, root, result


def test_writes_every_output(analysed):
    phantom, root, result = analysed
    out = root / "out"
    findings = Findings.model_validate_json((out / "findings.json").read_text())
    assert findings.model.name == "cbct-phantom" and findings.model.version == available_models()["cbct-phantom"].version
    assert len(findings.teeth) == 32
    assert findings.scan.series_instance_uid == pydicom.dcmread(next((root / "dicom").iterdir())).SeriesInstanceUID
    assert set(findings.timings_ms) >= {"load", "preprocess", "inference", "postprocess", "findings", "outputs"}
    for finding in findings.findings:
        assert finding.evidence.overlay and (out / finding.evidence.overlay).is_file(), finding.id
    assert (out / "overlays" / "pano.png").is_file()
    report = (out / "report.html").read_text()
    assert all(f.id in report for f in findings.findings)
    assert not any(p.name.startswith(".tmp") for p in out.iterdir())


def test_label_map_overlays_the_source_series(analysed):
    phantom, root, _ = analysed
    source, labels = load_scan(root / "dicom"), load_scan(root / "out" / "labels.nii.gz")
    assert labels.array.shape == source.array.shape
    assert np.allclose(labels.spacing, source.spacing, atol=1e-4)
    assert np.allclose(labels.geometry.origin, source.geometry.origin, atol=1e-3)
    assert np.isin(np.unique(labels.array), [0, 1, 2]).sum() >= 2  # jaws are there


def test_dicom_seg_and_sr_reference_the_source(analysed):
    _, root, _ = analysed
    source = pydicom.dcmread(next((root / "dicom").iterdir()))
    seg, sr = pydicom.dcmread(root / "out" / "seg.dcm"), pydicom.dcmread(root / "out" / "sr.dcm")
    assert seg.Modality == "SEG" and sr.Modality == "SR"
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == source.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID


def test_no_identifier_reaches_the_outputs_or_the_console(analysed):
    _, root, result = analysed
    texts = [result.stdout, result.stderr, (root / "out" / "findings.json").read_text(), (root / "out" / "report.html").read_text()]
    for secret in SECRETS:
        assert not any(secret in text for text in texts), secret


def test_json_prints_the_findings_only(analysed, tmp_path):
    _, root, _ = analysed
    result = odontoscan("analyze", root / "out" / "labels.nii.gz", "--out", tmp_path / "o", "--json", "--no-overlays", "--no-report")
    assert result.returncode == 0, result.stderr
    findings = Findings.model_validate_json(result.stdout)  # stdout is exactly one findings document
    assert findings.scan.modality == "CT"
    assert not (tmp_path / "o" / "report.html").exists() and (tmp_path / "o" / "findings.json").is_file()


def test_failures_exit_2_and_leave_the_output_folder_as_it_was(analysed, tmp_path):
    _, root, _ = analysed
    out = tmp_path / "out"
    out.mkdir()
    (out / "findings.json").write_text("earlier result")
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"not a volume")
    result = odontoscan("analyze", bad, "--out", out)
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr
    # A NIfTI input cannot give DICOM outputs: refused, and nothing of the run is left behind.
    result = odontoscan("analyze", root / "out" / "labels.nii.gz", "--out", out, "--dicom-out")
    assert result.returncode == 2 and "DICOM input" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["findings.json"]
    assert (out / "findings.json").read_text() == "earlier result"


def test_schema_and_evaluate_against_ground_truth(analysed, tmp_path):
    phantom, root, _ = analysed
    schema = json.loads(odontoscan("schema").stdout)
    assert {"teeth", "findings", "scan", "model"} <= set(schema["properties"])
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "ground_truth.json").write_text(phantom.ground_truth.model_dump_json())
    result = odontoscan("evaluate", root / "out", truth, "--out", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert 0.0 <= report["findings"]["tooth_status_accuracy"] <= 1.0
    assert "tooth_status_accuracy" in result.stdout
