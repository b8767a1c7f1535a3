"""Network factory: MONAI networks from a config, with an optional cheap 1x1 class head."""

import pytest
import torch

from odontoscan.datasets.errors import ConfigError
from odontoscan.models.networks import build_network, downsampling_factor

UNET = {"channels": [8, 16], "strides": [2]}


def test_head_features_end_the_network_in_a_1x1_class_head():
    net = build_network("UNet", UNET | {"head_features": 4}, spatial_dims=3, in_channels=1, out_channels=27)
    assert isinstance(net[-1], torch.nn.Conv3d) and net[-1].kernel_size == (1, 1, 1)
    assert (net[-1].in_channels, net[-1].out_channels) == (4, 27)
    assert net(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 27, 16, 16, 16)
    assert downsampling_factor("UNet", UNET | {"head_features": 4}) == 2
    flat = build_network("UNet", UNET | {"head_features": 4}, spatial_dims=2, in_channels=1, out_channels=5)
    assert flat(torch.zeros(1, 1, 16, 16)).shape == (1, 5, 16, 16)


def test_bad_head_features_are_named():
    with pytest.raises(ConfigError, match="head_features must be a positive whole number"):
        build_network("UNet", UNET | {"head_features": 0}, spatial_dims=3, in_channels=1, out_channels=3)
