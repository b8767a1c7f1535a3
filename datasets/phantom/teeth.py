"""Painting teeth and dental work: crowns with enamel caps, roots, pulp and canals,
caries, fillings, root-canal fillings, periapical lesions, prosthetic crowns, bridges
and implants.

Shapes are signed distance functions in tooth-local coordinates (see
:mod:`odontoscan.datasets.phantom.dentition`). Recorded object names (used by the
ground truth): ``tooth-<fdi>``, ``caries-<fdi>``, ``filling-<fdi>``, ``rct-<fdi>``,
``lesion-<fdi>``, ``implant-<fdi>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from odontoscan.datasets.findings_schema import ToothStatus
from odontoscan.datasets.labels import PULP_OFFSET, Label, ToothType, tooth_type
from odontoscan.datasets.phantom.canvas import Canvas, Chunk, Layer
from odontoscan.datasets.phantom.dentition import Dentition, ToothGeometry
from odontoscan.datasets.phantom.plan import Plan, ToothPlan
from odontoscan.datasets.phantom.shapes import capsule, ellipsoid, superellipse

METAL = {"amalgam": 4600.0, "composite": 2900.0}
PROSTHETIC_CROWN = 4800.0  # metal-ceramic
GUTTA_PERCHA = 3800.0
TITANIUM = 9000.0  # saturates the detector range
CARIES_FRACTION = 0.45  # grey value of carious tissue relative to dentin


@dataclass(frozen=True)
class MetalObject:
    """A bright object that casts streaks: head-frame centre, radius (mm), strength (HU)."""

    centre: np.ndarray
    radius: float
    strength: float
    height: float  # extent along z (mm)


def _crown_sd(g: ToothGeometry, a, b, h, shrink=0.0, drop=0.0) -> np.ndarray:
    """Anatomical crown: bulging sides, incisal edge / cusp tip / occlusal fossa."""
    size, kind = g.size, tooth_type(g.fdi)
    t = np.clip(-h / size.crown, 0.0, 1.0)
    bulge = 0.8 + 0.2 * np.sin(np.pi / 2 * np.clip(t / 0.6, 0.0, 1.0))
    wa = size.width / 2 * bulge
    wb = size.depth / 2 * bulge
    if kind is ToothType.INCISOR:
        wb = wb * (1.0 - 0.72 * np.clip((t - 0.3) / 0.7, 0.0, 1.0))
    elif kind is ToothType.CANINE:
        wb = wb * (1.0 - 0.5 * np.clip((t - 0.4) / 0.6, 0.0, 1.0))
        wa = wa * (1.0 - 0.4 * np.clip((t - 0.6) / 0.4, 0.0, 1.0))
    wa = np.maximum(wa - shrink, 0.3)
    wb = np.maximum(wb - shrink, 0.3)
    side = superellipse(a, b, wa, wb, 4)
    top = -size.crown + drop
    if kind is ToothType.CANINE:
        top = top + 1.8 * np.abs(a) / (size.width / 2)
    elif kind in (ToothType.PREMOLAR, ToothType.MOLAR):
        fossa = np.exp(-((a / (0.3 * size.width)) ** 2) - (b / (0.22 * size.depth)) ** 2)
        cusps = 0.35 * (1 - np.cos(2 * np.pi * a / (size.width / 2))) if kind is ToothType.MOLAR else 0.0
        top = top + 1.4 * fossa + cusps
    return np.maximum(np.maximum(side, top - h), h - 0.8)


def _roots_sd(g: ToothGeometry, a, b, h, grow: float = 0.0) -> np.ndarray:
    """Union of tapered elliptic roots (and the root trunk of molars)."""
    out = None
    for root in g.roots:
        base, apex = g.root_line(root)
        ra, rb = root.radius[0] * g.size.width, root.radius[1] * g.size.depth
        r0 = min(ra, rb)
        sd = capsule(a, b, h, base, apex, r0 + grow, 0.45 + grow, (ra / r0, rb / r0, 1.0))
        out = sd if out is None else np.minimum(out, sd)
    if tooth_type(g.fdi) is ToothType.MOLAR:
        ra, rb = 0.4 * g.size.width, 0.4 * g.size.depth
        trunk = capsule(a, b, h, (0, 0, -0.5), (0, 0, 2.0), rb + grow, rb + grow, (ra / rb, 1.0, 1.0))
        out = np.minimum(out, trunk)
    return out


def _pulp_sd(g: ToothGeometry, a, b, h, canals_only: bool = False) -> np.ndarray:
    """Pulp chamber in the crown and one canal through each root."""
    size, kind = g.size, tooth_type(g.fdi)
    if kind is ToothType.MOLAR:
        centre, radii = (0.0, 0.0, -0.9), (0.28 * size.width, 0.26 * size.depth, 1.5)
    elif kind is ToothType.PREMOLAR:
        centre, radii = (0.0, 0.0, -1.6), (0.17 * size.width, 0.26 * size.depth, 2.4)
    else:
        centre, radii = (0.0, 0.0, -0.3 * size.crown), (0.2 * size.width, 0.14 * size.depth, 0.38 * size.crown)
    out = None
    for root in g.roots:
        base, apex = g.root_line(root)
        end = base + (apex - base) * 0.96
        sd = capsule(a, b, h, np.array(centre), end, 0.55, 0.2)
        out = sd if out is None else np.minimum(out, sd)
    if canals_only:
        return np.maximum(out, -h)
    chamber = ellipsoid(a - centre[0], b - centre[1], h - centre[2], radii)
    return np.minimum(out, chamber)


def _local(g: ToothGeometry, c: Chunk):
    return g.frame.local(c.hx, c.hy, c.hz)


def _tooth_sd(g: ToothGeometry, prepared: bool):
    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        crown = _crown_sd(g, a, b, h, shrink=1.3, drop=2.0) if prepared else _crown_sd(g, a, b, h)
        return np.minimum(crown, _roots_sd(g, a, b, h))

    return sdf


def _enamel_sd(g: ToothGeometry):
    thickness = 2.0 if tooth_type(g.fdi) in (ToothType.PREMOLAR, ToothType.MOLAR) else 1.2

    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        t = np.clip(-h / g.size.crown, 0.0, 1.0)
        core = _crown_sd(g, a, b, h, shrink=thickness * np.clip(0.25 + t, 0.0, 1.0) * 0.7, drop=thickness)
        return np.maximum(np.maximum(_crown_sd(g, a, b, h), -core), h + 0.3)

    return sdf


def _socket(canvas: Canvas, g: ToothGeometry, plan: Plan, crest_h: float) -> None:
    """Lamina dura (thin bright socket wall) and periodontal ligament space around roots."""

    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        return np.maximum(_roots_sd(g, a, b, h), crest_h - h)

    lo, hi = g.bounds(2.0)
    layers = [Layer(plan.densities["cortical"] * 0.95, inset=-0.6), Layer(plan.densities["soft"] + 30, inset=-0.25)]
    canvas.paint(lo, hi, sdf, layers)


def _lesion(canvas: Canvas, g: ToothGeometry, diameter: float, plan: Plan) -> None:
    root = max(g.roots, key=lambda r: r.length)
    base, apex = g.root_line(root)
    axis = (apex - base) / np.linalg.norm(apex - base)
    centre = apex + axis * diameter * 0.15
    radii = (diameter / 2, diameter / 2 * 0.9, diameter / 2 * 0.85)

    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        return ellipsoid(a - centre[0], b - centre[1], h - centre[2], radii)

    head = g.frame.to_head(centre)
    r = diameter / 2 + 1.5
    canvas.paint(head - r, head + r, sdf, [Layer(plan.densities["soft"] + 20, Label.PERIAPICAL_LESION)], record=f"lesion-{g.fdi}")


def _caries_sd(g: ToothGeometry, caries) -> callable:
    size = g.size
    enamel = 2.0 if tooth_type(g.fdi) in (ToothType.PREMOLAR, ToothType.MOLAR) else 1.2
    if caries.site == "occlusal":
        centre = np.array([0.0, 0.0, -size.crown + 1.4])
        to_pulp = abs(-0.9 - 1.5 - centre[2]) if tooth_type(g.fdi) is ToothType.MOLAR else abs(-1.6 - 2.4 - centre[2])
        axis = 2
    else:
        sign = -1.0 if caries.site == "mesial" else 1.0
        centre = np.array([sign * size.width / 2 * 0.97, 0.0, -0.55 * size.crown])
        to_pulp = size.width / 2 * 0.97 - 0.28 * size.width
        axis = 0
    depth = {"enamel": 0.6 * enamel, "dentin": enamel + 1.4, "near_pulp": max(to_pulp - 0.5, enamel + 1.0)}[caries.grade]
    radii = [caries.radius, caries.radius * 0.9, caries.radius * 1.1]
    radii[axis] = depth

    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        blob = ellipsoid(a - centre[0], b - centre[1], h - centre[2], tuple(radii))
        inside = np.minimum(_crown_sd(g, a, b, h), _roots_sd(g, a, b, h))
        return np.maximum(np.maximum(blob, inside), -_pulp_sd(g, a, b, h))

    return sdf


def _filling_sd(g: ToothGeometry, extent: str, with_chamber: bool):
    """Occlusal (class I) or mesio-occlusal-distal filling; with ``with_chamber`` also the
    access cavity and pulp chamber of a root-canal-treated tooth."""
    size = g.size
    half_a = size.width if extent == "mod" else 0.24 * size.width
    floor = -size.crown + 3.0

    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        crown = _crown_sd(g, a, b, h)
        box = np.maximum(np.maximum(np.abs(a) - half_a, np.abs(b) - 0.22 * size.depth), h - floor)
        out = np.maximum(box, crown)
        if with_chamber:
            chamber = np.maximum(_pulp_sd(g, a, b, h), h - 0.5)
            access = np.maximum(np.maximum(np.abs(a) - 0.9, np.abs(b) - 0.9), np.maximum(h - 0.5, crown))
            out = np.minimum(out, np.minimum(chamber, access))
        return out

    return sdf


def _prosthesis_sd(g: ToothGeometry, pontic: bool):
    """Prosthetic crown over a prepared stump (or a full pontic without a stump)."""

    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        shell = np.maximum(_crown_sd(g, a, b, h, shrink=-0.2), h - (0.0 if not pontic else -0.8))
        if pontic:
            return shell
        return np.maximum(shell, -_crown_sd(g, a, b, h, shrink=1.3, drop=2.0))

    return sdf


def _implant_sd(g: ToothGeometry, length: float, top: float):
    """Threaded titanium fixture along the tooth axis plus its abutment."""

    def sdf(c: Chunk) -> np.ndarray:
        a, b, h = _local(g, c)
        radial = np.sqrt(a * a + b * b)
        phase = np.mod(h / 0.8, 1.0)
        thread = 0.3 * (1.0 - 2.0 * np.abs(phase - 0.5))
        taper = np.clip((h - (top + length - 2.0)) / 2.0, 0.0, 1.0) * 0.6
        fixture = np.maximum(radial - (1.75 + thread - taper), np.maximum(top - h, h - top - length))
        abutment = np.maximum(radial - 1.5, np.maximum(-1.5 - h, h - top - 0.5))
        return np.minimum(fixture, abutment)

    return sdf


def paint_tooth(canvas: Canvas, g: ToothGeometry, tooth: ToothPlan, plan: Plan, crest_h: float) -> list[MetalObject]:
    """Paint one natural tooth (with its history); returns the metal it carries."""
    dens = plan.densities
    lo, hi = g.bounds()
    metals: list[MetalObject] = []
    crowned = tooth.status is ToothStatus.CROWN
    _socket(canvas, g, plan, crest_h)
    if tooth.lesion_diameter:
        _lesion(canvas, g, tooth.lesion_diameter, plan)
    canvas.paint(lo, hi, _tooth_sd(g, crowned), [Layer(dens["dentin"], g.fdi)], record=f"tooth-{g.fdi}")
    if not crowned:
        canvas.paint(lo, hi, _enamel_sd(g), [Layer(dens["enamel"])])
    pulp = lambda c: _pulp_sd(g, *_local(g, c))  # noqa: E731
    canvas.paint(lo, hi, pulp, [Layer(dens["pulp"], PULP_OFFSET + g.fdi)])
    if tooth.rct:
        canals = lambda c: _pulp_sd(g, *_local(g, c), canals_only=True)  # noqa: E731
        canvas.paint(lo, hi, canals, [Layer(GUTTA_PERCHA, Label.ROOT_CANAL_FILLING)], record=f"rct-{g.fdi}")
        metals.append(MetalObject(g.local_to_head(0, 0, g.size.root / 2), 0.5, 300.0, g.size.root))
    if tooth.filling is not None or (tooth.rct and crowned):
        extent = tooth.filling.extent if tooth.filling else "occlusal"
        material = tooth.filling.material if tooth.filling else "composite"
        canvas.paint(
            lo, hi, _filling_sd(g, extent, tooth.rct), [Layer(METAL[material], Label.RESTORATION)], record=f"filling-{g.fdi}"
        )
        if material == "amalgam":
            metals.append(MetalObject(g.local_to_head(0, 0, -g.size.crown + 1.5), 2.0, 900.0, 3.0))
    if tooth.caries is not None:
        value = dens["dentin"] * CARIES_FRACTION
        canvas.paint(lo, hi, _caries_sd(g, tooth.caries), [Layer(value, Label.CARIES)], record=f"caries-{g.fdi}")
    if crowned:
        label = Label.BRIDGE if tooth.bridge else Label.CROWN
        canvas.paint(lo, hi, _prosthesis_sd(g, False), [Layer(PROSTHETIC_CROWN, label)], record=f"prosthesis-{g.fdi}")
        metals.append(MetalObject(g.local_to_head(0, 0, -g.size.crown / 2), g.size.width / 2, 1200.0, g.size.crown))
    return metals


def paint_implant(canvas: Canvas, g: ToothGeometry, plan: Plan) -> list[MetalObject]:
    """Implant fixture (label 10) at a missing site, with a prosthetic crown (label 9)."""
    length = 9.0 + (plan.seed % 3) * 1.25
    top = 2.0
    lo, hi = g.bounds()
    canvas.paint(lo, hi, _implant_sd(g, length, top), [Layer(TITANIUM, Label.IMPLANT)], record=f"implant-{g.fdi}")
    canvas.paint(lo, hi, _prosthesis_sd(g, True), [Layer(PROSTHETIC_CROWN, Label.CROWN)], record=f"prosthesis-{g.fdi}")
    return [
        MetalObject(g.local_to_head(0, 0, top + length / 2), 2.0, 2500.0, length),
        MetalObject(g.local_to_head(0, 0, -g.size.crown / 2), g.size.width / 2, 1200.0, g.size.crown),
    ]


def paint_pontic(canvas: Canvas, g: ToothGeometry, neighbours: list[ToothGeometry]) -> list[MetalObject]:
    """Bridge pontic (label 8) over a missing tooth, joined to its abutment crowns."""
    lo, hi = g.bounds()
    canvas.paint(lo, hi, _prosthesis_sd(g, True), [Layer(PROSTHETIC_CROWN, Label.BRIDGE)], record=f"prosthesis-{g.fdi}")
    for other in neighbours:
        p0 = g.local_to_head(0, 0, -0.55 * g.size.crown)
        p1 = other.local_to_head(0, 0, -0.55 * other.size.crown)
        sdf = lambda c, p0=p0, p1=p1: capsule(c.hx, c.hy, c.hz, p0, p1, 1.8, 1.8)  # noqa: E731
        canvas.paint(np.minimum(p0, p1) - 3, np.maximum(p0, p1) + 3, sdf, [Layer(PROSTHETIC_CROWN, Label.BRIDGE)])
    return [MetalObject(g.local_to_head(0, 0, -g.size.crown / 2), g.size.width / 2, 1200.0, g.size.crown)]


def paint_dentition(canvas: Canvas, dentition: Dentition, plan: Plan, crest_h: dict[int, float]) -> list[MetalObject]:
    """Paint every tooth position by its status; returns all metal objects."""
    metals: list[MetalObject] = []
    for fdi, tooth in plan.teeth.items():
        g = dentition.teeth[fdi]
        if tooth.has_tooth:
            metals += paint_tooth(canvas, g, tooth, plan, crest_h[fdi])
        elif tooth.status is ToothStatus.IMPLANT:
            metals += paint_implant(canvas, g, plan)
    for fdi, tooth in plan.teeth.items():
        if tooth.status is ToothStatus.BRIDGE_PONTIC:
            neighbours = [dentition.teeth[fdi - 1], dentition.teeth[fdi + 1]]
            metals += paint_pontic(canvas, dentition.teeth[fdi], neighbours)
    return metals
