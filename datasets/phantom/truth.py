"""Exact ground truth of a CBCT phantom, as a ``Findings`` document.

The tooth chart comes from the plan; every finding's location and measurements come
from the generated label map (through :mod:`odontoscan.datasets.measure`), so the
ground truth says what is actually in the voxels: a finding too small to cover a
single voxel centre at the chosen spacing is left out. Locations are LPS mm;
``evidence.slice_index`` is the canonical z index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from odontoscan.datasets import measure
from odontoscan.datasets.findings_schema import (
    Evidence,
    Finding,
    FindingKind,
    Findings,
    Measurement,
    ModelInfo,
    ScanInfo,
    Severity,
    Tooth,
    ToothStatus,
    Unit,
)
from odontoscan.datasets.labels import FINDING_IDS, PULP_OFFSET, Label, is_upper
from odontoscan.datasets.phantom.canvas import Canvas
from odontoscan.datasets.phantom.dentition import Dentition
from odontoscan.datasets.phantom.jaws import CrestProfile
from odontoscan.datasets.phantom.plan import Plan

MODEL_NAME = "phantom-ground-truth"
_LPS_FROM_RAS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Context:
    """What the ground truth needs from generation."""

    plan: Plan
    dentition: Dentition
    crest: CrestProfile
    canvas: Canvas
    origin: tuple[float, float, float]
    study_uid: str
    series_uid: str

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.canvas.grid.spacing

    def lps(self, index: np.ndarray) -> list[float]:
        return [round(float(v), 3) for v in np.asarray(self.origin) + _LPS_FROM_RAS * np.asarray(index) * self.spacing]

    def grid_mm(self, head_point: np.ndarray) -> np.ndarray:
        return self.canvas.grid.head_to_index(head_point) * np.asarray(self.spacing)

    def grid_dir(self, head_direction: np.ndarray) -> np.ndarray:
        return self.canvas.grid.head_direction_to_index_mm(head_direction)

    def object(self, name: str, ids: tuple[int, ...]) -> np.ndarray | None:
        """Full-size boolean mask of a recorded object restricted to label ``ids``."""
        found = self.canvas.object_mask(name)
        if found is None:
            return None
        box, mask = found
        mask = mask & np.isin(self.canvas.labels[box], ids)
        if not mask.any():
            return None
        full = np.zeros(self.canvas.labels.shape, dtype=bool)
        full[box] = mask
        return full


def _finding(ctx: Context, kind: FindingKind, fdi: int | None, severity: Severity, index, grade=None, **measurements) -> Finding:
    location = ctx.lps(np.asarray(index, float))
    slice_index = int(round((location[2] - ctx.origin[2]) / ctx.spacing[2]))
    return Finding(
        id=f"{kind.value.replace('_', '-')}-{fdi if fdi is not None else 'na'}-1",
        kind=kind,
        fdi=fdi,
        confidence=1.0,
        severity=severity,
        grade=grade,
        location_mm=location,
        measurements={k: Measurement(value=round(v[0], 3), unit=v[1]) for k, v in measurements.items()},
        evidence=Evidence(slice_index=slice_index),
    )


def _by_distance(distance: float) -> Severity:
    return Severity.HIGH if distance < 1.0 else Severity.MODERATE if distance < 2.0 else Severity.LOW


def _tooth_mask(ctx: Context, fdi: int) -> np.ndarray | None:
    return ctx.object(f"tooth-{fdi}", (fdi, PULP_OFFSET + fdi, *FINDING_IDS))


def _caries(ctx: Context, fdi: int) -> Finding | None:
    mask = ctx.object(f"caries-{fdi}", (Label.CARIES,))
    if mask is None:
        return None
    grade = ctx.plan.teeth[fdi].caries.grade
    severity = {"enamel": Severity.LOW, "dentin": Severity.MODERATE, "near_pulp": Severity.HIGH}[grade]
    extra = {}
    pulp = ctx.canvas.labels == PULP_OFFSET + fdi
    closest = measure.shortest_distance(mask, pulp, ctx.spacing)
    if closest is not None:
        extra["distance_to_pulp_mm"] = (closest.distance_mm, Unit.MM)
    return _finding(
        ctx, FindingKind.CARIES, fdi, severity, measure.centroid_index(mask), grade,
        volume_mm3=(measure.volume_mm3(mask, ctx.spacing), Unit.MM3), **extra,
    )


def _lesion(ctx: Context, fdi: int) -> Finding | None:
    mask = ctx.object(f"lesion-{fdi}", (Label.PERIAPICAL_LESION,))
    if mask is None:
        return None
    diameter = measure.largest_diameter_mm(mask, ctx.spacing)
    severity = Severity.LOW if diameter < 3 else Severity.MODERATE if diameter < 5 else Severity.HIGH
    return _finding(
        ctx, FindingKind.PERIAPICAL_LESION, fdi, severity, measure.centroid_index(mask),
        volume_mm3=(measure.volume_mm3(mask, ctx.spacing), Unit.MM3), diameter_mm=(diameter, Unit.MM),
    )


def _labelled(ctx: Context, fdi: int, name: str, label: int, kind: FindingKind, grade: str | None) -> Finding | None:
    mask = ctx.object(f"{name}-{fdi}", (label,))
    if mask is None:
        return None
    return _finding(
        ctx, kind, fdi, Severity.INFO, measure.centroid_index(mask), grade,
        volume_mm3=(measure.volume_mm3(mask, ctx.spacing), Unit.MM3),
    )


def _bone_loss(ctx: Context, fdi: int) -> Finding | None:
    tooth = _tooth_mask(ctx, fdi)
    if tooth is None:
        return None
    g = ctx.dentition.teeth[fdi]
    box = measure.bounding_box(tooth, [int(np.ceil(2.0 / s)) for s in ctx.spacing])
    jaw = Label.UPPER_JAWBONE if is_upper(fdi) else Label.LOWER_JAWBONE
    dist = ndimage.distance_transform_edt(~tooth[box], sampling=ctx.spacing)
    bone = (ctx.canvas.labels[box] == jaw) & (dist <= 1.0)
    if not bone.any():
        return None
    offset = np.array([s.start for s in box]) * np.asarray(ctx.spacing)
    axis = ctx.grid_dir(g.frame.axes[2])
    low, _ = measure.extent_along_mm(bone, ctx.spacing, ctx.grid_mm(g.cej) - offset, axis)
    crest_index = (ctx.grid_mm(g.cej) + axis / np.linalg.norm(axis) * low) / np.asarray(ctx.spacing)
    severity = Severity.LOW if low < 3 else Severity.MODERATE if low < 5 else Severity.HIGH
    return _finding(ctx, FindingKind.BONE_LOSS, fdi, severity, crest_index, cej_to_crest_mm=(low, Unit.MM))


def _impacted(ctx: Context, fdi: int) -> Finding | None:
    tooth = _tooth_mask(ctx, fdi)
    if tooth is None or np.count_nonzero(tooth) < 3:
        return None
    axis = measure.principal_axis(tooth, ctx.spacing)
    neighbour = _tooth_mask(ctx, fdi - 1)
    if neighbour is not None and np.count_nonzero(neighbour) >= 3:
        reference = measure.principal_axis(neighbour, ctx.spacing)
    else:
        reference = ctx.grid_dir(np.array([0.0, 0.0, 1.0]))
    angle = measure.angle_between_deg(axis, reference)
    grade = "vertical" if angle < 10 else "horizontal" if angle > 80 else "mesioangular"
    return _finding(
        ctx, FindingKind.IMPACTED_TOOTH, fdi, Severity.MODERATE, measure.centroid_index(tooth), grade,
        angle_deg=(angle, Unit.DEGREE),
    )


def _proximity(ctx: Context, fdi: int, kind: FindingKind, target: int) -> Finding | None:
    tooth = _tooth_mask(ctx, fdi)
    if tooth is None:
        return None
    closest = measure.shortest_distance(tooth, ctx.canvas.labels == target, ctx.spacing)
    if closest is None:
        return None
    return _finding(ctx, kind, fdi, _by_distance(closest.distance_mm), closest.midpoint_index(), distance_mm=(closest.distance_mm, Unit.MM))


def _edentulous(ctx: Context, fdi: int) -> Finding | None:
    g = ctx.dentition.teeth[fdi]
    labels, spacing = ctx.canvas.labels, ctx.spacing
    jaw = Label.UPPER_JAWBONE if is_upper(fdi) else Label.LOWER_JAWBONE
    axis = ctx.grid_dir(g.frame.axes[2])
    start = ctx.grid_mm(g.cej)
    entry = measure.first_hit_mm(labels, spacing, start, axis, (jaw,), max_mm=12.0)
    if entry is None:
        return None
    crest = start + axis / np.linalg.norm(axis) * entry
    height = measure.run_length_mm(labels, spacing, crest, axis, (jaw,))
    mid = crest + axis / np.linalg.norm(axis) * min(3.0, height / 2)
    buccal = ctx.grid_dir(g.frame.axes[1])
    width = measure.run_length_mm(labels, spacing, mid, buccal, (jaw,)) + measure.run_length_mm(labels, spacing, mid, -buccal, (jaw,))
    return _finding(
        ctx, FindingKind.EDENTULOUS_SITE, fdi, Severity.INFO, crest / np.asarray(spacing),
        bone_height_mm=(height, Unit.MM), bone_width_mm=(width, Unit.MM),
    )


def _tooth_findings(ctx: Context, fdi: int) -> list[Finding | None]:
    tooth = ctx.plan.teeth[fdi]
    out: list[Finding | None] = []
    if tooth.caries is not None:
        out.append(_caries(ctx, fdi))
    if tooth.lesion_diameter:
        out.append(_lesion(ctx, fdi))
    if tooth.filling is not None or (tooth.rct and tooth.status is ToothStatus.CROWN):
        grade = tooth.filling.material if tooth.filling else "composite"
        out.append(_labelled(ctx, fdi, "filling", Label.RESTORATION, FindingKind.RESTORATION, grade))
    if tooth.rct:
        out.append(_labelled(ctx, fdi, "rct", Label.ROOT_CANAL_FILLING, FindingKind.ROOT_CANAL_FILLING, None))
    if tooth.bone_loss:
        out.append(_bone_loss(ctx, fdi))
    if tooth.status is ToothStatus.IMPACTED:
        out.append(_impacted(ctx, fdi))
    if tooth.has_tooth and not is_upper(fdi) and fdi % 10 >= 6:
        canal = Label.LEFT_IAC if fdi // 10 == 3 else Label.RIGHT_IAC
        out.append(_proximity(ctx, fdi, FindingKind.CANAL_PROXIMITY, canal))
    if tooth.has_tooth and is_upper(fdi) and fdi % 10 >= 4:
        sinus = Label.LEFT_SINUS if fdi // 10 == 2 else Label.RIGHT_SINUS
        out.append(_proximity(ctx, fdi, FindingKind.SINUS_PROXIMITY, sinus))
    if tooth.status is ToothStatus.MISSING and fdi % 10 <= 7:
        out.append(_edentulous(ctx, fdi))
    return out


def ground_truth(ctx: Context) -> Findings:
    """The phantom's Findings: full tooth chart and every visible finding."""
    labels = ctx.canvas.labels
    findings = [f for fdi in sorted(ctx.plan.teeth) for f in _tooth_findings(ctx, fdi) if f is not None]
    return Findings(
        scan=ScanInfo(
            modality="CT",
            shape=list(labels.shape),
            spacing_mm=[float(s) for s in ctx.spacing],
            study_instance_uid=ctx.study_uid,
            series_instance_uid=ctx.series_uid,
        ),
        model=ModelInfo(name=MODEL_NAME, version="1", sha256=hashlib.sha256(labels.tobytes()).hexdigest()),
        teeth=[Tooth(fdi=f, status=t.status, confidence=1.0) for f, t in sorted(ctx.plan.teeth.items())],
        findings=findings,
    )
