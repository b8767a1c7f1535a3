"""The ``Scan`` type: one loaded CBCT volume or radiograph in canonical orientation.

Axis order and units are fixed here, once:

* volumes: ``array[x, y, z]`` with x increasing to the patient's Right, y to Anterior,
  z to Superior (RAS, nibabel's ``as_closest_canonical`` convention);
  ``spacing`` is (x, y, z) in millimetres;
* radiographs: ``array[row, column]`` as the image is displayed (row 0 at the top),
  brighter = denser (MONOCHROME1 images are inverted on read); ``spacing`` is
  (row spacing, column spacing) in millimetres, or 1.0 per pixel when the file does
  not say (``pixel_spacing_known`` is then False).

``Scan.meta`` is de-identified by construction: it is a fixed set of technical fields,
never a copy of the source header.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from pydantic import BaseModel, ConfigDict

from odontoscan.datasets.geometry import Geometry


class Modality(str, Enum):
    """Imaging modality, with DICOM's Modality codes as values."""

    CT = "CT"  # CT or CBCT volume
    PX = "PX"  # panoramic radiograph
    IO = "IO"  # intraoral radiograph (periapical, bitewing)
    DX = "DX"  # digital radiograph, kind unknown
    CR = "CR"  # computed radiography

    @property
    def is_volume(self) -> bool:
        return self is Modality.CT


class SeriesSummary(BaseModel):
    """One series found in the input (used to list the series not chosen)."""

    model_config = ConfigDict(frozen=True)

    series_instance_uid: str
    modality: str
    images: int
    frames: int
    rows: int
    columns: int


class ScanMeta(BaseModel):
    """De-identified, technical description of where a Scan came from.

    Only the fields below exist: patient name, id, birth date, accession number,
    institution, physician and free-text descriptions are never copied.
    """

    model_config = ConfigDict(frozen=True)

    source_format: str  # dicom-series, dicom-enhanced, dicom-image, nifti, metaimage, nrrd, png, jpeg, tiff
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    sop_class_uid: str | None = None
    # SOP Instance UIDs of the source images, in canonical slice order (z for classic
    # series; one UID for single files). Outputs such as DICOM SEG reference them.
    sop_instance_uids: tuple[str, ...] = ()
    manufacturer: str | None = None
    manufacturer_model: str | None = None
    transfer_syntax_uid: str | None = None
    photometric_interpretation: str | None = None
    bits_stored: int | None = None
    pixel_spacing_source: str | None = None  # PixelSpacing, ImagerPixelSpacing, header, unknown
    source_orientation: str | None = None  # axis codes of the stored array, e.g. "LPS"
    other_series: tuple[SeriesSummary, ...] = ()


@dataclass(frozen=True, eq=False)
class Scan:
    """A scan in canonical orientation with its source geometry.

    Attributes:
        array: float32 voxel/pixel values. CT volumes in Hounsfield-like units after
            Rescale Slope/Intercept; radiographs in the file's grey values.
        spacing: voxel size in mm, in the array's axis order.
        modality: imaging modality.
        meta: de-identified technical metadata.
        geometry: canonical and source placement in patient space (LPS, mm).
        pixel_spacing_known: False when a 2D file carried no spacing (1.0 assumed).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    modality: Modality
    meta: ScanMeta
    geometry: Geometry
    pixel_spacing_known: bool = True

    def __post_init__(self) -> None:
        if self.array.ndim not in (2, 3):
            raise ValueError(f"Scan.array must be 2D or 3D, got {self.array.ndim}D")
        if len(self.spacing) != self.array.ndim:
            raise ValueError("Scan.spacing must have one value per array axis")
        if any(s <= 0 for s in self.spacing):
            raise ValueError(f"Scan.spacing must be positive, got {self.spacing}")

    @property
    def is_volume(self) -> bool:
        return self.array.ndim == 3

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.array.shape)

    @property
    def orientation(self) -> str:
        """Axis codes of ``array``: "RAS" for volumes, "2D" for radiographs."""
        return "RAS" if self.is_volume else "2D"

    def __repr__(self) -> str:
        return (
            f"Scan(modality={self.modality.value}, shape={self.shape}, "
            f"spacing={tuple(round(s, 4) for s in self.spacing)}, "
            f"source={self.meta.source_format})"
        )
