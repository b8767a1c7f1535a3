"""Writing scans and label maps: DICOM CT series, DICOM radiographs, NIfTI/MHA volumes.

Used by the phantom lab (phantoms come out as proper CT series), tests, and outputs
that go back into the source geometry of the scan they came from.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    PYDICOM_IMPLEMENTATION_UID,
    generate_uid,
)

from odontoscan.datasets.geometry import Geometry, to_source

MANUFACTURER = "odontoscan phantom"


@dataclass(frozen=True)
class DicomIdentity:
    """Patient/study identity written into generated DICOM files.

    Phantoms use synthetic values; tests put realistic-looking identifiers here to
    prove that none of them ever leaves the reader.
    """

    patient_name: str = "Phantom^Anonymous"
    patient_id: str = "PHANTOM"
    patient_birth_date: str = ""
    patient_sex: str = "O"
    accession_number: str = ""
    institution_name: str = ""
    study_description: str = "odontoscan synthetic study"
    study_date: str = "20260101"
    study_uid: str = field(default_factory=generate_uid)
    series_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str = field(default_factory=generate_uid)
    manufacturer: str = MANUFACTURER


def deterministic_uid(*parts: object) -> str:
    """A valid UID derived from ``parts`` (same parts, same UID)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _base_dataset(identity: DicomIdentity, sop_class: str, sop_uid: str, modality: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = identity.patient_sex
    ds.AccessionNumber = identity.accession_number
    ds.InstitutionName = identity.institution_name
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = identity.study_description
    ds.StudyInstanceUID = identity.study_uid
    ds.SeriesInstanceUID = identity.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = identity.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.Modality = modality
    ds.Manufacturer = identity.manufacturer
    ds.ManufacturerModelName = "odontoscan"
    ds.SoftwareVersions = "odontoscan"
    return ds


def _pixel_module(ds: Dataset, pixels: np.ndarray) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()


def write_ct_series(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    out_dir: str | Path,
    *,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    identity: DicomIdentity | None = None,
    rescale_intercept: float = -1024.0,
    rescale_slope: float = 1.0,
    file_names: str = "IM{index:04d}.dcm",
) -> list[Path]:
    """Write a volume as a classic CT series, one file per slice along the third axis.

    Args:
        array: voxel values (e.g. HU) in ITK index order ``[i, j, k]``: i along a row
            (columns), j down a column (rows), k across slices.
        spacing: (i, j, k) voxel size in mm.
        origin: LPS position (mm) of voxel (0, 0, 0).
        direction: LPS unit vectors of the i, j, k axes as columns (identity = LPS).
        identity: patient/study identity and UIDs.
        rescale_intercept, rescale_slope: stored = round((value - intercept) / slope),
            kept in signed 16 bits.
    """
    identity = identity or DicomIdentity()
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = np.clip(np.round((array - rescale_intercept) / rescale_slope), -32768, 32767)
    stored = stored.astype(np.int16)
    paths = []
    for k in range(array.shape[2]):
        sop_uid = deterministic_uid(identity.series_uid, "slice", k)
        ds = _base_dataset(identity, CTImageStorage, sop_uid, "CT")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = identity.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        position = np.asarray(origin) + direction[:, 2] * spacing[2] * k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.SpacingBetweenSlices = f"{spacing[2]:.6f}"
        ds.SliceLocation = f"{float(position @ direction[:, 2]):.6f}"
        ds.KVP = "90"
        ds.RescaleIntercept = f"{rescale_intercept:g}"
        ds.RescaleSlope = f"{rescale_slope:g}"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "1000", "4000"
        _pixel_module(ds, stored[:, :, k].T)
        path = out_dir / file_names.format(index=k + 1)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_radiograph_dicom(
    image: np.ndarray,
    path: str | Path,
    *,
    modality: str = "PX",
    pixel_spacing: tuple[float, float] | None = None,
    spacing_attribute: str = "PixelSpacing",
    identity: DicomIdentity | None = None,
    photometric: str = "MONOCHROME2",
) -> Path:
    """Write a 2D radiograph ``[row, column]`` (uint16 grey values) as DX-family DICOM."""
    identity = identity or DicomIdentity()
    sop_uid = deterministic_uid(identity.series_uid, "image")
    ds = _base_dataset(identity, DigitalXRayImageStorageForPresentation, sop_uid, modality)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    pixels = np.clip(np.round(image), 0, 65535).astype(np.uint16)
    if photometric == "MONOCHROME1":
        pixels = (65535 - pixels).astype(np.uint16)
    _pixel_module(ds, pixels)
    ds.PhotometricInterpretation = photometric
    if pixel_spacing is not None:
        setattr(ds, spacing_attribute, [f"{pixel_spacing[0]:.6f}", f"{pixel_spacing[1]:.6f}"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_volume(
    array: np.ndarray,
    spacing: tuple[float, ...],
    path: str | Path,
    geometry: Geometry | None = None,
) -> Path:
    """Write a canonical array to NIfTI/MHA/NRRD (format from the suffix).

    With ``geometry`` (from a loaded Scan), the array is written back in the source
    frame: the stored axis order, origin and direction of the scan it came from, so
    it overlays the original in any viewer. Without it, the array is written as
    canonical RAS with origin 0.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if geometry is not None and array.ndim == 3:
        source = to_source(array, geometry)
        image = sitk.GetImageFromArray(np.ascontiguousarray(source.transpose(2, 1, 0)))
        image.SetSpacing(geometry.source_spacing)
        image.SetOrigin(geometry.source_origin)
        image.SetDirection(tuple(np.asarray(geometry.source_direction).ravel()))
    else:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.T))
        image.SetSpacing(tuple(float(s) for s in spacing))
        if array.ndim == 3:
            image.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))  # RAS axes in LPS
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """Write outputs into a temporary folder, then move them into ``out`` at once.

    Yields a fresh folder inside ``out`` (same file system, so moves are renames).
    When the block succeeds, each entry of it replaces the same-named entry of
    ``out``; when it raises, ``out`` is left as it was and the partial files are
    removed. An interrupted run therefore never leaves half-written outputs.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".tmp-") as tmp:
        staging = Path(tmp)
        yield staging
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            item.rename(target)


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` "w" text UTF-8 or
    "wb"); when the block succeeds it replaces ``path`` (readable, 0644), when it raises
    the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def now_stamp() -> str:
    """Current date as DICOM DA (used for generated content dates)."""
    return _dt.date.today().strftime("%Y%m%d")
