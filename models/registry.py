"""The one registry of models: shipped models, defaults per task, and how a model is named.

A model is named by a directory (``model.onnx`` + ``model.json``), the name of a
shipped model in ``models/zoo/<name>/`` (installed as package data), or an MLflow
registry URI, ``models:/NAME@alias`` (e.g. ``@champion``) or ``models:/NAME/VERSION``.
Import-light: no torch, no mlflow at import; mlflow (the [train] extra) is imported
only to resolve a ``models:/`` URI.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from odontoscan.datasets.errors import ModelError
from odontoscan.models.metadata import METADATA_FILE, MODEL_FILE, ModelMetadata, read_model_dir

log = logging.getLogger(__name__)

ZOO = Path(__file__).resolve().parent / "zoo"
DEFAULT_MODELS = {"cbct": "cbct-phantom", "radiograph": "pano-phantom"}
CACHE_ENV = "ODONTOSCAN_CACHE"
MLFLOW_SCHEME = "models:/"


def available_models(zoo: Path = ZOO) -> dict[str, ModelMetadata]:
    """Shipped models by name with their metadata (files are verified when a model is loaded)."""
    found: dict[str, ModelMetadata] = {}
    if not zoo.is_dir():
        return found
    for folder in sorted(p for p in zoo.iterdir() if (p / METADATA_FILE).is_file()):
        try:
            found[folder.name] = ModelMetadata.model_validate_json((folder / METADATA_FILE).read_text())
        except ValueError as exc:
            log.warning("skipping shipped model %s: invalid %s (%s)", folder.name, METADATA_FILE, type(exc).__name__)
    return found


def model_for(task: str, zoo: Path = ZOO) -> Path:
    """Directory of the default shipped model for ``task`` ("cbct" or "radiograph")."""
    if task not in DEFAULT_MODELS:
        raise ModelError(f"Unknown task '{task}'; choose one of {sorted(DEFAULT_MODELS)}.")
    folder = zoo / DEFAULT_MODELS[task]
    if not (folder / MODEL_FILE).is_file():
        raise ModelError(
            f"The default {task} model '{DEFAULT_MODELS[task]}' is not installed; pass --model DIR, "
            "or train and export one (`odontoscan train`, `odontoscan export`)."
        )
    return folder


def resolve(spec: str | Path, *, tracking_uri: str | None = None, cache_dir: str | Path | None = None, zoo: Path = ZOO) -> Path:
    """Model directory for ``spec``: a directory or ``.onnx`` file, a shipped model name,
    or ``models:/NAME@alias`` / ``models:/NAME/VERSION`` (downloaded from the MLflow
    registry at ``tracking_uri`` into ``cache_dir``, default $ODONTOSCAN_CACHE or
    ``~/.cache/odontoscan``)."""
    text = str(spec)
    if text.startswith(MLFLOW_SCHEME):
        return _from_mlflow(text, tracking_uri=tracking_uri, cache_dir=cache_dir)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if "/" not in text and (zoo / text).is_dir():
        return zoo / text
    shipped = ", ".join(available_models(zoo)) or "none installed"
    raise ModelError(
        f"Model '{text}' is neither a directory nor a shipped model ({shipped}) nor models:/NAME@alias; check the spelling."
    )


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "odontoscan")


def _from_mlflow(uri: str, *, tracking_uri: str | None, cache_dir: str | Path | None) -> Path:
    """Download a registered model version's model directory (its ``extra_files``)."""
    rest = uri[len(MLFLOW_SCHEME) :]
    if "@" not in rest and "/" not in rest:
        raise ModelError(f"'{uri}' names no version; use models:/NAME@alias or models:/NAME/VERSION.")
    try:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ModelError(
            f"Resolving {uri} needs mlflow, which is not installed; install the [train] extra "
            "(pip install 'odontoscan[train]') or pass a model directory."
        ) from None
    if tracking_uri is None:
        from odontoscan.models.tracking import tracking_uri as default_uri  # import-light, no torch

        tracking_uri = default_uri()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = rest.split("/", 1)
            version = client.get_model_version(name, number)
    except MlflowException as exc:
        raise ModelError(f"MLflow registry at {tracking_uri} has no {uri} ({exc.error_code}); check the name, alias or version.") from None
    target = _cache_root(cache_dir) / "mlflow" / version.name / str(version.version)
    folder = target / "extra_files"
    if not (folder / METADATA_FILE).is_file():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{MLFLOW_SCHEME}{version.name}/{version.version}", dst_path=str(target), tracking_uri=tracking_uri
        )
        if not (folder / METADATA_FILE).is_file():
            raise ModelError(f"{uri} was not registered by `odontoscan export` (no {METADATA_FILE} among its files).")
    read_model_dir(folder)  # verify the hash before anyone runs it
    log.info("resolved %s to version %s in %s", uri, version.version, folder)
    return folder
