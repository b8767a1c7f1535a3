"""Tiny hand-built ONNX segmentation models (no torch) and a tiny training config for export tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from odontoscan.models.metadata import ModelMetadata, write_model_dir
from odontoscan.models.preprocess import PreprocessConfig

WINDOW = {"kind": "window", "lower": 0.0, "upper": 1000.0}


def pointwise_model(weights: list[float], biases: list[float], spatial_dims: int = 3) -> bytes:
    """A 1x1(x1) convolution: logits[c] = weights[c] * x + biases[c], dynamic batch and spatial axes."""
    channels = len(weights)
    kernel = np.asarray(weights, dtype=np.float32).reshape(channels, 1, *([1] * spatial_dims))
    spatial = ["x", "y", "z"][:spatial_dims]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"])],
        "pointwise",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, *spatial])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", channels, *spatial])],
        [numpy_helper.from_array(kernel, "w"), numpy_helper.from_array(np.asarray(biases, dtype=np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def metadata_for(
    classes: list[int],
    *,
    spacing_mm: tuple[float, ...] | None = None,
    patch_size: tuple[int, ...] = (16, 16, 16),
    merge: dict[int, int] | None = None,
    task: str = "cbct",
) -> ModelMetadata:
    return ModelMetadata(
        name="test-model",
        version="0.0.1",
        task=task,
        spatial_dims=len(patch_size),
        modalities=["CT"] if task == "cbct" else ["PX", "DX", "IO", "CR"],
        classes=classes,
        merge=merge or {},
        label_names={k: f"label {k}" for k in classes},
        preprocess=PreprocessConfig(spacing_mm=spacing_mm, intensity=WINDOW),
        patch_size=list(patch_size),
        training_data="none: a hand-built test model",
        opset=17,
        created=date(2026, 1, 1),
        odontoscan_version="0+test",
    )


def threshold_model_dir(out: Path, classes: list[int] | None = None, **kwargs) -> Path:
    """Model dir whose channel 1 wins where the normalised image exceeds 0.5 (grey value > 500),
    other channels never win; ``classes[1]`` is the id painted there."""
    classes = classes or [0, 36]
    weights = [0.0, 1.0] + [0.0] * (len(classes) - 2)
    biases = [0.5, 0.0] + [-10.0] * (len(classes) - 2)
    spatial_dims = len(kwargs.get("patch_size", (16, 16, 16)))
    write_model_dir(pointwise_model(weights, biases, spatial_dims), metadata_for(classes, **kwargs), out)
    return out


def tiny_train_config(classes: list[int] | None = None) -> dict:
    """A TrainConfig document for a tiny 3D UNet (fast to export)."""
    return {
        "task": "cbct",
        "name": "tiny",
        "data": {"source": "phantom", "train_seeds": {"start": 0, "stop": 4}, "val_seeds": {"start": 4, "stop": 6}, "size": "small"},
        "labels": {"classes": classes or [0, 1, 2, 3, 4, 11, 21, 31, 41], "merge": {111: 11}},
        "preprocess": {"spacing_mm": [1.6, 1.6, 1.6], "intensity": {"kind": "window", "lower": -1000, "upper": 3000}},
        "network": {"name": "UNet", "kwargs": {"channels": [8, 16], "strides": [2]}},
        "patch_size": [32, 32, 32],
        "epochs": 1,
    }
