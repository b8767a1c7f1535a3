"""``odontoscan info`` and CLI error handling, run as a real subprocess like a user would."""

import json
import subprocess
import sys

import pytest
from helpers.volumes import ORIENTATIONS, PHI, PHI_STRINGS, reference_volume, store, write_series


def odontoscan(*args):
    return subprocess.run(
        [sys.executable, "-m", "odontoscan.serving.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "series"
    write_series(store(reference_volume(), (0.3, 0.4, 0.5), *ORIENTATIONS["lps_axial"]), folder, PHI)
    return folder


def test_info_json_describes_the_scan_without_identifiers(study):
    result = odontoscan("info", study, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["modality"] == "CT"
    assert info["shape"] == [40, 36, 24]
    assert info["spacing"] == [0.3, 0.4, 0.5]
    assert info["orientation"] == "RAS"
    assert info["source_orientation"] == "LPS"
    assert info["series_instance_uid"] == PHI.series_uid
    for secret in PHI_STRINGS:
        assert secret not in result.stdout + result.stderr


def test_info_table(study):
    result = odontoscan("info", study)
    assert result.returncode == 0
    assert "RAS" in result.stdout and "dicom-series" in result.stdout


def test_bad_input_exits_2_with_the_message_and_no_traceback(tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_text("not an image")
    result = odontoscan("info", bad)
    assert result.returncode == 2
    assert "error:" in result.stderr and "'scan.png' is not a readable png" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help():
    assert odontoscan("--version").stdout.startswith("odontoscan ")
    for command in ([], ["info"], ["phantom"], ["phantom", "cbct"], ["phantom", "pano"]):
        result = odontoscan(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout
