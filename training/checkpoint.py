"""Checkpoint files: what a training run saves and what export and resume read back.

A checkpoint is one ``torch.save`` dict (see :func:`save_checkpoint`) holding the
resolved training config, so a checkpoint alone is enough to rebuild its network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from odontoscan.datasets.errors import ConfigError
from odontoscan.training.config import TrainConfig, parse_config

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """Everything needed to resume training or export a model."""

    config: TrainConfig
    model_state: dict[str, Any]
    epoch: int  # last completed epoch (0-based)
    best_metric: float  # best validation mean Dice so far (-1 before any validation)
    best_epoch: int
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    run_id: str | None = None  # MLflow run that produced it
    manifest_sha256: str | None = None  # dataset manifest hash
    metrics: dict[str, float] = field(default_factory=dict)  # validation metrics at best_epoch


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write atomically (temp file, then rename) so an interrupted save leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "config": checkpoint.config.model_dump(mode="json"),
        "model_state": checkpoint.model_state,
        "epoch": checkpoint.epoch,
        "best_metric": checkpoint.best_metric,
        "best_epoch": checkpoint.best_epoch,
        "optimizer_state": checkpoint.optimizer_state,
        "scheduler_state": checkpoint.scheduler_state,
        "run_id": checkpoint.run_id,
        "manifest_sha256": checkpoint.manifest_sha256,
        "metrics": checkpoint.metrics,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, with a clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Checkpoint '{path}' does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a bad file
        raise ConfigError(f"'{path.name}' is not a readable odontoscan checkpoint ({type(exc).__name__}).") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"'{path.name}' is not an odontoscan checkpoint (format {FORMAT_VERSION}).")
    return Checkpoint(
        config=parse_config(payload["config"], f"in checkpoint '{path.name}'"),
        model_state=payload["model_state"],
        epoch=payload["epoch"],
        best_metric=payload["best_metric"],
        best_epoch=payload["best_epoch"],
        optimizer_state=payload.get("optimizer_state"),
        scheduler_state=payload.get("scheduler_state"),
        run_id=payload.get("run_id"),
        manifest_sha256=payload.get("manifest_sha256"),
        metrics=payload.get("metrics") or {},
    )
