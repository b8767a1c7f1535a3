"""Canonical orientation: permutations/flips, orientation codes, exact round trips."""

import numpy as np
import pytest

from odontoscan.datasets.geometry import canonical_axes, canonicalize, orientation_code, to_source


@pytest.mark.parametrize(
    ("direction", "code"),
    [
        (np.eye(3), "LPS"),
        (np.diag([-1.0, -1.0, 1.0]), "RAS"),
        (np.diag([1.0, 1.0, -1.0]), "LPI"),
        (np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float), "PIL"),
    ],
)
def test_orientation_code_names_where_each_axis_points(direction, code):
    assert orientation_code(direction) == code


def test_canonicalize_lps_flips_first_two_axes_and_moves_origin():
    array = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    canon, spacing, geom = canonicalize(array, (0.5, 0.6, 0.7), (0.0, 0.0, 0.0), np.eye(3))
    assert np.array_equal(canon, array[::-1, ::-1, :])
    assert spacing == (0.5, 0.6, 0.7)
    # canonical voxel 0 is stored voxel (1, 2, 0): LPS (0.5, 1.2, 0)
    assert geom.origin == pytest.approx((0.5, 1.2, 0.0))
    assert np.allclose(geom.direction, np.diag([-1.0, -1.0, 1.0]))
    assert geom.source_orientation == "LPS"


def test_round_trip_to_source_is_exact_for_every_permutation_and_flip():
    rng = np.random.default_rng(1)
    array = rng.normal(size=(3, 4, 5))
    for perm in ([0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1]):
        for signs in ([1, 1, 1], [-1, 1, -1], [-1, -1, -1]):
            direction = np.eye(3)[:, perm] * np.array(signs)
            canon, _, geom = canonicalize(array, (1.0, 2.0, 3.0), (5.0, 6.0, 7.0), direction)
            assert orientation_code(geom.direction) == "RAS"
            assert np.array_equal(to_source(canon, geom), array)


def test_slightly_oblique_direction_maps_to_closest_axes():
    angle = np.radians(8)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    axes, flips = canonical_axes(rot)
    assert axes == (0, 1, 2)
    assert flips == (True, True, False)


def test_index_to_lps_matches_origin_and_direction():
    array = np.zeros((4, 4, 4))
    _, spacing, geom = canonicalize(array, (0.3, 0.3, 0.3), (1.0, 2.0, 3.0), np.eye(3))
    # canonical index (3, 3, 0) is stored voxel (0, 0, 0): the stored origin
    assert geom.index_to_lps(np.array([3, 3, 0]), spacing) == pytest.approx([1.0, 2.0, 3.0])
