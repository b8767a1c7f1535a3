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
    over the defaults above; the caller fixes dimensions and channel counts.

    ``kwargs["head_features"] = F`` (optional, any network) makes the network end in F
    feature maps followed by a PReLU and a 1x1 convolution to the classes. A MONAI
    UNet's last blocks run at full resolution with ``out_channels`` maps, so with many
    classes they dominate a training step (31 classes: ~3 s, 10 classes: ~0.75 s for a
    96x96x64 patch on 2 CPU cores); a 16-feature end plus a 1x1 head costs nearly what
    a 16-class network does, whatever the number of classes.
    """
    if name not in _CLASSES:
        raise ConfigError(f"Unknown network '{name}'; choose one of {sorted(_CLASSES)}.")
    arguments = {**_DEFAULTS[name], **kwargs}
    head = arguments.pop("head_features", None)
    if head is not None and (not isinstance(head, int) or head < 1):
        raise ConfigError(f"network.kwargs.head_features must be a positive whole number, got {head!r}.")
    arguments.update(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=head or out_channels)
    try:
        body = _CLASSES[name](**arguments)
    except TypeError as exc:
        raise ConfigError(f"network {name}: {exc}; check network.kwargs in the config.") from None
    if head is None:
        return body
    conv = torch.nn.Conv3d if spatial_dims == 3 else torch.nn.Conv2d
    return torch.nn.Sequential(body, torch.nn.PReLU(), conv(head, out_channels, kernel_size=1))


def downsampling_factor(name: str, kwargs: dict[str, Any]) -> int:
    """Product of the strides: input sizes must be multiples of it."""
    arguments = {**_DEFAULTS.get(name, {}), **kwargs}
    arguments.pop("head_features", None)
    if name == "SegResNet":
        return 2 ** (len(arguments["blocks_down"]) - 1)
    factor = 1
    for stride in arguments["strides"]:
        factor *= stride if isinstance(stride, int) else max(stride)
    return factor
