"""Measurements a planner uses, from the label map of a volume (radiographs: impaction only).

- Canal proximity: shortest distance (mm) from each lower molar to the inferior
  alveolar canal on its side (third molars first in any surgical plan).
- Sinus proximity: shortest distance (mm) from each upper premolar and molar to the
  maxillary sinus on its side.
- Edentulous sites: at each missing tooth's expected site (incisors to second
  molars), the bone height along the occlusal normal and the bucco-lingual bone width
  3 mm below the crest (implant planning).
- Impacted third molars: the angle of the long axis to the occlusal normal.
- Alveolar bone loss: per present tooth, the distance from its crown tip to the
  crest of the bone around it (along the occlusal normal; the crest is the highest
  bone within 1 mm of the tooth over the middle ``CREST_BAND`` of its mesio-distal
  width, so that a neighbour's interdental bone does not stand in for its own, and
  only the main piece of tooth and of jaw bone count, not stray voxels), less the
  textbook crown height of its position (a central incisor's crown is taller than a
  lateral's), compared with the median
  of the same jaw's teeth of the same type (at least two); a crest ``BONE_LOSS_EXCESS_MM`` or more
  lower than its peers is bone loss, reported as CEJ-to-crest distance = the excess
  + ``NORMAL_CEJ_CREST_MM`` (the crest normally sits about 2 mm below the
  cemento-enamel junction). Relative by design: crown heights differ between
  people, so it finds localised loss and misses loss spread evenly over all teeth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from odontoscan.datasets import measure
from odontoscan.datasets.findings_schema import Finding, FindingKind, Measurement, Severity, ToothStatus, Unit
from odontoscan.datasets.labels import Label, is_upper, tooth_type
from odontoscan.datasets.phantom.anatomy import size_of  # textbook (Wheeler's) tooth sizes
from odontoscan.models.findings.chart import Chart, impaction_angle
from odontoscan.models.findings.context import Context, grow, largest_component

SEARCH_MM = 8.0  # canal / sinus search radius first tried around a tooth (exact beyond it too, only slower)
CREST_SEARCH_MM = 25.0  # from the occlusal plane down (up) to the alveolar crest
WIDTH_DEPTH_MM = 3.0  # bone width measured this far below the crest
BONE_LOSS_EXCESS_MM = 1.1  # crest this much lower than on same-type teeth: bone loss
# The crest over the middle half of a tooth's width, and crown heights taken off: on 48
# small tuning phantoms bone loss went from 0.37/0.21 (sensitivity/precision; highest
# bone anywhere round the tooth, raw tip distance) to 0.47/0.60, on 12 full-size ones
# from 0.33/0.19 to 0.43/0.82; on true label maps from 0.78/0.93 to 0.85/1.0.
CREST_BAND = 0.5
NORMAL_CEJ_CREST_MM = 2.0


def proximity_severity(distance_mm: float) -> Severity:
    """High under 1 mm, moderate under 2 mm, low beyond."""
    return Severity.HIGH if distance_mm < 1.0 else Severity.MODERATE if distance_mm < 2.0 else Severity.LOW


def anatomy_findings(ctx: Context, chart: Chart) -> list[Finding]:
    out: list[Finding] = []
    for fdi in sorted(chart.status):
        if fdi % 10 == 8 and chart.status[fdi] is ToothStatus.IMPACTED:
            out.append(_impacted(ctx, fdi, chart))
        if not ctx.volume:
            continue
        if chart.has_tooth(fdi) and not is_upper(fdi) and fdi % 10 >= 6:
            canal = Label.LEFT_IAC if fdi // 10 == 3 else Label.RIGHT_IAC
            out.append(_proximity(ctx, fdi, FindingKind.CANAL_PROXIMITY, canal))
        if chart.has_tooth(fdi) and is_upper(fdi) and fdi % 10 >= 4:
            sinus = Label.LEFT_SINUS if fdi // 10 == 2 else Label.RIGHT_SINUS
            out.append(_proximity(ctx, fdi, FindingKind.SINUS_PROXIMITY, sinus))
        if chart.status[fdi] is ToothStatus.MISSING and fdi % 10 <= 7 and fdi in chart.site_mm:
            out.append(_edentulous(ctx, fdi, chart))
    if ctx.volume:
        out += _bone_loss(ctx, chart)
    return [f for f in out if f is not None]


def _finding(ctx: Context, kind: FindingKind, fdi: int, severity: Severity, index, grade=None, confidence=0.8, **measurements) -> Finding:
    values = {k: Measurement(value=round(v, 2), unit=u) for k, (v, u) in measurements.items()}
    return ctx.finding(kind, fdi, index, severity, confidence, values, grade)


def _proximity(ctx: Context, fdi: int, kind: FindingKind, target: int) -> Finding | None:
    tooth_box, target_box = ctx.box(fdi), ctx.box(target)
    if tooth_box is None or target_box is None:
        return None
    # Around the tooth first, in growing boxes (a canal or sinus spans far more of the scan
    # than the answer needs; each answer within its radius is exact), then the box holding both.
    both = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(tooth_box, target_box))
    for radius in (SEARCH_MM, 2 * SEARCH_MM, 4 * SEARCH_MM, None):
        box = both if radius is None else grow(tooth_box, radius + max(ctx.spacing), ctx.spacing, ctx.labels.shape)
        crop = ctx.labels[box]
        closest = measure.shortest_distance(crop == fdi, crop == target, ctx.spacing, search_mm=radius or SEARCH_MM)
        if closest is not None and (radius is None or closest.distance_mm <= radius):
            break
    if closest is None:
        return None
    index = closest.midpoint_index() + [s.start for s in box]
    return _finding(ctx, kind, fdi, proximity_severity(closest.distance_mm), index, distance_mm=(closest.distance_mm, Unit.MM))


def _impacted(ctx: Context, fdi: int, chart: Chart) -> Finding | None:
    angle = impaction_angle(ctx, fdi, chart.status)
    if angle is None:
        return None
    grade = "vertical" if angle < 10 else "horizontal" if angle > 80 else "mesioangular"
    return _finding(
        ctx, FindingKind.IMPACTED_TOOTH, fdi, Severity.MODERATE, ctx.tooth_centres[fdi], grade,
        confidence=chart.confidence[fdi], angle_deg=(angle, Unit.DEGREE),
    )


def _bone_loss(ctx: Context, chart: Chart) -> list[Finding]:
    """Bone-loss findings for present teeth whose crest is well below their peers'."""
    depth: dict[int, tuple[float, np.ndarray]] = {}
    for fdi in (f for f, s in chart.status.items() if s is ToothStatus.PRESENT):
        found = _tip_to_crest(ctx, fdi)
        if found is not None:
            distance, crest = found
            depth[fdi] = (distance - size_of(fdi).crown, crest)  # about CEJ to crest: crowns differ in height
    out = []
    for fdi, (distance, crest) in depth.items():
        peers = [d for f, (d, _) in depth.items() if is_upper(f) == is_upper(fdi) and tooth_type(f) is tooth_type(fdi)]
        if len(peers) < 2:
            continue
        excess = distance - float(np.median(peers))
        if excess >= BONE_LOSS_EXCESS_MM:
            loss = excess + NORMAL_CEJ_CREST_MM
            severity = Severity.LOW if loss < 3 else Severity.MODERATE if loss < 5 else Severity.HIGH
            out.append(_finding(ctx, FindingKind.BONE_LOSS, fdi, severity, crest, confidence=0.6, cej_to_crest_mm=(loss, Unit.MM)))
    return out


def _tip_to_crest(ctx: Context, fdi: int) -> tuple[float, np.ndarray] | None:
    """(crown tip to bone crest distance in mm along the occlusal normal, crest voxel index)."""
    box = ctx.box(fdi, margin_mm=2.0)
    if box is None or ctx.occlusal_up_mm is None:
        return None
    labels = ctx.labels[box]
    tooth = largest_component(labels == fdi)
    jaw = largest_component(labels == (Label.UPPER_JAWBONE if is_upper(fdi) else Label.LOWER_JAWBONE))
    near = ndimage.distance_transform_edt(~tooth, sampling=ctx.spacing) <= 1.0
    bone = np.argwhere(jaw & near) + [s.start for s in box]
    teeth = np.argwhere(tooth) + [s.start for s in box]
    if len(bone) == 0 or len(teeth) == 0:
        return None
    along = _arch_direction(ctx, teeth.mean(axis=0))
    mesial, distal = np.percentile(ctx.mm(teeth) @ along, [2, 98])
    band = np.abs(ctx.mm(bone) @ along - (mesial + distal) / 2) <= CREST_BAND * (distal - mesial) / 2
    if band.any():
        bone = bone[band]
    towards_crown = -1.0 if is_upper(fdi) else 1.0
    up_tooth, up_bone = towards_crown * ctx.up_mm(teeth), towards_crown * ctx.up_mm(bone)
    i = int(np.argmax(up_bone))
    return float(up_tooth.max() - up_bone[i]), bone[i]


def _arch_direction(ctx: Context, centre: np.ndarray) -> np.ndarray:
    """Unit vector along the arch (in the occlusal plane) at voxel index ``centre``: over
    one tooth the arch is straight enough, and projecting every voxel on the curve is slow."""
    if ctx.arch is None:
        return np.array([-1.0, 0.0, 0.0])  # canonical x points to the patient's right
    normal = ctx.arch.normal
    t = ctx.arch.tangent(ctx.arch_mm(centre)[0])
    t = t - (t @ normal) * normal
    return t / np.linalg.norm(t)


def _edentulous(ctx: Context, fdi: int, chart: Chart) -> Finding | None:
    """Bone height and width at a missing tooth's site; None where no bone is found."""
    if ctx.arch is None or ctx.occlusal_up_mm is None:
        return None
    s = chart.site_mm[fdi]
    point = ctx.arch.at(s)
    normal = ctx.arch.normal
    point = point + (ctx.occlusal_up_mm - float(point @ normal)) * normal  # on the occlusal plane
    down = normal if is_upper(fdi) else -normal  # towards this jaw's bone
    jaw = (Label.UPPER_JAWBONE,) if is_upper(fdi) else (Label.LOWER_JAWBONE,)
    entry = measure.first_hit_mm(ctx.labels, ctx.spacing, point, down, jaw, max_mm=CREST_SEARCH_MM)
    if entry is None:
        return None
    crest = point + down * entry
    height = measure.run_length_mm(ctx.labels, ctx.spacing, crest, down, jaw)
    mid = crest + down * min(WIDTH_DEPTH_MM, height / 2)
    buccal = ctx.arch.buccal(s)
    width = measure.run_length_mm(ctx.labels, ctx.spacing, mid, buccal, jaw) + measure.run_length_mm(ctx.labels, ctx.spacing, mid, -buccal, jaw)
    return _finding(
        ctx, FindingKind.EDENTULOUS_SITE, fdi, Severity.INFO, crest / np.asarray(ctx.spacing),
        confidence=0.7, bone_height_mm=(height, Unit.MM), bone_width_mm=(width, Unit.MM),
    )


__all__ = ["anatomy_findings", "proximity_severity"]
