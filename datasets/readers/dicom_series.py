"""Finding DICOM images in files and folders, grouping them by series, choosing one.

Any file under the input folder is sniffed for a DICOM header; everything else
(DICOMDIR, JSON, text, thumbnails) is ignored, as are non-image objects (SR, SEG,
presentation states). The series read is the volumetric CT/CBCT series with the most
slices, a single radiograph, or the one the caller names by Series Instance UID.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from odontoscan.datasets.errors import (
    MixedSeriesError,
    ScanReadError,
    SeriesNotFoundError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from odontoscan.datasets.scan import SeriesSummary

log = logging.getLogger(__name__)

# Objects that live beside images in a study but are not images.
_NON_IMAGE_MODALITIES = {"SR", "SEG", "KO", "PR", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "DOC"}
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
RADIOGRAPH_MODALITIES = {"DX", "CR", "IO", "PX"}


@dataclass
class DicomImage:
    """One DICOM image file: where it is and its header (pixel data not yet read)."""

    path: Path
    header: Dataset

    @property
    def frames(self) -> int:
        return int(getattr(self.header, "NumberOfFrames", 1) or 1)


def is_dicom_file(path: Path) -> bool:
    """True when the file carries the DICOM Part 10 preamble ("DICM" at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_dicom(path: Path, *, with_pixels: bool = False) -> Dataset:
    """A DICOM file's dataset (header only unless ``with_pixels``), with clear errors."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=not with_pixels)
    except InvalidDicomError as exc:
        raise ScanReadError(
            "A file in the input claims to be DICOM but its header is invalid; export "
            "the series again."
        ) from exc
    except (EOFError, OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
        raise TruncatedFileError(
            "A DICOM file in the input ends before its declared content does (truncated "
            "or corrupt); copy or export the series again."
        ) from exc


def read_header(path: Path) -> Dataset:
    """Header of a DICOM file without its pixel data."""
    return read_dicom(path)


def is_image(header: Dataset) -> bool:
    if str(getattr(header, "SOPClassUID", "")) == _DICOMDIR_CLASS:
        return False
    meta_class = getattr(getattr(header, "file_meta", None), "MediaStorageSOPClassUID", "")
    if str(meta_class) == _DICOMDIR_CLASS:
        return False
    if str(getattr(header, "Modality", "")).upper() in _NON_IMAGE_MODALITIES:
        return False
    return "Rows" in header and "Columns" in header


def find_images(paths: list[Path]) -> tuple[list[DicomImage], int]:
    """DICOM images among ``paths`` and the number of DICOM files that could not be parsed.

    Non-DICOM files and non-image objects are skipped. A damaged file is skipped too
    (it may be a stray non-image object); if it was a slice of the chosen series, the
    geometry check reports the gap it leaves.
    """
    images, damaged = [], 0
    for path in paths:
        if not is_dicom_file(path):
            continue
        try:
            header = read_header(path)
        except ScanReadError:
            damaged += 1
            continue
        if is_image(header):
            images.append(DicomImage(path, header))
    if damaged:
        log.warning("%d damaged DICOM file(s) skipped", damaged)
    log.debug("found %d DICOM images among %d files", len(images), len(paths))
    return images, damaged


def _summary(uid: str, images: list[DicomImage]) -> SeriesSummary:
    first = images[0].header
    return SeriesSummary(
        series_instance_uid=uid,
        modality=str(getattr(first, "Modality", "") or "OT"),
        images=len(images),
        frames=sum(i.frames for i in images),
        rows=int(first.Rows),
        columns=int(first.Columns),
    )


def is_volumetric(images: list[DicomImage]) -> bool:
    """A series is a volume when it has several slices (or frames) with patient geometry."""
    first = images[0].header
    modality = str(getattr(first, "Modality", "")).upper()
    if modality in RADIOGRAPH_MODALITIES:
        return False
    has_geometry = (
        "ImagePositionPatient" in first
        or "PerFrameFunctionalGroupsSequence" in first
        or "SharedFunctionalGroupsSequence" in first
    )
    return has_geometry and sum(i.frames for i in images) > 1


def group_series(images: list[DicomImage]) -> dict[str, list[DicomImage]]:
    """Images grouped by Series Instance UID (missing UIDs grouped together)."""
    groups: dict[str, list[DicomImage]] = defaultdict(list)
    for image in images:
        groups[str(getattr(image.header, "SeriesInstanceUID", "") or "unknown")].append(image)
    return dict(groups)


def choose_series(
    groups: dict[str, list[DicomImage]], series_uid: str | None
) -> tuple[str, list[DicomImage], tuple[SeriesSummary, ...]]:
    """Pick the series to read; return its UID, images and summaries of the others."""
    if not groups:
        raise UnsupportedFormatError(
            "No DICOM images were found in the input. Pass a DICOM series folder or "
            "zip, a DICOM file, a NIfTI/MHA/NRRD volume, or a PNG/JPEG/TIFF radiograph."
        )
    summaries = {uid: _summary(uid, imgs) for uid, imgs in groups.items()}
    if series_uid is not None:
        if series_uid not in groups:
            listed = ", ".join(
                f"{s.series_instance_uid} ({s.modality}, {s.frames} slices)"
                for s in summaries.values()
            )
            raise SeriesNotFoundError(
                f"Series {series_uid} is not in the input. Series found: {listed}."
            )
        chosen = series_uid
    else:
        volumes = [uid for uid, imgs in groups.items() if is_volumetric(imgs)]
        if volumes:
            # Prefer CT, then the most slices; the UID breaks ties deterministically.
            chosen = max(
                volumes,
                key=lambda u: (summaries[u].modality == "CT", summaries[u].frames, u),
            )
        elif len(groups) == 1 and len(next(iter(groups.values()))) == 1:
            chosen = next(iter(groups))
        else:
            count = sum(len(v) for v in groups.values())
            raise MixedSeriesError(
                f"The input holds {count} separate 2D images in {len(groups)} series and "
                "no volume; odontoscan analyses one scan at a time. Pass a single "
                "radiograph, name one with --series UID, or use `odontoscan screen` "
                "for a batch."
            )
    others = tuple(s for uid, s in sorted(summaries.items()) if uid != chosen)
    if others:
        log.info("chose series %s; %d other series ignored", chosen, len(others))
    return chosen, groups[chosen], others
