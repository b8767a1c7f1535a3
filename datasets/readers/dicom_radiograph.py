"""Reading a single 2D DICOM radiograph (DX, CR, IO, PX and single-frame others).

Pixel values go through the modality LUT (Rescale Slope/Intercept), MONOCHROME1
images are inverted so that brighter always means denser, and colour images become
grey. Pixel spacing comes from PixelSpacing (patient plane) or else from
ImagerPixelSpacing (detector plane, divided by the estimated radiographic
magnification when the file gives it).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from odontoscan.datasets.errors import DimensionError
from odontoscan.datasets.readers.dicom_pixels import decode_pixels, rescale
from odontoscan.datasets.readers.dicom_series import read_dicom


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R BT.601) of an RGB(A) image in the last axis; grey passes through."""
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        rgb = pixels[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return pixels.astype(np.float32, copy=False)


def pixel_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str]:
    """(row, column) spacing in mm and which attribute it came from."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = getattr(ds, keyword, None)
        try:
            spacing = tuple(float(v) for v in value) if value else ()
        except (TypeError, ValueError):
            spacing = ()
        if len(spacing) == 2 and all(s > 0 for s in spacing):
            if keyword == "ImagerPixelSpacing":
                magnification = float(getattr(ds, "EstimatedRadiographicMagnificationFactor", 1) or 1)
                spacing = tuple(s / magnification for s in spacing)
            return (spacing[0], spacing[1]), keyword
    return None, "unknown"


def read_radiograph(path) -> tuple[np.ndarray, Dataset]:
    """Grey float32 pixels ``[row, column]`` of a 2D DICOM image and its header."""
    ds = read_dicom(path, with_pixels=True)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DimensionError(
            f"The DICOM file holds {frames} frames but is not a CT volume; odontoscan "
            "reads radiographs as single 2D images. Export one frame."
        )
    pixels = decode_pixels(ds)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if pixels.ndim == 3:
        return to_grey(pixels), ds
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    image = rescale(pixels, slope, intercept)
    if photometric == "MONOCHROME1":
        bits = int(getattr(ds, "BitsStored", 16))
        signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        low, high = low * slope + intercept, high * slope + intercept
        image = np.float32(low + high) - image
    return image, ds
