"""Curved-layer (panoramic) reformation of a dental volume along the dental arch.

Used by the phantom lab to synthesise panoramic radiographs from CBCT phantoms, and by
the findings engine to render a panoramic overlay of a real CBCT from predicted labels.

Coordinates, fixed here once:

* volume points are *canonical millimetres*: canonical RAS voxel index times spacing
  (x to the patient's Right, y Anterior, z Superior; voxel 0 at the origin);
* the arch is a curve in the occlusal plane, parametrised by arc length ``s`` (mm) from
  the patient's right end to the left end; ``normal`` is the occlusal-plane normal
  pointing superior and ``buccal`` the in-plane normal pointing away from the tongue;
* a panoramic image is ``[row, col]`` like any radiograph: column = arc length (patient
  right on the image's LEFT, as in a frontal view), row = height along ``normal``
  (superior at the top), both ``pixel_mm`` apart. A point's *depth* is its offset along
  ``buccal`` (positive towards the cheek). :class:`PanoMapping` converts both ways.

The arch is fitted in two steps that tolerate head rotation: the occlusal plane from the
mean position of the teeth in angular sectors around the arch, then a smooth polar curve
``r(theta)`` in that plane (theta 0 at the patient's right, pi/2 anterior, pi left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from odontoscan.datasets.labels import FDI_TEETH, FINDING_IDS, PULP_OFFSET, Label

Mode = Literal["xray", "integral", "mip", "mean", "label"]
MODES: tuple[str, ...] = ("xray", "integral", "mip", "mean", "label")
MU_WATER_PER_MM = 0.02  # linear attenuation of water at ~70 keV (1/mm); mu = MU_WATER * (1 + HU/1000)
_SECTORS = 36  # angular sectors (10 degrees) used to fit the occlusal plane and the arch
_SAMPLES_PER_CHUNK = 2_000_000  # volume samples per map_coordinates call (bounds memory)


@dataclass(frozen=True, eq=False)
class DentalArch:
    """A smooth dental arch curve in canonical millimetres.

    Attributes:
        points: (M, 3) curve points ``step_mm`` apart along the curve, from the
            patient's right end to the left end (end margins included).
        step_mm: arc-length step between ``points``.
        normal: (3,) unit normal of the occlusal plane, pointing superior.
    """

    points: np.ndarray
    step_mm: float
    normal: np.ndarray

    @property
    def length_mm(self) -> float:
        return float((len(self.points) - 1) * self.step_mm)

    def _interp(self, table: np.ndarray, s: np.ndarray) -> np.ndarray:
        t = np.clip(np.asarray(s, dtype=float) / self.step_mm, 0, len(table) - 1)
        i0 = np.minimum(np.floor(t).astype(int), len(table) - 2)
        f = (t - i0)[..., None]
        return table[i0] * (1 - f) + table[i0 + 1] * f

    def at(self, s: np.ndarray | float) -> np.ndarray:
        """Curve point(s) (..., 3) at arc length ``s`` (mm, clamped to the curve)."""
        return self._interp(self.points, s)

    def tangent(self, s: np.ndarray | float) -> np.ndarray:
        """Unit tangent(s) (..., 3), pointing from the patient's right to the left."""
        t = self._interp(np.gradient(self.points, axis=0), s)
        return t / np.linalg.norm(t, axis=-1, keepdims=True)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Arc length (mm) of the curve point nearest to each of ``points`` ((N, 3) or (3,)),
        measured in the occlusal plane (height above the plane does not matter)."""
        pts = np.asarray(points, dtype=float)
        flat = pts.reshape(-1, 3)
        flat = flat - (flat @ self.normal)[:, None] * self.normal
        curve = self.points - (self.points @ self.normal)[:, None] * self.normal
        nearest = np.argmin(((flat[:, None, :] - curve[None, :, :]) ** 2).sum(-1), axis=1)
        out = nearest * self.step_mm
        return out.reshape(pts.shape[:-1]) if pts.ndim > 1 else float(out[0])

    def buccal(self, s: np.ndarray | float) -> np.ndarray:
        """Unit in-plane normal(s) (..., 3) pointing outwards (towards lips and cheeks)."""
        b = np.cross(self.tangent(s), self.normal)
        return b / np.linalg.norm(b, axis=-1, keepdims=True)


def _plane_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane unit axes (u towards the patient's right, v anterior) for ``normal``."""
    u = np.array([1.0, 0.0, 0.0]) - normal[0] * normal
    u /= np.linalg.norm(u)
    return u, np.cross(normal, u)


def _sector_means(points: np.ndarray, weights: np.ndarray, normal: np.ndarray):
    """Weighted mean point and weight of each occupied angular sector around the arch."""
    centre = np.average(points, axis=0, weights=weights)
    u, v = _plane_axes(normal)
    rel = points - centre
    theta = np.arctan2(rel @ v, rel @ u)
    theta = np.where(theta < -np.pi / 2, theta + 2 * np.pi, theta)  # left molars past pi
    edges = np.linspace(-np.pi / 2, 1.5 * np.pi, _SECTORS + 1)
    sector = np.clip(np.digitize(theta, edges) - 1, 0, _SECTORS - 1)
    total = np.bincount(sector, weights, _SECTORS)
    used = total > 0
    means = np.stack([np.bincount(sector, weights * points[:, k], _SECTORS) for k in range(3)], axis=1)
    return means[used] / total[used, None], total[used], centre, theta


def arch_from_points(
    points: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    margin_mm: float = 10.0,
    step_mm: float = 0.25,
    degree: int = 4,
) -> DentalArch:
    """Fit a dental arch through tooth points (canonical mm, any head rotation).

    Args:
        points: (N, 3) positions on the teeth (centroids or bright voxels), canonical mm.
        weights: optional (N,) weights (e.g. voxel counts of each centroid).
        margin_mm: straight extension past the last tooth at each end.
        step_mm: arc-length step of the returned curve.
        degree: polynomial degree of the polar curve ``r(theta)``.

    Raises:
        ValueError: fewer than four angular sectors hold teeth (no arch to fit).
    """
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=float)
    normal = np.array([0.0, 0.0, 1.0])
    for _ in range(3):  # occlusal plane through the sector means, refined twice
        means, mass, centre, _ = _sector_means(points, weights, normal)
        if len(means) < 4:
            raise ValueError(
                f"teeth fill only {len(means)} angular sector(s) of the arch; at least 4 are "
                "needed to fit a dental arch (is the label map or image empty?)"
            )
        rel = means - np.average(means, axis=0, weights=mass)
        _, _, vt = np.linalg.svd(rel * np.sqrt(mass)[:, None], full_matrices=False)
        fitted = vt[-1] if vt[-1][2] >= 0 else -vt[-1]
        normal = fitted / np.linalg.norm(fitted)
    means, mass, centre, theta = _sector_means(points, weights, normal)
    u, v = _plane_axes(normal)
    rel = means - centre
    sector_theta = np.arctan2(rel @ v, rel @ u)
    sector_theta = np.where(sector_theta < -np.pi / 2, sector_theta + 2 * np.pi, sector_theta)
    radius = np.hypot(rel @ u, rel @ v)
    poly = np.polynomial.Polynomial.fit(sector_theta, radius, min(degree, len(means) - 1), w=np.sqrt(mass))
    lo, hi = np.percentile(theta, [0.5, 99.5])
    grid = np.linspace(lo, hi, 4000)
    r = poly(grid)
    dense = centre + r[:, None] * (np.cos(grid)[:, None] * u + np.sin(grid)[:, None] * v)
    dense -= ((dense - centre) @ normal)[:, None] * normal  # exactly in the plane
    return _resample(dense, normal, margin_mm, step_mm)


def _resample(dense: np.ndarray, normal: np.ndarray, margin_mm: float, step_mm: float) -> DentalArch:
    """Uniform arc-length resampling of a dense curve, extended straight at both ends."""
    seg = np.linalg.norm(np.diff(dense, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    head = dense[0] - dense[min(20, len(dense) - 1)]
    tail = dense[-1] - dense[max(len(dense) - 21, 0)]
    head /= np.linalg.norm(head)
    tail /= np.linalg.norm(tail)
    total = s[-1] + 2 * margin_mm
    stations = np.arange(0.0, total + 1e-9, step_mm) - margin_mm
    inner = np.stack([np.interp(np.clip(stations, 0, s[-1]), s, dense[:, k]) for k in range(3)], axis=1)
    before = np.minimum(stations, 0.0)[:, None] * -head  # -head * (negative s) moves outwards
    after = np.maximum(stations - s[-1], 0.0)[:, None] * tail
    return DentalArch(points=inner + before + after, step_mm=step_mm, normal=normal)


def tooth_number(ids: np.ndarray) -> np.ndarray:
    """FDI number of tooth (11-48) and pulp (111-148) ids; 0 for anything else."""
    tooth = np.where((ids > PULP_OFFSET) & (ids < PULP_OFFSET + 50), ids - PULP_OFFSET, ids)
    return np.where(np.isin(tooth, FDI_TEETH), tooth, 0)


def tooth_centroids(labels: np.ndarray, spacing: tuple[float, ...]) -> dict[int, tuple[np.ndarray, int]]:
    """FDI -> (centroid in canonical mm, voxel count) of each tooth (pulp counts as its tooth)."""
    idx = np.nonzero((labels >= 11) & (labels < PULP_OFFSET + 50))
    teeth = tooth_number(labels[idx].astype(np.int64))
    keep = teeth > 0
    teeth = teeth[keep]
    coords = [np.asarray(i)[keep] * s for i, s in zip(idx, spacing)]
    counts = np.bincount(teeth, minlength=49)
    out: dict[int, tuple[np.ndarray, int]] = {}
    sums = [np.bincount(teeth, c, minlength=49) for c in coords]
    for fdi in np.nonzero(counts)[0]:
        out[int(fdi)] = (np.array([sm[fdi] for sm in sums]) / counts[fdi], int(counts[fdi]))
    return out


def arch_from_labels(labels: np.ndarray, spacing: tuple[float, ...], **kwargs) -> DentalArch:
    """Dental arch through the tooth centroids of a canonical label map (FDI ids 11-48,
    pulp 111-148 counted as its tooth). ``kwargs`` go to :func:`arch_from_points`."""
    centroids = tooth_centroids(labels, spacing)
    if not centroids:
        raise ValueError("the label map holds no tooth labels (FDI 11-48); cannot fit a dental arch")
    points = np.stack([c for c, _ in centroids.values()])
    weights = np.sqrt([n for _, n in centroids.values()])
    return arch_from_points(points, weights, **kwargs)


def arch_from_image(
    image: np.ndarray, spacing: tuple[float, ...], *, percentile: float = 98.5, max_points: int = 50_000, **kwargs
) -> DentalArch:
    """Dental arch through the brightest voxels (teeth) of a canonical volume, for scans
    without labels. ``percentile`` sets the brightness threshold; metal and bone count
    too, so this is rougher than :func:`arch_from_labels`."""
    stride = max(1, int(round(0.8 / min(spacing))))  # about 0.8 mm is enough to find the arch
    coarse = image[::stride, ::stride, ::stride]
    threshold = np.percentile(coarse, percentile)
    idx = np.argwhere(coarse > threshold)
    if len(idx) > max_points:
        idx = idx[np.linspace(0, len(idx) - 1, max_points).astype(int)]
    return arch_from_points(idx * stride * np.asarray(spacing, dtype=float), **kwargs)


@dataclass(frozen=True, eq=False)
class PanoMapping:
    """Geometry of one panoramic image along an arch: volume mm <-> pano (row, col).

    Attributes:
        arch: the arch the image follows (column 0 at arc length 0).
        pixel_mm: pixel size (mm) along rows and columns.
        shape: (rows, cols) of the image.
        top_mm: height above the occlusal plane of row 0 (at the image's ends).
        smile_mm: how much lower (mm) the occlusal plane sits at the image's centre
            than at its ends (the "smile" of a chin-down positioned patient); 0 = flat.
    """

    arch: DentalArch
    pixel_mm: float
    shape: tuple[int, int]
    top_mm: float
    smile_mm: float = 0.0

    @property
    def spacing(self) -> tuple[float, float]:
        return (self.pixel_mm, self.pixel_mm)

    def _smile(self, col: np.ndarray) -> np.ndarray:
        t = 2.0 * np.asarray(col, dtype=float) / max(self.shape[1] - 1, 1) - 1.0
        return self.smile_mm * (1.0 - t**2)

    def height(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """Height (mm) above the occlusal plane shown at pano (row, col)."""
        return self.top_mm + self._smile(col) - np.asarray(row, dtype=float) * self.pixel_mm

    def _project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(arc length, height, depth) in mm of canonical-mm points (N, 3)."""
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        n = self.arch.normal
        curve = self.arch.points
        flat_curve = curve - np.outer(curve @ n, n)
        s = np.empty(len(points))
        for start in range(0, len(points), 4096):
            block = points[start : start + 4096]
            flat = block - np.outer(block @ n, n)
            d2 = ((flat[:, None, :] - flat_curve[None, :, :]) ** 2).sum(-1)
            s[start : start + 4096] = np.argmin(d2, axis=1) * self.arch.step_mm
        for _ in range(2):  # refine along the local tangent
            s = np.clip(s + ((points - self.arch.at(s)) * self.arch.tangent(s)).sum(-1), 0, self.arch.length_mm)
        rel = points - self.arch.at(s)
        return s, rel @ n, (rel * self.arch.buccal(s)).sum(-1)

    def to_pano(self, points: np.ndarray) -> np.ndarray:
        """Pano (row, col) (N, 2) of canonical-mm points (N, 3)."""
        s, h, _ = self._project(points)
        col = s / self.pixel_mm
        row = (self.top_mm + self._smile(col) - h) / self.pixel_mm
        return np.stack([row, col], axis=1)

    def depth_mm(self, points: np.ndarray) -> np.ndarray:
        """Depth (mm, positive buccal) of canonical-mm points (N, 3) off the arch's layer."""
        return self._project(points)[2]

    def to_volume(self, rowcol: np.ndarray, depth_mm: np.ndarray | float = 0.0) -> np.ndarray:
        """Canonical-mm points (N, 3) shown at pano (row, col) (N, 2), at ``depth_mm``."""
        rowcol = np.asarray(rowcol, dtype=float).reshape(-1, 2)
        s = rowcol[:, 1] * self.pixel_mm
        h = self.height(rowcol[:, 0], rowcol[:, 1])
        depth = np.broadcast_to(np.asarray(depth_mm, dtype=float), s.shape)
        return self.arch.at(s) + h[:, None] * self.arch.normal + depth[:, None] * self.arch.buccal(s)


def pano_mapping(
    arch: DentalArch,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    pixel_mm: float = 0.1,
    *,
    smile_mm: float = 0.0,
    height_mm: tuple[float, float] | None = None,
) -> PanoMapping:
    """Mapping of a pano along ``arch`` covering the volume's height.

    ``height_mm`` = (below, above) the occlusal plane; by default the volume's full
    extent along the occlusal normal from the arch.
    """
    if height_mm is None:
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
        corners *= (np.asarray(shape) - 1) * np.asarray(spacing)
        centre = arch.at(arch.length_mm / 2)
        h = (corners - centre) @ arch.normal
        height_mm = (float(-h.min()), float(h.max()))
    below, above = height_mm
    rows = int(np.ceil((below + above + abs(smile_mm)) / pixel_mm)) + 1
    cols = int(np.floor(arch.length_mm / pixel_mm)) + 1
    return PanoMapping(arch=arch, pixel_mm=float(pixel_mm), shape=(rows, cols), top_mm=above, smile_mm=smile_mm)


def label_priority(ids: np.ndarray) -> np.ndarray:
    """Visibility tier of label ids in a projection: findings 4, pulp and dental work
    (bridge, crown, implant) 3, teeth 2, other structures 1, background 0."""
    ids = np.asarray(ids)
    tier = np.where(ids > 0, 1, 0)
    tier = np.where(np.isin(ids, FDI_TEETH), 2, tier)
    pulp = (ids > PULP_OFFSET) & (ids < PULP_OFFSET + 50)
    work = np.isin(ids, (Label.BRIDGE, Label.CROWN, Label.IMPLANT))
    tier = np.where(pulp | work, 3, tier)
    return np.where(np.isin(ids, FINDING_IDS), 4, tier)


def _vote(samples: np.ndarray) -> np.ndarray:
    """Per row of (P, K) label samples: the most frequent label of the highest tier."""
    best = np.zeros(samples.shape[0], dtype=samples.dtype)
    best_score = np.zeros(samples.shape[0], dtype=np.int32)
    present = np.unique(samples)
    for label, tier in zip(present, label_priority(present)):
        if label == 0:
            continue
        count = (samples == label).sum(axis=1, dtype=np.int32)
        score = np.where(count > 0, int(tier) * 65536 + count, 0)
        better = score > best_score
        best = np.where(better, label, best)
        best_score = np.where(better, score, best_score)
    return best


def radiograph_from_integral(integral: np.ndarray) -> np.ndarray:
    """X-ray-like image in [0, 1] (dense = bright) from attenuation line integrals:
    Beer-Lambert transmission ``exp(-integral)``, inverted, then windowed to the 0.5-99.8th
    percentiles of the exposed area (a detector's automatic exposure)."""
    image = 1.0 - np.exp(-np.maximum(integral, 0.0))
    exposed = image[image > 0.02]
    lo, hi = np.percentile(exposed, [0.5, 99.8]) if exposed.size else (0.0, 1.0)
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


def reformat(
    volume: np.ndarray,
    spacing: tuple[float, float, float],
    arch: DentalArch,
    thickness_mm: float = 15.0,
    pixel_mm: float = 0.1,
    mode: Mode = "xray",
    *,
    mapping: PanoMapping | None = None,
    depth_range_mm: tuple[float, float] | None = None,
    depth_step_mm: float | None = None,
    sample_mm: float | None = None,
    cval: float | None = None,
) -> tuple[np.ndarray, PanoMapping]:
    """Panoramic reformation of a canonical volume along ``arch``.

    Each pixel integrates the volume along a ray across the arch (the focal trough,
    ``thickness_mm`` centred on the arch, or ``depth_range_mm`` = (lingual, buccal)
    offsets in mm). Modes: ``"xray"`` Beer-Lambert radiograph in [0, 1] from HU-like
    values (see :func:`radiograph_from_integral`); ``"integral"`` the attenuation line
    integral itself (dimensionless); ``"mip"``/``"mean"`` the maximum/mean value;
    ``"label"`` a label map: per pixel the most frequent label of the most visible tier
    (:func:`label_priority`: findings over pulp and dental work over teeth over bone).

    The volume is sampled every ``sample_mm`` (default: the coarser of ``pixel_mm`` and
    the voxel size) in chunks of columns, so memory stays bounded, then resampled to
    ``pixel_mm``. Pass ``mapping`` to get images that align pixel for pixel.

    Returns:
        (image2d [row, col], mapping); labels come back as uint16, others float32.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    spacing = tuple(float(s) for s in spacing)
    mapping = mapping or pano_mapping(arch, volume.shape, spacing, pixel_mm)
    arch = mapping.arch
    d0, d1 = depth_range_mm if depth_range_mm is not None else (-thickness_mm / 2, thickness_mm / 2)
    label_mode = mode == "label"
    step = depth_step_mm or min(spacing) * (1.0 if label_mode else 2.0)
    depths = np.linspace(d0, d1, max(int(round((d1 - d0) / step)) + 1, 1))
    dstep = (d1 - d0) / max(len(depths) - 1, 1) if len(depths) > 1 else 1.0
    grid = sample_mm or max(mapping.pixel_mm, min(spacing))
    ratio = grid / mapping.pixel_mm
    rows_c = int(np.ceil((mapping.shape[0] - 1) / ratio)) + 1
    cols_c = int(np.ceil((mapping.shape[1] - 1) / ratio)) + 1
    if cval is None:
        cval = 0.0 if label_mode else float(volume.min())
    out = np.zeros((rows_c, cols_c), dtype=np.uint16 if label_mode else np.float32)
    r_idx = np.arange(rows_c) * ratio
    per_col = rows_c * len(depths)
    chunk = max(1, _SAMPLES_PER_CHUNK // per_col)
    inv = 1.0 / np.asarray(spacing)
    for c0 in range(0, cols_c, chunk):
        c_idx = np.arange(c0, min(c0 + chunk, cols_c)) * ratio
        s = c_idx * mapping.pixel_mm
        base = arch.at(s)[:, None, None, :]
        heights = mapping.height(r_idx[None, :], c_idx[:, None])[:, :, None, None] * arch.normal
        offsets = depths[None, None, :, None] * arch.buccal(s)[:, None, None, :]
        coords = ((base + heights + offsets) * inv).astype(np.float32).reshape(-1, 3).T
        values = ndimage.map_coordinates(volume, coords, order=0 if label_mode else 1, mode="constant", cval=cval, prefilter=False)
        values = values.reshape(len(c_idx), rows_c, len(depths))
        if label_mode:
            result = _vote(values.reshape(-1, len(depths))).reshape(len(c_idx), rows_c)
        elif mode in ("xray", "integral"):
            mu = np.maximum(MU_WATER_PER_MM * (1.0 + values / 1000.0), 0.0)
            result = mu.sum(axis=2) * dstep
        elif mode == "mip":
            result = values.max(axis=2)
        else:
            result = values.mean(axis=2)
        out[:, c0 : c0 + len(c_idx)] = result.T
    if ratio != 1.0:
        rr, cc = np.meshgrid(np.arange(mapping.shape[0]) / ratio, np.arange(mapping.shape[1]) / ratio, indexing="ij")
        out = ndimage.map_coordinates(out, [rr, cc], order=0 if label_mode else 1, mode="nearest", prefilter=False)
    if mode == "xray":
        out = radiograph_from_integral(out)
    return out, mapping


__all__ = [
    "DentalArch",
    "PanoMapping",
    "arch_from_points",
    "arch_from_labels",
    "arch_from_image",
    "tooth_centroids",
    "tooth_number",
    "pano_mapping",
    "reformat",
    "label_priority",
    "radiograph_from_integral",
    "MU_WATER_PER_MM",
]
