"""Coarse-to-fine CBCT segmentation: where the fine model looks and how its answer is merged.

A CBCT model may carry a *refiner* (``ModelMetadata.refiner``): a second, finer model
(0.6 mm against the coarse model's 1 mm) trained with ``labels.refines`` to segment
what needs fine voxels — every tooth as one class (11), both inferior alveolar canals
as one (3), bridges, crowns, implants and the finding classes. The coarse model sees
the whole scan and knows which tooth is which; the fine model draws the boundaries.

:func:`dental_region` is the box the fine model runs on: every voxel the coarse model
gave a class the refiner owns, plus a margin. :func:`merge_refined` combines the two
label maps on the fine grid:

* the coarse labels of the owned classes give way to their nearest other coarse label
  (a coarse tooth voxel the fine model calls bone becomes bone);
* each fine tooth voxel takes the FDI number of the nearest coarse tooth voxel; with a
  refiner that also learnt where teeth touch (``TOOTH_CONTACT``), the teeth are first
  cut apart along those contacts (and peeled by ``CORE_EROSION`` voxels, so a contact
  the model drew with a gap does not leave two teeth joined; a separate part the
  peeling would wipe out, such as a crowned stump, stays whole; a tooth's restoration
  and root-canal filling are peeled as part of it, or a filled lower incisor, a thin
  wall around its filling, would keep no core and vanish), each jaw's pieces are
  numbered as a sequence along the arch from the coarse numbers they hold, their
  sizes, the gaps between them and the implants standing in those gaps
  (:mod:`odontoscan.models.numbering`: a run of teeth
  the coarse model shifted into a gap gets its own numbers back, a tooth in two pieces
  one number, two teeth in one piece two), and the contact and peeled voxels join the
  nearest piece;
* each fine canal voxel takes the side of the nearest lower tooth (quadrant 3 is the
  patient's left, canal 3), or of the nearest coarse canal without lower teeth;
* every other owned class is taken from the fine model as it is;
* small slivers of one tooth number on another tooth go to that tooth, and a tooth
  a neighbour's number swallowed gets its own back (:func:`odontoscan.models.teeth.tidy_teeth`).

Torch-free (numpy + scipy).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
from scipy import ndimage

from odontoscan.datasets.labels import FDI_TEETH, TOOTH_CONTACT, Label, is_upper
from odontoscan.datasets.panoramic import arch_from_labels, tooth_centroids
from odontoscan.models.findings.chart import MIN_OBJECT_SIZE
from odontoscan.models.numbering import ToothPiece, arch_position, number_along_arch
from odontoscan.models.teeth import tidy_teeth

Box = tuple[slice, ...]

TOOTH = 11  # a refiner's id for "a tooth"
CANAL = int(Label.LEFT_IAC)  # a refiner's id for "an inferior alveolar canal"
CANALS = (int(Label.LEFT_IAC), int(Label.RIGHT_IAC))
REFINED_IDS: tuple[int, ...] = (
    *CANALS,
    int(Label.BRIDGE),
    int(Label.CROWN),
    int(Label.IMPLANT),
    *FDI_TEETH,
    int(Label.CARIES),
    int(Label.PERIAPICAL_LESION),
    int(Label.RESTORATION),
    int(Label.ROOT_CANAL_FILLING),
)
FILLINGS = (int(Label.RESTORATION), int(Label.ROOT_CANAL_FILLING))  # inside a tooth: the fine model paints them, not the tooth
MARGIN_MM = 8.0
CORE_EROSION = 2  # voxels peeled off the teeth before cutting them into pieces
THIN_CORE_SHARE = 0.05  # a separate tooth part keeping less than this share of its voxels when peeled is not peeled...
THIN_PART_MIN_MM3 = 20.0  # ... if it is this big (a crowned stump: 50-150 mm^3)
CROWNED_SHARE = 0.3  # crown voxels around a piece, per voxel of the piece: a stump under a crown (its neighbours: < 0.15)
RUN_EXTENT_MM = 25.0  # a piece longer than this along the arch (two molars and more) is a run of teeth
CROWN_REACH_MM = 2.0  # crown or bridge voxels this close to a tooth are its crown (they count for its extent along the arch)
ARC_SAMPLES = 200  # voxels of a piece projected onto the arch to find its extent...
EXTENT_PERCENTILE = 5.0  # ... from this percentile of their positions to 100 minus it
_LOWER_LEFT, _LOWER_RIGHT = 3, 4  # FDI quadrants of the patient's lower left / right


def dental_region(labels: np.ndarray, spacing: tuple[float, ...], margin_mm: float = MARGIN_MM) -> Box | None:
    """Bounding box (index slices of ``labels``) of the voxels labelled with a refined class,
    grown by ``margin_mm`` on every side and clipped to the array; None if there is none."""
    grow = [int(np.ceil(round(margin_mm / s, 6))) for s in spacing]  # 0.7999999999999972 mm voxels count as 0.8
    return _bounding_box(np.isin(labels, REFINED_IDS), grow)


def merge_refined(
    coarse: np.ndarray, fine: np.ndarray, spacing: tuple[float, ...], numbers: Collection[int] = FDI_TEETH
) -> np.ndarray:
    """One label map from the coarse model's ``coarse`` and a refiner's ``fine`` (same grid,
    voxel size ``spacing``), as the module docstring describes; dtype of ``coarse``.
    ``numbers``: the tooth numbers the coarse model can output."""
    if coarse.shape != fine.shape:
        raise ValueError(f"coarse and fine label maps differ in shape ({coarse.shape} vs {fine.shape})")
    owned = np.isin(coarse, REFINED_IDS)
    out = _nearest(coarse, ~owned, spacing, where=owned) if owned.any() and not owned.all() else np.where(owned, 0, coarse)
    out = out.astype(coarse.dtype, copy=False)
    for class_id in np.unique(fine):
        if class_id in (0, TOOTH, CANAL, TOOTH_CONTACT):
            continue
        out[fine == class_id] = class_id
    tooth, contact, canal = fine == TOOTH, fine == TOOTH_CONTACT, fine == CANAL
    coarse_teeth = np.isin(coarse, FDI_TEETH)
    if (tooth.any() or contact.any()) and coarse_teeth.any():
        crown, filled = np.isin(fine, (Label.CROWN, Label.BRIDGE)), np.isin(fine, FILLINGS)
        numbers = _number_teeth(coarse, coarse_teeth, tooth, contact, crown, filled, fine == Label.IMPLANT, spacing)
        out[tooth | contact] = numbers[tooth | contact]
    if canal.any():
        out[canal] = _canal_sides(coarse, canal, spacing)[canal]
    return tidy_teeth(out, spacing, numbers)


def _number_teeth(
    coarse: np.ndarray,
    coarse_teeth: np.ndarray,
    tooth: np.ndarray,
    contact: np.ndarray,
    crown: np.ndarray,
    filled: np.ndarray,
    implant: np.ndarray,
    spacing: tuple[float, ...],
) -> np.ndarray:
    """FDI numbers for the fine ``tooth`` and ``contact`` voxels (0 elsewhere), as the
    module docstring describes; ``filled``: restoration and root-canal filling voxels,
    peeled and cut as part of their tooth."""
    teeth = tooth | contact
    nearest = _nearest(coarse, coarse_teeth, spacing, where=teeth | filled | implant)
    numbers = np.where(teeth, nearest, 0).astype(coarse.dtype)
    if not contact.any():
        return numbers
    solid = tooth | filled
    core = ndimage.binary_erosion(solid, iterations=CORE_EROSION)
    parts, count = ndimage.label(solid)  # a part the peeling (nearly) wipes out, e.g. a crowned stump, stays as it is
    size = np.bincount(parts.ravel(), minlength=count + 1)
    thin = np.bincount(parts[core], minlength=count + 1) < THIN_CORE_SHARE * size
    thin &= size * float(np.prod(spacing)) >= THIN_PART_MIN_MM3  # specks still join their nearest piece
    thin[0] = False
    core |= thin[parts]
    if not core.any():
        return numbers
    upper_core = core & (nearest // 10 <= 2)  # the coarse model tells the jaws apart well: a piece stays in one
    pieces, count = ndimage.label(upper_core)
    lower, _ = ndimage.label(core & ~upper_core)
    pieces = np.where(lower > 0, lower + count, pieces)
    along = _along_arch(numbers, spacing)
    pieces = _split_runs(pieces, core, nearest, along, spacing)
    count = int(pieces.max())
    capped = _within(crown, teeth, CROWN_REACH_MM, spacing)
    owner = np.where(teeth | capped, _nearest(pieces, core, spacing, where=teeth | capped), 0)  # contact and peeled voxels join the nearest piece
    votes = np.zeros((count + 1, 49))
    np.add.at(votes, (pieces[core], nearest[core].astype(np.intp)), 1.0)
    votes /= np.maximum(votes.sum(axis=1, keepdims=True), 1.0)
    crown_share = np.bincount(owner[capped], minlength=count + 1) / np.maximum(np.bincount(owner[teeth], minlength=count + 1), 1)
    boxes = ndimage.find_objects(owner)
    jaws: dict[bool, list[tuple[int, ToothPiece]]] = {True: [], False: []}
    for i, box in enumerate(boxes, start=1):
        if box is not None:
            piece = _tooth_piece(owner[box] == i, teeth[box], box, votes[i], bool(crown_share[i] >= CROWNED_SHARE), along, spacing)
            jaws[sum(v for f, v in piece.votes.items() if is_upper(f)) >= 0.5].append((i, piece))
    implants = _implant_sites(implant, nearest, along, spacing)
    for upper, members in jaws.items():
        assigned = number_along_arch([piece for _, piece in members], upper, implants[upper])
        for (i, _), numbering in zip(members, assigned):
            box = boxes[i - 1]
            region = teeth[box] & (owner[box] == i)
            if numbering.cut_mm is None:
                numbers[box][region] = numbering.numbers[0]
                continue
            index = np.argwhere(region) + [s.start for s in box]
            chunks = np.array_split(index, max(1, len(index) // ARC_SAMPLES))
            numbers[tuple(index.T)] = numbering.at(np.concatenate([along(c * np.asarray(spacing)) for c in chunks]))
    return numbers


def _implant_sites(
    implant: np.ndarray, nearest: np.ndarray, along: Callable[[np.ndarray], np.ndarray], spacing: tuple[float, ...]
) -> dict[bool, list[float]]:
    """Where along the arch (mm) each implant stands, by jaw (True: upper; the jaw of the
    coarse teeth nearest to it); pieces the chart would call stray labels
    (``MIN_OBJECT_SIZE``) are left out."""
    sites: dict[bool, list[float]] = {True: [], False: []}
    parts, _ = ndimage.label(implant)
    min_voxels = MIN_OBJECT_SIZE[implant.ndim] / float(np.prod(spacing))
    for i, box in enumerate(ndimage.find_objects(parts), start=1):
        if box is None:
            continue
        index = np.argwhere(parts[box] == i) + [s.start for s in box]
        if len(index) < min_voxels:
            continue
        upper = float(np.mean(nearest[tuple(index.T)] // 10 <= 2)) >= 0.5
        sites[upper].append(float(np.median(along(index[:: max(1, len(index) // ARC_SAMPLES)] * np.asarray(spacing)))))
    return sites


def _tooth_piece(
    region: np.ndarray,
    teeth: np.ndarray,
    box: Box,
    votes: np.ndarray,
    crowned: bool,
    along: Callable[[np.ndarray], np.ndarray],
    spacing: tuple[float, ...],
) -> ToothPiece:
    """One piece for the numbering: ``region`` (its voxels with its crown, in ``box``),
    its tooth voxels' volume, its extent along the arch and the coarse numbers' shares
    ``votes`` (indexed by FDI number)."""
    span = _arc_span(np.argwhere(region) + [s.start for s in box], along, spacing)
    volume = np.count_nonzero(teeth & region) * float(np.prod(spacing))
    return ToothPiece({int(f): float(votes[f]) for f in np.flatnonzero(votes)}, volume, span, crowned)


def _arc_span(
    index: np.ndarray, along: Callable[[np.ndarray], np.ndarray], spacing: tuple[float, ...]
) -> tuple[float, float]:
    """(start, end) along the arch (mm) of voxels ``index`` (N, 3): percentiles
    ``EXTENT_PERCENTILE`` and 100 minus it of up to ``ARC_SAMPLES`` of them."""
    arc = along(index[:: max(1, len(index) // ARC_SAMPLES)] * np.asarray(spacing))
    return float(np.percentile(arc, EXTENT_PERCENTILE)), float(np.percentile(arc, 100 - EXTENT_PERCENTILE))


def _split_runs(pieces: np.ndarray, core: np.ndarray, nearest: np.ndarray, along: Callable[[np.ndarray], np.ndarray], spacing: tuple[float, ...]) -> np.ndarray:
    """``pieces`` with each piece longer along the arch than ``RUN_EXTENT_MM`` (no tooth
    is: a run of teeth the contacts did not separate, a sliver along the arch) divided
    by the coarse model's voxelwise numbers, under new ids."""
    out, count = pieces, int(pieces.max())
    for i, box in enumerate(ndimage.find_objects(pieces), start=1):
        if box is None:
            continue
        index = np.argwhere(pieces[box] == i) + [s.start for s in box]
        start, end = _arc_span(index, along, spacing)
        if end - start > RUN_EXTENT_MM:
            out = out.copy() if out is pieces else out
            where = tuple(index.T)
            out[where] = count + nearest[where]
            count += 49
    return out


def _within(mask: np.ndarray, target: np.ndarray, reach_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """The voxels of ``mask`` within ``reach_mm`` of a ``target`` voxel."""
    grow = [int(np.ceil(reach_mm / s)) for s in spacing]
    box = _bounding_box(mask, grow)
    out = np.zeros_like(mask)
    if box is None or not target[box].any():
        return out
    out[box] = mask[box] & (ndimage.distance_transform_edt(~target[box], sampling=spacing) <= reach_mm)
    return out


def _along_arch(numbers: np.ndarray, spacing: tuple[float, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """Position (mm, patient's right -> left) along the dental arch of points (N, 3) in mm:
    on the arch fitted through the teeth of ``numbers``, or, with too few teeth for an
    arch (a small field of view), on the line through them, pointing the way the tooth
    numbers run."""
    try:
        return arch_from_labels(numbers, spacing).project
    except ValueError:
        pass
    centroids = tooth_centroids(numbers, spacing)
    points = np.stack([c for c, _ in centroids.values()])
    centre = points.mean(axis=0)
    axis = np.linalg.svd(points - centre)[2][0] if len(points) > 1 else np.array([-1.0, 0.0, 0.0])
    order = [arch_position(fdi) for fdi in centroids]
    if len(points) > 1 and np.corrcoef((points - centre) @ axis, order)[0, 1] < 0:
        axis = -axis
    return lambda p: (np.asarray(p, dtype=float) - centre) @ axis


def _canal_sides(coarse: np.ndarray, canal: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Left (3) or right (4) canal id for the voxels of ``canal``, from the nearest lower tooth."""
    lower = (coarse // 10 == _LOWER_LEFT) | (coarse // 10 == _LOWER_RIGHT)
    lower &= np.isin(coarse, FDI_TEETH)
    if lower.any():
        quadrant = _nearest(coarse, lower, spacing, where=canal) // 10
        return np.where(quadrant == _LOWER_LEFT, CANALS[0], CANALS[1]).astype(coarse.dtype)
    known = np.isin(coarse, CANALS)
    if known.any():
        return _nearest(coarse, known, spacing, where=canal)
    return np.full(coarse.shape, CANAL, dtype=coarse.dtype)


def _nearest(labels: np.ndarray, source: np.ndarray, spacing: tuple[float, ...], *, where: np.ndarray) -> np.ndarray:
    """``labels`` of the nearest ``source`` voxel (in mm), computed inside the bounding box
    of ``where`` grown to reach a source voxel; ``labels`` unchanged elsewhere."""
    box = _reach_box(source, where)
    index = ndimage.distance_transform_edt(~source[box], sampling=spacing, return_distances=False, return_indices=True)
    out = labels.copy()
    out[box] = labels[box][tuple(index)]
    return out


def _reach_box(source: np.ndarray, where: np.ndarray) -> Box:
    """The bounding box of ``where`` and ``source`` together (so every voxel of ``where``
    finds its nearest source voxel inside it)."""
    box = _bounding_box(source | where, [0] * source.ndim)
    assert box is not None  # callers pass a non-empty ``source``
    return box


def _bounding_box(mask: np.ndarray, grow: list[int]) -> Box | None:
    """Index slices around the voxels of ``mask``, grown by ``grow[axis]`` voxels and
    clipped to the array; None for an empty mask."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(max(0, int(hits[0]) - grow[axis]), min(mask.shape[axis], int(hits[-1]) + 1 + grow[axis])))
    return tuple(box)


__all__ = ["REFINED_IDS", "dental_region", "merge_refined"]
