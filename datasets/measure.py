"""Measurements on label maps and masks, in millimetres.

Small, general helpers shared by the phantom's exact ground truth and by the findings
engine that measures predicted label maps. Inputs are boolean masks or integer label
maps in canonical index order ``[x, y, z]`` with their voxel ``spacing`` (mm, same
order); points and directions are given in *grid millimetres*: ``index * spacing``
along the array axes. Work is done in local crops around the structures, never as a
distance transform of the whole volume.

Conventions: distances are between voxel centres (two touching masks are one voxel
apart, overlapping masks 0 mm); volumes count whole voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError, cKDTree
from scipy.spatial.distance import pdist

Spacing = Sequence[float]


def voxel_volume_mm3(spacing: Spacing) -> float:
    return float(np.prod(spacing))


def volume_mm3(mask: np.ndarray, spacing: Spacing) -> float:
    """Volume of a mask in mm3 (number of voxels times the voxel volume)."""
    return float(np.count_nonzero(mask)) * voxel_volume_mm3(spacing)


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding the mask, grown by ``margin`` voxels (clipped),
    or None for an empty mask."""
    if not mask.any():
        return None
    margins = np.broadcast_to(np.asarray(margin, int), (mask.ndim,))
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(hits[0]) - margins[axis], 0), min(int(hits[-1]) + 1 + margins[axis], mask.shape[axis])))
    return tuple(out)


def centroid_index(mask: np.ndarray) -> np.ndarray:
    """Mean voxel index of a non-empty mask (float, array axis order)."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        raise ValueError("centroid of an empty mask")
    return idx.mean(axis=0)


@dataclass(frozen=True)
class Closest:
    """Shortest distance between two masks and the voxel pair that realises it."""

    distance_mm: float
    index_a: tuple[int, ...]
    index_b: tuple[int, ...]

    def midpoint_index(self) -> np.ndarray:
        return (np.asarray(self.index_a, float) + np.asarray(self.index_b, float)) / 2


def _closest_in(a: np.ndarray, b: np.ndarray, spacing: Spacing, box: tuple[slice, ...]) -> Closest | None:
    """Exact closest voxel pair of two masks inside ``box``. Overlapping masks are 0 mm
    apart; otherwise the closest pair lies on both masks' surfaces, so a k-d tree over
    ``b``'s surface voxel centres (mm) is queried with ``a``'s."""
    sub_a, sub_b = a[box], b[box]
    if not sub_b.any():
        return None
    offset = np.array([s.start for s in box])
    both = np.argwhere(sub_a & sub_b)
    if len(both):
        at = tuple(int(v) for v in both[0] + offset)
        return Closest(0.0, at, at)
    sp = np.asarray(spacing, dtype=float)
    points_a, points_b = np.argwhere(surface(sub_a)), np.argwhere(surface(sub_b))
    distance, nearest = cKDTree(points_b * sp).query(points_a * sp, k=1)
    best = int(np.argmin(distance))
    ia = tuple(int(v) for v in points_a[best] + offset)
    ib = tuple(int(v) for v in points_b[nearest[best]] + offset)
    return Closest(float(distance[best]), ia, ib)


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of a mask with a face neighbour outside it (the array border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def shortest_distance(a: np.ndarray, b: np.ndarray, spacing: Spacing, search_mm: float = 8.0) -> Closest | None:
    """Shortest centre-to-centre distance (mm) from mask ``a`` to mask ``b``.

    Looks first in a crop around ``a`` grown by ``search_mm`` (exact whenever the
    answer is within that distance), then in the box holding both masks. Returns None
    when either mask is empty.
    """
    box_a = bounding_box(a)
    if box_a is None or not b.any():
        return None
    margin = [int(np.ceil(search_mm / s)) + 1 for s in spacing]
    near = _closest_in(a, b, spacing, bounding_box(a, margin))
    if near is not None and near.distance_mm <= search_mm:
        return near
    return _closest_in(a, b, spacing, bounding_box(a | b))


def largest_diameter_mm(mask: np.ndarray, spacing: Spacing) -> float:
    """Largest extent of a mask: the longest centre-to-centre distance between two of
    its voxels plus one voxel (so one voxel measures its own size)."""
    points = np.argwhere(mask) * np.asarray(spacing, float)
    if len(points) == 0:
        return 0.0
    extra = float(np.mean(spacing))
    if len(points) == 1:
        return extra
    if len(points) > 50:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # flat or degenerate: fall back to a subsample
            points = points[:: max(1, len(points) // 2000)]
    return float(pdist(points).max()) + extra


def principal_axis(mask: np.ndarray, spacing: Spacing) -> np.ndarray:
    """Unit vector (grid mm) of the mask's longest principal axis."""
    points = np.argwhere(mask) * np.asarray(spacing, float)
    if len(points) < 3:
        raise ValueError("principal axis needs at least three voxels")
    centred = points - points.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return vectors[:, -1]


def angle_between_deg(u: Sequence[float], v: Sequence[float]) -> float:
    """Angle (0-90 degrees) between two undirected axes."""
    u, v = np.asarray(u, float), np.asarray(v, float)
    cos = abs(float(u @ v)) / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))))


def extent_along_mm(mask: np.ndarray, spacing: Spacing, point_mm: Sequence[float], direction: Sequence[float]) -> tuple[float, float]:
    """(min, max) signed distance (mm) of the mask's voxels from ``point_mm`` along
    ``direction`` (grid mm; need not be unit length)."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        raise ValueError("extent of an empty mask")
    direction = np.asarray(direction, float)
    direction = direction / np.linalg.norm(direction)
    proj = (idx * np.asarray(spacing, float) - np.asarray(point_mm, float)) @ direction
    return float(proj.min()), float(proj.max())


def _march(labels: np.ndarray, spacing: Spacing, start_mm, direction, max_mm: float):
    """Labels met walking from ``start_mm`` along ``direction`` in half-voxel steps."""
    direction = np.asarray(direction, float)
    direction = direction / np.linalg.norm(direction)
    step = float(min(spacing)) / 2
    distances = np.arange(0.0, max_mm + step, step)
    idx = np.rint((np.asarray(start_mm, float) + distances[:, None] * direction) / np.asarray(spacing, float)).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(labels.shape)), axis=1)
    stop = int(np.argmin(inside)) if not inside.all() else len(inside)
    idx, distances = idx[:stop], distances[:stop]
    return labels[tuple(idx.T)], distances


def first_hit_mm(
    labels: np.ndarray, spacing: Spacing, start_mm: Sequence[float], direction: Sequence[float], ids: Iterable[int], max_mm: float = 50.0
) -> float | None:
    """Distance (mm) along a ray to the first voxel with a label in ``ids``, or None."""
    values, distances = _march(labels, spacing, start_mm, direction, max_mm)
    hits = np.flatnonzero(np.isin(values, list(ids)))
    return float(distances[hits[0]]) if hits.size else None


def run_length_mm(
    labels: np.ndarray, spacing: Spacing, start_mm: Sequence[float], direction: Sequence[float], ids: Iterable[int], max_mm: float = 80.0
) -> float:
    """Length (mm) of the run of voxels with a label in ``ids`` that starts at
    ``start_mm`` and goes along ``direction`` (0 when the start is not in ``ids``)."""
    values, distances = _march(labels, spacing, start_mm, direction, max_mm)
    outside = np.flatnonzero(~np.isin(values, list(ids)))
    if outside.size == 0:
        return float(distances[-1]) if distances.size else 0.0
    return float(distances[outside[0]])
