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

from odontoscan.datasets.labels import Label

RIGHT_QUADRANTS = {1: 2, 4: 3}  # right-side quadrant -> its left twin (patient's sides)
RIGHT_SIDE_TEETH: tuple[int, ...] = tuple(q * 10 + p for q in RIGHT_QUADRANTS for p in range(1, 9))
LEFT_SIDE_TEETH: tuple[int, ...] = tuple(q * 10 + p for q in RIGHT_QUADRANTS.values() for p in range(1, 9))
ALL_TEETH: tuple[int, ...] = RIGHT_SIDE_TEETH + LEFT_SIDE_TEETH
_STRADDLE_FRACTION = 0.2  # a piece with at least this share on each side of the plane is cut
FRAGMENT_SHARE = 0.15  # a tooth piece below this share of the median tooth is a fragment


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


def _centroid(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray | None:
    if not mask.any():
        return None
    return np.array([float(np.mean(i)) for i in np.nonzero(mask)]) * spacing


def _unit(vector: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-6 else fallback


__all__ = ["RIGHT_SIDE_TEETH", "LEFT_SIDE_TEETH", "left_twin", "midline_plane", "assign_tooth_sides", "absorb_fragments"]
