"""Reading radiographs stored as ordinary images: PNG, JPEG, TIFF (8- and 16-bit).

Colour images become grey by luminance; 16-bit values are kept as they are. Such
files carry no trustworthy physical pixel size (a DPI tag is usually a screen
default), so the spacing is reported as unknown unless the caller gives one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from odontoscan.datasets.errors import DimensionError, ScanReadError
from odontoscan.datasets.readers.dicom_radiograph import to_grey

SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}


def format_of(path: Path) -> str | None:
    return SUFFIXES.get(path.suffix.lower())


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) > 1:
                raise DimensionError(
                    f"'{path.name}' holds {len(tif.pages)} pages; odontoscan reads one "
                    "radiograph per TIFF file."
                )
            page = tif.pages[0]
            pixels = page.asarray()
            if pixels.ndim == 3 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
                pixels = np.moveaxis(pixels, 0, -1)  # colour planes last
            return pixels
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise ScanReadError(
            f"'{path.name}' is not a readable TIFF image ({type(exc).__name__}); "
            "check the file or save it again."
        ) from exc


def _read_pillow(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "PA", "LA", "1", "CMYK", "YCbCr"):
                img = img.convert("RGB" if img.mode in ("P", "PA", "CMYK", "YCbCr") else "L")
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ScanReadError(
            f"'{path.name}' is not a readable {format_of(path) or 'image'} file "
            f"({type(exc).__name__}); check the file or save it again."
        ) from exc


def read_image(path: Path) -> np.ndarray:
    """Grey float32 pixels ``[row, column]`` of a PNG/JPEG/TIFF radiograph."""
    pixels = _read_tiff(path) if format_of(path) == "tiff" else _read_pillow(path)
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4) or pixels.ndim > 3:
        raise DimensionError(
            f"'{path.name}' has image shape {pixels.shape}; expected a 2D greyscale or "
            "RGB radiograph."
        )
    grey = to_grey(pixels)
    if grey.ndim != 2 or min(grey.shape) < 2:
        raise ScanReadError(f"'{path.name}' holds no usable 2D image (shape {pixels.shape}).")
    return np.ascontiguousarray(grey, dtype=np.float32)
