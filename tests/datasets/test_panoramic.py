"""Panoramic reformation: arch fitting, reformat modes and the volume <-> pano mapping,
on a synthetic arch of tooth-like blobs with known geometry (a tilted head)."""

from __future__ import annotations

import numpy as np
import pytest

from odontoscan.datasets.panoramic import (
    arch_from_image,
    arch_from_labels,
    pano_mapping,
    reformat,
    tooth_centroids,
)

SPACING = (0.5, 0.5, 0.5)
SHAPE = (140, 130, 90)  # 70 x 65 x 45 mm
CENTRE = np.array([35.0, 25.0, 22.0])  # arch centre (canonical mm)
TILT = np.radians([6.0, -4.0, 8.0])  # roll, pitch, yaw of the head


def rotation() -> np.ndarray:
    ax, ay, az = TILT
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def tooth_positions() -> dict[int, np.ndarray]:
    """FDI -> centre (canonical mm) on an elliptic arch, upper 3 mm above the plane."""
    out = {}
    for i, theta in enumerate(np.radians(np.linspace(-15, 195, 16))):
        # i = 0 is the patient's right (canonical +x) third molar, i = 15 the left one.
        quadrant_upper, quadrant_lower = (1, 4) if i < 8 else (2, 3)
        position = 8 - i if i < 8 else i - 7
        flat = np.array([24.0 * np.cos(theta), 20.0 * np.sin(theta), 0.0])
        for quadrant, height in ((quadrant_upper, 3.0), (quadrant_lower, -3.0)):
            out[quadrant * 10 + position] = CENTRE + rotation() @ (flat + [0.0, 0.0, height])
    return out


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """(image HU, labels): 32 blob teeth in a bone slab, one carious spot on tooth 36."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij"), axis=-1)
    labels = np.zeros(SHAPE, dtype=np.uint16)
    image = np.full(SHAPE, -1000.0, dtype=np.float32)
    normal = rotation() @ [0.0, 0.0, 1.0]
    slab = np.abs((grid - CENTRE) @ normal) < 7.0
    labels[slab] = 1
    image[slab] = 800.0
    for fdi, centre in tooth_positions().items():
        inside = (((grid - centre) / [1.6, 1.6, 2.5]) ** 2).sum(-1) < 1.0
        labels[inside] = fdi
        image[inside] = 2000.0
        if fdi == 36:
            spot = ((grid - centre) ** 2).sum(-1) < 0.8**2
            labels[spot] = 200
    return image, labels


@pytest.fixture(scope="module")
def arch(blobs):
    return arch_from_labels(blobs[1], SPACING)


def test_arch_recovers_occlusal_plane_and_passes_through_the_teeth(arch):
    expected = rotation() @ [0.0, 0.0, 1.0]
    angle = np.degrees(np.arccos(np.clip(arch.normal @ expected, -1, 1)))
    assert angle < 1.5, f"occlusal normal off by {angle:.2f} deg"
    mapping = pano_mapping(arch, SHAPE, SPACING, 0.25)
    centres = np.stack(list(tooth_positions().values()))
    assert np.abs(mapping.depth_mm(centres)).max() < 1.0  # every tooth on the curve
    assert 70.0 < arch.length_mm < 110.0


def test_patient_right_on_image_left_and_upper_teeth_on_top(arch):
    mapping = pano_mapping(arch, SHAPE, SPACING, 0.25)
    pos = tooth_positions()
    rc = {fdi: mapping.to_pano(p[None])[0] for fdi, p in pos.items()}
    assert rc[18][1] < rc[11][1] < rc[21][1] < rc[28][1]
    assert rc[48][1] < rc[41][1] < rc[31][1] < rc[38][1]
    for position in range(1, 9):
        assert rc[10 + position][0] < rc[40 + position][0]  # upper above lower
        assert rc[20 + position][0] < rc[30 + position][0]
    # Teeth at the same height sit on one image row (no smile asked for).
    upper_rows = [rc[f][0] for f in pos if f // 10 in (1, 2)]
    assert np.ptp(upper_rows) < 2.0 / 0.25 * 0.5


def test_arch_from_image_follows_the_label_arch(blobs, arch):
    from_image = arch_from_image(blobs[0], SPACING, percentile=97.0)
    mapping = pano_mapping(arch, SHAPE, SPACING, 0.25)
    centres = np.stack([c for c, _ in tooth_centroids(blobs[1], SPACING).values()])
    assert np.abs(pano_mapping(from_image, SHAPE, SPACING, 0.25).depth_mm(centres)).max() < 2.5
    assert abs(from_image.normal @ arch.normal) > np.cos(np.radians(3.0))
    assert np.abs(mapping.depth_mm(from_image.points[40:-40])).max() < 2.5


def test_reformat_of_a_line_along_the_arch_is_a_horizontal_band(arch):
    volume = np.full(SHAPE, -1000.0, dtype=np.float32)
    line = arch.points[::2]
    idx = np.rint(line / SPACING).astype(int)
    ok = np.all((idx >= 0) & (idx < SHAPE), axis=1)
    for dx in (-1, 0, 1):
        for dz in (-1, 0, 1):
            i = idx[ok] + [dx, 0, dz]
            volume[i[:, 0], i[:, 1], i[:, 2]] = 3000.0
    image, mapping = reformat(volume, SPACING, arch, thickness_mm=6.0, pixel_mm=0.25, mode="xray")
    assert image.dtype == np.float32 and image.shape == mapping.shape
    inner = slice(int(12 / 0.25), mapping.shape[1] - int(12 / 0.25))
    peak_rows = np.argmax(image[:, inner], axis=0)
    expected_row = mapping.top_mm / mapping.pixel_mm  # the occlusal plane (height 0)
    assert np.abs(peak_rows - expected_row).max() <= 3
    assert image[:, inner].max(axis=0).min() > 0.2 and np.median(image) < 0.02


def test_label_mode_keeps_ids_and_finding_and_teeth_win_over_bone(blobs, arch):
    labels = blobs[1]
    pano, mapping = reformat(labels, SPACING, arch, thickness_mm=8.0, pixel_mm=0.25, mode="label")
    assert pano.dtype == np.uint16
    found = set(np.unique(pano).tolist())
    assert found == {0, 1, 200} | set(tooth_positions())
    centre = mapping.to_pano(tooth_positions()[16][None])[0]
    assert pano[int(round(centre[0])), int(round(centre[1]))] == 16  # tooth over bone
    mip, _ = reformat(labels.astype(np.float32), SPACING, arch, thickness_mm=8.0, mode="mip", mapping=mapping)
    assert mip.shape == pano.shape


def test_mapping_round_trip(arch):
    mapping = pano_mapping(arch, SHAPE, SPACING, 0.2, smile_mm=2.5)
    rng = np.random.default_rng(0)
    s = rng.uniform(5, arch.length_mm - 5, 200)
    points = arch.at(s) + rng.uniform(-12, 12, (200, 1)) * arch.normal + rng.uniform(-6, 6, (200, 1)) * arch.buccal(s)
    rowcol = mapping.to_pano(points)
    back = mapping.to_volume(rowcol, mapping.depth_mm(points))
    assert np.abs(back - points).max() < 0.05
    # And pano -> volume -> pano.
    again = mapping.to_pano(mapping.to_volume(rowcol, 0.0))
    assert np.abs(again - rowcol).max() < 0.05


def test_reformat_rejects_unknown_mode(blobs, arch):
    with pytest.raises(ValueError, match="mode must be one of"):
        reformat(blobs[0], SPACING, arch, mode="cine")


def test_arch_needs_teeth():
    with pytest.raises(ValueError, match="no tooth labels"):
        arch_from_labels(np.zeros((10, 10, 10), dtype=np.uint16), (1.0, 1.0, 1.0))
