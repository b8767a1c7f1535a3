"""Tooth numbers for the teeth of one jaw, read as a sequence along the dental arch.

A segmentation network numbers each voxel from what it sees nearby, so next to a gap
it may call every tooth of a quadrant by its neighbour's number (a missing 44: 45
becomes 44, 43 becomes 42 ...), and a tooth that falls apart into two pieces (thin
walls around a root-canal filling) may get two numbers. Counting along the arch
settles both: teeth stand side by side from the midline to the back, a missing
tooth leaves a gap about as wide as the tooth, and each tooth type has its size.

:func:`number_along_arch` takes the tooth pieces of one jaw (what the network voted
for each, its volume and its extent along the arch) and picks the numbering that
costs least, by dynamic programming over the 16 positions of the jaw in arch order
(patient's right to left: 18 ... 11, 21 ... 28; 48 ... 41, 31 ... 38):

* each piece takes one position, or two neighbouring pieces share one (a tooth in
  pieces), or one piece takes two positions (two teeth the cut missed);
* cost: how far the positions are from the ones the network voted for, how far the
  volume and the extent along the arch are from the position's tooth type (textbook
  sizes scaled to this patient), and, between neighbours, how far the gap between
  them is from the room of the positions skipped (none skipped: about no gap); an
  implant standing between two teeth takes a position, so they must skip one;
* then once more with each tooth's place along the arch counted from the midline the
  first answer puts it at (the median over its teeth): a run the network shifted by
  one stands a tooth's width from where its numbers belong.

Torch-free (numpy only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from odontoscan.datasets.labels import is_upper
from odontoscan.datasets.phantom.anatomy import size_of  # textbook (Wheeler's) tooth sizes

UPPER_ORDER: tuple[int, ...] = (*range(18, 10, -1), *range(21, 29))  # patient's right -> left
LOWER_ORDER: tuple[int, ...] = (*range(48, 40, -1), *range(31, 39))
VOTE_WEIGHT = 2.0  # cost of a position one away from the one the network voted for...
VOTE_CAP = 3.0  # ... up to this many positions away
VOLUME_SIGMA = 0.6  # spread of log(volume / expected volume) of a tooth
WIDTH_SIGMA_MM = 2.0  # spread of a tooth's extent along the arch around its type's width
GAP_SIGMA_MM = 2.5  # spread of a gap around the width of the teeth missing there
CROWNED_GAP_FACTOR = 1.5  # gaps next to a crowned stump spread this much more (its extent misses the bridge retainer)
GAP_COST_CAP = 8.0  # a gap never costs more than this (spaces close after extractions)
POSITION_SIGMA_MM = 3.0  # spread of a tooth's place along the arch, from the midline...
POSITION_COST_CAP = 4.0  # ... and the most a misplaced tooth costs
SPLIT_COST = 3.0  # extra cost of one tooth in two pieces
JOIN_COST = 1.0  # extra cost of two teeth in one piece
MINOR_SHARE = 0.3  # a tooth smaller than this share of the smallest tooth type is a leftover
GROUP_GAP_MM = 1.0  # pieces of one number this close along the arch are one tooth
SIZEABLE_SHARE = 0.1  # of the jaw's largest piece: smaller pieces join a tooth, never link two
OVERLAP_SHARE = 0.6  # pieces overlapping along the arch by this share of the shorter are one tooth
MIN_EXTENT_MM = 0.5  # the shortest extent a piece counts with
MIN_TOOTH_EXTENT_MM = 2.0  # a tooth is at least this long along the arch
EXTENT_SHARE = 0.25  # of its largest piece: smaller pieces of a tooth do not count for its extent
IMPLANT_SLOT_COST = 8.0  # teeth leaving no position for an implant that stands between them
CONFIDENT_SHARE = 0.6  # pieces voted this clearly for one number set this patient's scale


@dataclass(frozen=True)
class ToothPiece:
    """One connected piece of tooth in one jaw.

    Attributes:
        votes: FDI number -> share of the piece's voxels the network gave it.
        volume_mm3: the piece's volume.
        arc_mm: (start, end) of the piece along the arch (mm, patient's right -> left).
        crowned: whether a crown sits on it (a stump: smaller than its type).
    """

    votes: Mapping[int, float]
    volume_mm3: float
    arc_mm: tuple[float, float]
    crowned: bool = False

    @property
    def centre_mm(self) -> float:
        return 0.5 * (self.arc_mm[0] + self.arc_mm[1])


def arch_position(fdi: int) -> int:
    """Index (0-15) of a tooth's position in its jaw, from the patient's right to the left."""
    return (UPPER_ORDER if is_upper(fdi) else LOWER_ORDER).index(fdi)


def expected_volume(fdi: int) -> float:
    """Relative volume of a tooth type (crown box plus half a root box, textbook sizes)."""
    size = size_of(fdi)
    return size.width * size.depth * (size.crown + 0.5 * size.root)


@dataclass(frozen=True)
class Numbering:
    """The number(s) a piece gets: one, or two teeth the cut missed, split at ``cut_mm``
    along the arch (``numbers[0]`` before it, ``numbers[1]`` after)."""

    numbers: tuple[int, ...]
    cut_mm: float | None = None

    def at(self, arc_mm: np.ndarray) -> np.ndarray:
        """The number at each of positions ``arc_mm`` along the arch."""
        if self.cut_mm is None:
            return np.full(np.shape(arc_mm), self.numbers[0])
        return np.where(np.asarray(arc_mm) < self.cut_mm, self.numbers[0], self.numbers[1])


def number_along_arch(pieces: Sequence[ToothPiece], upper: bool, implants_mm: Sequence[float] = ()) -> list[Numbering]:
    """The numbering of each piece of one jaw (same order as ``pieces``). See the module
    docstring. ``implants_mm``: where along the arch this jaw's implants stand; each
    takes a position of its own, so the teeth either side of one leave at least one
    position empty between them.

    Pieces the network gave the same number and that follow each other along the arch
    count as one tooth; a tooth below ``MINOR_SHARE`` of the smallest tooth type takes
    the number of the tooth it lies against, and so does one shorter along the arch than
    ``MIN_TOOTH_EXTENT_MM`` (off the end of the arch: a stray piece behind the last molar)."""
    if not pieces:
        return []
    order = UPPER_ORDER if upper else LOWER_ORDER
    groups = _group(pieces)
    teeth = [_merge([pieces[i] for i in g]) for g in groups]
    width_scale, volume_scale = _patient_scale(teeth)
    smallest = min(expected_volume(f) for f in order) * volume_scale
    major = [k for k, t in enumerate(teeth) if t.volume_mm3 >= MINOR_SHARE * smallest and _extent(t) >= MIN_TOOTH_EXTENT_MM]
    numbers = _solve([teeth[k] for k in major], order, width_scale, volume_scale, implants_mm) if major else None
    if numbers is None:  # no numbering fits (more teeth than positions): the network's votes
        return [Numbering((_top(p),)) for p in pieces]
    by_tooth = {k: _numbering(teeth[k], fdis) for k, fdis in zip(major, numbers)}
    centres = np.array([teeth[k].centre_mm for k in major])
    out: list[Numbering] = [Numbering(())] * len(pieces)
    for k, group in enumerate(groups):
        nearest = major[int(np.argmin(np.abs(centres - teeth[k].centre_mm)))]
        for i in group:
            out[i] = by_tooth.get(k, by_tooth[nearest])  # a leftover takes its neighbour's
    return out


def _solve(
    teeth: Sequence[ToothPiece], order: tuple[int, ...], width_scale: float, volume_scale: float, implants_mm: Sequence[float] = ()
) -> list[tuple[int, ...]] | None:
    """Numbers of each of ``teeth`` (arch order): solved once, then again with the
    midline where most teeth of the first answer put it (a shifted run stands out)."""
    costs = _Costs(teeth, order, width_scale, volume_scale, implants_mm=implants_mm)
    units = costs.solve()
    if units is None:
        return None
    singles = [(first, slots[0]) for first, last, slots in units if first == last and len(slots) == 1]
    pitches = [
        (teeth[b].centre_mm - teeth[a].centre_mm) / (0.5 * (size_of(order[s]).width + size_of(order[t]).width))
        for (a, s), (b, t) in zip(singles, singles[1:])
        if b == a + 1 and t == s + 1
    ]
    pitch = float(np.median(pitches)) if pitches else width_scale
    costs = _Costs(teeth, order, width_scale, volume_scale, pitch=pitch, implants_mm=implants_mm)
    midlines = [costs.midline(*unit) for unit in units if not any(order[s] % 10 == 8 for s in unit[2])]
    if midlines:
        units = _Costs(teeth, order, width_scale, volume_scale, float(np.median(midlines)), pitch, implants_mm).solve() or units
    out: list[tuple[int, ...]] = [()] * len(teeth)
    for first, last, slots in units:
        for k in range(first, last + 1):
            out[k] = tuple(order[s] for s in slots)
    return out


def _numbering(tooth: ToothPiece, numbers: tuple[int, ...]) -> Numbering:
    """Numbering of one tooth; two numbers split its extent in the ratio of their widths."""
    if len(numbers) == 1:
        return Numbering(numbers)
    first, second = (size_of(f).width for f in numbers)
    start, end = tooth.arc_mm
    return Numbering(numbers, start + (end - start) * first / (first + second))


def _top(piece: ToothPiece) -> int:
    return max(piece.votes.items(), key=lambda kv: kv[1], default=(0, 0.0))[0]


def _group(pieces: Sequence[ToothPiece]) -> list[list[int]]:
    """Indices of the pieces of each tooth, teeth in arch order.

    Pieces the network gave the same number and that follow each other along the arch
    (extents within ``GROUP_GAP_MM``) are one tooth. So are two such teeth at the same
    place along the arch (extents overlapping by ``OVERLAP_SHARE`` of the shorter: a
    crown and its root, two walls of one tooth) when both are sizeable (at least
    ``SIZEABLE_SHARE`` of the largest); a smaller one joins the sizeable tooth it
    overlaps most, so that a sliver never links two teeth."""
    groups: list[list[int]] = []
    for fdi in sorted({_top(p) for p in pieces}):
        members = sorted((i for i, p in enumerate(pieces) if _top(p) == fdi), key=lambda i: pieces[i].arc_mm[0])
        end = -np.inf
        for i in members:
            if pieces[i].arc_mm[0] > end + GROUP_GAP_MM:
                groups.append([])
            groups[-1].append(i)
            end = max(end, pieces[i].arc_mm[1])
    teeth = [_merge([pieces[i] for i in g]) for g in groups]
    largest = max(t.volume_mm3 for t in teeth)
    sizeable = [k for k, t in enumerate(teeth) if t.volume_mm3 >= SIZEABLE_SHARE * largest]
    parent = list(range(len(groups)))

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for n, k in enumerate(sizeable):
        for j in sizeable[:n]:
            if _overlap(teeth[k], teeth[j]) >= OVERLAP_SHARE * min(_extent(teeth[k]), _extent(teeth[j])):
                parent[root(k)] = root(j)
    for k, tooth in enumerate(teeth):
        if k not in sizeable and sizeable:
            j = max(sizeable, key=lambda j: _overlap(tooth, teeth[j]))
            if _overlap(tooth, teeth[j]) >= OVERLAP_SHARE * _extent(tooth):
                parent[k] = root(j)
    joined: dict[int, list[int]] = {}
    for k, group in enumerate(groups):
        joined.setdefault(root(k), []).extend(group)
    return sorted(joined.values(), key=lambda g: _merge([pieces[i] for i in g]).centre_mm)


def _extent(piece: ToothPiece) -> float:
    return max(piece.arc_mm[1] - piece.arc_mm[0], MIN_EXTENT_MM)


def _overlap(a: ToothPiece, b: ToothPiece) -> float:
    """Overlap (mm) of two pieces' extents along the arch; negative: the gap between them."""
    return min(a.arc_mm[1], b.arc_mm[1]) - max(a.arc_mm[0], b.arc_mm[0])


def _merge(group: Sequence[ToothPiece]) -> ToothPiece:
    """One piece standing for several: volume-weighted votes, summed volume, joint extent
    of the sizeable ones (a sliver off to one side does not widen the tooth)."""
    total = sum(p.volume_mm3 for p in group)
    votes: dict[int, float] = {}
    for p in group:
        for fdi, share in p.votes.items():
            votes[fdi] = votes.get(fdi, 0.0) + share * p.volume_mm3 / max(total, 1e-9)
    sizeable = [p for p in group if p.volume_mm3 >= EXTENT_SHARE * max(q.volume_mm3 for q in group)]
    start, end = min(p.arc_mm[0] for p in sizeable), max(p.arc_mm[1] for p in sizeable)
    return ToothPiece(votes, total, (start, end), any(p.crowned for p in group))


def _patient_scale(pieces: Sequence[ToothPiece]) -> tuple[float, float]:
    """(width, volume) scale of this patient's teeth against the textbook sizes, from
    the pieces the network numbered clearly (1.0 when there are none)."""
    widths, volumes = [], []
    for piece in pieces:
        fdi, share = max(piece.votes.items(), key=lambda kv: kv[1], default=(0, 0.0))
        if share >= CONFIDENT_SHARE and not piece.crowned:
            widths.append((piece.arc_mm[1] - piece.arc_mm[0]) / size_of(fdi).width)
            volumes.append(piece.volume_mm3 / expected_volume(fdi))
    if not widths:
        return 1.0, 1.0
    return float(np.median(widths)), float(np.median(volumes))


class _Costs:
    """The dynamic programme of :func:`number_along_arch` over pieces in arch order."""

    def __init__(
        self,
        pieces: Sequence[ToothPiece],
        order: tuple[int, ...],
        width_scale: float,
        volume_scale: float,
        midline_mm: float | None = None,
        pitch: float | None = None,
        implants_mm: Sequence[float] = (),
    ):
        self.pieces, self.order, self.midline_mm = pieces, order, midline_mm
        self.implants_mm = np.sort(np.asarray(implants_mm, dtype=float))
        self.slot_of = {fdi: slot for slot, fdi in enumerate(order)}
        textbook = np.array([size_of(f).width for f in order])
        self.textbook, self.width_scale = textbook, width_scale
        self.widths = textbook * width_scale
        self.edges = np.concatenate([[0.0], np.cumsum(textbook)]) - textbook[: len(order) // 2].sum()  # mm from the midline
        self.pitch = pitch if pitch is not None else width_scale
        self.volumes = np.array([expected_volume(f) for f in order]) * volume_scale

    def midline(self, first: int, last: int, slots: tuple[int, ...]) -> float:
        """Where the midline would be (mm along the arch) if pieces ``first..last`` held
        ``slots``: their centre minus the textbook distance of those positions' centre
        from the midline, times this patient's tooth pitch."""
        centre = 0.5 * (self.pieces[first].arc_mm[0] + self.pieces[last].arc_mm[1])
        return centre - self.pitch * 0.5 * (self.edges[slots[0]] + self.edges[slots[-1] + 1])

    def _unit(self, first: int, last: int, slots: tuple[int, ...]) -> float:
        """Cost of pieces ``first..last`` (inclusive) holding the positions ``slots``."""
        group = self.pieces[first : last + 1]
        total = sum(p.volume_mm3 for p in group)
        cost = 0.0
        for piece in group:  # positions away from the voted ones, weighted by votes
            for fdi, share in piece.votes.items():
                if fdi in self.slot_of:
                    away = min(abs(self.slot_of[fdi] - s) for s in slots)
                    cost += VOTE_WEIGHT * min(away, VOTE_CAP) * share * piece.volume_mm3 / max(total, 1e-9)
        ratio = np.log(max(total, 1e-9) / float(self.volumes[list(slots)].sum()))
        crowned = any(p.crowned for p in group)
        if not (ratio < 0 and crowned):  # a stump under a crown may be small
            cost += 0.5 * (ratio / VOLUME_SIGMA) ** 2
        extent = group[-1].arc_mm[1] - group[0].arc_mm[0]
        expected = float(self.widths[list(slots)].sum())
        # A stump under a crown is narrower than its tooth, so narrow is no evidence
        # against one crowned tooth; but wider is, and two prepared stumps do not touch,
        # so a crowned piece taking two positions needs the width of two teeth.
        if not crowned or len(slots) > 1 or extent > expected:
            cost += 0.5 * ((extent - expected) / WIDTH_SIGMA_MM) ** 2
        if last > first:
            cost += SPLIT_COST
        if len(slots) > 1:
            cost += JOIN_COST
        if self.midline_mm is not None and not any(self.order[s] % 10 == 8 for s in slots):
            away = (self.midline(first, last, slots) - self.midline_mm) / POSITION_SIGMA_MM
            cost += min(0.5 * away**2, POSITION_COST_CAP)
        return float(cost)

    def _gap(self, before: int, after: int, last_slot: int, next_slot: int) -> float:
        """Cost of the gap between piece ``before`` and piece ``after`` when the
        positions between ``last_slot`` and ``next_slot`` are left empty (neighbours may
        overlap along the arch: crowding, tilted roots).

        The space an empty position leaves is its room in the row (its textbook width
        times this patient's tooth pitch) plus the margins of the teeth either side:
        a tooth's extent fills only ``width_scale / pitch`` of its room (~77% on the
        phantoms), so a missing 16 leaves ~12 mm, not 16's extent of ~8 mm."""
        if self._implants(self.pieces[before].centre_mm, self.pieces[after].centre_mm) > next_slot - last_slot - 1:
            return IMPLANT_SLOT_COST
        gap = self.pieces[after].arc_mm[0] - self.pieces[before].arc_mm[1]
        expected = 0.0
        if next_slot > last_slot + 1:
            margin = max(self.pitch - self.width_scale, 0.0) * 0.5 * (self.textbook[last_slot] + self.textbook[next_slot])
            expected = float(self.pitch * self.textbook[last_slot + 1 : next_slot].sum() + margin)
        if self.order[last_slot] % 10 == 8 or self.order[next_slot] % 10 == 8:
            gap = min(gap, expected)  # third molars often stand apart (impacted, erupting)
        elif expected == 0.0:
            gap = max(gap, 0.0)
        sigma = GAP_SIGMA_MM * (CROWNED_GAP_FACTOR if self.pieces[before].crowned or self.pieces[after].crowned else 1.0)
        return min(0.5 * ((gap - expected) / sigma) ** 2, GAP_COST_CAP)

    def _implants(self, start_mm: float, end_mm: float) -> int:
        """How many implants stand between ``start_mm`` and ``end_mm`` along the arch."""
        return int(np.count_nonzero((self.implants_mm > start_mm) & (self.implants_mm < end_mm)))

    def solve(self) -> list[tuple[int, int, tuple[int, ...]]] | None:
        """The least-cost numbering as units ``(first piece, last piece, positions)`` in
        arch order; None when none fits (more teeth than positions)."""
        n, m = len(self.pieces), len(self.order)
        # best[k][s]: least cost of numbering pieces 0..k-1 with the last unit ending at slot s
        best = np.full((n + 1, m), np.inf)
        back: dict[tuple[int, int], tuple[int, int, tuple[int, ...]]] = {}
        units = [(1, 1), (2, 1), (1, 2)]  # (pieces, slots) a unit takes
        for k in range(n):
            for taken, width in units:
                end = k + taken
                if end > n:
                    continue
                if taken > 1 and any(p.crowned for p in self.pieces[k:end]):
                    continue  # a crown caps one whole tooth
                for start_slot in range(m - width + 1):
                    slots = tuple(range(start_slot, start_slot + width))
                    cost = self._unit(k, end - 1, slots)
                    if k == 0:
                        total, prev = cost, -1
                        if self._implants(-np.inf, self.pieces[0].centre_mm) > start_slot:
                            total += IMPLANT_SLOT_COST
                    else:
                        options = [
                            (best[k][s] + self._gap(k - 1, k, s, start_slot), s) for s in range(start_slot) if np.isfinite(best[k][s])
                        ]
                        if not options:
                            continue
                        total, prev = min(options)
                        total += cost
                    if total < best[end][slots[-1]]:
                        best[end][slots[-1]] = total
                        back[(end, slots[-1])] = (k, prev, slots)
        if not np.isfinite(best[n]).any():
            return None
        behind = self._implants(self.pieces[-1].centre_mm, np.inf)
        final = best[n] + np.where(m - 1 - np.arange(m) < behind, IMPLANT_SLOT_COST, 0.0)
        out: list[tuple[int, int, tuple[int, ...]]] = []
        end, slot = n, int(np.argmin(final))
        while end > 0:
            k, prev, slots = back[(end, slot)]
            out.append((k, end - 1, slots))
            end, slot = k, prev
        return out[::-1]


__all__ = ["Numbering", "ToothPiece", "arch_position", "expected_volume", "number_along_arch", "UPPER_ORDER", "LOWER_ORDER"]
