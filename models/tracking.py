"""Where MLflow runs and registered models live (training logs there, serving reads models from there).

Import-light (no mlflow import): the registry uses it to resolve ``models:/`` URIs.

By default a local sqlite store in the current folder (``sqlite:///mlflow.db``, with
artifacts in ``./mlartifacts``): no server needed. ``--tracking-uri`` (or
``MLFLOW_TRACKING_URI``) points at a team server instead.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
EXPERIMENT = "odontoscan"


def tracking_uri(explicit: str | None = None, root: str | Path | None = None) -> str:
    """The MLflow tracking URI to use: explicit, else $MLFLOW_TRACKING_URI, else local sqlite."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    base = Path(root) if root is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DB).resolve()}"


def artifact_location(root: str | Path | None = None) -> str:
    """Artifact folder for experiments created on the local sqlite store."""
    base = Path(root) if root is not None else Path.cwd()
    return (base / DEFAULT_ARTIFACTS).resolve().as_uri()
