"""Reference dental anatomy for the CBCT phantom: tooth sizes, root layouts, arches.

Sizes (mm) follow textbook averages (Wheeler's dental anatomy): crown mesiodistal
width, crown buccolingual width, crown height, root length. Dental arches are power
curves ``y = -c |x|**q`` in the head frame's occlusal plane, fitted so that the
canine and first-molar centres sit at the requested intercanine and intermolar
widths (upper ~34 / ~52 mm).

:class:`ArchFrame` turns head-frame (x, y) positions into arch coordinates: ``s``,
the signed arc length from the midline (positive on the patient's right), and ``d``,
the signed distance from the arch curve (positive buccal, outward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from odontoscan.datasets.labels import ToothType, is_upper, tooth_type


@dataclass(frozen=True)
class ToothSize:
    """Crown mesiodistal width, crown buccolingual width, crown height, root length (mm)."""

    width: float
    depth: float
    crown: float
    root: float


UPPER_SIZES = {
    1: ToothSize(8.5, 7.0, 10.5, 13.0),
    2: ToothSize(6.5, 6.0, 9.0, 13.0),
    3: ToothSize(7.5, 8.0, 10.0, 17.0),
    4: ToothSize(7.0, 9.0, 8.5, 14.0),
    5: ToothSize(6.5, 9.0, 8.0, 14.0),
    6: ToothSize(10.0, 11.0, 7.5, 13.0),
    7: ToothSize(9.0, 11.0, 7.0, 12.5),
    8: ToothSize(8.5, 10.0, 6.5, 11.0),
}
LOWER_SIZES = {
    1: ToothSize(5.0, 6.0, 9.0, 12.5),
    2: ToothSize(5.5, 6.0, 9.5, 14.0),
    3: ToothSize(7.0, 7.5, 11.0, 16.0),
    4: ToothSize(7.0, 7.5, 8.5, 14.0),
    5: ToothSize(7.0, 8.0, 8.0, 14.5),
    6: ToothSize(11.0, 10.5, 7.5, 14.0),
    7: ToothSize(10.5, 10.0, 7.0, 13.0),
    8: ToothSize(10.0, 9.5, 7.0, 11.0),
}


@dataclass(frozen=True)
class Root:
    """One root in tooth-local fractions: base/apex offsets (mesiodistal a, buccolingual b)
    as fractions of the crown width/depth, length factor, base radii as fractions."""

    base: tuple[float, float]
    apex: tuple[float, float]
    length: float
    radius: tuple[float, float]


_SINGLE = (Root((0.0, 0.0), (0.04, 0.0), 1.0, (0.36, 0.40)),)
_UPPER_PREMOLAR_1 = (
    Root((0.0, 0.16), (0.03, 0.26), 1.0, (0.26, 0.17)),
    Root((0.0, -0.16), (0.03, -0.26), 0.97, (0.26, 0.17)),
)
_LOWER_MOLAR = (
    Root((-0.22, 0.0), (-0.28, 0.0), 0.97, (0.16, 0.36)),
    Root((0.22, 0.0), (0.34, 0.0), 1.0, (0.16, 0.36)),
)
_UPPER_MOLAR = (
    Root((-0.2, 0.2), (-0.28, 0.3), 0.93, (0.14, 0.15)),
    Root((0.2, 0.2), (0.3, 0.3), 0.88, (0.14, 0.15)),
    Root((0.0, -0.22), (0.0, -0.36), 1.03, (0.16, 0.15)),
)


def roots_of(fdi: int) -> tuple[Root, ...]:
    """Root layout by tooth: incisors, canines and most premolars one root, upper first
    premolar two, lower molars two (mesial, distal), upper molars three; third molars
    have shorter converging roots."""
    position = fdi % 10
    upper = is_upper(fdi)
    if tooth_type(fdi) is ToothType.MOLAR:
        roots = _UPPER_MOLAR if upper else _LOWER_MOLAR
        if position == 8:
            roots = tuple(Root(r.base, (r.base[0] * 0.6, r.base[1] * 0.6), r.length, r.radius) for r in roots)
        return roots
    if upper and position == 4:
        return _UPPER_PREMOLAR_1
    return _SINGLE


def size_of(fdi: int) -> ToothSize:
    return (UPPER_SIZES if is_upper(fdi) else LOWER_SIZES)[fdi % 10]


def root_inclination_deg(fdi: int) -> float:
    """Lingual tilt of the root (labial tilt of the crown) from the vertical, degrees."""
    upper = {1: 18.0, 2: 16.0, 3: 12.0, 4: 7.0, 5: 5.0, 6: 2.0, 7: 0.0, 8: -3.0}
    lower = {1: 8.0, 2: 8.0, 3: 7.0, 4: 5.0, 5: 4.0, 6: 2.0, 7: 0.0, 8: -3.0}
    return (upper if is_upper(fdi) else lower)[fdi % 10]


@dataclass(frozen=True)
class ArchCurve:
    """A dental arch as a dense polyline in the head frame's xy-plane."""

    xy: np.ndarray  # (N, 2), ordered by s
    s: np.ndarray  # (N,), signed arc length, 0 at the midline, > 0 on the patient's right

    def point(self, s: float) -> np.ndarray:
        return np.array([np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1])])

    def tangent(self, s: float) -> np.ndarray:
        """Unit vector along increasing s (toward the patient's right)."""
        t = self.point(s + 0.25) - self.point(s - 0.25)
        return t / np.linalg.norm(t)

    def normal(self, s: float) -> np.ndarray:
        """Unit outward (buccal/labial) normal in the occlusal plane."""
        t = self.tangent(s)
        return np.array([-t[1], t[0]])

    def position_x(self, s: float) -> float:
        return float(self.point(s)[0])


def _power_curve(c: float, q: float, y0: float, half_span: float = 75.0, step: float = 0.05) -> ArchCurve:
    x = np.arange(-half_span, half_span + step, step)
    y = y0 - c * np.abs(x) ** q
    seg = np.hypot(np.diff(x), np.diff(y))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s -= np.interp(0.0, x, s)
    return ArchCurve(np.stack([x, y], 1), s)


def _x_at(c: float, q: float, s: float) -> float:
    curve = _power_curve(c, q, 0.0, half_span=60.0, step=0.1)
    return float(np.interp(s, curve.s, curve.xy[:, 0]))


def _bisect(f, lo: float, hi: float, iterations: int = 40) -> float:
    """Root of a monotone decreasing ``f`` on [lo, hi] (clamped to the ends)."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_arch(s_canine: float, s_molar: float, intercanine: float, intermolar: float, y0: float) -> ArchCurve:
    """Power-curve arch whose canine and first-molar centres (at arc lengths
    ``s_canine``/``s_molar``) lie at the given widths (centre to centre, mm)."""

    def c_for(q: float) -> float:
        return _bisect(lambda c: _x_at(c, q, s_canine) - intercanine / 2, 1e-4, 1.0, 30)

    q = _bisect(lambda q: _x_at(c_for(q), q, s_molar) - intermolar / 2, 1.3, 4.0, 20)
    return _power_curve(c_for(q), q, y0)


def tooth_arc_positions(widths: dict[int, float], gap: float = 0.15) -> dict[int, float]:
    """Arc length of each tooth centre (positions 1-8) from the midline, one side."""
    out, s = {}, 0.0
    for position in range(1, 9):
        out[position] = s + widths[position] / 2
        s += widths[position] + gap
    return out


@dataclass(frozen=True, eq=False)
class ArchFrame:
    """Lookup maps from head (x, y) to arch coordinates (s, d) for fast voxel queries."""

    curve: ArchCurve
    origin: tuple[float, float]
    step: float
    s_map: np.ndarray
    d_map: np.ndarray

    @classmethod
    def build(cls, curve: ArchCurve, lo=(-80.0, -120.0), hi=(80.0, 40.0), step: float = 0.25) -> ArchFrame:
        xs = np.arange(lo[0], hi[0] + step, step)
        ys = np.arange(lo[1], hi[1] + step, step)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        pts = np.stack([gx.ravel(), gy.ravel()], 1)
        dense = curve.xy[::2]
        dist, idx = cKDTree(dense).query(pts)
        s = curve.s[::2][idx]
        tang = np.gradient(dense, axis=0)
        tang /= np.linalg.norm(tang, axis=1, keepdims=True)
        normal = np.stack([-tang[:, 1], tang[:, 0]], 1)[idx]
        d = np.einsum("ij,ij->i", pts - dense[idx], normal)
        return cls(curve, (float(lo[0]), float(lo[1])), step, s.reshape(gx.shape).astype(np.float32), d.reshape(gx.shape).astype(np.float32))

    def lookup(self, hx: np.ndarray, hy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arch coordinates (s, d) in mm of head-frame points (nearest map cell)."""
        shape = np.broadcast_shapes(hx.shape, hy.shape)
        ix = np.rint((np.broadcast_to(hx, shape) - self.origin[0]) / self.step).astype(np.int32)
        iy = np.rint((np.broadcast_to(hy, shape) - self.origin[1]) / self.step).astype(np.int32)
        np.clip(ix, 0, self.s_map.shape[0] - 1, out=ix)
        np.clip(iy, 0, self.s_map.shape[1] - 1, out=iy)
        return self.s_map[ix, iy], self.d_map[ix, iy]
