"""Reading NIfTI (.nii, .nii.gz), MetaImage (.mha/.mhd) and NRRD (.nrrd/.nhdr) with SimpleITK.

SimpleITK converts each format's header (NIfTI qform/sform, MetaImage
TransformMatrix, NRRD space directions) to LPS origin, spacing and direction, which
is the frame :mod:`odontoscan.datasets.geometry` works in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from odontoscan.datasets.errors import ScanReadError, UnsupportedFormatError

SUFFIXES = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}


def format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


def read_itk(path: Path) -> sitk.Image:
    """The image in ``path``, or a ScanReadError saying why it could not be read."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ScanReadError(
            f"'{path.name}' could not be read as {format_of(path) or 'an image'} "
            "(the header is damaged or its data file is missing/truncated); "
            "write the file again."
        ) from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UnsupportedFormatError(
            f"'{path.name}' has {image.GetNumberOfComponentsPerPixel()} values per voxel; "
            "odontoscan reads greyscale scans only."
        )
    if image.GetDimension() > 3:
        size = image.GetSize()
        if all(s == 1 for s in size[3:]):
            image = image[(slice(None),) * 3 + (0,) * (image.GetDimension() - 3)]
        else:
            raise UnsupportedFormatError(
                f"'{path.name}' is a {image.GetDimension()}D image of size {size}; "
                "odontoscan reads 3D volumes and 2D radiographs."
            )
    return image


def array_xyz(image: sitk.Image) -> np.ndarray:
    """A view of the image's voxels in ITK index order (x, y, z) / (x, y)."""
    view = sitk.GetArrayViewFromImage(image)  # numpy order: z, y, x
    return view.transpose(tuple(reversed(range(view.ndim))))
