"""Signed distance functions (mm, negative inside) of the phantom's building blocks.

All functions take coordinate arrays (any broadcastable shapes) and return float32
arrays. Distances are exact for spheres, capsules and boxes, and close
approximations for ellipsoids and tapered elliptic tubes, which is all the
partial-volume ramp needs. Combine with ``np.minimum`` (union), ``np.maximum``
(intersection) and ``np.maximum(a, -b)`` (a minus b).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalFrame:
    """An orthonormal frame in the head: origin and axes (rows of ``axes``)."""

    origin: np.ndarray
    axes: np.ndarray  # 3x3, rows are unit vectors

    def local(self, hx: np.ndarray, hy: np.ndarray, hz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head coordinates -> local (u, v, w) coordinates in mm."""
        dx, dy, dz = hx - self.origin[0], hy - self.origin[1], hz - self.origin[2]
        a = self.axes.astype(np.float32)
        return (
            a[0, 0] * dx + a[0, 1] * dy + a[0, 2] * dz,
            a[1, 0] * dx + a[1, 1] * dy + a[1, 2] * dz,
            a[2, 0] * dx + a[2, 1] * dy + a[2, 2] * dz,
        )

    def to_head(self, local_point: np.ndarray) -> np.ndarray:
        return self.origin + np.asarray(local_point, float) @ self.axes


def ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, radii: tuple[float, float, float]) -> np.ndarray:
    """Ellipsoid centred at 0 (Quilez' bound: exact on the axes, close elsewhere)."""
    rx, ry, rz = radii
    k0 = np.sqrt((x / rx) ** 2 + (y / ry) ** 2 + (z / rz) ** 2)
    k1 = np.sqrt((x / rx**2) ** 2 + (y / ry**2) ** 2 + (z / rz**2) ** 2)
    return (k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)).astype(np.float32)


def capsule(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    p0: np.ndarray,
    p1: np.ndarray,
    r0: float,
    r1: float,
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Tube from ``p0`` (radius r0) to ``p1`` (radius r1) with round ends.

    ``stretch`` widens the cross-section along the local axes (e.g. a root that is
    wider buccolingually than mesiodistally): offsets are divided by it.
    """
    p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    seg = p1 - p0
    length2 = float(seg @ seg) or 1e-6
    dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
    t = np.clip((dx * seg[0] + dy * seg[1] + dz * seg[2]) / length2, 0.0, 1.0)
    ox, oy, oz = dx - t * seg[0], dy - t * seg[1], dz - t * seg[2]
    dist = np.sqrt((ox / stretch[0]) ** 2 + (oy / stretch[1]) ** 2 + (oz / stretch[2]) ** 2)
    return (dist - (r0 + (r1 - r0) * t)).astype(np.float32)


def rounded_rect(u: np.ndarray, v: np.ndarray, half_u: np.ndarray, half_v: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """2D rounded rectangle centred at 0 (exact SDF); sizes may vary per point."""
    radius = np.minimum(radius, np.minimum(half_u, half_v))
    qu = np.abs(u) - half_u + radius
    qv = np.abs(v) - half_v + radius
    outside = np.sqrt(np.maximum(qu, 0) ** 2 + np.maximum(qv, 0) ** 2)
    return (outside + np.minimum(np.maximum(qu, qv), 0) - radius).astype(np.float32)


def superellipse(u: np.ndarray, v: np.ndarray, half_u: np.ndarray, half_v: np.ndarray, power: int = 4) -> np.ndarray:
    """2D superellipse (power 2: ellipse, 4: rounded box); distance scaled by the short
    half-axis (a lower bound, which the painter's block skipping relies on)."""
    qu, qv = (u / half_u) ** 2, (v / half_v) ** 2
    if power == 4:
        rho = np.sqrt(np.sqrt(qu * qu + qv * qv))
    elif power == 2:
        rho = np.sqrt(qu + qv)
    else:
        raise ValueError("superellipse power must be 2 or 4")
    return ((rho - 1.0) * np.minimum(half_u, half_v)).astype(np.float32)


def smooth_bump(x: np.ndarray, centre: float, half_width: float, edge: float) -> np.ndarray:
    """1 on [centre - half_width, centre + half_width], falling to 0 over ``edge`` mm (cosine)."""
    d = np.clip((np.abs(x - centre) - half_width) / max(edge, 1e-6), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * d))
