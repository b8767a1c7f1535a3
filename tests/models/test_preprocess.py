"""Shared preprocessing: resampling keeps the field of view and labels, normalisation scales to [0, 1]."""

import numpy as np
import pytest
from scipy import ndimage
from pydantic import ValidationError

from odontoscan.models.preprocess import (
    IntensityPercentiles,
    IntensityWindow,
    PreprocessConfig,
    normalise,
    preprocess,
    resample,
    resample_labels,
    resampled_shape,
)


def test_resampled_shape_keeps_the_field_of_view():
    assert resampled_shape((400, 400, 300), (0.3, 0.3, 0.3), (0.6, 0.6, 0.6)) == (200, 200, 150)
    assert resampled_shape((3,), (1.0,), (10.0,)) == (1,)


def test_nearest_resampling_keeps_label_ids_and_positions():
    labels = np.zeros((20, 20, 20), dtype=np.uint16)
    labels[10:14, 2:6, 8:12] = 36
    out = resample(labels, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), order=0)
    assert out.shape == (10, 10, 10)
    assert set(np.unique(out)) == {0, 36}
    centre = np.argwhere(out == 36).mean(axis=0) * 1.0
    assert centre == pytest.approx(np.array([11.5, 3.5, 9.5]) * 0.5, abs=0.6)


def test_linear_resampling_of_a_ramp_stays_a_ramp():
    ramp = np.tile(np.arange(16, dtype=np.float32), (8, 1))
    out = resample(ramp, (1.0, 1.0), (1.0, 2.0))
    assert out.shape == (8, 8)
    assert np.all(np.diff(out[0]) > 0)


def test_shrinking_averages_fine_detail_instead_of_sampling_it():
    """A 0.25 mm scan shrunk to 1 mm: one bright voxel in every four becomes their mean,
    wherever the 1 mm grid happens to fall, so a scan re-encoded at another spacing
    reaches the model looking the same."""
    line = np.tile(np.array([0.0, 0.0, 0.0, 1000.0], dtype=np.float32), 20)
    for shift in (0, 1, 2):
        stripes = line[shift : shift + 64, None].repeat(8, axis=1)
        out = resample(stripes, (0.25, 0.25), (1.0, 1.0))
        assert out.shape == (16, 2)
        np.testing.assert_allclose(out[2:-2], 250.0, atol=80.0)  # sampled: 0, 500 or 1000 by where the grid falls
    labels = np.tile(np.array([0, 0, 0, 7], dtype=np.uint8), 16)[:, None].repeat(8, axis=1)
    assert set(np.unique(resample(labels, (0.25, 0.25), (1.0, 1.0), order=0))) <= {0, 7}  # label maps are not smoothed


def _balls(spacing: float, shape: tuple[int, ...]) -> np.ndarray:
    """Two touching balls (ids 12 and 300, radius 4 mm) sampled at ``spacing`` mm."""
    grid = (np.indices(shape).T + 0.5) * spacing
    out = np.zeros(shape, dtype=np.uint16)
    out[np.linalg.norm(grid - [10.0, 10.0, 6.0], axis=-1).T <= 4.0] = 12
    out[np.linalg.norm(grid - [10.0, 10.0, 14.0], axis=-1).T <= 4.0] = 300
    return out


def test_enlarged_label_maps_follow_the_shape_between_coarse_voxels():
    """A 0.6 mm map put on a 0.2 mm grid: boundaries run between the coarse voxels, so
    each ball is closer to the true one than nearest-neighbour steps, and no id appears
    that was not there."""
    coarse, truth = _balls(0.6, (34, 34, 34)), _balls(0.2, (102, 102, 102))

    def dice(a: np.ndarray, value: int) -> float:
        return 2 * np.sum((a == value) & (truth == value)) / (np.sum(a == value) + np.sum(truth == value))

    smooth = resample_labels(coarse, (0.6,) * 3, (0.2,) * 3, shape=truth.shape)
    steps = resample(coarse, (0.6,) * 3, (0.2,) * 3, order=0, shape=truth.shape)
    assert smooth.dtype == coarse.dtype and set(np.unique(smooth)) == {0, 12, 300}
    for value in (12, 300):
        assert dice(smooth, value) > dice(steps, value) + 0.01
    inside = ndimage.binary_erosion(steps == 12, iterations=4)  # far from any boundary the two agree
    assert np.all(smooth[inside] == 12)


@pytest.mark.parametrize("shapes", [[(6, 8), (9, 1)], [(7, 9, 5), (1, 6, 8), (12, 4, 3)]])
def test_enlarged_labels_take_the_label_whose_interpolated_indicator_is_highest(shapes):
    """Scored only where labels meet, the answer is still that of interpolating every
    label's indicator everywhere (checked on speckled maps of 2D and 3D sizes, one axis
    a single voxel thick, where the winner is clear); a tie goes to the lower id."""
    rng = np.random.default_rng(len(shapes))
    for shape in shapes:
        ndim = len(shape)
        labels = np.array([0, 3, 3, 17, 1041], dtype=np.uint16)[rng.integers(0, 5, shape)]
        target = tuple(int(n * f) for n, f in zip(shape, (2.5, 3.0, 1.7)))
        out = resample_labels(labels, (1.0,) * ndim, (0.5,) * ndim, shape=target)
        centres = np.meshgrid(*[(np.arange(new) + 0.5) * old / new - 0.5 for old, new in zip(shape, target)], indexing="ij")
        ids = np.unique(labels)
        scores = np.stack([ndimage.map_coordinates((labels == i).astype(float), centres, order=1, mode="nearest") for i in ids])
        ranked = np.sort(scores, axis=0)
        clear = ranked[-1] - ranked[-2] > 1e-3
        assert clear.mean() > 0.5
        np.testing.assert_array_equal(out[clear], ids[np.argmax(scores, axis=0)][clear])
    halves = np.array([[0, 5], [7, 5]], dtype=np.uint8)  # the middle of three columns is half and half
    np.testing.assert_array_equal(resample_labels(halves, (1.0, 1.0), (1.0, 2 / 3), shape=(2, 3)), [[0, 0, 5], [7, 5, 5]])


def test_label_maps_are_resampled_by_nearest_neighbour_when_shrunk_or_kept():
    labels = _balls(0.6, (34, 34, 34))
    assert resample_labels(labels, (0.6,) * 3, (0.6,) * 3) is labels
    shrunk = resample_labels(labels, (0.6,) * 3, (1.0,) * 3)
    assert np.array_equal(shrunk, resample(labels, (0.6,) * 3, (1.0,) * 3, order=0))


def test_same_spacing_returns_the_input():
    image = np.ones((4, 4))
    assert resample(image, (1.0, 1.0), (1.0, 1.0)) is image


def test_window_normalisation():
    out = normalise(np.array([-2000.0, -1000.0, 1000.0, 5000.0]), IntensityWindow(lower=-1000, upper=3000))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0])


def test_percentile_normalisation_is_gain_independent():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(64, 64))
    a = normalise(image, IntensityPercentiles())
    b = normalise(image * 40 + 900, IntensityPercentiles())
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_config_validation_names_the_problem():
    with pytest.raises(ValidationError, match="window upper"):
        IntensityWindow(lower=10, upper=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        PreprocessConfig.model_validate({"intensity": {"kind": "window", "lower": 0, "upper": 1}, "spcing_mm": [1]})


def test_preprocess_resamples_then_normalises():
    config = PreprocessConfig(spacing_mm=(0.6, 0.6, 0.6), intensity={"kind": "window", "lower": -1000, "upper": 3000})
    out = preprocess(np.full((10, 10, 10), 1000.0), (0.3, 0.3, 0.3), config)
    assert out.shape == (5, 5, 5)
    np.testing.assert_allclose(out, 0.5)
