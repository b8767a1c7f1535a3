"""Network factory: a MONAI segmentation network from its config (training and export only).

This is one of the two places in ``models`` allowed to import torch/monai (the other
is ONNX export in ``training``); inference never imports it, it runs the exported
ONNX file.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import DynUNet, SegResNet, UNet

from odontoscan.datasets.errors import ConfigError

_DEFAULTS: dict[str, dict[str, Any]] = {
    "UNet": {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1, "norm": "instance"},
    "SegResNet": {"init_filters": 16, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},
    "DynUNet": {
        "kernel_size": (3, 3, 3, 3),
        "strides": (1, 2, 2, 2),
        "upsample_kernel_size": (2, 2, 2),
        "filters": (16, 32, 64, 128),
        "norm_name": "instance",
    },
}
_CLASSES = {"UNet": UNet, "SegResNet": SegResNet, "DynUNet": DynUNet}


def build_network(
    name: str, kwargs: dict[str, Any], *, spatial_dims: int, in_channels: int, out_channels: int
) -> torch.nn.Module:
    """Instantiate network ``name`` ("UNet", "SegResNet", "DynUNet") with ``kwargs``
    over the defaults above; the caller fixes dimensions and channel counts."""
    if name not in _CLASSES:
        raise ConfigError(f"Unknown network '{name}'; choose one of {sorted(_CLASSES)}.")
    arguments = {**_DEFAULTS[name], **kwargs}
    arguments.update(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels)
    try:
        return _CLASSES[name](**arguments)
    except TypeError as exc:
        raise ConfigError(f"network {name}: {exc}; check network.kwargs in the config.") from None


def downsampling_factor(name: str, kwargs: dict[str, Any]) -> int:
    """Product of the strides: input sizes must be multiples of it."""
    arguments = {**_DEFAULTS.get(name, {}), **kwargs}
    if name == "SegResNet":
        return 2 ** (len(arguments["blocks_down"]) - 1)
    factor = 1
    for stride in arguments["strides"]:
        factor *= stride if isinstance(stride, int) else max(stride)
    return factor
