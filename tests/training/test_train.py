"""End-to-end training on tiny phantoms: MLflow logging, checkpoints, resume, determinism, folders."""

import pytest
from mlflow import MlflowClient

from odontoscan.datasets.errors import ConfigError
from odontoscan.training.checkpoint import load_checkpoint
from odontoscan.training.config import parse_config
from odontoscan.training.train import train

pytestmark = pytest.mark.usefixtures("quiet_offline")


def _uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _run(document, tmp_path, cache, name="run", **kwargs):
    return train(parse_config(document), tracking_uri=_uri(tmp_path), out=tmp_path / name, cache_dir=cache, progress=False, **kwargs)


def _history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_tiny_run_logs_to_mlflow_and_writes_checkpoints(tiny_document, tmp_path, phantom_cache):
    result = _run(tiny_document, tmp_path, phantom_cache)
    assert result.epochs_run == 2 and result.last_epoch == 1 and result.run_id
    client = MlflowClient(tracking_uri=_uri(tmp_path))
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.name"] == "adamw" and run.data.params["epochs"] == "2"
    assert len(run.data.params["dataset_sha256"]) == 64
    assert [step for step, _ in _history(client, result.run_id, "train_loss")] == [0, 1]
    assert [step for step, _ in _history(client, result.run_id, "val_dice")] == [0, 1]
    assert {"lr", "val_dice_1", "val_hd95_1", "val_dice_jaws"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "manifest.json", "checkpoints"} <= artifacts
    assert {a.path for a in client.list_artifacts(result.run_id, "checkpoints")} == {"checkpoints/best.pt", "checkpoints/last.pt"}
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the sqlite store
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    assert last.epoch == 1 and last.run_id == result.run_id and last.optimizer_state
    assert best.epoch == result.best_epoch and best.best_metric == pytest.approx(result.best_metric)
    assert best.config == parse_config(tiny_document) and "val_dice" in best.metrics


def test_resume_continues_the_epoch_count_and_the_run(tiny_document, tmp_path, phantom_cache):
    tiny_document["epochs"] = 1
    first = _run(tiny_document, tmp_path, phantom_cache)
    tiny_document["epochs"] = 2
    second = train(parse_config(tiny_document), tracking_uri=_uri(tmp_path), resume=first.run_id, cache_dir=phantom_cache, progress=False)
    assert second.run_id == first.run_id and second.output_dir == first.output_dir
    assert second.epochs_run == 1 and second.last_epoch == 1
    assert load_checkpoint(second.last_checkpoint).epoch == 1
    client = MlflowClient(tracking_uri=_uri(tmp_path))
    assert [step for step, _ in _history(client, first.run_id, "train_loss")] == [0, 1]
    assert client.get_run(first.run_id).info.status == "FINISHED"
    with pytest.raises(ConfigError, match="already trained 2 of 2 epochs"):
        train(parse_config(tiny_document), tracking_uri=_uri(tmp_path), resume=second.last_checkpoint, progress=False)
    tiny_document["epochs"] = 3
    tiny_document["network"]["kwargs"]["channels"] = [8, 16]
    with pytest.raises(ConfigError, match="'network' differs from the checkpoint's"):
        train(parse_config(tiny_document), tracking_uri=_uri(tmp_path), resume=second.last_checkpoint, progress=False)


def test_same_seed_gives_the_same_loss(tiny_document, tmp_path, phantom_cache):
    tiny_document["epochs"] = 1
    losses = []
    for name in ("a", "b"):
        result = _run(tiny_document, tmp_path, phantom_cache, name=name)
        history = MlflowClient(tracking_uri=_uri(tmp_path)).get_metric_history(result.run_id, "train_loss")
        losses.append(history[0].value)
    assert losses[0] == losses[1]


def test_unknown_resume_target_is_explained(tiny_document, tmp_path):
    with pytest.raises(ConfigError, match="neither a checkpoint file nor a run"):
        train(parse_config(tiny_document), tracking_uri=_uri(tmp_path), resume="0123456789abcdef", progress=False)
    with pytest.raises(ConfigError, match="Checkpoint '.*last.pt' does not exist"):
        train(parse_config(tiny_document), tracking_uri=_uri(tmp_path), resume=tmp_path / "last.pt", progress=False)


def test_patch_must_fit_the_network(tiny_document, tmp_path):
    tiny_document["patch_size"] = [17, 16, 16]
    with pytest.raises(ConfigError, match=r"patch_size \[17, 16, 16\] must be a multiple of 2"):
        train(parse_config(tiny_document), tracking_uri=_uri(tmp_path), progress=False)


@pytest.mark.slow
def test_toothfairy2_folder_smoke_run(tiny_document, tmp_path):
    from odontoscan.datasets.phantom.cbct import write_toothfairy2_dataset

    folder = write_toothfairy2_dataset([0, 1, 2], tmp_path / "tf2", size="small")
    tiny_document["data"] = {"source": "toothfairy2", "val_fraction": 0.34}
    tiny_document["epochs"] = 1
    result = train(parse_config(tiny_document), data_path=folder, tracking_uri=_uri(tmp_path), out=tmp_path / "run", progress=False)
    assert load_checkpoint(result.best_checkpoint).manifest_sha256 == MlflowClient(tracking_uri=_uri(tmp_path)).get_run(result.run_id).data.params["dataset_sha256"]


@pytest.mark.slow
def test_dentex_folder_smoke_run(tmp_path):
    dentex = pytest.importorskip("odontoscan.datasets.phantom.dentex", reason="DENTEX phantom writer not available yet")
    folder = dentex.write_dentex_dataset([0, 1, 2], tmp_path / "dentex", size="small")
    document = {
        "task": "radiograph",
        "name": "tiny-dentex",
        "data": {"source": "dentex", "val_fraction": 0.34},
        "labels": {"classes": [0, 11, 21, 31, 41, 16, 26, 36, 46]},
        "preprocess": {"spacing_mm": None, "intensity": {"kind": "percentiles"}},
        "network": {"name": "UNet", "kwargs": {"channels": [4, 8], "strides": [2], "num_res_units": 0}},
        "patch_size": [64, 64],
        "epochs": 1,
        "augmentation": {"flip_left_right": True},
    }
    result = train(parse_config(document), data_path=folder, tracking_uri=_uri(tmp_path), out=tmp_path / "run", progress=False)
    assert result.best_checkpoint.is_file() and result.best_metric >= 0
