"""Painting everything around the teeth: head soft tissue, mandible and maxilla (cortical
shell, cancellous interior, remodelled edentulous ridges, bone loss), maxillary
sinuses, nasal cavity, oral air, pharyngeal airway and inferior alveolar canals.

Bone is described in arch coordinates (see :class:`ArchFrame`): the alveolar crest
follows each tooth's cemento-enamel junction (1.5 mm below it in health) and is
lowered at sites with bone loss and at healed extraction sites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from odontoscan.datasets.findings_schema import ToothStatus
from odontoscan.datasets.labels import Label, is_upper
from odontoscan.datasets.phantom.canvas import Canvas, Chunk, Layer
from odontoscan.datasets.phantom.dentition import Dentition
from odontoscan.datasets.phantom.plan import Plan
from odontoscan.datasets.phantom.shapes import capsule, ellipsoid, rounded_rect, superellipse

HEALTHY_CREST_MM = 1.5  # CEJ to alveolar crest in health
RIDGE_RESORPTION_MM = 2.5  # extra crest loss at a healed extraction site
_S_GRID = np.arange(-90.0, 90.25, 0.25)


@dataclass(frozen=True)
class CrestProfile:
    """Crest height (head z, mm) and ridge-width factor along each arch (signed s)."""

    upper_z: np.ndarray
    lower_z: np.ndarray
    upper_width: np.ndarray
    lower_width: np.ndarray
    crest_gap: dict[int, float]  # per tooth: CEJ-to-crest distance along the tooth axis


def crest_profile(dentition: Dentition, plan: Plan) -> CrestProfile:
    """Alveolar crest along both arches from the teeth, their bone loss and missing sites."""
    z = {True: np.full(_S_GRID.shape, np.nan), False: np.full(_S_GRID.shape, np.nan)}
    width = {True: np.ones(_S_GRID.shape), False: np.ones(_S_GRID.shape)}
    gaps: dict[int, float] = {}
    for fdi, tooth in plan.teeth.items():
        g = dentition.teeth[fdi]
        upper = is_upper(fdi)
        if tooth.status is ToothStatus.IMPACTED:
            continue
        gap = HEALTHY_CREST_MM
        if tooth.bone_loss:
            gap = tooth.bone_loss
        if tooth.status in (ToothStatus.MISSING, ToothStatus.BRIDGE_PONTIC):
            gap = HEALTHY_CREST_MM + RIDGE_RESORPTION_MM
        if tooth.status is ToothStatus.IMPLANT:
            gap = 2.0
        gaps[fdi] = gap
        inside = np.abs(_S_GRID - g.s) <= g.size.width / 2 + 0.1
        z[upper][inside] = g.cej[2] + (gap if upper else -gap)
        if tooth.status in (ToothStatus.MISSING, ToothStatus.BRIDGE_PONTIC):
            width[upper][inside] = 0.7
    for fdi, tooth in plan.teeth.items():
        if tooth.status is ToothStatus.IMPACTED:
            gaps[fdi] = HEALTHY_CREST_MM
    out = {}
    for upper in (True, False):
        known = ~np.isnan(z[upper])
        filled = np.interp(_S_GRID, _S_GRID[known], z[upper][known])
        out[upper] = ndimage.gaussian_filter1d(filled, 4.0, mode="nearest")
        width[upper] = ndimage.gaussian_filter1d(width[upper], 6.0, mode="nearest")
    return CrestProfile(out[True], out[False], width[True], width[False], gaps)


def _last_molar_s(dentition: Dentition, upper: bool) -> float:
    quadrants = (1, 2) if upper else (3, 4)
    return max(abs(dentition.teeth[q * 10 + 8].s) for q in quadrants) + 5.0


def _mandible_sdf(dentition: Dentition, crest: CrestProfile):
    s_end = _last_molar_s(dentition, False)

    def sdf(c: Chunk) -> np.ndarray:
        s, d = dentition.lower.lookup(c.hx, c.hy)
        sa = np.abs(s)
        top = np.interp(s, _S_GRID, crest.lower_z).astype(np.float32)
        wf = np.interp(s, _S_GRID, crest.lower_width).astype(np.float32)
        post = np.clip(sa / 30.0, 0.0, 1.0)
        base = -34.0 + 2.0 * post
        depth = np.maximum(top - c.hz, 0.0)
        d0 = -0.15 * (1.0 - np.clip(sa / 25.0, 0.0, 1.0)) * depth
        w = (3.6 + 1.8 * post) * wf + 2.6 * np.clip(depth / 14.0, 0.0, 1.0)
        hh = (top - base) / 2
        body = rounded_rect(d - d0, c.hz - (top + base) / 2, w, hh, np.minimum(w, hh) * 0.7)
        body = np.maximum(body, sa - (s_end + 20.0))
        ramus = rounded_rect(d + 1.0, c.hz + 4.0, 3.6, 27.0, 2.5)
        ramus = np.maximum(ramus, np.abs(sa - (s_end + 17.0)) - 14.0)
        return np.minimum(body, ramus)

    return sdf


def _maxilla_sdf(dentition: Dentition, crest: CrestProfile):
    s_end = _last_molar_s(dentition, True)
    y_post = min(dentition.teeth[17].cej[1], dentition.teeth[27].cej[1]) - 4.0

    def sdf(c: Chunk) -> np.ndarray:
        s, d = dentition.upper.lookup(c.hx, c.hy)
        sa = np.abs(s)
        low = np.interp(s, _S_GRID, crest.upper_z).astype(np.float32)
        wf = np.interp(s, _S_GRID, crest.upper_width).astype(np.float32)
        post = np.clip(sa / 30.0, 0.0, 1.0)
        top = low + 18.0
        up = np.maximum(c.hz - low, 0.0)
        d0 = -0.3 * (1.0 - np.clip(sa / 25.0, 0.0, 1.0)) * up - 0.5
        w = (3.6 + 1.8 * post) * wf + 2.8 * np.clip(up / 12.0, 0.0, 1.0)
        hh = (top - low) / 2
        alveolar = rounded_rect(d - d0, c.hz - (top + low) / 2, w, hh, np.minimum(w, hh) * 0.6)
        alveolar = np.maximum(alveolar, sa - s_end)
        vault = low + 5.0 + 8.0 * np.clip(-d / 14.0, 0.0, 1.0)
        palate = np.maximum(np.maximum(vault - c.hz, c.hz - vault - 3.5), np.maximum(d + 3.0, y_post - c.hy))
        return np.minimum(alveolar, palate)

    return sdf


def _texture(plan: Plan, grid_shape: tuple[int, ...], rng: np.random.Generator):
    """Trabecular-looking grey values for cancellous bone (band-limited noise)."""
    factor = 2
    low = rng.standard_normal(tuple(n // factor + 2 for n in grid_shape)).astype(np.float32)
    low = ndimage.gaussian_filter(low, 0.6)
    low /= low.std() + 1e-6
    mean = plan.densities["cancellous"]

    def value(c: Chunk) -> np.ndarray:
        sl = tuple(slice(s.start // factor, (s.stop - 1) // factor + 1) for s in c.slices)
        block = low[sl]
        for axis in range(3):
            block = np.repeat(block, factor, axis=axis)
        offset = tuple(s.start - (s.start // factor) * factor for s in c.slices)
        block = block[tuple(slice(o, o + s.stop - s.start) for o, s in zip(offset, c.slices))]
        return mean + 170.0 * np.tanh(1.5 * block)

    return value


def paint_soft_tissue(canvas: Canvas, plan: Plan) -> None:
    """Head envelope of soft tissue (lips at about y = +14 mm); air outside."""

    def sdf(c: Chunk) -> np.ndarray:
        return superellipse(c.hx, c.hy + 48.0, 64.0, 62.0, 2) + 0 * c.hz

    canvas.paint((-70, -115, -90), (70, 20, 110), sdf, [Layer(plan.densities["soft"])])


def paint_oral_air(canvas: Canvas, dentition: Dentition, crest: CrestProfile) -> None:
    """A thin air layer between tongue and palate (painted before the bone)."""
    y6 = dentition.teeth[16].cej[1]
    vault = float(np.interp(0.0, _S_GRID, crest.upper_z)) + 11.0
    centre, radii = np.array([0.0, y6 + 3.0, vault - 1.0]), (13.0, 15.0, 2.4)
    sdf = lambda c: ellipsoid(c.hx - centre[0], c.hy - centre[1], c.hz - centre[2], radii)  # noqa: E731
    canvas.paint(centre - 16, centre + 16, sdf, [Layer(-1000.0)])


def paint_bone(canvas: Canvas, dentition: Dentition, crest: CrestProfile, plan: Plan, rng: np.random.Generator) -> None:
    """Mandible (label 1) and maxilla (label 2): cortical shell around cancellous bone."""
    texture = _texture(plan, canvas.grid.shape, rng)
    cortical = plan.densities["cortical"]
    layers = lambda label: [Layer(cortical, label), Layer(texture, inset=1.6)]  # noqa: E731
    canvas.paint((-75, -110, -40), (75, 10, 26), _mandible_sdf(dentition, crest), layers(Label.LOWER_JAWBONE))
    canvas.paint((-45, -60, 0), (45, 10, 40), _maxilla_sdf(dentition, crest), layers(Label.UPPER_JAWBONE))


def sinus_shape(dentition: Dentition, plan: Plan, quadrant: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Centre and radii (mm) of the maxillary sinus over quadrant 1 (right) or 2 (left)."""
    apices = [a for p in (5, 6, 7) for a in dentition.teeth[quadrant * 10 + p].apices()]
    first_molar = dentition.teeth[quadrant * 10 + 6]
    floor = max(a[2] for a in apices) + plan.teeth[quadrant * 10 + 6].sinus_gap
    xy = np.mean([a[:2] for a in first_molar.apices()], axis=0)
    radii = tuple(r * plan.arch_scale for r in (12.5, 16.0, 18.0))
    side = 1.0 if quadrant == 1 else -1.0
    centre = np.array([xy[0] + side * 1.0, xy[1] - 2.0, floor + radii[2]])
    return centre, radii


def paint_cavities(canvas: Canvas, dentition: Dentition, crest: CrestProfile, plan: Plan) -> None:
    """Maxillary sinuses (5 left, 6 right) with bony walls, nasal cavity, pharynx (7)."""
    cortical = plan.densities["cortical"]
    for quadrant, label in ((1, Label.RIGHT_SINUS), (2, Label.LEFT_SINUS)):
        centre, radii = sinus_shape(dentition, plan, quadrant)
        sdf = lambda c, m=centre, r=radii: ellipsoid(c.hx - m[0], c.hy - m[1], c.hz - m[2], r)  # noqa: E731
        reach = np.array(radii) + 3.0
        canvas.paint(centre - reach, centre + reach, sdf, [Layer(cortical, Label.UPPER_JAWBONE, inset=-1.6)])
        canvas.paint(centre - reach, centre + reach, sdf, [Layer(-1000.0, label)], record=f"sinus-{quadrant}")
    y_pharynx = min(dentition.teeth[38].cej[1], dentition.teeth[48].cej[1]) - 24.0
    floor = float(np.interp(0.0, _S_GRID, crest.upper_z)) + 17.0

    def nasal(c: Chunk) -> np.ndarray:
        section = superellipse(c.hx, c.hz - (floor + 60.0), 9.5, 60.0, 4)
        return np.maximum(section, np.maximum(c.hy - 4.0, y_pharynx - c.hy))

    canvas.paint((-12, y_pharynx - 2, floor - 2), (12, 6, 130), nasal, [Layer(-1000.0)])
    septum = lambda c: np.maximum(np.abs(c.hx) - 0.8, np.maximum(floor + 1 - c.hz, c.hy - 2.0))  # noqa: E731
    canvas.paint((-2, y_pharynx + 10, floor), (2, 4, 130), septum, [Layer(cortical * 0.7)])

    def pharynx(c: Chunk) -> np.ndarray:
        section = superellipse(c.hx, c.hy - y_pharynx, 11.0, 6.5, 2)
        return np.maximum(section, np.maximum(-80.0 - c.hz, c.hz - floor - 10.0))

    canvas.paint((-13, y_pharynx - 8, -90), (13, y_pharynx + 8, floor + 12), pharynx, [Layer(-1000.0, Label.PHARYNX)])


def canal_path(dentition: Dentition, plan: Plan, crest: CrestProfile, quadrant: int, radius: float) -> np.ndarray:
    """Centre line (head mm, (N, 3)) of the inferior alveolar canal of quadrant 3 or 4,
    from the mandibular foramen to the mental foramen between the premolars."""
    side = 1.0 if quadrant == 4 else -1.0
    lower = dentition.lower
    controls = []  # (|s|, d, z)
    s_end = _last_molar_s(dentition, False)
    controls.append((s_end + 15.0, -1.5, -1.0))
    for p in (8, 7, 6):
        fdi = quadrant * 10 + p
        g, tooth = dentition.teeth[fdi], plan.teeth[fdi]
        apex = min(g.apices(), key=lambda a: a[2])
        s, d = lower.lookup(np.array([apex[0]]), np.array([apex[1]]))
        gap = tooth.canal_gap if tooth.has_tooth else 3.0
        controls.append((abs(float(s[0])), float(d[0]), apex[2] - gap - radius))
    s4, s5 = abs(dentition.teeth[quadrant * 10 + 4].s), abs(dentition.teeth[quadrant * 10 + 5].s)
    crest_mental = float(np.interp(side * (s4 + s5) / 2, _S_GRID, crest.lower_z))
    controls.append((s5, 2.0, controls[-1][2] + 2.0))
    controls.append(((s4 + s5) / 2, 6.5, crest_mental - 12.0))
    controls.sort()
    cs, cd, cz = (np.array(v) for v in zip(*controls))
    sa = np.arange(cs[0], cs[-1] + 0.01, 0.5)
    d = ndimage.gaussian_filter1d(np.interp(sa, cs, cd), 2.0, mode="nearest")
    z = ndimage.gaussian_filter1d(np.interp(sa, cs, cz), 2.0, mode="nearest")
    points = []
    for si, di, zi in zip(sa, d, z):
        xy = lower.curve.point(side * si) + di * lower.curve.normal(side * si)
        points.append((xy[0], xy[1], zi))
    return np.array(points)


def paint_canals(canvas: Canvas, dentition: Dentition, crest: CrestProfile, plan: Plan) -> None:
    """Inferior alveolar canals (3 left, 4 right): soft-tissue lumen in a thin cortical wall."""
    radius = 1.5 * plan.arch_scale
    for quadrant, label in ((3, Label.LEFT_IAC), (4, Label.RIGHT_IAC)):
        path = canal_path(dentition, plan, crest, quadrant, radius)
        segments = list(zip(path[:-3:3], path[3::3]))
        for r, layer in ((radius + 0.5, Layer(plan.densities["cortical"] * 0.8)), (radius, Layer(plan.densities["soft"] + 10, label))):
            for p0, p1 in segments:
                sdf = lambda c, p0=p0, p1=p1, r=r: capsule(c.hx, c.hy, c.hz, p0, p1, r, r)  # noqa: E731
                canvas.paint(np.minimum(p0, p1) - r - 1, np.maximum(p0, p1) + r + 1, sdf, [layer])
