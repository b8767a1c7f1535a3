"""Patch sampling: class-weighted crops put thin, rare structures in front of the network."""

import numpy as np
import pytest
from helpers.onnx_models import tiny_train_config

from odontoscan.datasets.errors import ConfigError
from odontoscan.training.augment import sampling_indices, train_transforms
from odontoscan.training.config import parse_config


def _config(sampling: dict) -> object:
    document = tiny_train_config() | {"sampling": sampling, "samples_per_case": 8}
    document["augmentation"] = {"rotate_deg": 0, "scale": 0, "intensity_shift": 0, "noise_std": 0}
    return parse_config(document)


def _item() -> dict:
    """A 64^3 case whose only canal voxels (channel 3: class id 3) sit in one corner."""
    label = np.zeros((1, 64, 64, 64), np.uint8)
    label[0, 8:40, 8:56, 30:50] = 1  # a big jaw
    label[0, 56:60, 56:60, 56:60] = 3  # a small canal piece
    return {"image": np.zeros((1, 64, 64, 64), np.float32), "label": label}


def test_class_weights_centre_patches_on_the_weighted_class():
    weights = {k: 0.0 for k in (1, 2, 4, 11, 21, 31, 41)} | {3: 1.0}
    config = _config({"kind": "classes", "class_weights": weights})
    transforms = train_transforms(config)
    transforms.set_random_state(seed=0)
    patches = transforms(sampling_indices(config)(_item()))
    assert len(patches) == 8
    assert all((np.asarray(p["label"]) == 3).any() for p in patches)


def test_foreground_sampling_mostly_misses_the_small_structure():
    config = _config({"kind": "foreground"})
    transforms = train_transforms(config)
    transforms.set_random_state(seed=0)
    patches = transforms(sampling_indices(config)(_item()))
    assert sum((np.asarray(p["label"]) == 3).any() for p in patches) < 8


def test_weights_for_ids_that_are_no_class_are_refused():
    with pytest.raises(ConfigError, match=r"sampling.class_weights names ids \[7\]"):
        _config({"kind": "classes", "class_weights": {7: 2.0}})
