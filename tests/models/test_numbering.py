"""Tooth numbers read as a sequence along the arch: gaps, tooth sizes and the network's votes."""

from odontoscan.datasets.phantom.anatomy import size_of
from odontoscan.models.numbering import LOWER_ORDER, UPPER_ORDER, ToothPiece, expected_volume, number_along_arch

SCALE = 0.9  # this patient's teeth against the textbook sizes


def _jaw(teeth: dict[int, int | None], start_mm: float = 0.0) -> list[ToothPiece]:
    """Pieces of a lower jaw standing side by side in arch order, textbook sizes times
    ``SCALE``: ``teeth`` maps each position (FDI) to the number the network voted for
    the tooth standing there, or None where the tooth is missing (its space left empty)."""
    pieces, at = [], start_mm
    for fdi in LOWER_ORDER:
        if fdi not in teeth:
            continue
        width = size_of(fdi).width * SCALE
        vote = teeth[fdi]
        if vote is not None:
            pieces.append(ToothPiece({vote: 1.0}, expected_volume(fdi) * SCALE**3, (at, at + width)))
        at += width
    return pieces


def _numbers(pieces: list[ToothPiece]) -> list[tuple[int, ...]]:
    return [n.numbers for n in number_along_arch(pieces, upper=False)]


def test_a_full_jaw_keeps_the_numbers_the_network_voted_for():
    row = {fdi: fdi for fdi in LOWER_ORDER}
    assert _numbers(_jaw(row)) == [(fdi,) for fdi in LOWER_ORDER]


def test_a_run_of_teeth_the_network_shifted_into_a_gap_gets_its_own_numbers():
    # 44 is missing and its space is empty; the network called 45 "44", 46 "45", 47 "46"
    row = {48: 48, 47: 46, 46: 45, 45: 44, 44: None, 43: 43, 42: 42, 41: 41, 31: 31, 32: 32, 33: 33}
    assert _numbers(_jaw(row)) == [(48,), (47,), (46,), (45,), (43,), (42,), (41,), (31,), (32,), (33,)]


def test_a_tooth_in_two_pieces_gets_one_number_and_its_missing_neighbour_stays_missing():
    row = {47: 47, 46: 46, 45: 45, 44: None, 43: 43, 42: 42, 41: 41}
    pieces = _jaw(row)
    whole = pieces[2]  # 45, broken into a distal and a mesial half; the network called the mesial half "44"
    (start, end), half = whole.arc_mm, whole.volume_mm3 / 2
    middle = (start + end) / 2
    pieces[2:3] = [ToothPiece({45: 1.0}, half, (start, middle)), ToothPiece({44: 1.0}, half, (middle, end))]
    assert _numbers(pieces) == [(47,), (46,), (45,), (45,), (43,), (42,), (41,)]


def test_two_teeth_in_one_piece_are_split_in_the_ratio_of_their_widths():
    pieces = _jaw({46: 46, 45: 45, 44: 44, 43: 43})
    first, second = pieces[1], pieces[2]
    joined = ToothPiece({45: 0.5, 44: 0.5}, first.volume_mm3 + second.volume_mm3, (first.arc_mm[0], second.arc_mm[1]))
    numbering = number_along_arch([pieces[0], joined, pieces[3]], upper=False)
    assert [n.numbers for n in numbering] == [(46,), (45, 44), (43,)]
    assert numbering[1].cut_mm is not None and abs(numbering[1].cut_mm - first.arc_mm[1]) < 1e-6  # 45 and 44 are equally wide
    assert list(numbering[1].at([first.arc_mm[0] + 1.0, second.arc_mm[1] - 1.0])) == [45, 44]


def test_a_crowned_piece_as_wide_as_two_teeth_is_two_teeth():
    """A lower jaw as the pipeline saw it on a tuning phantom (3045 small): one crowned
    piece 12 mm long holds 43 and 42, and 41 stands right next to it. Narrow is no
    evidence against a crowned stump, but this wide is."""

    def piece(start, end, volume, votes, crowned=False):
        return ToothPiece(votes, volume, (start, end), crowned)

    jaw = [
        piece(6.5, 15.8, 797.5, {48: 0.79, 47: 0.21}), piece(17.0, 25.2, 460.7, {47: 1.0}, True),
        piece(38.8, 44.5, 206.7, {45: 1.0}, True), piece(52.8, 65.0, 474.1, {43: 0.65, 44: 0.26}, True),
        piece(66.0, 70.0, 182.5, {41: 0.6, 42: 0.4}), piece(70.8, 75.0, 204.1, {31: 0.66, 41: 0.34}),
        piece(75.5, 80.2, 243.6, {32: 0.88, 31: 0.12}), piece(81.2, 87.5, 591.8, {33: 0.9, 32: 0.1}),
        piece(96.8, 101.8, 488.4, {35: 0.7, 34: 0.25}), piece(115.8, 123.8, 775.0, {37: 0.54, 36: 0.46}),
        piece(131.2, 141.0, 791.2, {38: 1.0}),
    ]
    assert _numbers(jaw) == [(48,), (47,), (45,), (43, 42), (41,), (31,), (32,), (33,), (35,), (37,), (38,)]


def test_a_third_molar_standing_apart_is_not_read_as_a_missing_second_molar():
    pieces = _jaw({46: 46, 45: 45, 44: 44, 43: 43})
    end = pieces[0].arc_mm[0]
    third = ToothPiece({48: 1.0}, expected_volume(48) * SCALE**3, (end - 25.0, end - 16.0))  # 7 mm behind where 47 would end
    second = ToothPiece({47: 1.0}, expected_volume(47) * SCALE**3, (end - 9.5, end))
    assert _numbers([third, second, *pieces]) == [(48,), (47,), (46,), (45,), (44,), (43,)]


def test_the_molar_behind_a_missing_first_molar_is_the_second_molar_when_teeth_fill_three_quarters_of_their_room():
    """As the pipeline sees an upper jaw: each tooth's extent is ~77% of its room in the
    row (textbook width), so the space a missing 16 leaves (its room plus its
    neighbours' margins) is wider than 16 scaled to the extents, and the molar behind
    it, half voted 18, must not be pushed back to 18."""
    share, pieces, at = 0.77, [], 0.0
    for fdi in UPPER_ORDER:
        room = size_of(fdi).width
        if fdi not in (18, 16, 28):
            votes = {17: 0.63, 18: 0.37} if fdi == 17 else {fdi: 1.0}
            margin = 0.5 * (1.0 - share) * room
            pieces.append(ToothPiece(votes, expected_volume(fdi) * share**3, (at + margin, at + room - margin)))
        at += room
    numbers = [n.numbers for n in number_along_arch(pieces, upper=True)]
    assert numbers == [(fdi,) for fdi in UPPER_ORDER if fdi not in (18, 16, 28)]


def test_teeth_either_side_of_an_implant_leave_its_position_empty():
    """An upper jaw as the pipeline saw it on a tuning phantom (3137 small): implants at
    15 and 24, the crowned 25 next to the 24 implant reaching into its room (the
    implant's crown touches its own). Without the implants 25 reads as 24 and 25 in one."""

    def piece(start, end, volume, votes, crowned=False):
        return ToothPiece(votes, volume, (start, end), crowned)

    jaw = [
        piece(3.5, 9.8, 604, {18: 1.0}), piece(12.0, 18.8, 792, {17: 0.94, 18: 0.06}), piece(21.3, 30.8, 847, {16: 1.0}),
        piece(35.8, 42.5, 526, {14: 1.0}), piece(44.2, 49.8, 609, {13: 1.0}), piece(51.1, 55.5, 328, {12: 1.0}),
        piece(56.5, 62.2, 532, {11: 1.0}), piece(63.5, 69.0, 476, {21: 0.99, 22: 0.01}), piece(69.8, 74.8, 360, {22: 0.89, 23: 0.11}),
        piece(76.0, 83.4, 706, {23: 1.0}), piece(87.8, 96.0, 454, {25: 1.0}, True), piece(97.0, 104.2, 518, {26: 1.0}, True),
        piece(105.8, 113.8, 919, {27: 1.0}), piece(115.8, 122.8, 782, {28: 1.0}),
    ]
    numbers = [n.numbers for n in number_along_arch(jaw, upper=True, implants_mm=[34.0, 85.25])]
    assert numbers == [(f,) for f in (18, 17, 16, 14, 13, 12, 11, 21, 22, 23, 25, 26, 27, 28)]
    alone = [n.numbers for n in number_along_arch(jaw[9:], upper=True, implants_mm=[85.25])]
    assert alone[:2] == [(23,), (25,)]


def test_a_tooth_with_an_implant_behind_it_is_not_the_last_of_the_row():
    # 48 is an implant; the network, seeing no tooth behind 47, called every tooth one further back
    pieces = _jaw({48: None, 47: 48, 46: 47, 45: 46, 44: 45})
    implant = pieces[0].arc_mm[0] - 0.5 * size_of(48).width * SCALE
    assert _numbers(pieces) == [(48,), (47,), (46,), (45,)]
    assert [n.numbers for n in number_along_arch(pieces, upper=False, implants_mm=[implant])] == [(47,), (46,), (45,), (44,)]


def test_a_stray_piece_off_the_end_of_the_arch_takes_its_neighbours_number():
    pieces = _jaw({34: 34, 35: 35, 36: 36, 37: 37, 38: 38})
    end = pieces[-1].arc_mm[1]
    stray = ToothPiece({38: 1.0}, 150.0, (end + 10.0, end + 10.0))  # projects onto the arch's end
    assert _numbers([*pieces, stray]) == [(34,), (35,), (36,), (37,), (38,), (38,)]


def test_no_pieces_no_numbers():
    assert number_along_arch([], upper=True) == []
