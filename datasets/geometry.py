"""Placement of voxel arrays in patient space, and the move to canonical orientation.

Conventions (the same as DICOM and ITK): physical coordinates are LPS millimetres;
``direction[:, i]`` is the unit vector of array axis ``i``; a voxel at index ``idx``
sits at ``origin + direction @ (idx * spacing)``.

"Canonical" means the axis permutation and flips that make array axes point as close
as possible to patient Right, Anterior and Superior (RAS). Only permutations and
flips are applied (no resampling), so the move is exact and reversible; an oblique
acquisition keeps its small residual rotation in ``Geometry.direction``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# LPS -> RAS flips the first two world axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_AXIS_CODES = (("L", "R"), ("P", "A"), ("I", "S"))  # (negative, positive) in RAS world


def left_right_axis(spatial_dims: int) -> int:
    """Spatial axis of the patient's left-right direction: x of canonical (RAS) volumes,
    columns of radiographs."""
    return 0 if spatial_dims == 3 else 1


@dataclass(frozen=True, eq=False)
class Geometry:
    """Canonical and source placement of an array in patient space (LPS, mm).

    Attributes:
        origin: LPS position (mm) of canonical voxel index 0.
        direction: LPS unit vectors of the canonical axes (columns).
        source_shape: shape of the array as stored, in ITK index order (i, j, k).
        source_spacing: voxel size (mm) of the stored array axes.
        source_origin: LPS position (mm) of stored voxel index 0.
        source_direction: LPS unit vectors of the stored axes (columns).
        axes: canonical axis ``c`` is stored axis ``axes[c]``.
        flips: canonical axis ``c`` runs opposite to stored axis ``axes[c]``.
    """

    origin: tuple[float, ...]
    direction: np.ndarray
    source_shape: tuple[int, ...]
    source_spacing: tuple[float, ...]
    source_origin: tuple[float, ...]
    source_direction: np.ndarray
    axes: tuple[int, ...]
    flips: tuple[bool, ...]

    @classmethod
    def identity(cls, shape: tuple[int, ...], spacing: tuple[float, ...]) -> Geometry:
        """Geometry of an array stored as-is with no known placement (e.g. a PNG)."""
        n = len(shape)
        return cls(
            origin=(0.0,) * n,
            direction=np.eye(n),
            source_shape=tuple(shape),
            source_spacing=tuple(spacing),
            source_origin=(0.0,) * n,
            source_direction=np.eye(n),
            axes=tuple(range(n)),
            flips=(False,) * n,
        )

    @property
    def source_orientation(self) -> str:
        return orientation_code(self.source_direction)

    def index_to_lps(self, index: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
        """LPS mm position of canonical voxel indices (shape (..., ndim))."""
        idx = np.asarray(index, dtype=float)
        return np.asarray(self.origin) + (idx * np.asarray(spacing)) @ self.direction.T

    def lps_to_mm(self, lps: np.ndarray) -> np.ndarray:
        """Canonical grid mm (index * spacing) of LPS positions (shape (..., ndim)); the
        inverse of :meth:`index_to_lps` up to the spacing (directions are orthonormal)."""
        return (np.asarray(lps, dtype=float) - np.asarray(self.origin)) @ self.direction


def orientation_code(direction: np.ndarray) -> str:
    """Axis codes ("LPS", "RAS", "LPI", ...) saying where each array axis points.

    Returns "" for 2D arrays, which carry no patient orientation here.
    """
    direction = np.asarray(direction, dtype=float)
    if direction.shape != (3, 3):
        return ""
    ras = _LPS_TO_RAS @ direction
    letters = []
    for i in range(3):
        world = int(np.argmax(np.abs(ras[:, i])))
        letters.append(_AXIS_CODES[world][1 if ras[world, i] > 0 else 0])
    return "".join(letters)


def canonical_axes(direction: np.ndarray) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Permutation and flips taking stored axes to the closest RAS orientation.

    Returns ``(axes, flips)`` where canonical axis ``c`` is stored axis ``axes[c]``,
    reversed when ``flips[c]``. Ties (axes at 45 degrees) are broken greedily by the
    strongest alignment first, as nibabel's ``io_orientation`` does.
    """
    ras = np.abs(_LPS_TO_RAS @ np.asarray(direction, dtype=float))
    signed = _LPS_TO_RAS @ np.asarray(direction, dtype=float)
    axes = [-1, -1, -1]
    flips = [False, False, False]
    free_world, free_stored = {0, 1, 2}, {0, 1, 2}
    order = np.dstack(np.unravel_index(np.argsort(-ras, axis=None), ras.shape))[0]
    for world, stored in order:
        if world in free_world and stored in free_stored:
            axes[world] = int(stored)
            flips[world] = bool(signed[world, stored] < 0)
            free_world.discard(world)
            free_stored.discard(stored)
    return tuple(axes), tuple(flips)


def canonical_geometry(
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    origin: tuple[float, ...],
    direction: np.ndarray,
) -> Geometry:
    """Geometry of the canonical (closest RAS) version of a stored volume.

    ``shape``, ``spacing``, ``origin`` and ``direction`` describe the stored array in
    ITK index order (i, j, k). Needs no voxels, so readers can allocate the canonical
    array first and fill it slice by slice through :func:`to_source`.
    """
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    axes, flips = canonical_axes(direction)
    new_direction = np.stack(
        [direction[:, a] * (-1.0 if f else 1.0) for a, f in zip(axes, flips)], axis=1
    )
    # The canonical index-0 voxel is the stored voxel at the far end of each flipped axis.
    corner = np.zeros(3)
    for a, f in zip(axes, flips):
        if f:
            corner[a] = shape[a] - 1
    new_origin = np.asarray(origin, dtype=float) + direction @ (corner * np.asarray(spacing))
    return Geometry(
        origin=tuple(float(v) for v in new_origin),
        direction=new_direction,
        source_shape=tuple(int(n) for n in shape),
        source_spacing=tuple(float(s) for s in spacing),
        source_origin=tuple(float(v) for v in origin),
        source_direction=direction,
        axes=axes,
        flips=flips,
    )


def canonical_shape(geometry: Geometry) -> tuple[int, ...]:
    return tuple(geometry.source_shape[a] for a in geometry.axes)


def canonical_spacing(geometry: Geometry) -> tuple[float, ...]:
    return tuple(geometry.source_spacing[a] for a in geometry.axes)


def canonicalize(
    array: np.ndarray,
    spacing: tuple[float, ...],
    origin: tuple[float, ...],
    direction: np.ndarray,
) -> tuple[np.ndarray, tuple[float, ...], Geometry]:
    """Move a stored volume (ITK index order i, j, k) to canonical RAS orientation.

    Returns the canonical array (a view: the caller copies if it needs contiguous
    memory), its spacing, and the Geometry that records both frames.
    """
    geometry = canonical_geometry(array.shape, spacing, origin, direction)
    out = np.transpose(array, geometry.axes)
    out = out[tuple(slice(None, None, -1) if f else slice(None) for f in geometry.flips)]
    return out, canonical_spacing(geometry), geometry


def to_source(array: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Undo :func:`canonicalize`: a canonical array back in the stored axis order.

    The result is a view, so writing into it fills the canonical array.
    """
    slicer = tuple(slice(None, None, -1) if f else slice(None) for f in geometry.flips)
    unflipped = array[slicer]
    inverse = np.argsort(geometry.axes)
    return np.transpose(unflipped, inverse)
