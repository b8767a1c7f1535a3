"""Where each tooth of a phantom sits: arches fitted to the plan, one frame per FDI position.

Every one of the 32 positions gets a :class:`ToothGeometry`, present or not: a missing
tooth's site is where an implant or pontic goes and where the edentulous ridge is
measured. Tooth-local axes: ``a`` mesiodistal (positive distal), ``b`` buccolingual
(positive buccal), ``h`` along the long axis (0 at the cemento-enamel junction,
positive toward the apex, negative toward the occlusal surface).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from odontoscan.datasets.findings_schema import ToothStatus
from odontoscan.datasets.labels import FDI_TEETH, is_upper
from odontoscan.datasets.phantom.anatomy import (
    ArchCurve,
    ArchFrame,
    Root,
    ToothSize,
    fit_arch,
    root_inclination_deg,
    roots_of,
    size_of,
    tooth_arc_positions,
)
from odontoscan.datasets.phantom.plan import Plan
from odontoscan.datasets.phantom.shapes import LocalFrame

UPPER_INTERCANINE, UPPER_INTERMOLAR = 34.0, 52.0
LOWER_INTERCANINE, LOWER_INTERMOLAR = 26.0, 45.0


@dataclass(frozen=True)
class ToothGeometry:
    """Placement and size of one tooth (or tooth site) in the head frame."""

    fdi: int
    size: ToothSize
    s: float  # signed arc position of the tooth centre
    frame: LocalFrame  # origin at the CEJ centre; axes a, b, h (rows)
    roots: tuple[Root, ...]

    @property
    def upper(self) -> bool:
        return is_upper(self.fdi)

    @property
    def cej(self) -> np.ndarray:
        return self.frame.origin

    def local_to_head(self, a: float, b: float, h: float) -> np.ndarray:
        return self.frame.to_head(np.array([a, b, h]))

    def root_line(self, root: Root) -> tuple[np.ndarray, np.ndarray]:
        """Local base and apex points of a root."""
        w, d = self.size.width, self.size.depth
        base = np.array([root.base[0] * w, root.base[1] * d, -0.5])
        apex = np.array([root.apex[0] * w, root.apex[1] * d, self.size.root * root.length])
        return base, apex

    def apices(self) -> list[np.ndarray]:
        """Head-frame apex points of all roots."""
        return [self.frame.to_head(self.root_line(r)[1]) for r in self.roots]

    def bounds(self, margin: float = 1.5, crown_extra: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Head-frame axis-aligned box around the whole tooth."""
        w, d = self.size.width / 2 + margin, self.size.depth / 2 + margin
        h0, h1 = -self.size.crown - margin - crown_extra, self.size.root * 1.05 + margin
        corners = np.array([[a, b, h] for a in (-w, w) for b in (-d, d) for h in (h0, h1)])
        head = self.frame.origin + corners @ self.frame.axes
        return head.min(0), head.max(0)


@dataclass(frozen=True, eq=False)
class Dentition:
    """Both arches and the geometry of all 32 tooth positions."""

    upper: ArchFrame
    lower: ArchFrame
    teeth: dict[int, ToothGeometry]

    def arch(self, fdi: int) -> ArchFrame:
        return self.upper if is_upper(fdi) else self.lower


def _occlusal_z(fdi: int) -> float:
    """Occlusal/incisal level of a tooth (mm): a 1.2 mm overbite at the incisors."""
    sign = -1.0 if is_upper(fdi) else 1.0
    return sign * {1: 1.2, 2: 1.0, 3: 0.5}.get(fdi % 10, -0.6)


def _side(fdi: int) -> float:
    """+1 for the patient's right (quadrants 1, 4; head x > 0), -1 for the left."""
    return 1.0 if fdi // 10 in (1, 4) else -1.0


def _tooth_frame(curve: ArchCurve, fdi: int, s: float, size: ToothSize, tilt_deg: float, drop: float) -> LocalFrame:
    side = _side(fdi)
    up = np.array([0.0, 0.0, 1.0 if is_upper(fdi) else -1.0])  # toward the apex
    tangent = np.append(curve.tangent(s) * side, 0.0)  # distal
    normal = np.append(curve.normal(s), 0.0)  # buccal
    alpha = np.radians(root_inclination_deg(fdi))
    u = up * np.cos(alpha) - normal * np.sin(alpha)
    u /= np.linalg.norm(u)
    t = tangent - (tangent @ u) * u
    t /= np.linalg.norm(t)
    if tilt_deg:  # impacted: crown tipped mesially about the buccolingual axis
        theta = np.radians(tilt_deg)
        u, t = np.cos(theta) * u + np.sin(theta) * t, np.cos(theta) * t - np.sin(theta) * u
    n = np.cross(u, t)
    if n @ normal < 0:
        n = -n
    occlusal = np.append(curve.point(s), _occlusal_z(fdi)) + up * drop
    if tilt_deg:
        occlusal = occlusal + t * size.crown * np.sin(np.radians(tilt_deg)) * 0.5
    return LocalFrame(origin=occlusal + u * size.crown, axes=np.stack([t, n, u]))


def _arch_for(plan: Plan, upper: bool) -> tuple[ArchCurve, dict[int, float]]:
    quadrants = (1, 2) if upper else (4, 3)
    widths = {
        p: float(np.mean([size_of(q * 10 + p).width * plan.teeth[q * 10 + p].scale for q in quadrants]))
        for p in range(1, 9)
    }
    positions = tooth_arc_positions(widths)
    ic, im = (UPPER_INTERCANINE, UPPER_INTERMOLAR) if upper else (LOWER_INTERCANINE, LOWER_INTERMOLAR)
    y0 = 0.0 if upper else -2.8  # overjet: lower incisors sit behind the upper ones
    curve = fit_arch(positions[3], positions[6], ic * plan.arch_scale, im * plan.arch_scale, y0)
    return curve, positions


def layout(plan: Plan) -> Dentition:
    """Fit both arches to the plan and place all 32 tooth positions."""
    arches, teeth = {}, {}
    for upper in (True, False):
        curve, positions = _arch_for(plan, upper)
        arches[upper] = ArchFrame.build(curve, step=0.25 if plan.size == "full" else 0.5)
        for fdi in FDI_TEETH:
            if is_upper(fdi) != upper:
                continue
            tooth = plan.teeth[fdi]
            base = size_of(fdi)
            size = ToothSize(*(v * tooth.scale for v in (base.width, base.depth, base.crown, base.root)))
            s = _side(fdi) * positions[fdi % 10]
            impacted = tooth.status is ToothStatus.IMPACTED
            frame = _tooth_frame(
                curve, fdi, s, size, tooth.impaction_deg if impacted else 0.0, tooth.impaction_drop if impacted else 0.0
            )
            teeth[fdi] = ToothGeometry(fdi, size, s, frame, roots_of(fdi))
    return Dentition(upper=arches[True], lower=arches[False], teeth=teeth)
