"""Training-time augmentation built from ``config.augmentation`` (MONAI dictionary transforms).

Arrays are channel-first (``[1, x, y, z]`` volumes, ``[1, row, col]`` radiographs), the
label holding channel indices (see :mod:`odontoscan.training.labels`). The left-right
flip mirrors the patient: it reverses the left-right axis (x for canonical RAS
volumes, columns for radiographs) *and* swaps left/right label channels, so a flipped
tooth 36 becomes a tooth 46 instead of a mislabelled mirror image.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.transforms import (
    ClassesToIndicesd,
    Compose,
    DeleteItemsd,
    FgBgToIndicesd,
    MapTransform,
    RandAffined,
    RandCropByLabelClassesd,
    RandCropByPosNegLabeld,
    RandGaussianNoised,
    RandomizableTransform,
    RandShiftIntensityd,
    SpatialPadd,
)

from odontoscan.datasets.geometry import left_right_axis
from odontoscan.training.config import TrainConfig
from odontoscan.training.labels import mirrored_channels

KEYS = ("image", "label")


class FlipLeftRightd(MapTransform):
    """Mirror image and label along the patient's left-right axis and swap paired label channels."""

    def __init__(self, keys: Sequence[str], label_key: str, spatial_axis: int, permutation: Sequence[int]) -> None:
        super().__init__(keys)
        self.label_key = label_key
        self.axis = spatial_axis + 1  # after the channel axis
        self.permutation = torch.as_tensor(list(permutation), dtype=torch.long)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        out = dict(data)
        for key in self.key_iterator(out):
            flipped = torch.flip(torch.as_tensor(out[key]), dims=(self.axis,))
            if key == self.label_key:
                flipped = self.permutation[flipped.long()].to(flipped.dtype)
            out[key] = flipped
        return out


class RandFlipLeftRightd(RandomizableTransform, MapTransform):
    """Apply :class:`FlipLeftRightd` with probability ``prob``."""

    def __init__(self, keys: Sequence[str], label_key: str, spatial_axis: int, permutation: Sequence[int], prob: float = 0.5) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.flip = FlipLeftRightd(keys, label_key, spatial_axis, permutation)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        self.randomize(None)
        return self.flip(data) if self._do_transform else dict(data)


MAX_INDICES_PER_CLASS = 200_000  # candidate patch centres kept per class (a uniform subsample)
INDEX_KEYS = ("label_cls_indices", "label_fg_indices", "label_bg_indices")


def sampling_indices(config: TrainConfig) -> Compose:
    """Deterministic preparation, run once per case before training: pad to the patch
    size and list the candidate patch centres of ``config.sampling`` (per class, or
    foreground/background), so each step's crop does not rescan the whole volume."""
    pad = SpatialPadd(keys=KEYS, spatial_size=list(config.patch_size))
    if config.sampling.kind == "classes":
        index = ClassesToIndicesd(
            keys="label", num_classes=len(config.labels.classes), max_samples_per_class=MAX_INDICES_PER_CLASS
        )
    else:
        index = FgBgToIndicesd(keys="label")
    return Compose([pad, index])


def _crop(config: TrainConfig) -> MapTransform:
    """Patch sampling of ``config.sampling`` (see :class:`~odontoscan.training.config.SamplingConfig`)
    from the centres :func:`sampling_indices` listed."""
    patch, samples = list(config.patch_size), config.samples_per_case
    if config.sampling.kind == "classes":
        weights = config.sampling.class_weights
        ratios = [weights.get(class_id, 0.0 if class_id == 0 else 1.0) for class_id in config.labels.classes]
        return RandCropByLabelClassesd(
            keys=KEYS, label_key="label", spatial_size=patch, ratios=ratios, num_classes=len(config.labels.classes),
            num_samples=samples, indices_key="label_cls_indices", warn=False,
        )
    return RandCropByPosNegLabeld(
        keys=KEYS, label_key="label", spatial_size=patch, pos=3, neg=1, num_samples=samples,
        fg_indices_key="label_fg_indices", bg_indices_key="label_bg_indices",
    )


def train_transforms(config: TrainConfig) -> Compose:
    """Random patch crops (see ``config.sampling``; items prepared by
    :func:`sampling_indices`), affine, flip, intensity shift, noise."""
    aug = config.augmentation
    angle = math.radians(aug.rotate_deg)
    rotate = (angle,) * (3 if config.spatial_dims == 3 else 1)
    steps: list = [_crop(config), DeleteItemsd(keys=INDEX_KEYS)]
    if aug.rotate_deg > 0 or aug.scale > 0:
        steps.append(
            RandAffined(
                keys=KEYS,
                prob=0.5,
                rotate_range=rotate,
                scale_range=(aug.scale,) * config.spatial_dims,
                mode=("bilinear", "nearest"),
                padding_mode="border",
            )
        )
    if aug.flip_left_right:
        permutation = mirrored_channels(config.labels)
        steps.append(RandFlipLeftRightd(KEYS, "label", left_right_axis(config.spatial_dims), permutation, prob=0.5))
    if aug.intensity_shift > 0:
        steps.append(RandShiftIntensityd(keys="image", offsets=aug.intensity_shift, prob=0.5))
    if aug.noise_std > 0:
        steps.append(RandGaussianNoised(keys="image", std=aug.noise_std, prob=0.5))
    return Compose(steps)
