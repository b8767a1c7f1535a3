"""Compressed transfer syntaxes decodable with pip-installable plugins load like raw ones."""

import imagecodecs
import numpy as np
import pydicom
import pytest
from helpers.volumes import ORIENTATIONS, encapsulate_frames, reference_volume, store, to_unsigned, write_series
from PIL import Image
from pydicom.uid import JPEG2000Lossless, RLELossless

from odontoscan.datasets import load_scan
from odontoscan.datasets.writers import write_radiograph_dicom


@pytest.fixture()
def series(tmp_path):
    reference = reference_volume()
    stored = store(reference, (0.3, 0.3, 0.3), *ORIENTATIONS["lps_axial"])
    return reference, tmp_path / "s", write_series(stored, tmp_path / "s")


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_pydicom_encoded_lossless_series(series, syntax):
    reference, folder, paths = series
    for path in paths:
        ds = to_unsigned(pydicom.dcmread(path))
        ds.compress(syntax)
        ds.save_as(path)
    scan = load_scan(folder)
    assert scan.meta.transfer_syntax_uid == syntax
    np.testing.assert_array_equal(scan.array, reference)


def test_jpeg_lossless_process_14_series(series):
    reference, folder, paths = series
    for path in paths:
        ds = to_unsigned(pydicom.dcmread(path))
        frame = imagecodecs.jpeg8_encode(ds.pixel_array, lossless=True, predictor=1, bitspersample=16)
        encapsulate_frames(ds, [frame], "1.2.840.10008.1.2.4.70").save_as(path)
    scan = load_scan(folder)
    np.testing.assert_array_equal(scan.array, reference)


def test_jpeg_baseline_radiograph(tmp_path):
    image = np.tile(np.linspace(0, 255, 64), (32, 1)).round()
    path = write_radiograph_dicom(image, tmp_path / "io.dcm", modality="IO", pixel_spacing=(0.05, 0.05))
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    pixels = image.astype(np.uint8)
    frame = imagecodecs.jpeg8_encode(pixels, level=95)
    encapsulate_frames(ds, [frame], "1.2.840.10008.1.2.4.50").save_as(path)
    scan = load_scan(path)
    assert scan.modality.value == "IO"
    assert np.abs(scan.array - image).max() < 8  # lossy, but the same picture


def test_colour_jpeg_image_becomes_grey(tmp_path):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    scan = load_scan(tmp_path / "photo.jpg")
    assert scan.array.shape == (16, 16)
    assert scan.array.mean() == pytest.approx(0.299 * 200, abs=4)
