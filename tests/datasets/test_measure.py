"""Measurement helpers on hand-made masks with known answers."""

import numpy as np
import pytest

from odontoscan.datasets import measure

SPACING = (0.5, 0.5, 1.0)


def sphere(shape, centre_mm, radius_mm, spacing=SPACING):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre_mm)) <= radius_mm**2


def test_shortest_distance_between_two_spheres():
    a = sphere((80, 40, 20), (10, 10, 10), 3)
    b = sphere((80, 40, 20), (30, 10, 10), 4)
    closest = measure.shortest_distance(a, b, SPACING)
    assert closest.distance_mm == pytest.approx(20 - 3 - 4, abs=0.6)
    assert a[closest.index_a] and b[closest.index_b]
    assert measure.shortest_distance(a, b, SPACING, search_mm=2.0).distance_mm == pytest.approx(closest.distance_mm)


def test_shortest_distance_overlap_and_empty():
    a = sphere((30, 30, 10), (7, 7, 5), 3)
    assert measure.shortest_distance(a, a, SPACING).distance_mm == 0.0
    assert measure.shortest_distance(a, np.zeros_like(a), SPACING) is None


def test_volume_and_diameter_of_a_sphere():
    mask = sphere((60, 60, 30), (15, 15, 15), 6)
    assert measure.volume_mm3(mask, SPACING) == pytest.approx(4 / 3 * np.pi * 6**3, rel=0.05)
    assert measure.largest_diameter_mm(mask, SPACING) == pytest.approx(12.0, abs=0.8)
    assert measure.centroid_index(mask) * SPACING == pytest.approx([15, 15, 15], abs=0.1)


def test_bounding_box_with_margin_is_clipped():
    mask = np.zeros((10, 10, 10), bool)
    mask[1:3, 4:6, 8] = True
    assert measure.bounding_box(mask, 2) == (slice(0, 5), slice(2, 8), slice(6, 10))
    assert measure.bounding_box(np.zeros_like(mask)) is None


def test_principal_axis_and_angle_of_a_tilted_rod():
    mask = np.zeros((60, 60, 60), bool)
    for t in range(-20, 21):
        mask[30 + t, 30 + t, 30] = True  # 45 degrees in the x-y plane
    axis = measure.principal_axis(mask, (1.0, 1.0, 1.0))
    assert measure.angle_between_deg(axis, (1, 0, 0)) == pytest.approx(45.0, abs=0.5)
    assert measure.angle_between_deg(axis, (0, 0, 1)) == pytest.approx(90.0, abs=0.5)


def test_runs_along_rays():
    labels = np.zeros((40, 10, 10), np.uint16)
    labels[10:30, :, :] = 1
    labels[30:33, :, :] = 3
    start = np.array([0.0, 2.0, 2.0])
    assert measure.first_hit_mm(labels, (1, 1, 1), start, (1, 0, 0), (1,)) == pytest.approx(10.0, abs=0.5)
    assert measure.first_hit_mm(labels, (1, 1, 1), start, (-1, 0, 0), (1,)) is None
    assert measure.run_length_mm(labels, (1, 1, 1), (10.0, 2, 2), (1, 0, 0), (1,)) == pytest.approx(20.0, abs=0.5)
    low, high = measure.extent_along_mm(labels == 1, (1, 1, 1), (0, 0, 0), (2, 0, 0))
    assert (low, high) == (10.0, 29.0)
