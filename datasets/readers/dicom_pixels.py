"""Decoding DICOM pixel data, with clear errors for codecs and truncated files.

pydicom decodes compressed transfer syntaxes through plugins (pylibjpeg for JPEG
baseline/lossless and JPEG 2000, pylibjpeg-rle or numpy for RLE). This module checks
that a decoder exists before decoding, so the user gets "install X or decompress the
file" instead of a stack trace.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from odontoscan.datasets.errors import TruncatedFileError, UnsupportedTransferSyntaxError


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return UID(uid or "1.2.840.10008.1.2.1")


def check_decodable(ds: Dataset) -> None:
    """Raise UnsupportedTransferSyntaxError unless the pixel data can be decoded here."""
    uid = _transfer_syntax(ds)
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            f"The DICOM pixel data is compressed as '{uid.name}' ({uid}), which no "
            "installed decoder reads. Decompress the series first (for example "
            "`gdcmconv --raw` or DCMTK's `dcmdjpeg`/`dcmdjp2k`), or install a pydicom "
            "decoder plugin for it."
        )


def decode_pixels(ds: Dataset) -> np.ndarray:
    """Stored pixel values of ``ds`` (frames first for multi-frame), before rescale.

    Colour images come back as RGB with the samples in the last axis.
    """
    check_decodable(ds)
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise TruncatedFileError(
            "A DICOM image in the input has no pixel data (the file may be truncated "
            "or be a header-only object); export the series again."
        )
    try:
        return ds.pixel_array
    except (ValueError, EOFError) as exc:
        text = str(exc).lower()
        if "length" in text or "expected" in text or "truncat" in text or "end of" in text:
            raise TruncatedFileError(
                "A DICOM image in the input holds less pixel data than its header "
                "declares: the file is truncated. Copy or export the series again."
            ) from exc
        raise UnsupportedTransferSyntaxError(
            f"The DICOM pixel data could not be decoded ({type(exc).__name__}); the "
            "file may be corrupt or use an unusual encoding. Export it again, "
            "uncompressed if possible."
        ) from exc
    except (NotImplementedError, RuntimeError) as exc:
        uid = _transfer_syntax(ds)
        raise UnsupportedTransferSyntaxError(
            f"The DICOM pixel data in '{uid.name}' ({uid}) could not be decoded. "
            "Decompress the series first (for example `gdcmconv --raw`), or install "
            "a pydicom decoder plugin for it."
        ) from exc


def rescale(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Apply Rescale Slope/Intercept, returning float32."""
    out = values.astype(np.float32, copy=True)
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept != 0.0:
        out += np.float32(intercept)
    return out
