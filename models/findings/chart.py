"""The 32-tooth chart: which FDI positions hold a tooth, a crowned tooth, an implant, a
bridge pontic or an impacted tooth, and where the missing teeth's sites are.

Teeth come straight from their FDI labels (a tooth label smaller than a fraction of
the scan's typical tooth of its type is a stray fragment, not a tooth, unless a
crown caps it: a crowned tooth keeps only its prepared stump, and a model may call
parts of the crown bridge or filling, see ``_capped``). Implants and pontics
have no FDI label of their own, so they are given the number of the missing tooth
whose expected place along the arch is nearest: per jaw, the positions of the
present teeth are fitted to a template of mean crown widths (``s = a * t + b``),
which also predicts where each missing tooth's site is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from odontoscan.datasets import measure
from odontoscan.datasets.findings_schema import ToothStatus
from odontoscan.datasets.labels import FDI_TEETH, Label, ToothType, is_upper, tooth_type
from odontoscan.models.findings.context import Context, components, grow, largest_component

# Mean mesio-distal crown widths (mm), central incisor .. third molar.
UPPER_WIDTHS_MM = (8.5, 6.5, 7.5, 7.0, 6.5, 10.0, 9.0, 8.5)
LOWER_WIDTHS_MM = (5.0, 5.5, 7.0, 7.0, 7.0, 11.0, 10.5, 10.0)
STUMP_FRACTION = 0.15  # ... or this much when a crown or bridge wraps it
PRESENT_FRACTION = 0.35  # of the median size of the scan's teeth of that type: smaller labels are fragments
MIN_OBJECT_SIZE = {3: 60.0, 2: 15.0}  # mm^3 / mm^2: implants, pontics, crowns smaller than this are stray labels
IMPLANT_CLEARANCE_MM = 4.0  # a stump-sized tooth this near an implant is a fragment next to the implant's crown
CROWNED_SHARE = 0.3  # of a tooth's surface next to a crown or bridge: the tooth is crowned
SITE_TOLERANCE = 0.75  # of the tooth's crown width: an implant or pontic this far from the site belongs to none
IMPACTED_ANGLE_DEG = 20.0  # long axis this far from the second molar's (an erupted one: within ~10 deg)
IMPACTED_DEPTH_MM = 2.5  # crown tip this much further from the occlusal plane than the second molar's


def _width_mm(fdi: int) -> float:
    """Mean crown width (mm) of a tooth of this number."""
    return (UPPER_WIDTHS_MM if is_upper(fdi) else LOWER_WIDTHS_MM)[fdi % 10 - 1]


def template_mm(fdi: int) -> float:
    """Expected position of a tooth's centre along the arch (mm from the midline,
    negative on the patient's right) for an average dentition."""
    widths = UPPER_WIDTHS_MM if is_upper(fdi) else LOWER_WIDTHS_MM
    position = fdi % 10
    distance = sum(widths[: position - 1]) + widths[position - 1] / 2
    return -distance if fdi // 10 in (1, 4) else distance


@dataclass
class Chart:
    """Tooth chart plus what later rules need: predicted sites of every position."""

    status: dict[int, ToothStatus]
    confidence: dict[int, float]
    site_mm: dict[int, float]  # expected arch position (mm) of each FDI number with a jaw fit
    typical_size: float  # median tooth volume (mm^3) or area (mm^2)

    def has_tooth(self, fdi: int) -> bool:
        return self.status[fdi] in (ToothStatus.PRESENT, ToothStatus.CROWN, ToothStatus.IMPACTED)


def tooth_chart(ctx: Context) -> Chart:
    """Status and confidence of each of the 32 FDI positions."""
    sizes = {fdi: ctx.size_of(fdi) for fdi in FDI_TEETH if ctx.box(fdi) is not None}
    typical = float(np.median(list(sizes.values()))) if sizes else 0.0
    status = {fdi: ToothStatus.MISSING for fdi in FDI_TEETH}
    confidence = {fdi: 0.9 for fdi in FDI_TEETH}
    # A crowned tooth keeps only its prepared stump under the crown: a smaller share suffices.
    crowned = _crowned_teeth(ctx, list(sizes), Label.CROWN) | _crowned_teeth(ctx, list(sizes), Label.BRIDGE)
    for fdi, size in sizes.items():
        expected = _typical_size(sizes, fdi, typical)
        if STUMP_FRACTION * expected <= size < PRESENT_FRACTION * expected and fdi not in crowned and _capped(ctx, fdi):
            crowned.add(fdi)
        if size >= PRESENT_FRACTION * expected or (fdi in crowned and size >= STUMP_FRACTION * expected):
            status[fdi] = ToothStatus.PRESENT
            confidence[fdi] = round(float(np.clip(size / (0.6 * expected), 0.5, 0.99)), 3)
        else:  # a fragment: probably missing, less sure
            confidence[fdi] = round(0.9 - 0.4 * size / (PRESENT_FRACTION * expected), 3)
    present = [f for f, s in status.items() if s is ToothStatus.PRESENT]
    site = _site_model(ctx, present)

    for fdi in crowned & set(present):
        status[fdi] = ToothStatus.CROWN  # a bridge's abutments are crowned teeth too
    for label, kind in ((Label.IMPLANT, ToothStatus.IMPLANT), (Label.BRIDGE, ToothStatus.BRIDGE_PONTIC)):
        for index, size in _objects(ctx, label):
            upper = _is_upper_object(ctx, index)
            s = float(ctx.arch_mm(index)[0])
            free = [f for f in FDI_TEETH if is_upper(f) == upper and status[f] is ToothStatus.MISSING and f in site]
            if not free:
                continue
            fdi = min(free, key=lambda f: abs(site[f] - s))
            if abs(site[fdi] - s) > SITE_TOLERANCE * _width_mm(fdi):
                continue  # no missing tooth's site here: a stray piece (e.g. of a neighbouring crown)
            status[fdi] = kind
            confidence[fdi] = 0.8
    for fdi in present:
        if fdi % 10 == 8 and impaction_angle(ctx, fdi, status) is not None:
            status[fdi] = ToothStatus.IMPACTED
    return Chart(status=status, confidence=confidence, site_mm=site, typical_size=typical)


def impaction_angle(ctx: Context, fdi: int, status: dict[int, ToothStatus]) -> float | None:
    """Angle (deg) of a third molar's long axis to its neighbour's (the occlusal normal
    without a neighbour) when the tooth is impacted (tilted, or its crown tip short of
    the occlusal plane by more than the neighbour's), else None."""
    mask = ctx.mask(fdi)
    if mask is None or np.count_nonzero(mask) < 3:
        return None
    mask = largest_component(mask)
    neighbour = fdi - 1
    erupted_neighbour = status.get(neighbour) in (ToothStatus.PRESENT, ToothStatus.CROWN)
    reference = measure.principal_axis(largest_component(ctx.mask(neighbour)), ctx.spacing) if erupted_neighbour else _vertical(ctx)
    angle = measure.angle_between_deg(measure.principal_axis(mask, ctx.spacing), reference)
    if angle >= IMPACTED_ANGLE_DEG:
        return angle
    if erupted_neighbour and ctx.occlusal_up_mm is not None:
        if _tip_gap_mm(ctx, fdi) - _tip_gap_mm(ctx, neighbour) >= IMPACTED_DEPTH_MM:
            return angle
    return None


def _vertical(ctx: Context) -> np.ndarray:
    """Occlusal normal in grid mm (volumes) or the image's vertical (radiographs)."""
    if ctx.volume:
        return ctx.arch.normal if ctx.arch is not None else np.array([0.0, 0.0, 1.0])
    return np.array([1.0, 0.0])


def _tip_gap_mm(ctx: Context, fdi: int) -> float:
    """Distance (mm) from a tooth's crown tip (its point nearest the occlusal plane) to that plane."""
    box = ctx.box(fdi)
    index = np.argwhere(largest_component(ctx.mask(fdi))) + [s.start for s in box]
    up = ctx.up_mm(index) - ctx.occlusal_up_mm
    return float(up.min()) if is_upper(fdi) else float(-up.max())


def _typical_size(sizes: dict[int, float], fdi: int, overall: float) -> float:
    """Median size of the scan's teeth of the same type (incisors, canines, premolars,
    molars), or of all its teeth when fewer than two of that type are labelled.
    Incisors are compared within their jaw when two are labelled there: lower incisors
    are about half the size of upper ones. Other types differ far less between the jaws,
    and a median over both is steadier (a canine's jaw holds only it and its antimere,
    and a median of two follows a fragment halfway down)."""
    same = [f for f in sizes if tooth_type(f) is tooth_type(fdi)]
    if tooth_type(fdi) is ToothType.INCISOR and sum(is_upper(f) == is_upper(fdi) for f in same) >= 2:
        same = [f for f in same if is_upper(f) == is_upper(fdi)]
    return float(np.median([sizes[f] for f in same])) if len(same) >= 2 else overall


def _site_model(ctx: Context, present: list[int]) -> dict[int, float]:
    """Expected arch position (mm) of every FDI number, from a per-jaw fit of the
    present teeth's positions to the template (none for a jaw without teeth)."""
    sites: dict[int, float] = {}
    for upper in (True, False):
        teeth = [f for f in present if is_upper(f) == upper]
        if not teeth:
            continue
        t = np.array([template_mm(f) for f in teeth])
        s = ctx.arch_mm(np.array([ctx.tooth_centres[f] for f in teeth]))
        if len(teeth) >= 2 and np.ptp(t) > 5.0:
            scale, offset = np.polyfit(t, s, 1)
            scale = float(np.clip(scale, 0.6, 1.6))
            offset = float(np.mean(s - scale * t))
        else:
            scale, offset = 1.0, float(np.mean(s - t))
        for fdi in FDI_TEETH:
            if is_upper(fdi) == upper:
                sites[fdi] = scale * template_mm(fdi) + offset
    return sites


def _objects(ctx: Context, label: int) -> list[tuple[np.ndarray, float]]:
    """(centroid index, size) of each sizeable connected piece of ``label``."""
    box = ctx.box(label)
    if box is None:
        return []
    min_voxels = max(1, int(MIN_OBJECT_SIZE[ctx.labels.ndim] / ctx.voxel_size()))
    out = []
    for piece in components(ctx.labels[box] == label, min_voxels):
        index = piece.centre() + [s.start for s in box]
        out.append((index, float(np.count_nonzero(piece.mask)) * ctx.voxel_size()))
    return out


def _crowned_teeth(ctx: Context, present: list[int], label: int) -> set[int]:
    """Present teeth that prosthetic crowns (``label`` 9) or bridges (8) sit on.

    A crown wraps its prepared tooth: at least ``CROWNED_SHARE`` of the tooth's
    surface voxels lie next to it, while a neighbouring tooth or an implant's crown
    only touches it at a contact point. A bridge crowns each of its abutments the same way.
    """
    box = ctx.box(label, margin_mm=1.5)
    if box is None:
        return set()
    labels = ctx.labels[box]
    min_voxels = max(1, int(MIN_OBJECT_SIZE[ctx.labels.ndim] / ctx.voxel_size()))
    crowned = set()
    for piece in components(labels == label, min_voxels, margin=2):
        ring = ndimage.binary_dilation(piece.mask, iterations=2) & ~piece.mask
        touched = labels[piece.box][ring]
        values, counts = np.unique(touched[np.isin(touched, present)], return_counts=True)
        crowned |= {int(v) for v, c in zip(values, counts) if c >= CROWNED_SHARE * _surface_voxels(ctx, int(v))}
    return crowned


def _capped(ctx: Context, fdi: int) -> bool:
    """Whether a tooth is capped: ``CROWNED_SHARE`` of its surface next to a crown, bridge
    or restoration together. A model unsure of a crown's class paints parts of it as
    bridge or filling; a stump-sized tooth so capped is a crowned tooth, not a fragment.
    Not a third molar (rarely crowned; a fragment of one sits next to its neighbour's
    crown) and not within ``IMPLANT_CLEARANCE_MM`` of an implant (whose crown would cap
    a fragment too). Volumes only: on a panoramic radiograph neighbouring crowns and
    fillings overlap a fragment in projection (pano-phantom, 32 phantoms: missing-tooth
    F1 0.933 -> 0.919 with this rule)."""
    if fdi % 10 == 8 or not ctx.volume:
        return False
    box = ctx.box(fdi, margin_mm=IMPLANT_CLEARANCE_MM)
    labels = ctx.labels[box]
    tooth = labels == fdi
    cap = np.isin(labels, (Label.CROWN, Label.BRIDGE, Label.RESTORATION))
    if not cap.any():
        return False
    implant = labels == Label.IMPLANT
    if implant.any() and ndimage.distance_transform_edt(~implant, sampling=ctx.spacing)[tooth].min() <= IMPLANT_CLEARANCE_MM:
        return False
    near = np.count_nonzero(tooth & ndimage.binary_dilation(cap, iterations=2))
    return near >= CROWNED_SHARE * _surface_voxels(ctx, fdi)


def _surface_voxels(ctx: Context, fdi: int) -> int:
    mask = ctx.mask(fdi)
    return int(np.count_nonzero(mask & ~ndimage.binary_erosion(mask)))


def _is_upper_object(ctx: Context, index: np.ndarray) -> bool:
    """Whether an object (implant, pontic) belongs to the upper jaw: above the occlusal
    plane, or (without teeth in both jaws) nearer the maxilla than the mandible."""
    if ctx.occlusal_up_mm is not None:
        return bool(ctx.up_mm(index)[0] > ctx.occlusal_up_mm)
    if ctx.volume:
        centre = tuple(int(round(v)) for v in index)
        box = grow(tuple(slice(c, c + 1) for c in centre), 6.0, ctx.spacing, ctx.labels.shape)
        around = ctx.labels[box]
        return int(np.count_nonzero(around == Label.UPPER_JAWBONE)) > int(np.count_nonzero(around == Label.LOWER_JAWBONE))
    return bool(index[0] < ctx.labels.shape[0] / 2)


__all__ = ["Chart", "tooth_chart", "template_mm", "impaction_angle", "UPPER_WIDTHS_MM", "LOWER_WIDTHS_MM"]
