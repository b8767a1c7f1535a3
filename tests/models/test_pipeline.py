"""The analysis pipeline: torch-free, orientation-proof, and clear about models that do not fit."""

import subprocess
import sys

import numpy as np
import pytest
from helpers.volumes import ORIENTATIONS, store, write_series

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import ModelFitError
from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.writers import write_volume
from odontoscan.models.pipeline import Analyzer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phantom():
    return generate_cbct(2005, "small")


def test_a_whole_analysis_never_imports_torch_monai_or_mlflow(phantom, tmp_path):
    write_volume(np.rint(phantom.image).astype(np.int16), phantom.spacing, tmp_path / "scan.nii.gz", geometry=phantom.geometry)
    code = (
        "import sys\n"
        "from odontoscan.datasets import load_scan\n"
        "from odontoscan.models.pipeline import Analyzer\n"
        "from odontoscan.serving.outputs.write import write_outputs\n"
        f"scan = load_scan({str(tmp_path / 'scan.nii.gz')!r})\n"
        "result = Analyzer().analyze(scan)\n"
        f"write_outputs(result, {str(tmp_path / 'out')!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'mlflow'))\n"
        "print('heavy:' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "heavy:"
    assert (tmp_path / "out" / "findings.json").is_file()


def test_reoriented_copies_get_the_same_chart(phantom, tmp_path):
    image = np.rint(phantom.image).astype(np.float32)
    analyzer = Analyzer()
    results = []
    for name in ("lps_axial", "coronal_stack"):
        write_series(store(image, phantom.spacing, *ORIENTATIONS[name]), tmp_path / name)
        results.append(analyzer.analyze(load_scan(tmp_path / name)))
    first, second = results
    assert np.array_equal(first.labels, second.labels)
    agreement = np.mean([a.status == b.status for a, b in zip(first.findings.teeth, second.findings.teeth)])
    assert agreement >= 0.95


def test_a_model_for_another_kind_of_image_is_refused_clearly(phantom, tmp_path):
    write_volume(np.rint(phantom.image).astype(np.int16), phantom.spacing, tmp_path / "scan.nii.gz", geometry=phantom.geometry)
    analyzer = Analyzer(cbct_model="pano-phantom")
    with pytest.raises(ModelFitError, match="reads a 2D radiograph .* but the scan is 3D"):
        analyzer.analyze(load_scan(tmp_path / "scan.nii.gz"))


def test_a_dicom_seg_failing_in_the_background_leaves_the_output_folder_as_it_was(phantom, tmp_path, monkeypatch):
    from odontoscan.datasets.errors import OutputError
    from odontoscan.serving.outputs import dicom
    from odontoscan.serving.outputs.write import write_outputs

    write_series(store(np.rint(phantom.image).astype(np.float32), phantom.spacing, *ORIENTATIONS["lps_axial"]), tmp_path / "series")
    result = Analyzer().analyze(load_scan(tmp_path / "series"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "findings.json").write_text("earlier result")

    def failing_seg(*args, **kwargs):
        (args[4].parent / "seg.dcm").write_bytes(b"half a SEG")
        raise OutputError("Could not build a DICOM SEG")

    monkeypatch.setattr(dicom, "write_seg", failing_seg)
    with pytest.raises(OutputError, match="Could not build a DICOM SEG"):
        write_outputs(result, out, source=tmp_path / "series", dicom=True)
    assert [p.name for p in out.iterdir()] == ["findings.json"]
    assert (out / "findings.json").read_text() == "earlier result"
