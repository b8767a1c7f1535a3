"""Reference anatomy and ways to store it: orientations, formats, DICOM variants.

The reference volume is asymmetric on every axis (a bright block on the patient's
right, anterior, superior side), so any orientation mistake changes the array.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from odontoscan.datasets.geometry import Geometry, to_source
from odontoscan.datasets.writers import DicomIdentity, write_ct_series

RAS_IN_LPS = np.diag([-1.0, -1.0, 1.0])  # column c = LPS direction of canonical axis c

PHI = DicomIdentity(
    patient_name="Doe^Jane^Q",
    patient_id="PID-7734219",
    patient_birth_date="19800214",
    patient_sex="F",
    accession_number="ACC-55190",
    institution_name="Example Dental Clinic Springfield",
    study_description="CBCT Doe Jane lower jaw",
)
PHI_STRINGS = ("Doe", "Jane", "PID-7734219", "19800214", "ACC-55190", "Springfield")


def reference_volume(shape=(40, 36, 24), seed: int = 0) -> np.ndarray:
    """Integer-valued HU-like canonical (RAS) volume, asymmetric along every axis."""
    rng = np.random.default_rng(seed)
    vol = rng.integers(-50, 60, size=shape).astype(np.float32)
    x, y, z = shape
    vol[x // 2 :, y // 2 :, z // 2 :] += 1500  # right, anterior, superior block
    vol[: x // 4, : y // 3, : z // 5] -= 900  # left, posterior, inferior pocket
    vol[x - 3, 2, 1] = 3000  # single marker voxel
    return vol


@dataclass(frozen=True)
class Stored:
    """A canonical volume re-expressed in some stored orientation."""

    array: np.ndarray  # stored index order i, j, k
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray


def store(canonical: np.ndarray, spacing, axes, flips, canonical_origin=(10.0, -20.0, 30.0)) -> Stored:
    """Express ``canonical`` with stored axis ``axes[c]`` = canonical axis c, flipped per ``flips``."""
    direction = np.zeros((3, 3))
    for c, (a, f) in enumerate(zip(axes, flips)):
        direction[:, a] = RAS_IN_LPS[:, c] * (-1.0 if f else 1.0)
    geometry = Geometry(
        origin=canonical_origin,
        direction=RAS_IN_LPS,
        source_shape=(),
        source_spacing=(),
        source_origin=(),
        source_direction=direction,
        axes=tuple(axes),
        flips=tuple(flips),
    )
    array = to_source(canonical, geometry)
    stored_spacing = [0.0, 0.0, 0.0]
    for c, a in enumerate(axes):
        stored_spacing[a] = spacing[c]
    corner = np.array([canonical.shape[c] - 1 if flips[c] else 0 for c in range(3)], dtype=float)
    origin = np.asarray(canonical_origin) + RAS_IN_LPS @ (corner * np.asarray(spacing))
    return Stored(np.ascontiguousarray(array), tuple(stored_spacing), tuple(origin), direction)


ORIENTATIONS = {
    "lps_axial": ((0, 1, 2), (True, True, False)),
    "ras": ((0, 1, 2), (False, False, False)),
    "lpi_axial_reversed": ((0, 1, 2), (True, True, True)),
    "sagittal_stack": ((2, 0, 1), (False, True, False)),
    "coronal_stack": ((1, 2, 0), (True, False, True)),
}


def write_series(stored: Stored, folder: Path, identity: DicomIdentity | None = None, shuffle: int | None = None) -> list[Path]:
    """Write a classic CT series; with ``shuffle`` the file names and InstanceNumbers are scrambled."""
    identity = identity or DicomIdentity(series_uid=generate_uid(), study_uid=generate_uid())
    paths = write_ct_series(stored.array, stored.spacing, folder, origin=stored.origin, direction=stored.direction, identity=identity)
    if shuffle is not None:
        order = list(range(len(paths)))
        random.Random(shuffle).shuffle(order)
        tmp = [p.rename(p.with_suffix(".tmp")) for p in paths]
        renamed = []
        for new_index, path in zip(order, tmp):
            ds = pydicom.dcmread(path)
            ds.InstanceNumber = len(paths) - new_index  # misleading on purpose
            target = folder / f"slice_{new_index:03d}.dcm"
            ds.save_as(target)
            path.unlink()
            renamed.append(target)
        paths = renamed
    return paths


def write_itk(stored: Stored, path: Path) -> Path:
    image = sitk.GetImageFromArray(stored.array.transpose(2, 1, 0).copy())
    image.SetSpacing(stored.spacing)
    image.SetOrigin(stored.origin)
    image.SetDirection(tuple(stored.direction.ravel()))
    sitk.WriteImage(image, str(path))
    return path


def write_enhanced_ct(stored: Stored, path: Path, identity: DicomIdentity | None = None, frame_order_seed: int = 3) -> Path:
    """One Enhanced CT multi-frame file with per-frame positions (frames in scrambled order)."""
    identity = identity or DicomIdentity()
    n = stored.array.shape[2]
    order = list(range(n))
    random.Random(frame_order_seed).shuffle(order)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = identity.patient_name, identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.StudyInstanceUID, ds.SeriesInstanceUID = identity.study_uid, identity.series_uid
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.Modality = "CT"
    ds.Manufacturer = "test"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.NumberOfFrames = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.array.shape[1], stored.array.shape[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [stored.spacing[1], stored.spacing[0]]
    measures.SliceThickness = stored.spacing[2]
    orientation = Dataset()
    orientation.ImageOrientationPatient = [*stored.direction[:, 0], *stored.direction[:, 1]]
    transform = Dataset()
    transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = -1024, 1, "HU"
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    frames = []
    for k in order:
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = list(np.asarray(stored.origin) + stored.direction[:, 2] * stored.spacing[2] * k)
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
        frames.append((stored.array[:, :, k].T + 1024).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def to_unsigned(ds: Dataset) -> Dataset:
    """Re-store a signed CT slice as unsigned (codecs like JPEG lossless want that)."""
    values = ds.pixel_array.astype(np.int32) + 1024
    ds.RescaleIntercept = float(ds.RescaleIntercept) - 1024
    ds.PixelRepresentation = 0
    ds.PixelData = values.astype(np.uint16).tobytes()
    return ds


def encapsulate_frames(ds: Dataset, frames: list[bytes], transfer_syntax: str) -> Dataset:
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    return ds
