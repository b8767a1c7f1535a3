"""Tooth numbers read as a sequence along the arch: gaps, tooth sizes and the network's votes."""

from odontoscan.datasets.phantom.anatomy import size_of
from odontoscan.models.numbering import LOWER_ORDER, ToothPiece, expected_volume, number_along_arch

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


def test_a_third_molar_standing_apart_is_not_read_as_a_missing_second_molar():
    pieces = _jaw({46: 46, 45: 45, 44: 44, 43: 43})
    end = pieces[0].arc_mm[0]
    third = ToothPiece({48: 1.0}, expected_volume(48) * SCALE**3, (end - 25.0, end - 16.0))  # 7 mm behind where 47 would end
    second = ToothPiece({47: 1.0}, expected_volume(47) * SCALE**3, (end - 9.5, end))
    assert _numbers([third, second, *pieces]) == [(48,), (47,), (46,), (45,), (44,), (43,)]


def test_a_stray_piece_off_the_end_of_the_arch_takes_its_neighbours_number():
    pieces = _jaw({34: 34, 35: 35, 36: 36, 37: 37, 38: 38})
    end = pieces[-1].arc_mm[1]
    stray = ToothPiece({38: 1.0}, 150.0, (end + 10.0, end + 10.0))  # projects onto the arch's end
    assert _numbers([*pieces, stray]) == [(34,), (35,), (36,), (37,), (38,), (38,)]


def test_no_pieces_no_numbers():
    assert number_along_arch([], upper=True) == []
