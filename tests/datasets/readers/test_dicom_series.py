"""Finding and choosing series: nested folders, zips, several series, non-image files."""

import json
import zipfile

import numpy as np
import pytest
from helpers.volumes import ORIENTATIONS, reference_volume, store, write_series
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import MixedSeriesError, SeriesNotFoundError
from odontoscan.datasets.writers import DicomIdentity, write_radiograph_dicom


def _write_dicomdir(path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "STUDY"
    ds.save_as(path, enforce_file_format=True)


def _identity(study):
    return DicomIdentity(study_uid=study, series_uid=generate_uid())


@pytest.fixture()
def study(tmp_path):
    """A study folder: main CBCT (24 slices, nested), a short scout CT, a pano, clutter."""
    root = tmp_path / "study"
    study_uid = generate_uid()
    big = store(reference_volume(), (0.3, 0.3, 0.3), *ORIENTATIONS["lps_axial"])
    small = store(reference_volume((20, 20, 6), seed=2), (0.5, 0.5, 1.0), *ORIENTATIONS["lps_axial"])
    big_id, small_id = _identity(study_uid), _identity(study_uid)
    write_series(big, root / "a" / "b" / "cbct", big_id)
    write_series(small, root / "scout", small_id)
    pano_id = _identity(study_uid)
    write_radiograph_dicom(np.full((30, 60), 1000.0), root / "pano" / "px.dcm", identity=pano_id, pixel_spacing=(0.1, 0.1))
    _write_dicomdir(root / "DICOMDIR")
    (root / "notes.txt").write_text("not an image")
    (root / "meta.json").write_text(json.dumps({"a": 1}))
    return root, big_id.series_uid, small_id.series_uid, pano_id.series_uid


def test_chooses_volumetric_series_with_most_slices_and_lists_the_others(study):
    root, big, small, pano = study
    scan = load_scan(root)
    assert scan.meta.series_instance_uid == big
    assert scan.shape == (40, 36, 24)
    others = {s.series_instance_uid: s for s in scan.meta.other_series}
    assert set(others) == {small, pano}
    assert others[small].images == 6 and others[pano].modality == "PX"


def test_series_option_picks_the_named_series(study):
    root, _, small, _ = study
    scan = load_scan(root, series_uid=small)
    assert scan.shape == (20, 20, 6)
    assert scan.spacing == pytest.approx((0.5, 0.5, 1.0))


def test_unknown_series_uid_lists_what_is_there(study):
    root, big, _, _ = study
    with pytest.raises(SeriesNotFoundError, match=rf"1\.2\.3 is not in the input\. Series found: .*{big}"):
        load_scan(root, series_uid="1.2.3")


def test_zip_of_nested_study_reads_like_the_folder(study, tmp_path):
    root, big, _, _ = study
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in root.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(root.parent))
    from_zip, from_folder = load_scan(archive), load_scan(root)
    assert from_zip.meta.series_instance_uid == big
    np.testing.assert_array_equal(from_zip.array, from_folder.array)


def test_a_damaged_stray_dicom_file_does_not_block_the_series(study):
    root, big, _, _ = study
    (root / "stray.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    assert load_scan(root).meta.series_instance_uid == big


def test_dicomdir_and_non_dicom_files_are_ignored(tmp_path):
    stored = store(reference_volume(), (0.3, 0.3, 0.3), *ORIENTATIONS["lps_axial"])
    write_series(stored, tmp_path / "s")
    (tmp_path / "s" / "README.txt").write_text("hello")
    (tmp_path / "s" / "findings.json").write_text("{}")
    assert load_scan(tmp_path / "s").shape == (40, 36, 24)


def test_several_radiographs_without_a_volume_ask_to_choose(tmp_path):
    for n in range(2):
        write_radiograph_dicom(np.zeros((8, 8)), tmp_path / f"r{n}.dcm", identity=DicomIdentity(series_uid=generate_uid()))
    with pytest.raises(MixedSeriesError, match="2 separate 2D images.*--series UID"):
        load_scan(tmp_path)
