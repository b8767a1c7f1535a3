"""One training run in MLflow: params, per-epoch metrics, config, manifest and checkpoints.

Uses an explicit :class:`mlflow.MlflowClient` on the URI from
:func:`odontoscan.models.tracking.tracking_uri`, so no process-wide MLflow state is
changed. A local sqlite store keeps its artifacts beside the database
(``<db folder>/mlartifacts``). MLflow's usage telemetry is switched off for the process
unless the caller opted in with ``MLFLOW_DISABLE_TELEMETRY=false``, so training never
reaches the network on its own.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from odontoscan.datasets.errors import ConfigError
from odontoscan.models.tracking import EXPERIMENT, artifact_location

log = logging.getLogger(__name__)

OUTPUT_DIR_TAG = "odontoscan.output_dir"
CHECKPOINTS = "checkpoints"


def _client(uri: str):
    import mlflow

    if os.environ.get("MLFLOW_DISABLE_TELEMETRY", "").lower() != "false":
        try:  # no usage pings from a training job (a private hook: tolerate its absence)
            from mlflow.telemetry import client as telemetry

            telemetry._set_telemetry_client(None)
        except (ImportError, AttributeError):
            log.debug("MLflow telemetry hook not found; relying on MLFLOW_DISABLE_TELEMETRY")
    return mlflow.MlflowClient(tracking_uri=uri)


def _local_root(uri: str) -> Path | None:
    """Folder of a local sqlite store (artifacts go beside it), else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    return None


def flatten(document: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"optimizer.lr": "0.002", ...}`` (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:5000]
    return out


class RunLog:
    """Logging side of one run (create it on rank 0 only)."""

    def __init__(self, uri: str, run_id: str | None = None, *, run_name: str | None = None, tags: dict | None = None) -> None:
        self.client = _client(uri)
        if run_id is None:
            experiment = self.client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                root = _local_root(uri)
                location = artifact_location(root) if root is not None else None
                experiment_id = self.client.create_experiment(EXPERIMENT, artifact_location=location)
            else:
                experiment_id = experiment.experiment_id
            run_id = self.client.create_run(experiment_id, tags=tags or {}, run_name=run_name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
            for key, value in (tags or {}).items():
                self.client.set_tag(run_id, key, value)
        self.run_id = run_id

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start : start + 500])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def checkpoint_of_run(run_id: str, uri: str, download_to: Path | None = None) -> Path:
    """``last.pt`` of MLflow run ``run_id``: in the run's output folder, else from its artifacts."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"--resume '{run_id}' is neither a checkpoint file nor a run in the MLflow store at {uri}; "
            "pass the path of last.pt or the run id shown when the run started (and --tracking-uri if it used one)."
        ) from None
    folder = run.data.tags.get(OUTPUT_DIR_TAG)
    if folder and (Path(folder) / "last.pt").is_file():
        return Path(folder) / "last.pt"
    target = download_to or Path(tempfile.mkdtemp(prefix="odontoscan-resume-"))
    try:
        return Path(client.download_artifacts(run_id, f"{CHECKPOINTS}/last.pt", str(target)))
    except (MlflowException, OSError):
        raise ConfigError(f"MLflow run '{run_id}' has no last.pt (its output folder is gone and none was logged).") from None


def log_summary(metrics: dict[str, Any]) -> str:
    """Short text for the log: loss, lr, val Dice."""
    parts = [f"{k}={v:.4f}" for k, v in metrics.items() if k in ("train_loss", "lr", "val_dice")]
    return " ".join(parts)
