"""Every bad input gets a typed error whose message says what is wrong and what to do."""

import shutil

import numpy as np
import pydicom
import pytest
from helpers.volumes import ORIENTATIONS, encapsulate_frames, reference_volume, store, write_series
from PIL import Image
from pydicom.uid import generate_uid

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import (
    DimensionError,
    MixedSeriesError,
    OdontoscanError,
    ScanReadError,
    SeriesGeometryError,
    TruncatedFileError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
)

SPACING = (0.4, 0.4, 0.5)


@pytest.fixture()
def series(tmp_path):
    """A clean 24-slice axial series; slice files sorted by position (IM0001 lowest)."""
    stored = store(reference_volume(), SPACING, *ORIENTATIONS["lps_axial"])
    paths = write_series(stored, tmp_path / "series")
    return tmp_path / "series", paths


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(path)


def _shift(path, dx=0.0, dy=0.0, dz=0.0):
    ds = pydicom.dcmread(path)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x + dx, y + dy, z + dz]
    ds.save_as(path)


def test_every_error_is_an_odontoscan_error_with_exit_code_2():
    for cls in (SeriesGeometryError, MixedSeriesError, TruncatedFileError, DimensionError):
        assert issubclass(cls, OdontoscanError)
        assert cls("x").exit_code == 2
        assert 400 <= cls("x").http_status < 500


def test_missing_slice_is_refused_and_located(series):
    folder, paths = series
    paths[10].unlink()
    with pytest.raises(SeriesGeometryError, match=r"missing 1 slice\(s\).*instance 10 at .* mm.*1\.00 mm where slices are 0\.50 mm apart"):
        load_scan(folder)


def test_two_different_slices_at_one_position_are_refused(series):
    folder, paths = series
    copy = folder / "copy.dcm"
    shutil.copy(paths[5], copy)
    _edit(copy, SOPInstanceUID=generate_uid(), InstanceNumber=99)
    with pytest.raises(SeriesGeometryError, match="two different slices at the same position.*instance 99"):
        load_scan(folder)


def test_the_same_slice_copied_twice_is_harmless(series):
    folder, paths = series
    shutil.copy(paths[5], folder / "copy.dcm")
    assert load_scan(folder).shape == (40, 36, 24)


def test_uneven_spacing_is_refused(series):
    folder, paths = series
    _shift(paths[7], dz=0.15)
    with pytest.raises(SeriesGeometryError, match="uneven slice spacing.*resample"):
        load_scan(folder)


def test_gantry_tilt_is_refused(series):
    folder, paths = series
    for k, path in enumerate(paths):
        _shift(path, dy=k * 0.5 * np.tan(np.radians(12)))
    with pytest.raises(SeriesGeometryError, match=r"gantry tilt of 1[12]\.\d degrees"):
        load_scan(folder)


def test_slices_of_different_sizes_are_a_mixed_series(series):
    folder, paths = series
    ds = pydicom.dcmread(paths[3])
    ds.PixelData = ds.pixel_array[:20, :20].copy().tobytes()
    ds.Rows = ds.Columns = 20
    ds.save_as(paths[3])
    with pytest.raises(MixedSeriesError, match=r"2 different sizes \(20x20, 36x40\)"):
        load_scan(folder)


def test_slice_without_position_is_refused(series):
    folder, paths = series
    ds = pydicom.dcmread(paths[2])
    del ds.ImagePositionPatient
    ds.save_as(paths[2])
    with pytest.raises(SeriesGeometryError, match="no ImagePositionPatient"):
        load_scan(folder)


def test_truncated_slice_in_series(series):
    folder, paths = series
    data = paths[12].read_bytes()
    paths[12].write_bytes(data[: len(data) - 700])
    with pytest.raises(TruncatedFileError, match="truncated"):
        load_scan(folder)


def test_truncated_single_file(series, tmp_path):
    _, paths = series
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(paths[0].read_bytes()[:300])
    with pytest.raises(ScanReadError, match="truncated"):
        load_scan(cut)


def test_empty_file(tmp_path):
    empty = tmp_path / "scan.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(ScanReadError, match=r"'scan\.nii\.gz' is empty"):
        load_scan(empty)


def test_text_pretending_to_be_an_image(tmp_path):
    fake = tmp_path / "xray.png"
    fake.write_text("hello, not a png")
    with pytest.raises(ScanReadError, match=r"'xray\.png' is not a readable png"):
        load_scan(fake)


def test_unknown_file_type_lists_what_is_supported(tmp_path):
    other = tmp_path / "notes.docx"
    other.write_bytes(b"PK\x03\x04 not a scan")
    with pytest.raises(UnsupportedFormatError, match="not a scan odontoscan reads.*DICOM series folder"):
        load_scan(other)


def test_folder_without_scans(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(UnsupportedFormatError, match="No scan was found"):
        load_scan(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(ScanReadError, match="does not exist"):
        load_scan(tmp_path / "nope")


def test_2d_image_where_a_volume_is_required(tmp_path):
    path = tmp_path / "pano.png"
    Image.fromarray(np.zeros((10, 20), dtype=np.uint8)).save(path)
    with pytest.raises(DimensionError, match="a 2D image, but a 3D volume \\(CBCT\\) is required"):
        load_scan(path, ndim=3)


def test_volume_where_a_radiograph_is_required(series):
    folder, _ = series
    with pytest.raises(DimensionError, match="a 3D volume, but a 2D radiograph is required"):
        load_scan(folder, ndim=2)


def test_single_ct_slice_is_not_a_volume(series):
    _, paths = series
    with pytest.raises(DimensionError, match="single CT slice.*whole series"):
        load_scan(paths[0])


def test_modality_that_does_not_fit_the_dimension(series):
    folder, _ = series
    with pytest.raises(DimensionError, match="--modality PX does not fit"):
        load_scan(folder, modality="PX")


def test_unsupported_transfer_syntax(series):
    folder, paths = series
    for path in paths:
        ds = pydicom.dcmread(path)
        encapsulate_frames(ds, [b"\x00\x00\x01\xb3" + b"\x00" * 64], "1.2.840.10008.1.2.4.100")  # MPEG2
        ds.save_as(path)
    with pytest.raises(UnsupportedTransferSyntaxError, match="MPEG2.*no installed decoder.*Decompress"):
        load_scan(folder)
