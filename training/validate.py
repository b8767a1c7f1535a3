"""Validation on whole preprocessed cases: sliding-window inference, per-class Dice and HD95.

Model selection uses ``val_dice``: the mean Dice over the foreground classes present in
the validation cases (a class absent from every case's ground truth is left out rather
than counted as 0 or 1). HD95 is in millimetres when the config fixes the voxel size
(``preprocess.spacing_mm``), else in voxels.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from monai.networks.utils import one_hot

from odontoscan.datasets.labels import FDI_TEETH, Label
from odontoscan.training.config import TrainConfig

GROUPS = {
    "teeth": set(FDI_TEETH),
    "jaws": {int(Label.LOWER_JAWBONE), int(Label.UPPER_JAWBONE)},
    "canals": {int(Label.LEFT_IAC), int(Label.RIGHT_IAC)},
}


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


@torch.no_grad()
def validate(
    model: torch.nn.Module, items: list[dict], config: TrainConfig, device: torch.device, amp: bool = False
) -> dict[str, float]:
    """Metrics over ``items``: ``val_dice``, ``val_dice_<id>``, ``val_hd95_<id>`` per class
    id and ``val_dice_<group>`` for teeth / jaws / canals when the config has them."""
    model.eval()
    classes = config.labels.classes
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    hd95 = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")
    spacing = list(config.preprocess.spacing_mm) if config.preprocess.spacing_mm else None
    dice_rows, hd_rows = [], []
    for item in items:
        image = torch.as_tensor(item["image"])[None].to(device)
        label = torch.as_tensor(item["label"])[None].long().to(device)
        with torch.autocast(device_type=device.type, enabled=amp):
            logits = sliding_window_inference(image, config.patch_size, sw_batch_size=2, predictor=model, overlap=0.25)
        prediction = one_hot(logits.argmax(1, keepdim=True), len(classes))
        truth = one_hot(label, len(classes))
        # Per-case values straight from the call: aggregate() would all-gather across
        # ranks, and under torchrun only rank 0 validates.
        dice_rows.append(dice(prediction, truth).cpu().numpy())
        with warnings.catch_warnings():  # empty classes: nan / inf, filtered below
            warnings.simplefilter("ignore")
            hd_rows.append(hd95(prediction, truth, spacing=spacing).cpu().numpy())
    per_case_dice = np.concatenate(dice_rows)  # [cases, classes - 1], nan where the truth is empty
    per_case_hd = np.concatenate(hd_rows)
    metrics: dict[str, float] = {}
    class_dice = {}
    for column, class_id in enumerate(classes[1:]):
        value = _nanmean(per_case_dice[:, column])
        if np.isfinite(value):
            class_dice[class_id] = value
            metrics[f"val_dice_{class_id}"] = value
        distance = _nanmean(per_case_hd[:, column])
        if np.isfinite(distance):
            metrics[f"val_hd95_{class_id}"] = distance
    metrics["val_dice"] = float(np.mean(list(class_dice.values()))) if class_dice else 0.0
    for name, ids in GROUPS.items():
        values = [v for k, v in class_dice.items() if k in ids]
        if values:
            metrics[f"val_dice_{name}"] = float(np.mean(values))
    return metrics
