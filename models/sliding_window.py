"""Sliding-window inference with Gaussian importance blending, in numpy, slab by slab.

Windows of ``patch_size`` tile the image with the given overlap; each window's logits
are weighted by a Gaussian importance map (centre trusted more than the rim) and
summed; the blended logits of a voxel are the weighted sum divided by the summed
weights. Windows run in order of their start on the last axis, and as soon as no
further window can touch a slab of the last axis it is finalised (handed to the
caller, who typically takes the argmax) and its buffer reused.

Peak memory of the blending buffers: ``(classes + 1) * prod(shape[:-1]) * patch[-1] * 4``
bytes (a ring buffer one window deep on the last axis), instead of
``classes * prod(shape) * 4`` for whole-volume accumulation; plus one batch of window
logits (``batch * classes * prod(patch) * 4``) and finalised slabs of at most
``chunk`` slices (``classes * prod(shape[:-1]) * chunk * 4``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import product

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # [B, 1, *patch] float32 -> [B, C, *patch] float32


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start indices of windows of length ``patch`` covering ``0..size`` (size >= patch),
    stepping ``patch * (1 - overlap)``; the last window ends exactly at ``size``."""
    if size < patch:
        raise ValueError(f"axis of size {size} is smaller than the window {patch}; pad it first")
    step = max(1, int(patch * (1.0 - overlap)))
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def gaussian_importance(patch_size: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian weights (max 1, sigma = ``sigma_scale * patch``), strictly positive."""
    weights = np.ones((), dtype=np.float64)
    for n in patch_size:
        centre = (n - 1) / 2.0
        sigma = max(sigma_scale * n, 1e-6)
        axis = np.exp(-0.5 * ((np.arange(n) - centre) / sigma) ** 2)
        weights = np.multiply.outer(weights, axis)
    weights /= weights.max()
    return np.maximum(weights, 1e-6).astype(np.float32)


def blend_slabs(
    image: np.ndarray,
    predict: Predict,
    patch_size: Sequence[int],
    *,
    num_classes: int,
    overlap: float = 0.25,
    batch_size: int = 2,
    chunk: int = 8,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, logits)``: blended logits ``[C, *shape[:-1], stop - start]``
    for consecutive slabs of the last axis, in order, covering the whole image.

    ``image`` must be at least ``patch_size`` on every axis (pad it first). The yielded
    array is a temporary: consume it before the next iteration.
    """
    patch = tuple(int(n) for n in patch_size)
    shape = image.shape
    if len(patch) != image.ndim or any(s < p for s, p in zip(shape, patch)):
        raise ValueError(f"image {shape} must be at least the window {patch} on every axis")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    importance = gaussian_importance(patch)
    depth = patch[-1]  # ring buffer: last-axis index z lives at z % depth
    logits_acc = np.zeros((num_classes, *shape[:-1], depth), dtype=np.float32)
    weight_acc = np.zeros((*shape[:-1], depth), dtype=np.float32)
    inner_starts = [window_starts(s, p, overlap) for s, p in zip(shape[:-1], patch[:-1])]
    last_starts = window_starts(shape[-1], depth, overlap)
    done = 0  # slices [0, done) of the last axis have been yielded
    for index, z0 in enumerate(last_starts):
        if z0 > done:
            yield from _finalise(logits_acc, weight_acc, done, z0, chunk)
            done = z0
        corners = list(product(*inner_starts))
        for first in range(0, len(corners), batch_size):
            group = corners[first : first + batch_size]
            batch = np.stack([image[_window(c, z0, patch)] for c in group])[:, None]
            out = predict(np.ascontiguousarray(batch, dtype=np.float32))
            if out.shape != (len(group), num_classes, *patch):
                raise ValueError(f"model returned {out.shape}, expected {(len(group), num_classes, *patch)}")
            if not out.flags.writeable:
                out = out.copy()
            out *= importance  # in place: no window-sized temporaries
            shift = z0 % depth
            split = depth - shift  # window slices [0, split) go to ring slots [shift, depth), the rest wrap to [0, shift)
            for corner, logits in zip(group, out):
                inner = tuple(slice(c, c + p) for c, p in zip(corner, patch[:-1]))
                logits_acc[(slice(None), *inner, slice(shift, depth))] += logits[..., :split]
                weight_acc[(*inner, slice(shift, depth))] += importance[..., :split]
                if shift:
                    logits_acc[(slice(None), *inner, slice(0, shift))] += logits[..., split:]
                    weight_acc[(*inner, slice(0, shift))] += importance[..., split:]
    yield from _finalise(logits_acc, weight_acc, done, shape[-1], chunk)


def _window(corner: tuple[int, ...], z0: int, patch: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(c, c + p) for c, p in zip((*corner, z0), patch))


def _finalise(
    logits_acc: np.ndarray, weight_acc: np.ndarray, start: int, stop: int, chunk: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield blended logits of last-axis slices [start, stop) and clear their ring slots."""
    depth = weight_acc.shape[-1]
    for first in range(start, stop, chunk):
        last = min(first + chunk, stop)
        slots = np.arange(first, last) % depth
        blended = logits_acc[..., slots] / weight_acc[..., slots][None]
        logits_acc[..., slots] = 0.0
        weight_acc[..., slots] = 0.0
        yield first, last, blended
