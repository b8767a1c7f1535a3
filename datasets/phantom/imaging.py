"""CBCT image formation on top of the painted phantom: metal streaks, blur, noise,
the cylindrical reconstruction field of view and the scanner's grey-value range.

Partial volume already comes from the painter's one-voxel ramps; here a Gaussian blur
(sigma 0.5 voxel) stands for the system's point spread, white plus low-frequency
correlated noise for quantum noise and scatter, and streaks radiate in axial planes
from each metal object (dark photon-starvation bands and bright rays).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from odontoscan.datasets.phantom.canvas import Canvas
from odontoscan.datasets.phantom.teeth import MetalObject

AIR = -1000.0
HU_MIN, HU_MAX = -1024.0, 5264.0  # stored range; metal saturates at HU_MAX
STREAK_REACH_MM = 30.0


def _streak_pattern(rng: np.random.Generator, size: int, spacing: float, strength: float, radius: float) -> np.ndarray:
    """2D streak field (HU) around a metal object at the centre of a size x size window."""
    half = size // 2
    yy, xx = np.mgrid[-half : size - half, -half : size - half].astype(np.float32) * spacing
    r = np.hypot(xx, yy)
    phi = np.arctan2(yy, xx)
    pattern = np.zeros_like(r)
    for _ in range(14):
        angle = rng.uniform(-np.pi, np.pi)
        width = rng.uniform(0.02, 0.07)
        sign = -1.0 if rng.random() < 0.6 else 1.0
        delta = np.angle(np.exp(1j * (phi - angle)))
        pattern += sign * rng.uniform(0.4, 1.0) * np.exp(-0.5 * (delta / width) ** 2)
    falloff = (radius + 2.0) / (r + radius + 2.0)
    outside = np.clip((r - radius) / 1.0, 0.0, 1.0)
    taper = np.cos(0.5 * np.pi * np.clip(r / (half * spacing), 0.0, 1.0)) ** 2  # fades out inside the window
    return (strength * pattern * falloff * outside * taper).astype(np.float32)


def add_streaks(canvas: Canvas, metals: Sequence[MetalObject], rng: np.random.Generator) -> None:
    """Metal streak artefacts in the axial slices each metal object spans."""
    grid = canvas.grid
    sx = grid.spacing[0]
    size = int(2 * STREAK_REACH_MM / sx) | 1
    for metal in metals:
        centre = grid.head_to_index(metal.centre)
        pattern = _streak_pattern(rng, size, sx, metal.strength, metal.radius)
        half_z = metal.height / 2 / grid.spacing[2]
        z0, z1 = int(np.floor(centre[2] - half_z)), int(np.ceil(centre[2] + half_z)) + 1
        x0, y0 = int(round(centre[0])) - size // 2, int(round(centre[1])) - size // 2
        xs = slice(max(x0, 0), min(x0 + size, grid.shape[0]))
        ys = slice(max(y0, 0), min(y0 + size, grid.shape[1]))
        if xs.stop <= xs.start or ys.stop <= ys.start:
            continue
        local = pattern[xs.start - x0 : xs.stop - x0, ys.start - y0 : ys.stop - y0]
        for z in range(max(z0, 0), min(z1, grid.shape[2])):
            weight = np.cos(0.5 * np.pi * np.clip((z - centre[2]) / max(half_z, 1.0), -1.0, 1.0)) ** 0.5
            canvas.image[xs, ys, z] += weight * local


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], factor: int = 4) -> np.ndarray:
    """Unit-variance low-frequency noise: smoothed coarse noise, upsampled by repetition."""
    low = rng.standard_normal(tuple(n // factor + 1 for n in shape)).astype(np.float32)
    low = ndimage.gaussian_filter(low, 1.0)
    low /= low.std() + 1e-6
    for axis in range(3):
        low = np.repeat(low, factor, axis=axis)
    return low[: shape[0], : shape[1], : shape[2]]


def fov_mask(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """2D (x, y) mask of the cylindrical reconstruction field of view."""
    cx, cy = (shape[0] - 1) / 2 * spacing[0], (shape[1] - 1) / 2 * spacing[1]
    radius = min(shape[0] * spacing[0], shape[1] * spacing[1]) / 2
    x = np.arange(shape[0]) * spacing[0] - cx
    y = np.arange(shape[1]) * spacing[1] - cy
    return (x[:, None] ** 2 + y[None, :] ** 2) <= radius**2


def form_image(canvas: Canvas, metals: Sequence[MetalObject], noise_hu: float, rng: np.random.Generator) -> None:
    """Turn the painted densities into a CBCT-like image, in place."""
    add_streaks(canvas, metals, rng)
    ndimage.gaussian_filter(canvas.image, 0.5, output=canvas.image, truncate=3.0)
    image = canvas.image
    image += noise_hu * 0.5 * _correlated_noise(rng, image.shape)
    for z in range(image.shape[2]):  # slice-wise keeps the temporary small
        image[:, :, z] += rng.standard_normal(image.shape[:2], dtype=np.float32) * noise_hu
    inside = fov_mask(canvas.grid.shape, canvas.grid.spacing)
    image[~inside] = AIR
    canvas.labels[~inside] = 0
    np.clip(image, HU_MIN, HU_MAX, out=image)
