"""Model registry: shipped models, defaults per task, resolving names (MLflow URIs: tests/training/test_export.py)."""

import pytest
from helpers.onnx_models import threshold_model_dir

from odontoscan.datasets.errors import ModelError
from odontoscan.models import registry


@pytest.fixture
def zoo(tmp_path):
    threshold_model_dir(tmp_path / "zoo" / "cbct-phantom")
    (tmp_path / "zoo" / "broken").mkdir()
    (tmp_path / "zoo" / "broken" / "model.json").write_text("{")
    return tmp_path / "zoo"


def test_available_models_lists_valid_shipped_models(zoo):
    models = registry.available_models(zoo)
    assert list(models) == ["cbct-phantom"]
    assert models["cbct-phantom"].task == "cbct"


def test_model_for_task(zoo):
    assert registry.model_for("cbct", zoo) == zoo / "cbct-phantom"
    with pytest.raises(ModelError, match="default radiograph model 'pano-phantom' is not installed"):
        registry.model_for("radiograph", zoo)
    with pytest.raises(ModelError, match="Unknown task 'mri'"):
        registry.model_for("mri", zoo)


def test_resolve_directory_name_and_unknown(zoo, tmp_path):
    threshold_model_dir(tmp_path / "mine")
    assert registry.resolve(tmp_path / "mine", zoo=zoo) == tmp_path / "mine"
    assert registry.resolve("cbct-phantom", zoo=zoo) == zoo / "cbct-phantom"
    with pytest.raises(ModelError, match="'nope' is neither a directory nor a shipped model \\(cbct-phantom\\)"):
        registry.resolve("nope", zoo=zoo)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mlflow_uri_without_version_is_refused(tmp_path):
    with pytest.raises(ModelError, match="names no version"):
        registry.resolve("models:/cbct-phantom", tracking_uri=f"sqlite:///{tmp_path}/m.db", cache_dir=tmp_path)
