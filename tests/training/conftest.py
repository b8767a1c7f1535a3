"""Shared fixtures for training tests: a tiny CBCT config and one phantom cache per session."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_cbct.yaml"


@pytest.fixture(scope="session")
def phantom_cache(tmp_path_factory) -> Path:
    """Preprocessed phantoms are generated once per test session."""
    return tmp_path_factory.mktemp("phantom-cache")


@pytest.fixture
def tiny_document() -> dict:
    """The shipped tiny config as a mutable mapping."""
    return yaml.safe_load(TINY.read_text())


@pytest.fixture
def quiet_offline(monkeypatch):
    """One torch thread (other jobs share the cores) and no MLflow telemetry (use with usefixtures)."""
    import torch

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
