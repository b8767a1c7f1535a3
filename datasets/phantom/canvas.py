"""The voxel grid of a CBCT phantom and the painter that draws anatomy into it.

Anatomy is described in a *head frame*: millimetres, x to the patient's Right, y
Anterior, z Superior, origin at the upper incisal point on the occlusal plane. The
head sits rotated and shifted inside the axis-aligned scanner grid (canonical RAS
voxel order ``[x, y, z]``), like a patient tilted in the scanner, so
``world = rotation @ head + offset`` with world = voxel index * spacing.

Structures are drawn as signed distance functions (mm, negative inside) evaluated in
a local bounding box only. Painting blends the grey value with a one-voxel linear
ramp across the surface (partial volume) and sets the label where the voxel centre
is inside (sd <= 0).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

_BLOCK = 32  # voxels per block side; blocks far outside a shape are skipped


@dataclass(frozen=True)
class Chunk:
    """A box of voxels with the head-frame coordinates (mm) of their centres."""

    slices: tuple[slice, slice, slice]
    hx: np.ndarray
    hy: np.ndarray
    hz: np.ndarray


@dataclass(frozen=True, eq=False)
class Grid:
    """Voxel grid and head placement.

    Attributes:
        shape: voxels (x, y, z), canonical RAS order.
        spacing: mm per voxel (x, y, z).
        rotation: 3x3, head axes expressed in world (RAS grid) axes.
        offset: world position (mm) of the head origin; world = index * spacing.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    rotation: np.ndarray
    offset: np.ndarray

    @property
    def voxel_mm(self) -> float:
        return float(np.mean(self.spacing))

    def head_to_index(self, points: np.ndarray) -> np.ndarray:
        """Fractional voxel indices of head-frame points (shape (..., 3))."""
        world = np.asarray(points, float) @ self.rotation.T + self.offset
        return world / np.asarray(self.spacing)

    def index_to_head(self, index: np.ndarray) -> np.ndarray:
        """Head-frame mm of voxel indices (shape (..., 3))."""
        world = np.asarray(index, float) * np.asarray(self.spacing)
        return (world - self.offset) @ self.rotation

    def head_direction_to_index_mm(self, direction: np.ndarray) -> np.ndarray:
        """A head-frame direction expressed along the grid axes (mm, RAS)."""
        return self.rotation @ np.asarray(direction, float)

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering the head-frame axis-aligned box [lo, hi], or None if outside."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array(list(itertools.product(*zip(lo, hi))))
        idx = self.head_to_index(corners)
        start = np.maximum(np.floor(idx.min(0)).astype(int) - 1, 0)
        stop = np.minimum(np.ceil(idx.max(0)).astype(int) + 2, self.shape)
        if np.any(stop <= start):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))

    def chunk(self, slices: tuple[slice, slice, slice]) -> Chunk:
        """Head coordinates (float32 mm) of the voxel centres of a box."""
        w = [
            (np.arange(sl.start, sl.stop, dtype=np.float32) * self.spacing[a] - self.offset[a]).reshape(
                [-1 if i == a else 1 for i in range(3)]
            )
            for a, sl in enumerate(slices)
        ]
        r = self.rotation.astype(np.float32)
        head = [r[0, k] * w[0] + r[1, k] * w[1] + r[2, k] * w[2] for k in range(3)]  # head = R^T world
        return Chunk(slices, *head)

    def blocks(self, slices: tuple[slice, slice, slice], size: int) -> list[tuple[slice, slice, slice]]:
        """Split a box into blocks of at most ``size`` voxels per side."""
        ranges = [[slice(a, min(a + size, sl.stop)) for a in range(sl.start, sl.stop, size)] for sl in slices]
        return list(itertools.product(*ranges))


SDF = Callable[[Chunk], np.ndarray]
Value = float | Callable[[Chunk], np.ndarray]


@dataclass(frozen=True)
class Layer:
    """One grey value/label painted where ``sd + inset <= 0`` (inset > 0 shrinks)."""

    value: Value
    label: int | None = None
    inset: float = 0.0


@dataclass(eq=False)
class Canvas:
    """Grey-value image and label map being painted, plus masks of recorded objects."""

    grid: Grid
    image: np.ndarray
    labels: np.ndarray
    objects: dict[str, list[tuple[tuple[slice, ...], np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def empty(cls, grid: Grid, background: float) -> Canvas:
        return cls(
            grid=grid,
            image=np.full(grid.shape, background, dtype=np.float32),
            labels=np.zeros(grid.shape, dtype=np.uint16),
        )

    def paint(
        self,
        lo: Sequence[float],
        hi: Sequence[float],
        sdf: SDF,
        layers: Sequence[Layer],
        record: str | None = None,
    ) -> None:
        """Paint the layers of one shape given by ``sdf`` inside the head box [lo, hi].

        ``record`` keeps the inside mask (of the first layer) under that name, so ground
        truth can later find exactly the voxels of this object.
        """
        box = self.grid.box(lo, hi)
        if box is None:
            return
        blocks = self.grid.blocks(box, _BLOCK)
        centres = np.array([[(sl.start + sl.stop - 1) / 2 for sl in block] for block in blocks])
        head = self.grid.index_to_head(centres).astype(np.float32)
        centre_sd = sdf(Chunk(box, head[:, 0], head[:, 1], head[:, 2]))
        half = np.array([[(sl.stop - sl.start) / 2 for sl in block] for block in blocks]) * np.asarray(self.grid.spacing)
        reach = 1.5 * np.linalg.norm(half, axis=1) + 2 * self.grid.voxel_mm
        grow = max(0.0, -min(layer.inset for layer in layers))
        for block, sd_c, r in zip(blocks, centre_sd, reach):
            if sd_c - grow > r:
                continue  # the whole block is outside every layer
            self._paint_block(self.grid.chunk(block), sdf, layers, record)

    def _paint_block(self, chunk: Chunk, sdf: SDF, layers: Sequence[Layer], record: str | None) -> None:
        ramp = 1.0 / self.grid.voxel_mm
        sd = sdf(chunk)
        image = self.image[chunk.slices]
        labels = self.labels[chunk.slices]
        for layer in layers:
            d = sd + layer.inset if layer.inset else sd
            occ = np.clip(0.5 - d * ramp, 0.0, 1.0)
            value = layer.value(chunk) if callable(layer.value) else layer.value
            image += occ * (value - image)
            if layer.label is not None:
                labels[d <= 0] = layer.label
        if record is not None:
            inside = sd <= 0
            if inside.any():
                self.objects.setdefault(record, []).append((chunk.slices, inside))

    def object_mask(self, name: str) -> tuple[tuple[slice, ...], np.ndarray] | None:
        """Union of the recorded masks of ``name`` as (box slices, boolean mask)."""
        parts = self.objects.get(name)
        if not parts:
            return None
        start = [min(p[0][a].start for p in parts) for a in range(3)]
        stop = [max(p[0][a].stop for p in parts) for a in range(3)]
        mask = np.zeros([b - a for a, b in zip(start, stop)], dtype=bool)
        for slices, part in parts:
            local = tuple(slice(s.start - a, s.stop - a) for s, a in zip(slices, start))
            mask[local] |= part
        return tuple(slice(a, b) for a, b in zip(start, stop)), mask
