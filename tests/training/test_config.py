"""Training configs: valid ones parse, every mistake is named with its key path."""

import pytest

from odontoscan.datasets.errors import ConfigError
from odontoscan.training.config import load_config, parse_config

VALID = {
    "task": "cbct",
    "name": "cbct-tiny",
    "data": {"source": "phantom", "train_seeds": {"start": 0, "stop": 4}, "val_seeds": {"start": 100, "stop": 102}},
    "labels": {"classes": [0, 1, 2, 11], "merge": {111: 11}},
    "preprocess": {"spacing_mm": [1.6, 1.6, 1.6], "intensity": {"kind": "window", "lower": -1000, "upper": 3500}},
    "network": {"name": "UNet", "kwargs": {"channels": [8, 16], "strides": [2]}},
    "patch_size": [32, 32, 32],
    "epochs": 2,
}


def _with(**changes):
    doc = {**VALID, **changes}
    return doc


def test_valid_config_parses_with_defaults():
    config = parse_config(VALID)
    assert config.spatial_dims == 3
    assert config.data.train_seeds.seeds == [0, 1, 2, 3]
    assert config.optimizer.name == "adamw" and config.amp == "auto"


def test_misspelt_key_is_named():
    with pytest.raises(ConfigError, match=r"network\.kwarg: unknown key"):
        parse_config(_with(network={"name": "UNet", "kwarg": {}}))


def test_missing_key_is_named():
    doc = dict(VALID)
    del doc["epochs"]
    with pytest.raises(ConfigError, match="epochs: required key is missing"):
        parse_config(doc)


def test_overlapping_phantom_seeds_are_refused():
    data = {"source": "phantom", "train_seeds": {"start": 0, "stop": 10}, "val_seeds": {"start": 5, "stop": 12}}
    with pytest.raises(ConfigError, match="train and val seeds overlap"):
        parse_config(_with(data=data))


def test_patch_dimensions_must_match_the_task():
    with pytest.raises(ConfigError, match="patch_size needs 2 values for task radiograph"):
        parse_config(_with(task="radiograph", preprocess={"intensity": {"kind": "percentiles"}}))


def test_labels_must_start_with_background_and_merge_into_classes():
    with pytest.raises(ConfigError, match="classes must start with 0"):
        parse_config(_with(labels={"classes": [1, 2]}))
    with pytest.raises(ConfigError, match=r"merge targets \[48\] are not in classes"):
        parse_config(_with(labels={"classes": [0, 11], "merge": {148: 48}}))


def test_unknown_network_and_folder_source():
    with pytest.raises(ConfigError, match=r"network\.name: Input should be 'UNet', 'SegResNet' or 'DynUNet'"):
        parse_config(_with(network={"name": "ResNet"}))
    config = parse_config(_with(data={"source": "toothfairy2"}))
    assert config.data.path is None and config.data.val_fraction == 0.2


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listy)


def test_refining_labels_fold_every_tooth_and_canal():
    config = parse_config(_with(labels={"classes": [0, 3, 11, 200], "refines": True}))
    merge = config.labels.merge
    assert merge[36] == merge[148] == merge[111] == 11 and merge[4] == 3 and 11 not in merge
    with pytest.raises(ConfigError, match=r"remove ids \[4, 36\] from classes"):
        parse_config(_with(labels={"classes": [0, 3, 4, 11, 36], "refines": True}))


def test_tooth_contact_class_is_for_refining_models_with_a_tooth_class():
    assert parse_config(_with(labels={"classes": [0, 11, 250], "refines": True})).labels.classes == [0, 11, 250]
    with pytest.raises(ConfigError, match="for a refining model only"):
        parse_config(_with(labels={"classes": [0, 11, 250]}))
    with pytest.raises(ConfigError, match="needs the tooth class 11"):
        parse_config(_with(labels={"classes": [0, 3, 250], "refines": True}))


def test_loss_class_weights_name_known_classes_and_are_positive():
    config = parse_config(_with(loss={"class_weights": {11: 4.0}}))
    assert config.loss.weights(config.labels.classes) == [1.0, 1.0, 1.0, 4.0]
    with pytest.raises(ConfigError, match=r"loss.class_weights names ids \[200\]"):
        parse_config(_with(loss={"class_weights": {200: 2.0}}))
    with pytest.raises(ConfigError, match="must be positive"):
        parse_config(_with(loss={"class_weights": {11: 0}}))


def test_full_size_seeds_must_not_overlap_validation():
    data = {
        "source": "phantom", "train_seeds": {"start": 0, "stop": 4}, "full_size_seeds": {"start": 100, "stop": 104},
        "val_seeds": {"start": 102, "stop": 106},
    }
    with pytest.raises(ConfigError, match="train and val seeds overlap"):
        parse_config(_with(data=data))
