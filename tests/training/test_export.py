"""ONNX export of a tiny untrained UNet: parity, dynamic axes, atomic failure, int8, MLflow registry."""

import logging

import numpy as np
import pytest
import torch
from helpers.onnx_models import tiny_train_config

from odontoscan.datasets.errors import ConfigError, ExportError, ModelError
from odontoscan.models.metadata import read_model_dir
from odontoscan.models.networks import build_network
from odontoscan.models.registry import resolve
from odontoscan.models.runtime import OnnxModel
from odontoscan.training import export
from odontoscan.training.checkpoint import Checkpoint, save_checkpoint
from odontoscan.training.config import parse_config
from odontoscan.training.export import export_model, pair_model, promote


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = parse_config(tiny_train_config())
    torch.manual_seed(0)
    net = build_network("UNet", {"channels": [8, 16], "strides": [2]}, spatial_dims=3, in_channels=1, out_channels=9)
    ckpt = Checkpoint(
        config=config, model_state=net.state_dict(), epoch=3, best_metric=0.42, best_epoch=2, run_id=None,
        metrics={"val_dice_teeth": 0.4},
    )
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    return export_model(checkpoint, tmp_path_factory.mktemp("export") / "model", name="tiny-cbct", version="0.0.1", register=False)


def test_parity_limit_grows_with_the_logits():
    """float32 rounding grows with the logits: 0.005 off on logits of 100 passes, on logits of 1 it does not."""
    rng = np.random.default_rng(0)
    small = rng.normal(0.0, 1.0, (1, 3, 4, 4, 4)).astype(np.float32)
    large = small * 100
    tight = export.compare(small, small + 0.005)
    assert tight.max_abs_diff > tight.limit
    big = export.compare(large, large + 0.005)
    assert big.max_abs_diff <= big.limit and big.dice_agreement == 1.0


def test_export_passes_parity_and_reports_the_figures(exported, caplog):
    assert exported.parity.max_abs_diff <= exported.parity.limit
    assert exported.parity.dice_agreement >= 0.99
    assert exported.parity.input_shape == [1, 1, 32, 32, 32]
    meta = read_model_dir(exported.out_dir).metadata
    assert meta.classes == [0, 1, 2, 3, 4, 11, 21, 31, 41] and meta.merge == {111: 11}
    assert meta.size_multiple == 2 and meta.opset == export.OPSET
    assert meta.training_data == "odontoscan phantoms seeds 0-3, size small — never a real scan"
    assert meta.metrics == {"val_dice_teeth": 0.4, "val_mean_dice": 0.42}
    card = (exported.out_dir / "MODEL_CARD.md").read_text()
    assert "This model has never seen a real scan" in card and "max |logit diff|" in card


def test_dynamic_spatial_axes_run_on_two_sizes(exported, checkpoint):
    model = OnnxModel(exported.out_dir, threads=1)
    net = export.network_from_checkpoint(export.load_checkpoint(checkpoint))
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 32, 32, 32), (2, 1, 24, 40, 16)]:
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        got = model.predict_logits_patch(x)
        assert got.shape == (shape[0], 9, *shape[2:])
        np.testing.assert_allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="multiples of 2"):
        model.predict_logits_patch(np.zeros((1, 1, 31, 32, 32), dtype=np.float32))


def test_whole_scan_segmentation_returns_design_ids(exported):
    from odontoscan.datasets.phantom.cbct import generate_cbct

    phantom = generate_cbct(1001, "small")
    labels = OnnxModel(exported.out_dir, threads=1).segment(phantom.image, phantom.spacing)
    assert labels.shape == phantom.image.shape
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 11, 21, 31, 41}


def _tiny_refiner(root, classes: list[int], seed: int):
    """An exported tiny refining model predicting ``classes`` (weights from ``seed``)."""
    document = tiny_train_config(classes) | {"name": "tiny-fine"}
    document["labels"] = {"classes": classes, "refines": True}
    torch.manual_seed(seed)
    net = build_network("UNet", {"channels": [8, 16], "strides": [2]}, spatial_dims=3, in_channels=1, out_channels=len(classes))
    ckpt = save_checkpoint(
        Checkpoint(config=parse_config(document), model_state=net.state_dict(), epoch=0, best_metric=0.1, best_epoch=0, run_id=None),
        root / f"fine-{seed}.pt",
    )
    return export_model(ckpt, root / f"fine-{seed}", name="tiny-fine", version=f"0.0.{seed}", register=False)


@pytest.fixture(scope="module")
def fine(tmp_path_factory):
    """An exported tiny refining model (the fine half of a coarse-to-fine pair)."""
    return _tiny_refiner(tmp_path_factory.mktemp("fine"), [0, 3, 11, 200], seed=1)


def test_a_refiner_travels_with_its_coarse_model(checkpoint, exported, fine, tmp_path):
    assert fine.metadata.refines and fine.metadata.label_names[11] == "Tooth (any)"
    with pytest.raises(ConfigError, match="is not a refining model"):
        export_model(checkpoint, tmp_path / "bad", name="tiny-cbct", version="0.0.1", register=False, refiner=exported.out_dir)
    pair = export_model(checkpoint, tmp_path / "pair", name="tiny-cbct", version="0.0.1", register=False, refiner=fine.out_dir)
    assert pair.metadata.refiner is not None and (pair.out_dir / "refiner.onnx").is_file()
    assert "Coarse-to-fine" in (pair.out_dir / "MODEL_CARD.md").read_text()
    model = OnnxModel(pair.out_dir, threads=1)
    assert model.refiner is not None and model.refiner.metadata.name == "tiny-fine"


def test_an_exported_coarse_model_is_paired_with_a_new_refiner_without_its_checkpoint(exported, fine, tmp_path):
    pair = pair_model(exported.out_dir, fine.out_dir, tmp_path / "pair", version="0.0.2", register=False)
    assert pair.metadata.model_key == "tiny-cbct@0.0.2" and pair.metadata.classes == exported.metadata.classes
    assert (pair.out_dir / "refiner.onnx").read_bytes() == fine.out_dir.joinpath("model.onnx").read_bytes()
    model = OnnxModel(pair.out_dir, threads=1)  # hashes checked on load
    assert model.refiner is not None and model.refiner.metadata.model_key == "tiny-fine@0.0.1"
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 32, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(model.predict_logits_patch(x), OnnxModel(exported.out_dir, threads=1).predict_logits_patch(x))
    card = (pair.out_dir / "MODEL_CARD.md").read_text()
    assert card.startswith("# tiny-cbct@0.0.2\n") and "tiny-fine@0.0.1" in card and "measured with the previous refiner" in card
    # Re-pairing in place keeps the directory whole; wrong halves are refused and write nothing.
    again = pair_model(pair.out_dir, fine.out_dir, pair.out_dir, register=False)
    assert again.metadata.version == "0.0.2" and OnnxModel(pair.out_dir, threads=1).refiner is not None
    assert (pair.out_dir / "MODEL_CARD.md").read_text().count("## Pairing") == 1
    with pytest.raises(ConfigError, match="itself a refining model"):
        pair_model(fine.out_dir, fine.out_dir, tmp_path / "bad", register=False)
    with pytest.raises(ConfigError, match="is not a refining model"):
        pair_model(exported.out_dir, exported.out_dir, tmp_path / "bad", register=False)
    assert not (tmp_path / "bad").exists()


def test_a_second_refiner_adds_the_lesions_it_sees_and_changes_nothing_else(exported, fine, tmp_path):
    first, second = (_tiny_refiner(tmp_path, [0, 11, 201], seed) for seed in (2, 3))
    pair = pair_model(exported.out_dir, first.out_dir, tmp_path / "pair", second_refiner=second.out_dir, register=False)
    refiner = OnnxModel(pair.out_dir, threads=1).refiner  # one network: the pair loads as any other
    assert refiner is not None and "second opinion on periapical lesions: tiny-fine@0.0.3" in refiner.metadata.training_data
    x = np.random.default_rng(0).random((2, 1, 32, 32, 32), dtype=np.float32)
    a = OnnxModel(first.out_dir, threads=1).predict_logits_patch(x)
    b = OnnxModel(second.out_dir, threads=1).predict_logits_patch(x)
    got = refiner.predict_logits_patch(x)
    np.testing.assert_array_equal(got[:, :2], a[:, :2])  # background and teeth: the first refiner's
    laid = (b.argmax(axis=1) == 2) & (a.argmax(axis=1) == 0)  # the second sees a lesion where the first sees background
    assert laid.any() and ((b.argmax(axis=1) == 2) & (a.argmax(axis=1) == 1)).any()
    np.testing.assert_array_equal(got.argmax(axis=1), np.where(laid, 2, a.argmax(axis=1)))  # ... and a tooth stays a tooth
    np.testing.assert_array_equal(got[:, 2][~laid], a[:, 2][~laid])
    with pytest.raises(ConfigError, match="differ in classes"):
        pair_model(exported.out_dir, first.out_dir, tmp_path / "bad", second_refiner=fine.out_dir, register=False)
    with pytest.raises(ConfigError, match="none of the classes a second opinion is for"):
        pair_model(exported.out_dir, fine.out_dir, tmp_path / "bad", second_refiner=fine.out_dir, register=False)
    assert not (tmp_path / "bad").exists()


def test_failing_parity_writes_nothing(checkpoint, tmp_path, monkeypatch):
    original = export._export_onnx

    def export_then_corrupt(net, patch_size):
        data = original(net, patch_size)
        with torch.no_grad():
            next(net.parameters()).add_(1.0)  # PyTorch now disagrees with the exported graph
        return data

    monkeypatch.setattr(export, "_export_onnx", export_then_corrupt)
    out = tmp_path / "model"
    with pytest.raises(ExportError, match="does not reproduce PyTorch on phantom 1000: max \\|logit diff\\|"):
        export_model(checkpoint, out, name="tiny-cbct", version="0.0.1", register=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_out_dir_that_is_not_a_model_is_refused(checkpoint, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="exists and is not a model directory"):
        export_model(checkpoint, tmp_path, name="tiny-cbct", version="0.0.1", register=False)
    assert (tmp_path / "notes.txt").exists()


@pytest.mark.slow
def test_int8_is_kept_or_dropped_with_the_reason(checkpoint, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="odontoscan.training.export"):
        result = export_model(checkpoint, tmp_path / "a", name="tiny-cbct", version="0.0.1", quantize=True, register=False)
    assert result.int8 is not None and result.int8.reason
    assert (tmp_path / "a" / "model.int8.onnx").exists() == result.int8.kept
    if not result.int8.kept:
        assert "int8 model dropped" in caplog.text
    # with the bar at 0 the int8 model is kept and loadable
    monkeypatch.setattr(export, "MIN_INT8_AGREEMENT", 0.0)
    kept = export_model(checkpoint, tmp_path / "b", name="tiny-cbct", version="0.0.1", quantize=True, register=False)
    assert kept.int8.kept and kept.metadata.int8.sha256
    model = OnnxModel(tmp_path / "b", threads=1, precision="int8")
    assert model.metadata.precision == "int8"
    assert model.predict_logits_patch(np.zeros((1, 1, 32, 32, 32), dtype=np.float32)).shape == (1, 9, 32, 32, 32)
    assert "int8 (static QDQ): kept" in (tmp_path / "b" / "MODEL_CARD.md").read_text()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mlflow_registration_promote_and_resolve(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # local artifact store lands in tmp_path/mlartifacts
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = export_model(checkpoint, tmp_path / "v1", name="tiny-cbct", version="0.0.1", tracking_uri=uri)
    second = export_model(checkpoint, tmp_path / "v2", name="tiny-cbct", version="0.0.2", tracking_uri=uri)
    assert (first.registered_version, second.registered_version) == (1, 2)
    promote("tiny-cbct", 1, tracking_uri=uri)
    folder = resolve("models:/tiny-cbct@champion", tracking_uri=uri, cache_dir=tmp_path / "cache")
    assert read_model_dir(folder).metadata.version == "0.0.1"
    assert read_model_dir(folder).metadata.sha256 == first.metadata.sha256
    assert read_model_dir(resolve("models:/tiny-cbct/2", tracking_uri=uri, cache_dir=tmp_path / "cache")).metadata.version == "0.0.2"
    with pytest.raises(ModelError, match="Cannot set alias 'champion' of model 'tiny-cbct' to version 9"):
        promote("tiny-cbct", 9, tracking_uri=uri)
    with pytest.raises(ModelError, match="has no models:/tiny-cbct@staging"):
        resolve("models:/tiny-cbct@staging", tracking_uri=uri, cache_dir=tmp_path / "cache")


def test_export_model_through_the_cli(exported, fine, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        command = [sys.executable, "-m", "odontoscan.serving.cli", "export", *map(str, args), "--no-register"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        done.stderr, done.stdout = " ".join(done.stderr.split()), " ".join(done.stdout.split())  # rich wraps lines
        return done

    result = cli("--model", exported.out_dir, "--out", tmp_path / "pair")
    assert result.returncode == 2 and "give --refiner FINE_MODEL_DIR" in result.stderr and not (tmp_path / "pair").exists()
    result = cli("--model", exported.out_dir, "--checkpoint", tmp_path / "x.pt", "--out", tmp_path / "pair")
    assert result.returncode == 2 and "exactly one of --checkpoint FILE, --run RUN_ID or --model DIR" in result.stderr
    result = cli("--checkpoint", tmp_path / "x.pt", "--second-refiner", fine.out_dir, "--out", tmp_path / "pair")
    assert result.returncode == 2 and "--second-refiner joins a pair made with --model" in result.stderr
    result = cli("--model", exported.out_dir, "--refiner", fine.out_dir, "--out", tmp_path / "pair")
    assert result.returncode == 0, result.stderr
    assert "wrote tiny-cbct@0.0.1" in result.stdout and OnnxModel(tmp_path / "pair", threads=1).refiner is not None
