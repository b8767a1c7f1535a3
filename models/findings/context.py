"""What the findings rules share: the label map, per-label boxes, the arch and coordinates.

Volumes are canonical RAS arrays ``[x, y, z]``; radiographs ``[row, col]`` panoramics
as viewed (patient's right on the image's left). Positions along the dental arch
("arch mm", increasing from the patient's right to the left) and heights ("up mm",
towards the crowns of the upper teeth) make the chart rules the same in 2D and 3D:
in a volume they come from a dental arch fitted through the teeth, in a panoramic
radiograph they are simply the column and minus the row, in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import ndimage

from odontoscan.datasets.findings_schema import Evidence, Finding, FindingKind, Measurement, Severity
from odontoscan.datasets.geometry import Geometry
from odontoscan.datasets.labels import FDI_TEETH, is_upper
from odontoscan.datasets.panoramic import DentalArch, arch_from_labels

Box = tuple[slice, ...]


@dataclass(eq=False)
class Context:
    """One label map (and its image) under analysis.

    Attributes:
        labels: label map of DESIGN.md ids (teeth by FDI number).
        spacing: mm per axis (pixels count as 1 mm when ``spacing_known`` is false).
        image: the grey values on the same grid, or None.
        geometry: placement of a volume in the patient frame (LPS), or None.
        spacing_known: False for radiographs without pixel spacing (measurements in px).
    """

    labels: np.ndarray
    spacing: tuple[float, ...]
    image: np.ndarray | None = None
    geometry: Geometry | None = None
    spacing_known: bool = True
    _boxes: list[Box | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._boxes = ndimage.find_objects(self.labels) if self.labels.size else []

    @property
    def volume(self) -> bool:
        return self.labels.ndim == 3

    # --- masks -------------------------------------------------------------------------

    def box(self, label: int, margin_mm: float = 0.0) -> Box | None:
        """Bounding box of one label id (grown by ``margin_mm``, clipped), or None if absent."""
        if label < 1 or label > len(self._boxes) or self._boxes[label - 1] is None:
            return None
        box = self._boxes[label - 1]
        if margin_mm <= 0:
            return box
        return grow(box, margin_mm, self.spacing, self.labels.shape)

    def mask(self, label: int, box: Box | None = None) -> np.ndarray | None:
        """Boolean mask of ``label`` inside ``box`` (default: its own box), or None if absent."""
        own = self.box(label)
        if own is None:
            return None
        box = box or own
        return self.labels[box] == label

    def full_mask(self, label: int) -> np.ndarray | None:
        """Whole-grid boolean mask of one label, or None if absent."""
        box = self.box(label)
        if box is None:
            return None
        out = np.zeros(self.labels.shape, dtype=bool)
        out[box] = self.labels[box] == label
        return out

    def voxel_size(self) -> float:
        """mm^3 (volumes) or mm^2 (radiographs) per voxel."""
        return float(np.prod(self.spacing))

    def size_of(self, label: int) -> float:
        """Volume (mm^3) or area (mm^2) of one label."""
        mask = self.mask(label)
        return 0.0 if mask is None else float(np.count_nonzero(mask)) * self.voxel_size()

    # --- coordinates ---------------------------------------------------------------------

    def mm(self, index: np.ndarray) -> np.ndarray:
        """Grid mm of voxel indices (..., ndim)."""
        return np.asarray(index, dtype=float) * np.asarray(self.spacing, dtype=float)

    def location(self, index: np.ndarray) -> list[float]:
        """``location_mm`` of findings: LPS mm for volumes, (row, col) mm or px for radiographs."""
        index = np.asarray(index, dtype=float)
        if self.volume:
            geometry = self.geometry or Geometry.identity(self.labels.shape, self.spacing)
            return [round(float(v), 2) for v in geometry.index_to_lps(index, self.spacing)]
        return [round(float(v), 2) for v in self.mm(index)]

    def slice_index(self, index: np.ndarray) -> int | None:
        """Axial slice (canonical z index) of a voxel position in a volume."""
        return int(round(float(np.asarray(index)[2]))) if self.volume else None

    def finding(
        self,
        kind: FindingKind,
        fdi: int | None,
        index: np.ndarray,
        severity: Severity,
        confidence: float,
        measurements: dict[str, Measurement],
        grade: str | None = None,
    ) -> Finding:
        """A finding at voxel position ``index``: location and slice filled in, id
        ``<kind>-<fdi or na>-1`` (numbered per kind and tooth by the caller)."""
        return Finding(
            id=f"{kind.value.replace('_', '-')}-{fdi if fdi is not None else 'na'}-1",
            kind=kind,
            fdi=fdi,
            confidence=confidence,
            severity=severity,
            grade=grade,
            location_mm=self.location(index),
            measurements=measurements,
            evidence=Evidence(slice_index=self.slice_index(index)),
        )

    @cached_property
    def arch(self) -> DentalArch | None:
        """Dental arch through the teeth (volumes only; None without enough teeth)."""
        if not self.volume:
            return None
        try:
            return arch_from_labels(self.labels, self.spacing)
        except ValueError:
            return None

    def arch_mm(self, index: np.ndarray) -> np.ndarray:
        """Position along the arch (mm, patient's right -> left) of voxel indices (N, ndim)."""
        points = self.mm(np.atleast_2d(index))
        if self.volume:
            if self.arch is None:
                return points[:, 0] * -1.0  # canonical x points to the patient's right
            return np.asarray(self.arch.project(points))
        return points[:, 1]

    def up_mm(self, index: np.ndarray) -> np.ndarray:
        """Height (mm) of voxel indices (N, ndim) towards the upper teeth's crowns."""
        points = self.mm(np.atleast_2d(index))
        if self.volume:
            normal = self.arch.normal if self.arch is not None else np.array([0.0, 0.0, 1.0])
            return points @ normal
        return -points[:, 0]

    @cached_property
    def tooth_centres(self) -> dict[int, np.ndarray]:
        """FDI -> centroid (voxel index) of each tooth label present."""
        out = {}
        for fdi in FDI_TEETH:
            mask = self.mask(fdi)
            if mask is not None:
                out[fdi] = np.argwhere(mask).mean(axis=0) + [s.start for s in self.box(fdi)]
        return out

    @cached_property
    def occlusal_up_mm(self) -> float | None:
        """Height of the occlusal plane: midway between the upper and lower teeth's centres."""
        upper = [self.up_mm(c)[0] for f, c in self.tooth_centres.items() if is_upper(f)]
        lower = [self.up_mm(c)[0] for f, c in self.tooth_centres.items() if not is_upper(f)]
        if upper and lower:
            return 0.5 * (float(np.mean(upper)) + float(np.mean(lower)))
        return None


def grow(box: Box, margin_mm: float, spacing: tuple[float, ...], shape: tuple[int, ...]) -> Box:
    """A box grown by ``margin_mm`` on every side, clipped to ``shape``."""
    return grow_voxels(box, [int(np.ceil(margin_mm / s)) for s in spacing], shape)


def grow_voxels(box: Box, margin: int | Sequence[int], shape: tuple[int, ...]) -> Box:
    """A box grown by ``margin`` voxels (one number, or one per axis), clipped to ``shape``."""
    pad = np.broadcast_to(np.asarray(margin, int), (len(box),))
    return tuple(slice(max(b.start - int(p), 0), min(b.stop + int(p), n)) for b, p, n in zip(box, pad, shape))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected piece (full connectivity) of a mask; the mask itself when it
    is one piece or empty. Shape measures (long axes, tips) use it so that a stray sliver
    of a tooth's number elsewhere does not swing them."""
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    pieces, count = ndimage.label(mask, structure)
    if count <= 1:
        return mask
    return pieces == int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1


@dataclass(frozen=True)
class Piece:
    """One connected piece of a mask, kept small: ``box`` (in the mask's coordinates,
    grown by the margin asked for and clipped) and the piece's voxels inside it."""

    box: Box
    mask: np.ndarray

    def centre(self) -> np.ndarray:
        """Mean voxel index of the piece, in the mask's coordinates."""
        return np.argwhere(self.mask).mean(axis=0) + [b.start for b in self.box]

    def paste(self, into: np.ndarray) -> np.ndarray:
        """``into`` (the whole mask's shape) with the piece's voxels set."""
        into[self.box] |= self.mask
        return into

    def within(self, box: Box) -> np.ndarray:
        """The piece as a mask of ``box``, a box of the whole mask that holds the piece's own."""
        out = np.zeros(tuple(b.stop - b.start for b in box), dtype=bool)
        out[tuple(slice(p.start - b.start, p.stop - b.start) for p, b in zip(self.box, box))] = self.mask
        return out


def components(mask: np.ndarray, min_voxels: int = 1, margin: int = 0) -> list[Piece]:
    """Connected pieces (full connectivity) of a mask with at least ``min_voxels`` voxels,
    each in its own box grown by ``margin`` voxels (enough room for a dilation that deep)."""
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    pieces, count = ndimage.label(mask, structure)
    if count == 0:
        return []
    out = []
    for i, box in enumerate(ndimage.find_objects(pieces), start=1):
        if np.count_nonzero(pieces[box] == i) >= min_voxels:
            box = grow_voxels(box, margin, mask.shape)
            out.append(Piece(box, pieces[box] == i))
    return out


__all__ = ["Context", "Box", "Piece", "grow", "grow_voxels", "components"]
