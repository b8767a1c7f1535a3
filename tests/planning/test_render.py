"""plan.html and plan.json as the dentist gets them: from render_plan_html, write_plan and
the `odontoscan plan` command (run through typer's CliRunner on a one-command app)."""

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.findings_schema import Finding, Findings, Measurement, ModelInfo, ScanInfo, Tooth, ToothStatus
from odontoscan.datasets.labels import FDI_TEETH
from odontoscan.planning import TreatmentPlan, draft_plan, render_plan_html, render_plan_section, write_plan
from odontoscan.serving.commands import plan as plan_command


@pytest.fixture(scope="module")
def findings():
    """A patient with a lesion on 46, a missing 36, an impacted 38 near the canal and an uncertain caries."""
    statuses = {36: ToothStatus.MISSING, 38: ToothStatus.IMPACTED}
    mm = lambda **values: {k: Measurement(value=v, unit="mm") for k, v in values.items()}  # noqa: E731
    return Findings(
        scan=ScanInfo(modality="CT", shape=[100, 100, 80], spacing_mm=[0.3, 0.3, 0.3]),
        model=ModelInfo(name="cbct-test", version="0.1.0", sha256="0" * 64),
        teeth=[Tooth(fdi=fdi, status=statuses.get(fdi, ToothStatus.PRESENT), confidence=0.9) for fdi in FDI_TEETH],
        findings=[
            Finding(id="p1", kind="periapical_lesion", fdi=46, confidence=0.9, severity="high", measurements=mm(diameter_mm=5.5)),
            Finding(id="e1", kind="edentulous_site", fdi=36, confidence=0.8, severity="info", measurements=mm(bone_height_mm=12, bone_width_mm=7)),
            Finding(id="i1", kind="impacted_tooth", fdi=38, confidence=0.8, severity="moderate", grade="horizontal"),
            Finding(id="n1", kind="canal_proximity", fdi=38, confidence=0.8, severity="moderate", measurements=mm(distance_mm=1.2)),
            Finding(id="c1", kind="caries", fdi=26, confidence=0.4, severity="moderate", grade="dentin"),
        ],
    )


@pytest.fixture(scope="module")
def plan(findings):
    return draft_plan(findings)


def test_html_is_self_contained_printable_and_complete(plan):
    page = render_plan_html(plan)
    assert page.startswith("<!DOCTYPE html>") and "@media print" in page
    assert not re.search(r"<script|<link|<img|<iframe|src=|href=|url\(|https?://", page, re.IGNORECASE)
    assert "DRAFT for a dentist to confirm" in page
    for item in plan.items():
        assert f'id="{item.id}"' in page and item.code in page
    assert "1.2 mm from the inferior alveolar nerve canal" in page
    assert "verify clinically" in page and "higher risk" in page
    assert f"{plan.totals.fee:,.2f} USD" in page
    assert "If things do not go as planned" in page


def test_section_for_the_findings_report_is_a_styled_fragment(plan):
    section = render_plan_section(plan)
    assert section.startswith("<style>") and "<html" not in section and "<body" not in section
    assert plan.disclaimer in section and "<style>" not in render_plan_section(plan, styles=False)


def test_html_escapes_every_text(plan):
    hostile = plan.model_copy(deep=True)
    item = hostile.phases[0].items[0]
    item.explanation = '<script>alert("x")</script> & more'
    item.risks = ["<b>bold</b>"]
    hostile.warnings = ["<img src=x onerror=alert(1)>"]
    page = render_plan_html(hostile)
    assert "<script>" not in page and "<b>bold</b>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_write_plan_replaces_both_files_and_leaves_no_temporaries(plan, tmp_path):
    (tmp_path / "plan.json").write_text("old")
    json_path, html_path = write_plan(plan, tmp_path)
    assert TreatmentPlan.model_validate_json(json_path.read_text()) == plan
    assert html_path.read_text() == render_plan_html(plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.html", "plan.json"]


# --- the command -------------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(plan_command.plan)

    @app.callback()
    def _root() -> None:
        """Test app: `plan` as a sub-command, as in the odontoscan CLI."""

    return app


def test_command_writes_plan_files_and_prints_a_summary(findings, tmp_path):
    case = tmp_path / "Doe_Jane"  # folder and file names may name the patient: they must not reach outputs
    case.mkdir()
    (case / "findings.json").write_text(findings.model_dump_json())
    (case / "Doe_Jane.yaml").write_text("age: 60\nmedical_flags: [bisphosphonates]\ninsurance: {coverage: {basic: 80, major: 50}}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(_app(), ["plan", str(case / "findings.json"), "--context", str(case / "Doe_Jane.yaml"),
                                         "--fees", "example_eur", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["plan.html", "plan.json"]
    written = TreatmentPlan.model_validate_json((out / "plan.json").read_text())
    assert written.currency == "EUR" and written.totals.insurance > 0
    extraction = next(i for i in written.items() if i.code == "D7240")
    assert any("osteonecrosis" in w for w in extraction.warnings)  # from the context's bisphosphonates
    for name in ("plan.json", "plan.html"):
        assert "Doe" not in (out / name).read_text()
    output = " ".join(result.output.split())
    assert "Draft treatment plan (EUR)" in output and "Urgent care" in output and "Maintenance" in output
    assert f"{written.totals.fee:,.2f}" in output
    assert "verify clinically: c1" in output and "DRAFT for a dentist to confirm" in output
    assert "wrote" in output and "plan.html" in output


def test_command_json_prints_only_the_plan(findings, tmp_path):
    path = tmp_path / "findings.json"
    path.write_text(findings.model_dump_json())
    result = CliRunner().invoke(_app(), ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    printed = TreatmentPlan.model_validate_json(result.stdout)
    assert printed == draft_plan(findings)
    assert json.loads(result.stdout)["disclaimer"].startswith("DRAFT")


def test_command_refuses_a_file_that_is_not_findings(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"teeth": []}))
    result = CliRunner().invoke(_app(), ["plan", str(path)])
    assert isinstance(result.exception, ConfigError)
    assert "notes.json' is not a valid findings.json" in str(result.exception)
    assert "give the findings.json of an analysis" in str(result.exception)
