"""Tooth numbers from a model's label map: the patient's side of each tooth.

A CBCT model may predict teeth "by type" (``tooth_sides="midline"`` in its metadata):
every tooth gets the id of its right-side twin (upper teeth 11-18, lower 41-48), so
the network only learns what a tooth is (incisor ... third molar, upper or lower),
and which side of the face it sits on is decided here from anatomy. That halves the
tooth channels (faster training) and pools both sides' examples of each tooth type.

The midline: the mid-sagittal plane of the jaws. Its normal (patient left-right) is
the cross product of the vertical axis (maxilla centroid minus mandible centroid) and
the anterior axis (front teeth centroid minus all teeth centroid), so a head turned
or tilted in the scanner is handled. Its position is the median midpoint of the
tooth types found on both sides (canines to third molars sit far enough apart to tell
the two sides' pieces apart); with no such pair, the jaws' centroid (which a field
of view cutting off one ramus biases by a few mm).

Each connected piece of a tooth label goes wholly to the side of its centroid; a
piece that straddles the midline (the two central incisors touch there) is cut at
the plane. Torch-free (numpy + scipy).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from odontoscan.datasets.labels import FDI_TEETH, Label, ToothType, arch_of, is_upper, tooth_type

RIGHT_QUADRANTS = {1: 2, 4: 3}  # right-side quadrant -> its left twin (patient's sides)
RIGHT_SIDE_TEETH: tuple[int, ...] = tuple(q * 10 + p for q in RIGHT_QUADRANTS for p in range(1, 9))
LEFT_SIDE_TEETH: tuple[int, ...] = tuple(q * 10 + p for q in RIGHT_QUADRANTS.values() for p in range(1, 9))
ALL_TEETH: tuple[int, ...] = RIGHT_SIDE_TEETH + LEFT_SIDE_TEETH
_STRADDLE_FRACTION = 0.2  # a piece with at least this share on each side of the plane is cut
FRAGMENT_SHARE = 0.15  # a tooth piece below this share of the median tooth is a fragment
SWALLOWED_RATIO = 1.6  # a tooth label this many times its expected size...
SWALLOWED_SHARE = 0.35  # ... next to a number holding less than this share of its expected size holds that tooth too
PROSTHESIS_CLEARANCE_MM = 2.0
CROWN_CONTACT_SHARE = 0.1  # of a tooth's surface next to a crown or bridge: a stump, no size reference


def left_twin(fdi: int) -> int:
    """The left-side FDI number of a right-side tooth (11 -> 21, 46 -> 36)."""
    return RIGHT_QUADRANTS[fdi // 10] * 10 + fdi % 10


def midline_plane(labels: np.ndarray, spacing: tuple[float, ...]) -> tuple[np.ndarray, float]:
    """``(normal, offset)`` of the midline in mm: points ``p`` with ``p @ normal > offset``
    lie on the patient's right.

    3D maps are canonical RAS volumes (patient's right is +x); 2D maps are panoramic
    radiographs as viewed (upper jaw at the top, the patient's right on the image's
    left). Falls back to these axes for whatever cannot be measured (no jaws, no front
    teeth), and raises ``ValueError`` when the map holds neither jaws nor teeth.
    """
    volume = labels.ndim == 3
    right, up = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])) if volume else (np.array([0.0, -1.0]), np.array([-1.0, 0.0]))
    sp = np.asarray(spacing, dtype=float)
    jaws = [_centroid(labels == jaw, sp) for jaw in (Label.LOWER_JAWBONE, Label.UPPER_JAWBONE)]
    lower, upper = jaws
    if lower is None or upper is None:  # no jaws (a radiograph model): upper minus lower teeth
        lower, upper = _centroid(np.isin(labels, RIGHT_SIDE_TEETH[8:]), sp), _centroid(np.isin(labels, RIGHT_SIDE_TEETH[:8]), sp)
    teeth_mask = np.isin(labels, RIGHT_SIDE_TEETH)
    teeth = _centroid(teeth_mask, sp)
    vertical = _unit(upper - lower, up) if upper is not None and lower is not None else up
    if volume:
        front = _centroid(np.isin(labels, (11, 12, 13, 41, 42, 43)), sp)
        anterior = front - teeth if front is not None and teeth is not None else np.array([0.0, 1.0, 0.0])
        anterior = _unit(anterior - (anterior @ vertical) * vertical, np.array([0.0, 1.0, 0.0]))
        normal = _unit(np.cross(anterior, vertical), right)
    else:
        normal = np.array([vertical[1], -vertical[0]])
    if normal @ right < 0:
        normal = -normal

    jaws = [c for c in jaws if c is not None]
    if jaws:
        centre = np.mean(jaws, axis=0)
    elif teeth is not None:
        centre = teeth
    else:
        raise ValueError("the label map holds neither jaws nor teeth; cannot find the midline")
    offset = float(centre @ normal)
    box = ndimage.find_objects(teeth_mask.astype(np.uint8))
    pairs = _tooth_pairs(labels[box[0]], sp, normal, offset, [s.start for s in box[0]]) if box else []
    if not pairs:
        return normal, offset
    # A symmetric arch: the right-minus-left vectors of paired teeth are the left-right
    # axis, and their midpoints lie on the midline plane.
    directions = np.array([_unit(r - l, normal) for r, l in pairs])
    normal = _unit(directions.mean(axis=0), normal)
    return normal, float(np.median([0.5 * (r + l) @ normal for r, l in pairs]))


def _tooth_pairs(
    labels: np.ndarray, spacing: np.ndarray, normal: np.ndarray, offset: float, corner: list[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(right, left) centroids in mm of the largest piece on each side of each tooth
    label from canine to third molar found on both sides; ``labels`` is a crop whose
    index 0 sits at ``corner`` of the full map."""
    pairs = []
    for fdi in RIGHT_SIDE_TEETH:
        if fdi % 10 < 3:
            continue
        pieces, count = ndimage.label(labels == fdi)
        if count < 2:
            continue
        sizes = ndimage.sum_labels(np.ones(labels.shape, bool), pieces, range(1, count + 1))
        centres = (np.asarray(ndimage.center_of_mass(np.ones(labels.shape, bool), pieces, range(1, count + 1))) + corner) * spacing
        position = centres @ normal
        right, left = position > offset, position <= offset
        if right.any() and left.any():
            r = np.flatnonzero(right)[np.argmax(sizes[right])]
            l_ = np.flatnonzero(left)[np.argmax(sizes[left])]
            pairs.append((centres[r], centres[l_]))
    return pairs


def assign_tooth_sides(labels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Give teeth on the patient's left their own FDI numbers (21-28, 31-38).

    ``labels`` holds teeth as right-side ids only (a ``tooth_sides="midline"`` model's
    output). Returns a new label map of the same shape and dtype.
    """
    out = labels.copy()
    teeth = np.isin(labels, RIGHT_SIDE_TEETH)
    if not teeth.any():
        return out
    normal, offset = midline_plane(labels, spacing)
    box = ndimage.find_objects(teeth.astype(np.uint8))[0]
    corner = np.array([s.start for s in box])
    crop, crop_out = labels[box], out[box]  # crop_out is a view: writes land in ``out``
    sp = np.asarray(spacing, dtype=float)
    for fdi in RIGHT_SIDE_TEETH:
        mask = crop == fdi
        if not mask.any():
            continue
        pieces, _ = ndimage.label(mask)
        for index, piece_box in enumerate(ndimage.find_objects(pieces), start=1):
            coords = np.argwhere(pieces[piece_box] == index) + [s.start for s in piece_box]
            distance = ((coords + corner) * sp) @ normal - offset  # > 0: patient's right
            right_share = float(np.mean(distance > 0))
            if _STRADDLE_FRACTION <= right_share <= 1 - _STRADDLE_FRACTION:
                left = distance <= 0
            else:
                left = np.full(len(distance), right_share < 0.5)
            if left.any():
                crop_out[tuple(coords[left].T)] = left_twin(fdi)
    return out


def absorb_fragments(labels: np.ndarray, share: float = FRAGMENT_SHARE) -> np.ndarray:
    """Hand small pieces of a tooth number to the tooth they touch.

    A connected piece of a tooth label smaller than ``share`` of the median tooth (the
    largest piece of each number) is a fragment: a network unsure where one tooth ends
    and the next begins paints a sliver of the neighbour's number. A fragment touching
    other teeth takes the number it shares most of its border with; an isolated one is
    kept (it may be a root tip or a small tooth). Returns a new label map.
    """
    out = labels.copy()
    pieces = []  # (number, box of the piece in labels, piece mask in that box, voxels)
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or number not in ALL_TEETH:
            continue
        parts, _ = ndimage.label(labels[box] == number)
        sizes = np.bincount(parts.ravel())
        for index, sub in enumerate(ndimage.find_objects(parts), start=1):
            if sub is not None:  # each piece in its own box: a noisy map has thousands
                piece_box = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
                pieces.append((number, piece_box, parts[sub] == index, int(sizes[index])))
    if not pieces:
        return out
    largest: dict[int, int] = {}
    for number, *_, size in pieces:
        largest[number] = max(largest.get(number, 0), size)
    limit = share * float(np.median(list(largest.values())))
    for number, box, piece, size in pieces:
        if size >= limit:
            continue
        grown = tuple(slice(max(0, b.start - 1), min(n, b.stop + 1)) for b, n in zip(box, labels.shape))
        mask = np.zeros(tuple(g.stop - g.start for g in grown), dtype=bool)
        mask[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown))] = piece
        border = out[grown][ndimage.binary_dilation(mask) & ~mask]
        border = border[np.isin(border, ALL_TEETH) & (border != number)]
        if border.size:
            out[grown][mask] = np.bincount(border).argmax()
    return out


def tidy_teeth(labels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """The clean-up every predicted tooth map gets: fragments join the tooth they touch
    (:func:`absorb_fragments`), then, in volumes, teeth a neighbour's number swallowed get
    their own back (:func:`restore_swallowed_teeth`; on panoramic radiographs teeth
    overlap in projection and their areas vary too much for it: pano-phantom on 32
    phantoms lost a little, missing-tooth F1 0.919 -> 0.912). Returns a new label map."""
    labels = absorb_fragments(labels)
    return restore_swallowed_teeth(labels, spacing) if labels.ndim == 3 else labels


def restore_swallowed_teeth(labels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Give a tooth back its number when its neighbour's label swallowed it.

    Where two teeth touch, a model may paint both with one number: that label is then
    about twice its expected size (the larger of its antimere's, e.g. 31 for 41, and
    the median of its jaw's other teeth of the same type: a model's under-segmented
    tooth must not make its healthy twin look swollen) while the neighbour along the
    arch is absent or a fragment (on one side only: with gaps on both sides the
    swallowed one is unknown). Molars are never taken for swallowing labels: their
    labels vary too much in size (three roots, small third molars) for the size to
    tell. The swallowing label keeps its expected size on its far side (away from the
    absent neighbour, along the line through its other neighbour) and the rest takes
    the absent number, unless an implant or a bridge lies within
    ``PROSTHESIS_CLEARANCE_MM`` of that rest (the gap is then a restored one). Crowned
    teeth (stumps) are never a size reference, nor split. One tooth is handed back per
    pass, the most oversized first. Returns a new label map.
    """
    out = labels.copy()
    sp = np.asarray(spacing, dtype=float)
    tried: set[tuple[int, int]] = set()
    while True:
        boxes = ndimage.find_objects(out)
        coords = {
            fdi: np.argwhere(out[boxes[fdi - 1]] == fdi) + [s.start for s in boxes[fdi - 1]]
            for fdi in FDI_TEETH
            if fdi <= len(boxes) and boxes[fdi - 1] is not None
        }
        sizes = {fdi: len(c) for fdi, c in coords.items()}
        crowned = {fdi for fdi in sizes if _crowned(out, boxes[fdi - 1], fdi)}
        best = None
        for fdi, size in sizes.items():
            expected = _expected_size(fdi, sizes, crowned)
            if tooth_type(fdi) is ToothType.MOLAR or fdi in crowned or expected is None or size < SWALLOWED_RATIO * expected:
                continue
            arch = arch_of(fdi)
            at = arch.index(fdi)
            sides = [
                step
                for step in (-1, 1)
                if 0 <= at + step < len(arch)
                and sizes.get(arch[at + step], 0) < SWALLOWED_SHARE * (_expected_size(arch[at + step], sizes, crowned) or expected)
            ]
            if len(sides) == 1 and (fdi, arch[at + sides[0]]) not in tried and (best is None or size / expected > best[0]):
                best = (size / expected, fdi, arch[at + sides[0]], sides[0], expected)
        if best is None:
            return out
        _, fdi, absent, step, expected = best
        tried.add((fdi, absent))
        arch, at = arch_of(fdi), arch_of(fdi).index(fdi)
        centre = coords[fdi].mean(axis=0) * sp
        behind, beyond = at - step, at + 2 * step  # the neighbours on the far side, and past the absent one
        if 0 <= behind < len(arch) and arch[behind] in sizes:
            towards = centre - coords[arch[behind]].mean(axis=0) * sp
        elif 0 <= beyond < len(arch) and arch[beyond] in sizes:
            towards = coords[arch[beyond]].mean(axis=0) * sp - centre
        else:
            continue
        order = np.argsort((coords[fdi] * sp) @ towards, kind="stable")
        handed = coords[fdi][order[int(round(expected)) :]]
        if len(handed) + sizes.get(absent, 0) < SWALLOWED_SHARE * (_expected_size(absent, sizes, crowned) or expected):
            continue
        if _near_prosthesis(out, handed, sp):
            continue
        out[tuple(handed.T)] = absent


def _antimere(fdi: int) -> int:
    """The same tooth on the patient's other side (41 <-> 31, 16 <-> 26)."""
    return {1: 2, 2: 1, 3: 4, 4: 3}[fdi // 10] * 10 + fdi % 10


def _expected_size(fdi: int, sizes: dict[int, int], crowned: set[int]) -> float | None:
    """Expected voxel count of a tooth: the larger of its antimere's and the median of its
    jaw's other teeth of its type (crowned stumps left out); None without either."""
    twin = _antimere(fdi)
    same = [n for f, n in sizes.items() if f != fdi and f not in crowned and is_upper(f) == is_upper(fdi) and tooth_type(f) is tooth_type(fdi)]
    references = ([float(sizes[twin])] if twin in sizes and twin not in crowned else []) + ([float(np.median(same))] if same else [])
    return max(references) if references else None


def _near_prosthesis(labels: np.ndarray, index: np.ndarray, spacing: np.ndarray) -> bool:
    """Whether an implant or bridge lies within ``PROSTHESIS_CLEARANCE_MM`` of the voxels ``index`` (N, ndim)."""
    reach = np.ceil(PROSTHESIS_CLEARANCE_MM / spacing).astype(int)
    low = np.maximum(index.min(axis=0) - reach, 0)
    high = np.minimum(index.max(axis=0) + reach + 1, labels.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    prosthesis = np.isin(labels[box], (Label.IMPLANT, Label.BRIDGE))
    if not prosthesis.any():
        return False
    distance = ndimage.distance_transform_edt(~prosthesis, sampling=spacing)
    return bool(np.min(distance[tuple((index - low).T)]) <= PROSTHESIS_CLEARANCE_MM)


def _crowned(labels: np.ndarray, box: tuple[slice, ...], fdi: int) -> bool:
    """Whether at least ``CROWN_CONTACT_SHARE`` of a tooth's surface touches a crown or bridge."""
    grown = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(box, labels.shape))
    local = labels[grown]
    tooth = local == fdi
    surface = tooth & ~ndimage.binary_erosion(tooth)
    prosthesis = np.isin(local, (Label.CROWN, Label.BRIDGE))
    if not prosthesis.any():
        return False
    return int(np.count_nonzero(surface & ndimage.binary_dilation(prosthesis))) >= CROWN_CONTACT_SHARE * int(np.count_nonzero(surface))


def _centroid(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray | None:
    if not mask.any():
        return None
    return np.array([float(np.mean(i)) for i in np.nonzero(mask)]) * spacing


def _unit(vector: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-6 else fallback


__all__ = ["RIGHT_SIDE_TEETH", "LEFT_SIDE_TEETH", "left_twin", "midline_plane", "assign_tooth_sides", "absorb_fragments", "restore_swallowed_teeth", "tidy_teeth"]
