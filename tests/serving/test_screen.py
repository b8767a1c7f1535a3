"""Batch pre-screening: a batch with a corrupt study goes on, ranks what it found, and resumes."""

import csv
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.phantom.pano import write_pano_phantom
from odontoscan.datasets.writers import write_volume
from odontoscan.serving.screen import find_studies, screen

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A folder of three studies: a CBCT (NIfTI), a panoramic (PNG) and a corrupt file."""
    root = tmp_path_factory.mktemp("batch") / "studies"
    root.mkdir()
    phantom = generate_cbct(2006, "small")
    write_volume(np.rint(phantom.image).astype(np.int16), phantom.spacing, root / "cbct_a.nii.gz", geometry=phantom.geometry)
    pano = write_pano_phantom(2007, root.parent / "pano", fmt="png", size="small")
    (pano / "pano.png").rename(root / "pano_b.png")
    (root / "broken_c.nii.gz").write_bytes(b"this is not a volume")
    (root / "notes.md").write_text("ignored: not a study")
    return root


def test_studies_are_found_in_folders_zips_and_lists(batch, tmp_path):
    keys = [s.key for s in find_studies(batch, tmp_path)]
    assert keys == ["broken_c", "cbct_a", "pano_b"]
    with zipfile.ZipFile(tmp_path / "batch.zip", "w") as zf:
        for path in batch.rglob("*"):
            if path.is_file():
                zf.write(path, f"studies/{path.relative_to(batch)}")
    assert [s.key for s in find_studies(tmp_path / "batch.zip", tmp_path / "work")] == keys
    (tmp_path / "list.txt").write_text(f"# two of them\n{batch / 'cbct_a.nii.gz'}\n\n{batch / 'pano_b.png'}\n")
    assert [s.key for s in find_studies(tmp_path / "list.txt", tmp_path)] == ["cbct_a", "pano_b"]


def test_a_corrupt_study_is_recorded_and_the_batch_goes_on_then_resumes(batch, tmp_path):
    out = tmp_path / "out"
    seen = []
    summary = screen(batch, out, overlays=False, on_progress=lambda key, done, total: seen.append((key, done, total)))
    assert (summary.total, summary.analysed, summary.skipped, summary.failed) == (3, 3, 0, 1)
    assert [done for _, done, _ in seen] == [1, 2, 3]
    rows = list(csv.DictReader((out / "triage.csv").open()))
    assert [r["status"] for r in rows] == ["done", "done", "failed"]  # failed last
    assert float(rows[0]["urgency"]) >= float(rows[1]["urgency"])
    failed = rows[2]
    assert failed["study"] == "broken_c" and failed["error_code"] and "broken_c" in failed["error"]
    assert json.loads((out / "studies" / "broken_c" / "error.json").read_text())["code"] == failed["error_code"]
    assert (out / "studies" / "cbct_a" / "findings.json").is_file()
    triage_html = (out / "triage.html").read_text()
    assert "cbct_a" in triage_html and "broken_c" in triage_html

    # Interrupted mid-study: findings.json never appeared and a temp folder was left behind.
    (out / "studies" / "pano_b" / "findings.json").unlink()
    (out / "studies" / "pano_b" / ".tmp-killed").mkdir()
    before = (out / "studies" / "cbct_a" / "findings.json").stat().st_mtime_ns
    again = screen(batch, out, overlays=False)
    assert (again.analysed, again.skipped, again.failed) == (2, 1, 1)  # pano_b redone, broken_c retried
    assert (out / "studies" / "cbct_a" / "findings.json").stat().st_mtime_ns == before
    assert not (out / "studies" / "pano_b" / ".tmp-killed").exists()
    assert (out / "studies" / "pano_b" / "findings.json").is_file()


def test_parallel_workers_and_the_command_line(batch, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "odontoscan.serving.cli", "screen", batch, "--out", tmp_path / "out", "--workers", "2", "--no-overlays"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "3 studies" in result.stdout and "broken_c" in result.stdout
    triage = json.loads((tmp_path / "out" / "triage.json").read_text())
    assert [r["rank"] for r in triage] == [1, 2, 3] and triage[-1]["status"] == "failed"
