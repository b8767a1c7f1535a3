"""Model directories: metadata round-trips through model.json and the ONNX file; damage is caught."""

from types import SimpleNamespace

import numpy as np
import pytest
from helpers.onnx_models import metadata_for, pointwise_model, threshold_model_dir

from odontoscan.datasets.errors import ModelError, ModelFitError
from odontoscan.models.metadata import (
    Int8Variant,
    ModelMetadata,
    check_fits,
    embedded_metadata,
    read_model_dir,
    sha256_file,
    write_model_dir,
)


def test_metadata_round_trips_through_model_json_and_onnx_metadata_props(tmp_path):
    written = write_model_dir(pointwise_model([0, 1], [0.5, 0]), metadata_for([0, 36], spacing_mm=(1.0, 1.0, 1.0)), tmp_path)
    assert written.sha256 == sha256_file(tmp_path / "model.onnx")
    loaded = read_model_dir(tmp_path)
    assert loaded.metadata == written
    assert loaded.metadata.preprocess.spacing_mm == (1.0, 1.0, 1.0)
    assert loaded.metadata.classes == [0, 36] and loaded.metadata.label_names[36] == "label 36"
    embedded = embedded_metadata(tmp_path / "model.onnx")
    assert embedded.sha256 is None  # a file cannot hold its own hash
    assert embedded == written.model_copy(update={"sha256": None})


def test_onnx_file_alone_is_enough(tmp_path):
    threshold_model_dir(tmp_path)
    (tmp_path / "model.json").unlink()
    loaded = read_model_dir(tmp_path)
    assert loaded.metadata.name == "test-model"
    assert loaded.metadata.sha256 == sha256_file(tmp_path / "model.onnx")
    assert read_model_dir(tmp_path / "model.onnx").metadata == loaded.metadata


def test_sha256_mismatch_is_an_error(tmp_path):
    threshold_model_dir(tmp_path)
    with open(tmp_path / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="sha256 mismatch for model.onnx"):
        read_model_dir(tmp_path)


def test_missing_model_file_and_missing_directory(tmp_path):
    threshold_model_dir(tmp_path / "m")
    (tmp_path / "m" / "model.onnx").unlink()
    with pytest.raises(ModelError, match="has no model.onnx"):
        read_model_dir(tmp_path / "m")
    with pytest.raises(ModelError, match="does not exist"):
        read_model_dir(tmp_path / "nowhere")


def test_bad_json_and_invalid_metadata(tmp_path):
    threshold_model_dir(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="model.json .* is not valid JSON"):
        read_model_dir(tmp_path)
    (tmp_path / "model.json").write_text('{"name": "x"}')
    with pytest.raises(ModelError, match="not valid odontoscan model metadata .*version"):
        read_model_dir(tmp_path)


def test_onnx_without_metadata_is_refused(tmp_path):
    (tmp_path / "bare.onnx").write_bytes(pointwise_model([0, 1], [0, 0]))
    with pytest.raises(ModelError, match="carries no odontoscan metadata"):
        read_model_dir(tmp_path / "bare.onnx")


def test_int8_variant_is_hashed_and_selectable(tmp_path):
    meta = metadata_for([0, 36]).model_copy(update={"int8": Int8Variant(dice_agreement=0.97, calibration="test")})
    written = write_model_dir(pointwise_model([0, 1], [0.5, 0]), meta, tmp_path, int8_model=pointwise_model([0, 1], [0.5, 0]))
    assert written.int8.sha256 == sha256_file(tmp_path / "model.int8.onnx")
    int8 = read_model_dir(tmp_path, precision="int8")
    assert int8.onnx_path.name == "model.int8.onnx" and int8.metadata.precision == "int8"
    assert embedded_metadata(tmp_path / "model.int8.onnx").precision == "int8"


def test_int8_requested_but_not_kept(tmp_path):
    threshold_model_dir(tmp_path)
    with pytest.raises(ModelError, match="has no int8 variant"):
        read_model_dir(tmp_path, precision="int8")


def test_metadata_rules_are_checked():
    with pytest.raises(ValueError, match="task cbct needs spatial_dims 3, got 2"):
        metadata_for([0, 1], patch_size=(16, 16), task="cbct")
    with pytest.raises(ValueError, match="classes must start with 0"):
        metadata_for([1, 2])
    document = metadata_for([0, 1]).model_dump()
    document["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        ModelMetadata.model_validate(document)


def test_check_fits_names_modality_and_dimensions():
    cbct = metadata_for([0, 1])
    check_fits(cbct, SimpleNamespace(modality="CT", array=np.zeros((4, 4, 4))))
    with pytest.raises(ModelFitError, match="reads a 3D volume .* the scan is 2D \\(PX\\)"):
        check_fits(cbct, SimpleNamespace(modality="PX", array=np.zeros((4, 4))))
    pano = metadata_for([0, 11], patch_size=(16, 16), task="radiograph")
    with pytest.raises(ModelFitError, match="trained on PX, DX, IO, CR images, not CT"):
        check_fits(pano, SimpleNamespace(modality="CT", array=np.zeros((4, 4))))
