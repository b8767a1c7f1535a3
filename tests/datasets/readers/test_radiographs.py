"""2D radiographs: DICOM DX/CR/IO/PX and PNG/JPEG/TIFF, spacing and photometry."""

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image

from odontoscan.datasets import Modality, load_scan
from odontoscan.datasets.errors import DimensionError
from odontoscan.datasets.writers import write_radiograph_dicom

IMAGE = np.add.outer(np.arange(20) * 100.0, np.arange(30) * 10.0)  # rows x cols, brighter down/right


@pytest.mark.parametrize("modality", ["DX", "CR", "IO", "PX"])
def test_dicom_radiograph_modalities_and_pixel_spacing(tmp_path, modality):
    path = write_radiograph_dicom(IMAGE, tmp_path / "r.dcm", modality=modality, pixel_spacing=(0.1, 0.12))
    scan = load_scan(path)
    assert scan.modality is Modality(modality)
    assert not scan.is_volume and scan.orientation == "2D"
    assert scan.spacing == pytest.approx((0.1, 0.12))
    assert scan.pixel_spacing_known
    assert scan.meta.pixel_spacing_source == "PixelSpacing"
    np.testing.assert_array_equal(scan.array, IMAGE)


def test_monochrome1_is_inverted_so_dense_is_bright(tmp_path):
    path = write_radiograph_dicom(IMAGE, tmp_path / "m1.dcm", modality="CR", photometric="MONOCHROME1")
    assert pydicom.dcmread(path).PhotometricInterpretation == "MONOCHROME1"
    np.testing.assert_array_equal(load_scan(path).array, IMAGE)


def test_imager_pixel_spacing_corrected_for_magnification(tmp_path):
    path = write_radiograph_dicom(IMAGE, tmp_path / "px.dcm", pixel_spacing=(0.11, 0.11), spacing_attribute="ImagerPixelSpacing")
    ds = pydicom.dcmread(path)
    ds.EstimatedRadiographicMagnificationFactor = 1.1
    ds.save_as(path)
    scan = load_scan(path)
    assert scan.spacing == pytest.approx((0.1, 0.1))
    assert scan.meta.pixel_spacing_source == "ImagerPixelSpacing"


def test_dicom_radiograph_without_spacing_is_marked_unknown(tmp_path):
    scan = load_scan(write_radiograph_dicom(IMAGE, tmp_path / "r.dcm"))
    assert not scan.pixel_spacing_known
    assert scan.spacing == (1.0, 1.0)


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("gray8.png", (IMAGE / 10).astype(np.uint8)),
        ("gray16.png", (IMAGE * 20).astype(np.uint16)),
        ("gray8.tif", (IMAGE / 10).astype(np.uint8)),
        ("gray16.tiff", (IMAGE * 20).astype(np.uint16)),
    ],
)
def test_png_and_tiff_8_and_16_bit_keep_their_values(tmp_path, name, array):
    path = tmp_path / name
    if name.endswith(("tif", "tiff")):
        tifffile.imwrite(path, array)
    else:
        Image.fromarray(array).save(path)
    scan = load_scan(path)
    assert scan.modality is Modality.DX
    assert not scan.pixel_spacing_known
    np.testing.assert_array_equal(scan.array, array.astype(np.float32))


def test_rgb_png_becomes_grey_by_luminance(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 1] = 100
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    scan = load_scan(tmp_path / "rgb.png")
    np.testing.assert_allclose(scan.array, 58.7, atol=1e-3)


def test_planar_rgb_tiff_becomes_grey(tmp_path):
    planes = np.zeros((3, 8, 9), dtype=np.uint8)
    planes[2] = 100  # blue
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    scan = load_scan(tmp_path / "planar.tif")
    assert scan.shape == (8, 9)
    np.testing.assert_allclose(scan.array, 11.4, atol=1e-3)


def test_given_spacing_and_modality_apply_to_plain_images(tmp_path):
    Image.fromarray((IMAGE / 10).astype(np.uint8)).save(tmp_path / "p.png")
    scan = load_scan(tmp_path / "p.png", pixel_spacing_mm=0.1, modality="PX")
    assert scan.modality is Modality.PX
    assert scan.pixel_spacing_known and scan.spacing == (0.1, 0.1)


def test_multipage_tiff_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 8, 8), dtype=np.uint8), photometric="minisblack")
    with pytest.raises(DimensionError, match="3 pages.*one radiograph per TIFF"):
        load_scan(tmp_path / "stack.tif")
