"""Stacking DICOM slices into a volume with correct geometry.

Works for classic series (one slice per file) and multi-frame files (Enhanced CT with
functional groups, or legacy multi-frame with a frame offset vector). Slices are
ordered by their position along the slice normal, never by file name or
InstanceNumber. Before stacking, the geometry is checked: a volume is refused when
slices are missing, duplicated, unevenly spaced, tilted (gantry tilt) or disagree on
orientation, size or pixel spacing, because stacking them would misplace anatomy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from odontoscan.datasets.errors import MixedSeriesError, SeriesGeometryError
from odontoscan.datasets.geometry import (
    Geometry,
    canonical_geometry,
    canonical_shape,
    canonical_spacing,
    to_source,
)
from odontoscan.datasets.readers.dicom_pixels import check_decodable, decode_pixels, rescale
from odontoscan.datasets.readers.dicom_series import DicomImage, read_dicom

log = logging.getLogger(__name__)

_ORIENTATION_TOL = 1e-3  # direction cosines
_DUPLICATE_TOL_MM = 1e-3
_SPACING_REL_TOL = 0.02  # allowed relative deviation from the median slice gap
_TILT_TOL_DEG = 0.1


@dataclass
class SliceRef:
    """Geometry and rescale of one 2D slice, and where its pixels are."""

    image: int  # index into the series' image list
    frame: int | None  # frame index in a multi-frame file, None for single-frame
    position: np.ndarray  # ImagePositionPatient (LPS mm) of the first pixel
    orientation: np.ndarray  # ImageOrientationPatient: row cosines, column cosines
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    slope: float
    intercept: float
    instance_number: int | None
    sop_instance_uid: str


@dataclass
class StackedVolume:
    """A series stacked straight into canonical (RAS) orientation."""

    array: np.ndarray  # float32, canonical [x, y, z]
    spacing: tuple[float, float, float]  # canonical axis order, mm
    geometry: Geometry
    sop_instance_uids: tuple[str, ...]  # one per slice, in stored slice order (k)


def _floats(value, n: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise SeriesGeometryError(
            f"A slice has an invalid {what}; the volume cannot be placed in space. "
            "Export the series again with complete geometry."
        )
    return arr


def _rescale_of(item: Dataset | None, fallback: Dataset) -> tuple[float, float]:
    src = item if item is not None and "RescaleSlope" in item else fallback
    slope = float(getattr(src, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(src, "RescaleIntercept", 0.0) or 0.0)
    return slope, intercept


def _group(ds: Dataset, frame_groups: Dataset | None, name: str) -> Dataset | None:
    """First item of functional group ``name`` for a frame (per-frame, else shared)."""
    for container in (frame_groups, _first(ds, "SharedFunctionalGroupsSequence")):
        if container is not None and name in container and len(container[name].value):
            return container[name].value[0]
    return None


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    seq = getattr(ds, keyword, None)
    return seq[0] if seq else None


def _classic_slice(index: int, ds: Dataset) -> SliceRef:
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        raise SeriesGeometryError(
            "A slice of the series has no ImagePositionPatient/ImageOrientationPatient, "
            "so slices cannot be placed in space. Export the series with its geometry."
        )
    spacing = _floats(getattr(ds, "PixelSpacing", None) or [], 2, "PixelSpacing")
    slope, intercept = _rescale_of(None, ds)
    return SliceRef(
        image=index,
        frame=None,
        position=_floats(ds.ImagePositionPatient, 3, "ImagePositionPatient"),
        orientation=_floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient"),
        pixel_spacing=(float(spacing[0]), float(spacing[1])),
        slope=slope,
        intercept=intercept,
        instance_number=int(ds.InstanceNumber) if "InstanceNumber" in ds else None,
        sop_instance_uid=str(getattr(ds, "SOPInstanceUID", "")),
    )


def _enhanced_slices(index: int, ds: Dataset) -> list[SliceRef]:
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None) or []
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    refs = []
    for f in range(n_frames):
        groups = per_frame[f] if f < len(per_frame) else None
        position = _group(ds, groups, "PlanePositionSequence")
        orientation = _group(ds, groups, "PlaneOrientationSequence")
        measures = _group(ds, groups, "PixelMeasuresSequence")
        transform = _group(ds, groups, "PixelValueTransformationSequence")
        if position is None or orientation is None or measures is None:
            raise SeriesGeometryError(
                f"Frame {f + 1} of a multi-frame image lacks plane position, orientation "
                "or pixel measures, so it cannot be placed in space. Export the series "
                "with complete functional groups."
            )
        spacing = _floats(getattr(measures, "PixelSpacing", None) or [], 2, "PixelSpacing")
        slope, intercept = _rescale_of(transform, ds)
        refs.append(
            SliceRef(
                image=index,
                frame=f,
                position=_floats(position.ImagePositionPatient, 3, "ImagePositionPatient"),
                orientation=_floats(
                    orientation.ImageOrientationPatient, 6, "ImageOrientationPatient"
                ),
                pixel_spacing=(float(spacing[0]), float(spacing[1])),
                slope=slope,
                intercept=intercept,
                instance_number=f + 1,
                sop_instance_uid=str(getattr(ds, "SOPInstanceUID", "")),
            )
        )
    return refs


def _legacy_multiframe_slices(index: int, ds: Dataset) -> list[SliceRef]:
    """Multi-frame without functional groups: frames stacked along the normal."""
    base = _classic_slice(index, ds)
    n_frames = int(ds.NumberOfFrames)
    if "GridFrameOffsetVector" in ds:
        offsets = _floats(ds.GridFrameOffsetVector, n_frames, "GridFrameOffsetVector")
    elif "SpacingBetweenSlices" in ds:
        offsets = np.arange(n_frames) * float(ds.SpacingBetweenSlices)
    else:
        raise SeriesGeometryError(
            "A multi-frame image has no per-frame positions (no functional groups, frame "
            "offset vector or slice spacing); export it as an Enhanced CT or classic series."
        )
    normal = np.cross(base.orientation[:3], base.orientation[3:])
    return [
        SliceRef(
            image=index,
            frame=f,
            position=base.position + offsets[f] * normal,
            orientation=base.orientation,
            pixel_spacing=base.pixel_spacing,
            slope=base.slope,
            intercept=base.intercept,
            instance_number=f + 1,
            sop_instance_uid=base.sop_instance_uid,
        )
        for f in range(n_frames)
    ]


def slices_of(images: list[DicomImage]) -> list[SliceRef]:
    """All slices of a series, one per single-frame file or per frame."""
    refs: list[SliceRef] = []
    for index, image in enumerate(images):
        ds = image.header
        if image.frames > 1:
            if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
                refs.extend(_enhanced_slices(index, ds))
            else:
                refs.extend(_legacy_multiframe_slices(index, ds))
        else:
            refs.append(_classic_slice(index, ds))
    return refs


def _check_consistent(images: list[DicomImage], refs: list[SliceRef]) -> None:
    sizes = {(int(i.header.Rows), int(i.header.Columns)) for i in images}
    if len(sizes) > 1:
        raise MixedSeriesError(
            f"The series mixes images of {len(sizes)} different sizes "
            f"({', '.join(f'{r}x{c}' for r, c in sorted(sizes))}); it is not one volume. "
            "Choose one series with --series or export the series again."
        )
    modalities = {str(getattr(i.header, "Modality", "")) for i in images}
    if len(modalities) > 1:
        raise MixedSeriesError(
            f"The series mixes modalities {sorted(modalities)}; it is not one volume."
        )
    ref0 = refs[0]
    for ref in refs[1:]:
        if np.max(np.abs(ref.orientation - ref0.orientation)) > _ORIENTATION_TOL:
            raise MixedSeriesError(
                "Slices of the series have different orientations "
                "(ImageOrientationPatient); it is not one volume. Export it again or "
                "choose another series."
            )
        if not np.allclose(ref.pixel_spacing, ref0.pixel_spacing, rtol=1e-3, atol=1e-4):
            raise MixedSeriesError(
                "Slices of the series have different pixel spacings; it is not one volume."
            )
    row, col = ref0.orientation[:3], ref0.orientation[3:]
    if (
        abs(np.linalg.norm(row) - 1) > 1e-2
        or abs(np.linalg.norm(col) - 1) > 1e-2
        or abs(float(row @ col)) > 1e-2
    ):
        raise SeriesGeometryError(
            "ImageOrientationPatient of the series is not made of two orthogonal unit "
            "vectors; the file's geometry is corrupt."
        )


def _where(ref: SliceRef, z: float) -> str:
    label = f"instance {ref.instance_number}" if ref.instance_number is not None else "a slice"
    return f"{label} at {z:.2f} mm"


def order_and_check(
    images: list[DicomImage], refs: list[SliceRef], series_uid: str
) -> tuple[list[SliceRef], float]:
    """Slices sorted along the normal and the slice spacing, or a geometry error."""
    _check_consistent(images, refs)
    row, col = refs[0].orientation[:3], refs[0].orientation[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    z = np.array([float(r.position @ normal) for r in refs])
    order = np.argsort(z, kind="stable")
    refs = [refs[i] for i in order]
    z = z[order]

    # The same instance listed twice (a file copied twice) is harmless: drop the copy.
    keep = [0]
    for k in range(1, len(refs)):
        same_spot = abs(z[k] - z[keep[-1]]) < _DUPLICATE_TOL_MM
        if same_spot and refs[k].sop_instance_uid == refs[keep[-1]].sop_instance_uid and refs[k].frame == refs[keep[-1]].frame:
            log.warning("dropping a duplicate copy of one slice")
            continue
        if same_spot:
            raise SeriesGeometryError(
                f"Series {series_uid} has two different slices at the same position "
                f"({_where(refs[keep[-1]], z[k])} and {_where(refs[k], z[k])}); it may "
                "mix two acquisitions. Remove the duplicates or choose another series."
            )
        keep.append(k)
    refs = [refs[k] for k in keep]
    z = z[keep]
    if len(refs) < 2:
        return refs, 1.0

    first_to_last = refs[-1].position - refs[0].position
    along = float(first_to_last @ normal)
    across = float(np.linalg.norm(first_to_last - along * normal))
    tilt = float(np.degrees(np.arctan2(across, abs(along))))
    if tilt > _TILT_TOL_DEG:
        raise SeriesGeometryError(
            f"Series {series_uid} is acquired with a gantry tilt of {tilt:.1f} degrees: "
            "slice positions do not run along the slice normal. Correct the tilt "
            "(resample to an orthogonal grid, e.g. with the scanner console or "
            "dcm2niix) before analysis."
        )

    gaps = np.diff(z)
    spacing = float(np.median(gaps))
    bad = np.nonzero(np.abs(gaps - spacing) > max(_SPACING_REL_TOL * spacing, 1e-3))[0]
    if bad.size:
        k = int(bad[0])
        ratio = gaps[k] / spacing
        if round(ratio) >= 2 and abs(ratio - round(ratio)) < 0.1:
            missing = int(sum(round(gaps[b] / spacing) - 1 for b in bad))
            raise SeriesGeometryError(
                f"Series {series_uid} is missing {missing} slice(s): the gap between "
                f"{_where(refs[k], z[k])} and {_where(refs[k + 1], z[k + 1])} is "
                f"{gaps[k]:.2f} mm where slices are {spacing:.2f} mm apart. Copy or "
                "export the complete series."
            )
        raise SeriesGeometryError(
            f"Series {series_uid} has uneven slice spacing: gaps from {gaps.min():.3f} "
            f"to {gaps.max():.3f} mm (median {spacing:.3f} mm; first irregular gap "
            f"after {_where(refs[k], z[k])}). Stacking it would distort distances; "
            "resample it to even spacing first."
        )
    return refs, spacing


def stack(images: list[DicomImage], series_uid: str) -> StackedVolume:
    """Read, check and stack the slices of one volumetric series in canonical orientation.

    The canonical array is allocated once and each decoded slice is written into it
    through a stored-order view, so peak memory is about one float32 volume.
    """
    refs, slice_spacing = order_and_check(images, slices_of(images), series_uid)
    rows, cols = int(images[0].header.Rows), int(images[0].header.Columns)
    for image in images:
        check_decodable(image.header)
    row, col = refs[0].orientation[:3], refs[0].orientation[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    row_spacing, col_spacing = refs[0].pixel_spacing
    geometry = canonical_geometry(
        (cols, rows, len(refs)),
        (col_spacing, row_spacing, slice_spacing),
        tuple(float(v) for v in refs[0].position),
        np.stack([row, col, normal], axis=1),
    )
    array = np.empty(canonical_shape(geometry), dtype=np.float32)
    stored = to_source(array, geometry)  # writable view in (i, j, k) order

    by_image: dict[int, list[tuple[int, SliceRef]]] = {}
    for k, ref in enumerate(refs):
        by_image.setdefault(ref.image, []).append((k, ref))
    for index, entries in by_image.items():
        ds = read_dicom(images[index].path, with_pixels=True)
        pixels = decode_pixels(ds)
        if pixels.ndim != (3 if images[index].frames > 1 else 2):
            raise MixedSeriesError(
                "A slice of the series is a colour image; CT volumes must be greyscale."
            )
        for k, ref in entries:
            frame = pixels if ref.frame is None else pixels[ref.frame]
            stored[:, :, k] = rescale(frame, ref.slope, ref.intercept).T
        del pixels, ds
    return StackedVolume(
        array=array,
        spacing=canonical_spacing(geometry),
        geometry=geometry,
        sop_instance_uids=tuple(r.sop_instance_uid for r in refs),
    )
