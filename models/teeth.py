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

from collections.abc import Collection

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
SHARED_RATIO = 1.2  # both neighbours of an absent number this much over their type's smallest: they shared it out
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


def tidy_teeth(labels: np.ndarray, spacing: tuple[float, ...], numbers: Collection[int] = FDI_TEETH) -> np.ndarray:
    """The clean-up every predicted tooth map gets: fragments join the tooth they touch
    (:func:`absorb_fragments`), then, in volumes, teeth a neighbour's number swallowed get
    their own back (:func:`restore_swallowed_teeth`; on panoramic radiographs teeth
    overlap in projection and their areas vary too much for it: pano-phantom on 32
    phantoms lost a little, missing-tooth F1 0.919 -> 0.912). ``numbers``: the tooth
    numbers the model can output (no other is handed back). Returns a new label map."""
    labels = absorb_fragments(labels)
    return restore_swallowed_teeth(labels, spacing, numbers) if labels.ndim == 3 else labels


def restore_swallowed_teeth(labels: np.ndarray, spacing: tuple[float, ...], numbers: Collection[int] = FDI_TEETH) -> np.ndarray:
    """Give a tooth back its number when its neighbours' labels took it.

    Where teeth touch, a model may paint a tooth with its neighbour's number, so the
    chart calls it missing. Two ways are undone here, for a number that is absent or
    a fragment (under ``SWALLOWED_SHARE`` of its expected size):

    * one neighbour took it whole: that neighbour's label is at least
      ``SWALLOWED_RATIO`` times its expected size (the larger of its antimere's, e.g.
      31 for 41, and the median of its jaw's other teeth of the same type, so that a
      model's under-segmented tooth does not make its healthy twin look swollen), and
      the neighbour has no gap on its other side (else which tooth it took is unknown);
    * both neighbours shared it out: each is at least ``SHARED_RATIO`` times the size
      of its jaw's smallest sizeable tooth of its type (both neighbours being swollen,
      they cannot be each other's reference), and together they hold at least
      ``SWALLOWED_RATIO - 1`` of a tooth too many.

    A neighbour keeps its expected size on its far side (along the line through the
    tooth beyond it, or between the two sharers) and hands the rest to the absent
    number, unless an implant or a bridge lies within ``PROSTHESIS_CLEARANCE_MM`` of
    that rest (the gap is then a restored one). Molars never hand teeth back: their
    labels vary too much in size (three roots, small third molars) for the size to
    tell; crowned teeth (stumps) are no size reference and never hand teeth back
    either. Only ``numbers`` (the tooth numbers the model can output) are handed back.
    One absent tooth is restored per pass, the clearest case first. Returns a new
    label map.
    """
    out = labels.copy()
    sp = np.asarray(spacing, dtype=float)
    tried: set[int] = set()
    while True:
        teeth = _Teeth(out, sp)
        plans = [plan for absent in FDI_TEETH if absent in numbers and absent not in tried for plan in [teeth.plan(absent)] if plan]
        if not plans:
            return out
        score, absent, handovers = max(plans, key=lambda plan: plan[0])
        tried.add(absent)
        handed = [teeth.handed(donor, towards, keep) for donor, towards, keep in handovers]
        index = np.concatenate(handed)
        if len(index) + teeth.sizes.get(absent, 0) < SWALLOWED_SHARE * teeth.reference(absent, handovers[0][2]):
            continue
        if _near_prosthesis(out, index, sp):
            continue
        out[tuple(index.T)] = absent


class _Teeth:
    """Voxel indices, sizes and crowned state of the tooth labels of one map (see
    :func:`restore_swallowed_teeth`)."""

    def __init__(self, labels: np.ndarray, spacing: np.ndarray) -> None:
        boxes = ndimage.find_objects(labels)
        self.spacing = spacing
        self.coords = {
            fdi: np.argwhere(labels[boxes[fdi - 1]] == fdi) + [s.start for s in boxes[fdi - 1]]
            for fdi in FDI_TEETH
            if fdi <= len(boxes) and boxes[fdi - 1] is not None
        }
        self.sizes = {fdi: len(c) for fdi, c in self.coords.items()}
        self.crowned = {fdi for fdi in self.sizes if _crowned(labels, boxes[fdi - 1], fdi)}

    def expected(self, fdi: int) -> float | None:
        """The larger of the antimere's size and the median of the jaw's other teeth of the
        type (crowned stumps left out); None without either."""
        twin = _antimere(fdi)
        same = self._same_type(fdi)
        references = [float(self.sizes[twin])] if twin in self.sizes and twin not in self.crowned else []
        references += [float(np.median(same))] if same else []
        return max(references) if references else None

    def smallest(self, fdi: int, absent: int) -> float | None:
        """The jaw's smallest sizeable (not a fragment) tooth of the type, itself and the
        absent number left out."""
        same = self._same_type(fdi, absent)
        sizeable = [n for n in same if n >= SWALLOWED_SHARE * max(same)]
        return float(min(sizeable)) if sizeable else None

    def reference(self, absent: int, fallback: float) -> float:
        return self.expected(absent) or fallback

    def _same_type(self, fdi: int, *left_out: int) -> list[int]:
        """Sizes of the jaw's other teeth of the type, crowned stumps and ``left_out`` left out."""
        return [
            n
            for f, n in self.sizes.items()
            if f != fdi and f not in left_out and f not in self.crowned and is_upper(f) == is_upper(fdi) and tooth_type(f) is tooth_type(fdi)
        ]

    def absent(self, fdi: int, fallback: float) -> bool:
        return self.sizes.get(fdi, 0) < SWALLOWED_SHARE * self.reference(fdi, fallback)

    def can_hand_back(self, fdi: int) -> bool:
        return fdi in self.sizes and tooth_type(fdi) is not ToothType.MOLAR and fdi not in self.crowned

    def centre(self, fdi: int) -> np.ndarray:
        return self.coords[fdi].mean(axis=0) * self.spacing

    def plan(self, absent: int) -> tuple[float, int, list[tuple[int, np.ndarray, float]]] | None:
        """(score, absent, [(donor, direction towards the absent tooth, voxels the donor keeps)])
        when ``absent`` was taken by its neighbours, else None."""
        arch = arch_of(absent)
        at = arch.index(absent)
        near = [arch[i] for i in (at - 1, at + 1) if 0 <= i < len(arch)]
        return self._swallowed(absent, arch, near) or self._shared(absent, near)

    def _swallowed(self, absent: int, arch: tuple[int, ...], near: list[int]) -> tuple[float, int, list] | None:
        """The plan when one neighbour took the absent tooth whole."""
        at = arch.index(absent)
        best = None
        for donor in near:
            expected = self.expected(donor)
            if not self.can_hand_back(donor) or expected is None or self.sizes[donor] < SWALLOWED_RATIO * expected:
                continue
            if not self.absent(absent, expected):
                continue
            d_at = arch.index(donor)
            step = at - d_at
            behind, beyond = d_at - step, at + step
            if 0 <= behind < len(arch) and self.absent(arch[behind], expected):
                continue  # a gap on both sides: which tooth it took is unknown
            if 0 <= behind < len(arch) and arch[behind] in self.sizes:
                towards = self.centre(donor) - self.centre(arch[behind])
            elif 0 <= beyond < len(arch) and arch[beyond] in self.sizes:
                towards = self.centre(arch[beyond]) - self.centre(donor)
            else:
                continue
            score = self.sizes[donor] / expected
            if best is None or score > best[0]:
                best = (score, absent, [(donor, towards, expected)])
        return best

    def _shared(self, absent: int, near: list[int]) -> tuple[float, int, list] | None:
        """The plan when both neighbours took a part of the absent tooth."""
        if len(near) != 2 or not all(self.can_hand_back(n) for n in near):
            return None
        smallest = [self.smallest(n, absent) for n in near]
        if not all(smallest):
            return None
        a, b = near
        (small_a, small_b), reference = smallest, self.reference(absent, min(smallest))  # type: ignore[type-var]
        if not self.absent(absent, reference):
            return None
        if self.sizes[a] < SHARED_RATIO * small_a or self.sizes[b] < SHARED_RATIO * small_b:  # type: ignore[operator]
            return None
        excess = self.sizes[a] - small_a + self.sizes[b] - small_b  # type: ignore[operator]
        if excess < (SWALLOWED_RATIO - 1.0) * reference:
            return None
        towards = self.centre(b) - self.centre(a)
        return excess / reference, absent, [(a, towards, small_a), (b, -towards, small_b)]

    def handed(self, donor: int, towards: np.ndarray, keep: float) -> np.ndarray:
        """The donor's voxels beyond the ``keep`` furthest from the absent tooth."""
        order = np.argsort((self.coords[donor] * self.spacing) @ towards, kind="stable")
        return self.coords[donor][order[int(round(keep)) :]]


def _antimere(fdi: int) -> int:
    """The same tooth on the patient's other side (41 <-> 31, 16 <-> 26)."""
    return {1: 2, 2: 1, 3: 4, 4: 3}[fdi // 10] * 10 + fdi % 10


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
