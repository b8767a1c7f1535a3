"""The random draw behind one CBCT phantom: patient, scanner and dental history.

Everything random about a phantom is decided here from one ``numpy`` Generator, so
the painters downstream are deterministic functions of the :class:`Plan`. Coverage of
the finding kinds is forced by seed parity: each kind is certain on every second seed
and drawn with probability one half otherwise, so any two consecutive seeds hold
every kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from odontoscan.datasets.findings_schema import ToothStatus
from odontoscan.datasets.labels import FDI_TEETH, is_upper

KINDS = ("missing", "implant", "impacted", "crown", "bridge", "caries", "lesion", "filling", "rct", "bone_loss")
CARIES_GRADES = ("enamel", "dentin", "near_pulp")


@dataclass
class Caries:
    site: str  # occlusal, mesial, distal
    grade: str  # enamel, dentin, near_pulp
    radius: float  # mm, lateral extent


@dataclass
class Filling:
    material: str  # amalgam (metal, streaks) or composite
    extent: str  # occlusal (class I) or mod (mesial-occlusal-distal)


@dataclass
class ToothPlan:
    """What this patient's history did to one tooth."""

    fdi: int
    status: ToothStatus = ToothStatus.PRESENT
    scale: float = 1.0
    caries: Caries | None = None
    filling: Filling | None = None
    rct: bool = False
    lesion_diameter: float | None = None
    bone_loss: float | None = None  # target CEJ-to-crest distance, mm
    impaction_deg: float = 0.0
    impaction_drop: float = 0.0  # mm into the bone
    bridge: bool = False  # abutment or pontic of a bridge
    canal_gap: float = 3.0  # lower molars: apex to canal, mm
    sinus_gap: float = 2.0  # upper posterior: apex to sinus floor, mm

    @property
    def has_tooth(self) -> bool:
        """A natural tooth (crowned or not) is in the jaw."""
        return self.status in (ToothStatus.PRESENT, ToothStatus.CROWN, ToothStatus.IMPACTED)


@dataclass
class Plan:
    """Scanner setup, head pose and dental chart of one phantom."""

    seed: int
    size: str
    spacing: float
    fov_mm: tuple[float, float, float]
    angles_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    arch_scale: float
    densities: dict[str, float]
    noise_hu: float
    teeth: dict[int, ToothPlan] = field(default_factory=dict)


def _scanner(rng: np.random.Generator, size: str) -> tuple[float, tuple[float, float, float]]:
    """Voxel spacing and field of view (mm). Full: 0.2-0.4 mm, ~120x120x90 mm with at
    most 400x400x300 voxels (finer spacing -> smaller field, as on real scanners)."""
    fov = np.array([120.0, 120.0, 90.0]) * rng.uniform(0.96, 1.04)
    if size == "small":
        return 0.8, tuple(float(v) for v in fov)
    spacing = float(np.round(rng.uniform(0.2, 0.4) / 0.025) * 0.025)
    cap = np.array([400, 400, 300]) * spacing
    return spacing, tuple(float(v) for v in np.minimum(fov, cap))


def _pick(rng: np.random.Generator, options: list[int], n: int = 1) -> list[int]:
    if not options:
        return []
    return [int(v) for v in rng.choice(options, size=min(n, len(options)), replace=False)]


def _free(teeth: dict[int, ToothPlan], positions: range | tuple[int, ...]) -> list[int]:
    return [f for f, t in teeth.items() if f % 10 in positions and t.status is ToothStatus.PRESENT and not t.bridge]


def _chart(rng: np.random.Generator, seed: int) -> dict[int, ToothPlan]:
    teeth = {f: ToothPlan(f, scale=float(rng.uniform(0.95, 1.05))) for f in FDI_TEETH}
    wanted = {k for i, k in enumerate(KINDS) if i % 2 == seed % 2 or rng.random() < 0.5}

    for f in (18, 28, 38, 48):  # third molars: sometimes absent
        if rng.random() < 0.25:
            teeth[f].status = ToothStatus.MISSING
    if "impacted" in wanted:
        lower = [f for f in (38, 48) if teeth[f].status is ToothStatus.PRESENT] or [38]
        for f in _pick(rng, lower, 1 + int(rng.random() < 0.3)):
            t = teeth[f]
            t.status = ToothStatus.IMPACTED
            t.impaction_deg = float(rng.uniform(20, 65))
            t.impaction_drop = float(rng.uniform(3, 7))
            t.canal_gap = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.5, 3.0))
    if "bridge" in wanted:
        quadrant, pontic = int(rng.integers(1, 5)), int(rng.choice([5, 6]))
        for p in (pontic - 1, pontic, pontic + 1):
            t = teeth[quadrant * 10 + p]
            t.bridge = True
            t.status = ToothStatus.BRIDGE_PONTIC if p == pontic else ToothStatus.CROWN
    if "implant" in wanted:
        for f in _pick(rng, _free(teeth, (4, 5, 6)), 1 + int(rng.random() < 0.3)):
            teeth[f].status = ToothStatus.IMPLANT
    if "missing" in wanted:
        for f in _pick(rng, _free(teeth, (2, 4, 5, 6, 7)), 1 + int(rng.random() < 0.5)):
            teeth[f].status = ToothStatus.MISSING
    if "crown" in wanted:
        for f in _pick(rng, _free(teeth, (3, 4, 5, 6, 7)), 1 + int(rng.random() < 0.4)):
            teeth[f].status = ToothStatus.CROWN
            teeth[f].rct = rng.random() < 0.5
    if "rct" in wanted:
        for f in _pick(rng, _free(teeth, (1, 4, 5, 6, 7)), 1 + int(rng.random() < 0.4)):
            teeth[f].rct = True
            teeth[f].filling = Filling("composite", "occlusal")
    if "filling" in wanted:
        for f in _pick(rng, [f for f in _free(teeth, (4, 5, 6, 7)) if not teeth[f].filling], int(rng.integers(1, 4))):
            teeth[f].filling = Filling(str(rng.choice(["amalgam", "composite"])), str(rng.choice(["occlusal", "mod"])))
    if "caries" in wanted:
        options = [f for f in _free(teeth, (1, 2, 3, 4, 5, 6, 7)) if not teeth[f].filling and not teeth[f].rct]
        for i, f in enumerate(_pick(rng, options, int(rng.integers(1, 4)))):
            site = "occlusal" if f % 10 >= 4 and rng.random() < 0.5 else str(rng.choice(["mesial", "distal"]))
            grade = CARIES_GRADES[(seed + i) % 3]
            teeth[f].caries = Caries(site, grade, float(rng.uniform(1.0, 1.8)))
    if "lesion" in wanted:
        deep = [f for f, t in teeth.items() if t.rct or (t.caries and t.caries.grade == "near_pulp")]
        options = [f for f in deep if teeth[f].has_tooth and not teeth[f].bridge] or _free(teeth, (1, 2, 4, 5, 6))
        for f in _pick(rng, options, 1):
            teeth[f].lesion_diameter = float(rng.uniform(3.0, 7.0))
    if "bone_loss" in wanted:
        options = [f for f, t in teeth.items() if t.status is ToothStatus.PRESENT and f % 10 <= 7]
        for f in _pick(rng, options, int(rng.integers(1, 4))):
            teeth[f].bone_loss = float(rng.uniform(3.0, 6.0))

    for f, t in teeth.items():
        if not is_upper(f) and f % 10 >= 6 and t.status is not ToothStatus.IMPACTED:
            t.canal_gap = float(rng.uniform(1.0, 5.0)) if f % 10 != 8 else float(rng.uniform(0.3, 3.0))
        if is_upper(f) and f % 10 >= 4:
            t.sinus_gap = float(rng.uniform(-0.5, 4.0))
    return teeth


def draw_plan(seed: int, size: str) -> Plan:
    """Everything random about phantom ``seed`` (``size`` "full" or "small")."""
    if size not in ("full", "small"):
        raise ValueError(f"size must be 'full' or 'small', got {size!r}")
    rng = np.random.default_rng(seed)
    spacing, fov = _scanner(rng, size)
    angles = tuple(float(a) for a in rng.uniform(-8.0, 8.0, 3))
    shift = tuple(float(v) for v in rng.uniform(-4.0, 4.0, 3))
    densities = {
        "cortical": float(rng.uniform(1300, 1700)),
        "cancellous": float(rng.uniform(400, 600)),
        "enamel": float(rng.uniform(2600, 2950)),
        "dentin": float(rng.uniform(1650, 1950)),
        "pulp": float(rng.uniform(40, 90)),
        "soft": float(rng.uniform(20, 70)),
    }
    return Plan(
        seed=seed,
        size=size,
        spacing=spacing,
        fov_mm=fov,
        angles_deg=angles,
        shift_mm=shift,
        arch_scale=float(rng.uniform(0.92, 1.08)),
        densities=densities,
        noise_hu=float(rng.uniform(25, 45)),
        teeth=_chart(rng, seed),
    )
