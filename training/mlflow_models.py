"""MLflow side of exported models: log and register a model directory, promote a version,
fetch a run's checkpoint.

The registered model's artifacts are MLflow's ONNX flavour plus the odontoscan model
directory as it was exported (``extra_files/``: model.onnx, model.json, MODEL_CARD.md,
model.int8.onnx), which :func:`odontoscan.models.registry.resolve` downloads and checks
by hash. Registry and tracking share one store (the local sqlite file by default).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from odontoscan.datasets.errors import ConfigError, ModelError
from odontoscan.models.metadata import CARD_FILE, METADATA_FILE, MODEL_FILE, ModelMetadata
from odontoscan.models.tracking import EXPERIMENT, artifact_location, tracking_uri as resolve_uri

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _mlflow_at(uri: str) -> Iterator[None]:
    """Point mlflow's fluent API at ``uri`` for the block, then restore the previous URIs."""
    import mlflow

    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def _experiment_id(client, uri: str) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location() if uri.startswith("sqlite:") else None
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def log_and_register(model_dir: Path, metadata: ModelMetadata, *, run_id: str | None, tracking_uri: str | None) -> tuple[str, int]:
    """Log ``model_dir`` with mlflow.onnx (in run ``run_id`` when the server has it, else a
    new run) and register it as ``metadata.name``; returns (run id, registered version)."""
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    existing = None
    if run_id is not None:
        try:
            existing = client.get_run(run_id)
        except MlflowException:
            log.info("training run %s is not on %s; logging the export in a new run", run_id, uri)
    files = [str(model_dir / n) for n in (MODEL_FILE, METADATA_FILE, CARD_FILE) if (model_dir / n).is_file()]
    if metadata.int8 is not None:
        files.append(str(model_dir / metadata.int8.file))
    if metadata.refiner is not None:
        files.append(str(model_dir / metadata.refiner.file))
    with _mlflow_at(uri):
        if existing is not None:
            run_context = mlflow.start_run(run_id=existing.info.run_id)
        else:
            run_context = mlflow.start_run(experiment_id=_experiment_id(client, uri), run_name=f"export {metadata.model_key}")
        with run_context as run:
            info = mlflow.onnx.log_model(
                onnx.load(str(model_dir / MODEL_FILE)),
                name="model",
                registered_model_name=metadata.name,
                metadata={"odontoscan": metadata.model_dump(mode="json")},
                save_as_external_data=False,
                extra_files=files,
            )
            mlflow.set_tags({"odontoscan.model": metadata.model_key, "odontoscan.sha256": metadata.sha256 or ""})
    version = int(info.registered_model_version)
    client.set_model_version_tag(metadata.name, str(version), "odontoscan_version", metadata.version)
    client.set_model_version_tag(metadata.name, str(version), "sha256", metadata.sha256 or "")
    log.info("registered %s as %s version %d (run %s)", metadata.model_key, metadata.name, version, run.info.run_id)
    return run.info.run_id, version


def promote(name: str, version: int | str, alias: str = "champion", tracking_uri: str | None = None) -> None:
    """Point registry alias ``alias`` of model ``name`` at ``version`` (serving follows
    ``models:/NAME@alias``)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.get_model_version(name, str(version))
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        raise ModelError(
            f"Cannot set alias '{alias}' of model '{name}' to version {version} on {uri} ({exc.error_code}); "
            "check the name and version (`odontoscan export` prints them)."
        ) from None
    log.info("alias %s of %s now points at version %s", alias, name, version)


def download_checkpoint(run_id: str, tracking_uri: str | None, dst: Path) -> Path:
    """Download the best checkpoint of run ``run_id``: ``best.pt`` if logged, else the only ``*.pt``."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        candidates = _checkpoints(client, run_id, "")
    except MlflowException as exc:
        raise ConfigError(f"MLflow run '{run_id}' is not on {uri} ({exc.error_code}); check --run and --tracking-uri.") from None
    best = [p for p in candidates if Path(p).name == "best.pt"]
    if best:
        chosen = best[0]
    elif len(candidates) == 1:
        chosen = candidates[0]
    else:
        raise ConfigError(
            f"MLflow run '{run_id}' has {len(candidates)} checkpoint files and none is best.pt; pass --checkpoint FILE instead."
        )
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=chosen, dst_path=str(dst), tracking_uri=uri)
    return Path(local)


def _checkpoints(client, run_id: str, path: str) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path or None):
        if item.is_dir:
            found += _checkpoints(client, run_id, item.path)
        elif item.path.endswith(".pt"):
            found.append(item.path)
    return found
