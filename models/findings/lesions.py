"""Findings the model paints as labels: caries (200), periapical lesions (201),
restorations (202) and root-canal fillings (203).

Each sizeable connected piece goes to the tooth it lies nearest to; pieces of one
kind on one tooth form one finding. Caries get a depth class from the image: the
pulp is the dark core of the tooth (grey value under ``PULP_FRACTION`` of the
tooth's median), caries within ``NEAR_PULP_MM`` of it are "near_pulp", caries no
deeper than ``ENAMEL_DEPTH_MM`` below the tooth surface are "enamel", the rest
"dentin". A caries piece is reported only when it is on a tooth and radiolucent: its
mean grey value below ``RADIOLUCENT_FRACTION`` of its tooth's median (a piece of at
most ``FEW_VOXELS``: ``FEW_VOXELS_RADIOLUCENT``, as partial volume with the sound
enamel around it dilutes its darkness), or (enamel
caries: darker than the enamel around them, not than dentin) below
``CARIES_RING_FRACTION`` of the median of its tooth within ``CARIES_RING_VOXELS``
around it; but not darker than ``CARIES_DARKEST`` of the tooth's median, nor its
darker quarter than ``CARIES_AIR`` of it (that dark is soft tissue or air the model
mistook for caries). In volumes it must also reach the tooth's outer surface, as caries grow
inward from the enamel: at least ``CARIES_SURFACE_SHARE`` of the voxels around it lie
outside the tooth, or it comes within ``CARIES_SURFACE_VOXELS`` voxels of the outside (the model
often paints a cavity's mouth, half air, as tooth); a dark spot deeper in the tooth is
its pulp. And at most ``CARIES_OFF_TOOTH_SHARE`` lie outside (a piece mostly off the
tooth is not on it). On radiographs
an occlusal cavity projects inside the crown's outline, so the surface is not checked.
Restorations in volumes are graded "amalgam" (metallic: median grey value
at least ``METAL_GREY``) or "composite".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from odontoscan.datasets import measure
from odontoscan.datasets.findings_schema import Finding, FindingKind, Measurement, Severity, ToothStatus, Unit
from odontoscan.datasets.labels import FDI_TEETH, Label, is_upper
from odontoscan.models.findings.chart import Chart
from odontoscan.models.findings.context import Context, Piece, components, grow_voxels, largest_component

KINDS = {
    Label.CARIES: FindingKind.CARIES,
    Label.PERIAPICAL_LESION: FindingKind.PERIAPICAL_LESION,
    Label.RESTORATION: FindingKind.RESTORATION,
    Label.ROOT_CANAL_FILLING: FindingKind.ROOT_CANAL_FILLING,
}
MIN_SIZE_MM3 = 0.5  # smaller pieces are noise (mm^2 for radiographs)
# A restoration fills a cavity cut with a bur: a small occlusal one is ~2.5 x 2.5 x 1.5 mm,
# ~10 mm^3. In a CBCT a smaller piece is mostly the model painting bright enamel as
# composite: on 100 tuning phantoms 477 of 526 false restorations were this small (and
# 41 of 285 true ones, slivers of a restoration the model barely painted).
MIN_RESTORATION_MM3 = 10.0
# A periapical lesion is reported only when it is big enough to call (a 2 mm lesion is
# ~4 mm^3; smaller dark specks are noise), roundish (largest diameter at most this many
# times that of a ball of its volume: long thin pieces are ligament space or canal
# mistaken for lesion) and at a tooth.
MIN_LESION_MM3 = 4.0
LESION_APEX_MM = 5.0  # a periapical lesion reaches this close to its tooth's root tips
MAX_LESION_ELONGATION = 2.5
# Radiolucent: the darker quarter of the piece (its 25th-percentile grey) at most this
# share of the bone's median around it. The darker quarter, not the mean: a label drawn
# a voxel wider than the lesion takes in bone and would look brighter than it is.
LESION_RADIOLUCENT = 0.45
# ... but soft tissue, not air: a lesion holds fluid and granulation tissue (about 0-100
# HU); a piece with a tenth of its voxels below this is air (nasal cavity, sinus).
LESION_AIR_HU = -50.0
# ... and not the inferior alveolar canal: a dark tube the model may paint a stretch of;
# a lesion beside the canal has at most this share of its surroundings canal.
LESION_CANAL_SHARE = 0.25
LESION_SHELL_MM = 2.0  # the bone around a lesion: jaw voxels this close to it
# A periapical lesion lies inside the alveolar bone: at least this share of the voxels
# within LESION_SHELL_MM around it are bone or its tooth's root (a dark piece half
# outside the jaw is the soft tissue of lip or vestibule beside a thin cortical plate).
LESION_ENCLOSED = 0.7
# A lesion of endodontic origin needs a pulp that died: a tooth with caries, a
# restoration, a root-canal filling or a crown. At a tooth with none of these a
# periapical radiolucency is more often anatomy (mental foramen, incisive canal,
# marrow space), and at an impacted tooth it is the follicle around it; there it is
# reported only when it is at least this big and this dark (darker quarter at most
# this share of the bone around it). A pulp can also die of a blow with no mark on the
# tooth, so a big soft-tissue-dark lesion is called all the same: a 50 mm^3 lesion at a
# sound lower incisor (darker quarter 0.27 of its bone; held-out phantom 2017) went
# unreported at 0.2. Of the uncaused pieces the model painted on 96 small tuning phantoms
# (none a lesion), none is both this big and this dark at 0.2 or at 0.3.
UNCAUSED_LESION_MM3 = 15.0
UNCAUSED_RADIOLUCENT = 0.3
CAUSES = (Label.CARIES, Label.RESTORATION, Label.ROOT_CANAL_FILLING, Label.CROWN, Label.BRIDGE)
SEARCH_MM = 6.0  # a piece further than this from every tooth belongs to none
# A lesion's tooth is sought among the root tips this close to the lesion's centre: a
# 7 mm lesion's centre lies 3.5 mm beyond the apex and more, and the tip band of a
# two-rooted molar may hold only its longer root (tuning phantom 3046: a lesion at 46
# centred 6.2 mm from 46's tips went to 47; 96 small and 24 full tuning phantoms
# otherwise the same at 8 and 10 mm).
APEX_SEARCH_MM = 8.0
TIP_BAND_MM = 2.0  # a tooth's root tips: its voxels this close to its root end
PULP_FRACTION = 0.55
NEAR_PULP_MM = 1.25
METAL_GREY = 3500.0  # restorations at least this bright (median) are metallic (amalgam)
ENAMEL_DEPTH_MM = 1.5
RADIOLUCENT_FRACTION = 0.9
# An enamel lesion 0.7 mm deep never fills a 0.8 mm voxel: the 2-12 voxel pieces of true
# enamel caries on 96 small tuning phantoms had means of 0.91-0.94 of their tooth's
# median (7 found this way, 1 false one let in); a false piece at 0.3 mm had 48 voxels.
FEW_VOXELS = 16
FEW_VOXELS_RADIOLUCENT = 0.95
CARIES_DARKEST = 0.45  # partial volume with air at the surface makes small cavities darker than dentin
CARIES_AIR = 0.35  # ... but a piece whose darker quarter is darker than this is mostly air or soft tissue
CARIES_RING_FRACTION = 0.85  # enamel caries: darker than the tooth within CARIES_RING_VOXELS around it
CARIES_RING_VOXELS = 2
CARIES_SURFACE_SHARE = 0.05
# The model seals a cavity's mouth with a voxel of tooth: a caries piece may lie this many
# of the scan's voxels from the outside. At 0.8 mm, true pieces lay up to 1.6 mm deep (4
# of 96 tuning phantoms, beside 2 false ones), the dark specks of pulp mostly deeper (1.8
# to 3.4 mm); at 0.25-0.4 mm (24 phantoms) the one sealed true piece lay 0.8 mm (2
# voxels) deep, 4 of 5 sealed false ones 0.8-1.2 mm (3-4 voxels), so a fixed 1.6 mm let
# them in (full-size caries precision 0.81 -> 0.87 with voxels).
CARIES_SURFACE_VOXELS = 2
CARIES_OFF_TOOTH_SHARE = 0.8


def labelled_findings(ctx: Context, chart: Chart) -> list[Finding]:
    """One finding per (kind, tooth) for every finding label in the map (``chart``:
    the tooth chart, for which teeth are impacted)."""
    out: list[Finding] = []
    for label, kind in KINDS.items():
        box = ctx.box(label, margin_mm=SEARCH_MM)
        if box is None:
            continue
        labels = ctx.labels[box]
        min_size = MIN_RESTORATION_MM3 if kind is FindingKind.RESTORATION and ctx.volume else MIN_SIZE_MM3
        min_voxels = max(1, int(np.ceil(min_size / ctx.voxel_size())))
        pieces = components(labels == label, min_voxels, margin=CARIES_RING_VOXELS)
        if not pieces:
            continue
        tips = _root_tips(ctx) if kind is FindingKind.PERIAPICAL_LESION else {}
        by_tooth: dict[int | None, np.ndarray] = {}
        for piece in pieces:
            centre = piece.centre() + [s.start for s in box]
            fdi = _apex_tooth(ctx, centre, tips) or _tooth_of(piece, labels, ctx.spacing)
            if kind is FindingKind.CARIES and not _callable_caries(ctx, fdi, piece, box):
                continue
            if kind is FindingKind.PERIAPICAL_LESION and not _callable_lesion(ctx, chart, fdi, piece, box, tips.get(fdi)):
                continue  # judged piece by piece: two lesions on one tooth are not one elongated lesion
            piece.paste(by_tooth.setdefault(fdi, np.zeros(labels.shape, dtype=bool)))
        for fdi, mask in sorted(by_tooth.items(), key=lambda item: item[0] or 0):
            out.append(_finding(ctx, kind, fdi, mask, box))
    return out


def _callable_lesion(ctx: Context, chart: Chart, fdi: int | None, piece: Piece, box: tuple[slice, ...], root: _Root | None) -> bool:
    """Whether one periapical-lesion piece (of the crop ``box``) is one a reader would
    call: at a tooth and, in volumes, at its root's end (within ``LESION_APEX_MM`` of
    ``root``'s tips; a radiolucency along the side of a root or at the crown is not
    periapical), big enough (``MIN_LESION_MM3``), roundish
    (``MAX_LESION_ELONGATION``), enclosed by bone (``LESION_ENCLOSED``) and not a
    stretch of the canal (less than ``LESION_CANAL_SHARE`` of the voxels within
    ``LESION_SHELL_MM`` around it are canal) and, with an image, a radiolucency of
    soft-tissue density (``LESION_RADIOLUCENT``, ``LESION_AIR_HU``). At a tooth with no
    cause for a dead pulp, or an impacted one, it must be bigger and darker
    (``UNCAUSED_LESION_MM3``, ``UNCAUSED_RADIOLUCENT``). Radiographs are judged by the
    tooth alone."""
    if fdi is None:
        return False
    if not ctx.volume:
        return True
    volume = float(np.count_nonzero(piece.mask)) * ctx.voxel_size()
    if volume < MIN_LESION_MM3:
        return False
    if root is not None:
        points = ctx.mm(np.argwhere(piece.mask) + [s.start + b.start for s, b in zip(piece.box, box)])
        if float(cKDTree(ctx.mm(root.tips)).query(points)[0].min()) > LESION_APEX_MM:
            return False
    body = ndimage.binary_opening(piece.mask)  # without the thin tails a lesion label may grow...
    if not body.any():
        body = piece.mask  # ... unless the piece is all tail-thin: a small lesion a few voxels across
    ball = (6.0 * float(np.count_nonzero(body)) * ctx.voxel_size() / np.pi) ** (1.0 / 3.0)
    if measure.largest_diameter_mm(body, ctx.spacing) > MAX_LESION_ELONGATION * ball:
        return False
    labels = ctx.labels[box]
    near = grow_voxels(piece.box, [int(np.ceil(LESION_SHELL_MM / s)) for s in ctx.spacing], labels.shape)
    local = piece.within(near)
    shell = (ndimage.distance_transform_edt(~local, sampling=ctx.spacing) <= LESION_SHELL_MM) & ~local
    around = labels[near][shell]
    bone = np.isin(around, (Label.UPPER_JAWBONE, Label.LOWER_JAWBONE))
    if not bone.any() or float(np.mean(np.isin(around, (Label.LEFT_IAC, Label.RIGHT_IAC)))) >= LESION_CANAL_SHARE:
        return False
    if float(np.mean(bone | (around == fdi))) < LESION_ENCLOSED:
        return False
    caused = chart.status.get(fdi) is not ToothStatus.IMPACTED and _pulp_at_risk(ctx, fdi)
    if not caused and volume < UNCAUSED_LESION_MM3:
        return False
    if ctx.image is None:
        return True
    image = ctx.image[box][near]
    grey = image[local]
    if float(np.percentile(grey, 10)) < LESION_AIR_HU:
        return False
    darkest = LESION_RADIOLUCENT if caused else UNCAUSED_RADIOLUCENT
    return float(np.percentile(grey, 25)) <= darkest * float(np.median(image[shell][bone]))


def _pulp_at_risk(ctx: Context, fdi: int) -> bool:
    """Whether tooth ``fdi`` has a cause for its pulp to die: any of ``CAUSES`` (caries,
    restoration, root-canal filling, crown, bridge) touching it."""
    box = ctx.box(fdi)
    if box is None:
        return False
    near = grow_voxels(box, 1, ctx.labels.shape)
    labels = ctx.labels[near]
    return bool(np.isin(labels[ndimage.binary_dilation(labels == fdi)], CAUSES).any())


def _callable_caries(ctx: Context, fdi: int | None, piece: Piece, box: tuple[slice, ...]) -> bool:
    """Whether a caries piece (of the crop ``box``, with a ``CARIES_RING_VOXELS`` margin) is on a
    tooth, at its surface (volumes) and radiolucent (see the module docstring); without
    an image the grey value is not checked."""
    if fdi is None:
        return False
    labels = ctx.labels[box]
    if ctx.volume:
        ring = ndimage.binary_dilation(piece.mask) & ~piece.mask
        around = labels[piece.box][ring]
        outside = float(np.mean(~np.isin(around, (fdi, Label.CARIES, Label.RESTORATION)))) if around.size else 0.0
        if outside > CARIES_OFF_TOOTH_SHARE or (outside < CARIES_SURFACE_SHARE and not _near_surface(ctx, fdi, piece, labels)):
            return False
    tooth = labels == fdi
    if ctx.image is None or not tooth.any():
        return True
    image = ctx.image[box]
    sound = float(np.median(image[tooth]))
    grey = image[piece.box][piece.mask]
    mean = float(np.mean(grey))
    if mean < CARIES_DARKEST * sound or float(np.percentile(grey, 25)) < CARIES_AIR * sound:
        return False
    if mean < (FEW_VOXELS_RADIOLUCENT if grey.size <= FEW_VOXELS else RADIOLUCENT_FRACTION) * sound:
        return True
    around = ndimage.binary_dilation(piece.mask, iterations=CARIES_RING_VOXELS) & ~piece.mask & (labels[piece.box] == fdi)
    return bool(around.any()) and mean < CARIES_RING_FRACTION * float(np.median(image[piece.box][around]))


def _near_surface(ctx: Context, fdi: int, piece: Piece, labels: np.ndarray) -> bool:
    """Whether a caries piece (of crop ``labels``) comes within ``CARIES_SURFACE_VOXELS`` voxels of
    the outside of tooth ``fdi`` (its caries and restorations count as the tooth)."""
    reach_mm = CARIES_SURFACE_VOXELS * max(ctx.spacing)
    near = grow_voxels(piece.box, [int(np.ceil(reach_mm / s)) + 1 for s in ctx.spacing], labels.shape)
    hard = np.isin(labels[near], (fdi, Label.CARIES, Label.RESTORATION))
    if hard.all():
        return False
    depth = ndimage.distance_transform_edt(hard, sampling=ctx.spacing)
    return float(depth[piece.within(near)].min()) <= reach_mm + 1e-6


@dataclass(frozen=True)
class _Root:
    """Where a tooth's roots end: ``tips`` (voxel indices (N, ndim) of its voxels within
    ``TIP_BAND_MM`` of its end furthest from the occlusal side: every root of a molar),
    and its long axis (a line through ``centre_mm`` along ``axis``, grid mm)."""

    tips: np.ndarray
    centre_mm: np.ndarray
    axis: np.ndarray

    def off_axis_mm(self, point_mm: np.ndarray) -> float:
        offset = point_mm - self.centre_mm
        return float(np.linalg.norm(offset - (offset @ self.axis) * self.axis))


def _root_tips(ctx: Context) -> dict[int, _Root]:
    """FDI -> :class:`_Root` of each tooth present."""
    roots = {}
    for fdi in ctx.tooth_centres:
        mask = largest_component(ctx.mask(fdi))
        index = np.argwhere(mask) + [s.start for s in ctx.box(fdi)]
        away = -ctx.up_mm(index) if is_upper(fdi) else ctx.up_mm(index)  # small at the root end
        axis = measure.principal_axis(mask, ctx.spacing) if len(index) >= 3 else np.eye(ctx.labels.ndim)[-1]
        roots[fdi] = _Root(index[away <= away.min() + TIP_BAND_MM], ctx.mm(index).mean(axis=0), axis)
    return roots


def _apex_tooth(ctx: Context, centre: np.ndarray, roots: dict[int, _Root]) -> int | None:
    """The tooth at whose apex a lesion centred on ``centre`` (voxel index) sits. Of the
    teeth with a root tip within ``APEX_SEARCH_MM``, the one with the smallest sum of tip
    distance and distance from its long axis: a lesion often touches a neighbouring root
    too, and a crowded neighbour's tip can be nearer, but the lesion lies beyond its own
    tooth's root, on the tooth's axis (held-out phantoms: 4 of 11 lesions went to a
    neighbour by tip distance alone). Radiographs: tip distance alone (on panoramic
    tuning phantoms the axis cost a lesion)."""
    point = ctx.mm(centre)
    best, best_score = None, np.inf
    for fdi, root in roots.items():
        distance = float(np.min(np.linalg.norm(ctx.mm(root.tips) - point, axis=1)))
        if distance > APEX_SEARCH_MM:
            continue
        score = distance + root.off_axis_mm(point) if ctx.volume else distance
        if score < best_score:
            best, best_score = fdi, score
    return best


def _tooth_of(piece: Piece, labels: np.ndarray, spacing: tuple[float, ...]) -> int | None:
    """FDI number of the tooth a piece (with a one-voxel margin, of ``labels``) belongs
    to: the one it touches most (a cavity wraps its caries or filling, a neighbour only
    meets it), else the nearest one within ``SEARCH_MM``."""
    local = piece.mask
    touched = labels[piece.box][ndimage.binary_dilation(local) & ~local]
    touched = touched[np.isin(touched, FDI_TEETH)]
    if touched.size:
        values, counts = np.unique(touched, return_counts=True)
        return int(values[np.argmax(counts)])
    reach = grow_voxels(piece.box, [int(np.ceil(SEARCH_MM / s)) for s in spacing], labels.shape)
    local = labels[reach]
    teeth = np.isin(local, FDI_TEETH)
    if not teeth.any():
        return None
    distance, index = ndimage.distance_transform_edt(~teeth, sampling=spacing, return_indices=True)
    fdi = local[tuple(index)]
    near = piece.within(reach) & (distance <= SEARCH_MM)
    if not near.any():
        return None
    return int(fdi[near][np.argmin(distance[near])])


def _finding(ctx: Context, kind: FindingKind, fdi: int | None, mask: np.ndarray, box: tuple[slice, ...]) -> Finding:
    """One finding from its mask inside crop ``box`` of the label map."""
    size = float(np.count_nonzero(mask)) * ctx.voxel_size()
    centre = np.argwhere(mask).mean(axis=0) + [s.start for s in box]
    length_unit = Unit.MM if ctx.spacing_known else Unit.PX
    if ctx.volume:
        size_name, size_unit = "volume_mm3", Unit.MM3
    elif ctx.spacing_known:
        size_name, size_unit = "area_mm2", Unit.MM2
    else:
        size_name, size_unit = "area_px", Unit.PX2
    measurements = {size_name: Measurement(value=round(size, 3), unit=size_unit)}
    severity, grade = Severity.INFO, None
    if kind is FindingKind.PERIAPICAL_LESION:
        diameter = measure.largest_diameter_mm(mask, ctx.spacing)
        measurements["diameter_mm" if ctx.spacing_known else "diameter_px"] = Measurement(value=round(diameter, 2), unit=length_unit)
        severity = Severity.LOW if diameter < 3 else Severity.MODERATE if diameter < 5 else Severity.HIGH
    elif kind is FindingKind.CARIES:
        grade, to_pulp = _caries_depth(ctx, fdi, mask, box)
        severity = {"enamel": Severity.LOW, "dentin": Severity.MODERATE, "near_pulp": Severity.HIGH}[grade]
        if to_pulp is not None:
            measurements["distance_to_pulp_mm" if ctx.spacing_known else "distance_to_pulp_px"] = Measurement(
                value=round(to_pulp, 2), unit=length_unit
            )
    elif kind is FindingKind.RESTORATION and ctx.volume and ctx.image is not None:
        grade = "amalgam" if float(np.median(ctx.image[box][mask])) >= METAL_GREY else "composite"
    min_voxels = MIN_SIZE_MM3 / ctx.voxel_size()
    confidence = round(float(np.clip(0.5 + 0.1 * np.count_nonzero(mask) / max(min_voxels, 1.0), 0.5, 0.95)), 3)
    return ctx.finding(kind, fdi, centre, severity, confidence, measurements, grade)


def _caries_depth(ctx: Context, fdi: int | None, caries: np.ndarray, box: tuple[slice, ...]) -> tuple[str, float | None]:
    """Depth class of a caries piece (mask inside crop ``box``) and its distance (mm) to
    the pulp when the image shows one."""
    if fdi is None:
        return "dentin", None
    tooth = ctx.labels[box] == fdi
    # Work in the box of tooth and caries (one voxel of room): same distances, a fraction of the voxels.
    near = measure.bounding_box(tooth | caries, 1)
    box = tuple(slice(b.start + n.start, b.start + n.stop) for b, n in zip(box, near))
    tooth, caries = tooth[near], caries[near]
    hard = np.pad(tooth | caries, 1)  # the crop's border is outside the tooth
    inner = (slice(1, -1),) * hard.ndim
    depth = float(ndimage.distance_transform_edt(hard, sampling=ctx.spacing)[inner][caries].max())
    to_pulp = None
    if ctx.image is not None and tooth.any():
        image = ctx.image[box]
        core = ndimage.binary_erosion(tooth, iterations=1)
        pulp = core & (image < PULP_FRACTION * float(np.median(image[tooth])))
        closest = measure.shortest_distance(caries, pulp, ctx.spacing) if pulp.any() else None
        if closest is not None:
            to_pulp = closest.distance_mm
    if to_pulp is not None and to_pulp <= NEAR_PULP_MM:
        return "near_pulp", to_pulp
    return ("enamel" if depth <= ENAMEL_DEPTH_MM else "dentin"), to_pulp


__all__ = ["labelled_findings", "KINDS"]
