"""Patient identifiers never leave the reader: not in Scan, meta, descriptions, logs or errors."""

import logging
import zipfile

import numpy as np
import pytest
from helpers.volumes import ORIENTATIONS, PHI, PHI_STRINGS, reference_volume, store, write_series

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import OdontoscanError
from odontoscan.datasets.writers import write_radiograph_dicom
from odontoscan.serving.describe import describe_scan


def _assert_clean(text: str) -> None:
    for secret in PHI_STRINGS:
        assert secret not in text, f"patient identifier {secret!r} leaked"


@pytest.fixture()
def phi_series(tmp_path):
    folder = tmp_path / "Doe^Jane"  # a folder named after the patient, as often seen
    write_series(store(reference_volume(), (0.3, 0.3, 0.3), *ORIENTATIONS["lps_axial"]), folder, PHI)
    return folder


def test_loaded_scan_carries_no_identifiers(phi_series, caplog):
    caplog.set_level(logging.DEBUG)
    scan = load_scan(phi_series)
    _assert_clean(repr(scan))
    _assert_clean(scan.meta.model_dump_json())
    _assert_clean(str(describe_scan(scan)))
    _assert_clean(caplog.text)
    assert scan.meta.study_instance_uid == PHI.study_uid  # UIDs are kept: outputs reference them


def test_radiograph_and_zip_carry_no_identifiers(phi_series, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in phi_series.iterdir():
            zf.write(path, f"Doe^Jane/{path.name}")
    _assert_clean(load_scan(archive).meta.model_dump_json())
    pano = write_radiograph_dicom(np.ones((8, 8)), tmp_path / "p.dcm", identity=PHI)
    _assert_clean(load_scan(pano).meta.model_dump_json())
    _assert_clean(caplog.text)


def test_errors_about_a_patient_series_do_not_name_the_patient(phi_series, caplog):
    caplog.set_level(logging.DEBUG)
    sorted(phi_series.iterdir())[5].unlink()
    with pytest.raises(OdontoscanError) as info:
        load_scan(phi_series)
    _assert_clean(str(info.value))
    _assert_clean(caplog.text)
    with pytest.raises(OdontoscanError) as info:
        load_scan(phi_series, series_uid="9.9.9")
    _assert_clean(str(info.value))
