"""Training data: label mapping, left-right mirroring, phantom cache, preprocessing parity, errors."""

import numpy as np
import pytest
import torch

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.phantom.cbct import write_cbct_phantom
from odontoscan.models.preprocess import preprocess
from odontoscan.training import data as training_data
from odontoscan.training.augment import FlipLeftRightd
from odontoscan.training.config import LabelConfig, parse_config
from odontoscan.training.data import load_training_data, phantom_arrays
from odontoscan.training.labels import mirrored_channels, mirrored_id, to_channels, tooth_contacts

pytestmark = pytest.mark.usefixtures("quiet_offline")


def test_tooth_contacts_are_the_voxels_of_a_tooth_next_to_another_tooth():
    row = np.array([[0, 36, 36, 36, 136, 37, 37, 37, 1, 38]])  # pulp counts as its tooth
    assert tooth_contacts(row).astype(int).tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0, 0]]
    labels = LabelConfig(classes=[0, 11, 250], refines=True)
    assert to_channels(row, labels).tolist() == [[0, 1, 1, 1, 2, 2, 1, 1, 0, 1]]


def test_label_ids_map_to_channels_with_merge_and_unknowns_as_background():
    labels = LabelConfig(classes=[0, 1, 11, 36], merge={111: 11, 136: 36})
    source = np.array([[0, 1, 2, 11], [111, 36, 136, 203]], dtype=np.uint16)
    assert to_channels(source, labels).tolist() == [[0, 1, 0, 2], [2, 3, 3, 0]]
    assert to_channels(source, labels).dtype == np.uint8


def test_mirroring_swaps_patient_sides():
    assert [mirrored_id(i) for i in (3, 4, 5, 6, 103, 104, 1, 2, 7)] == [4, 3, 6, 5, 104, 103, 1, 2, 7]
    assert [mirrored_id(i) for i in (11, 28, 36, 47, 116, 138, 200)] == [21, 18, 46, 37, 126, 148, 200]
    labels = LabelConfig(classes=[0, 1, 3, 4, 11, 21, 36])
    assert mirrored_channels(labels) == [0, 1, 3, 2, 5, 4, 6]  # 36's mirror 46 is no class: kept


def test_left_right_flip_mirrors_the_array_and_swaps_label_channels():
    image = torch.arange(4, dtype=torch.float32).reshape(1, 4, 1, 1)
    label = torch.tensor([1, 2, 0, 0], dtype=torch.float32).reshape(1, 4, 1, 1)
    flip = FlipLeftRightd(["image", "label"], "label", spatial_axis=0, permutation=[0, 2, 1])
    out = flip({"image": image, "label": label})
    assert out["image"].flatten().tolist() == [3, 2, 1, 0]
    assert out["label"].flatten().tolist() == [0, 0, 1, 2]


def test_preprocessing_parity_with_inference(tiny_document, phantom_cache, tmp_path):
    """Training feeds the network exactly what inference computes from the phantom's file."""
    config = parse_config(tiny_document)
    seed = config.data.val_seeds.start
    image, label = phantom_arrays(seed, "cbct", "small", config.preprocess, phantom_cache)
    scan = load_scan(write_cbct_phantom(seed, tmp_path / "nifti", fmt="nifti", size="small") / "image.nii.gz")
    expected = preprocess(scan.array, scan.spacing, config.preprocess)
    assert image.dtype == expected.dtype and image.shape == expected.shape
    np.testing.assert_array_equal(image, expected)
    item = training_data.make_item("x", image, label, config)
    assert item["image"].shape == (1, *expected.shape) and set(np.unique(item["label"])) <= set(range(9))


def test_phantom_cache_is_reused(tiny_document, phantom_cache, monkeypatch):
    config = parse_config(tiny_document)
    first = phantom_arrays(0, "cbct", "small", config.preprocess, phantom_cache)

    def refuse(*args):
        raise AssertionError("regenerated a cached phantom")

    monkeypatch.setattr(training_data, "generate_phantom", refuse)
    second = phantom_arrays(0, "cbct", "small", config.preprocess, phantom_cache)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_dentex_cannot_feed_a_cbct_model(tiny_document, tmp_path):
    tiny_document["data"] = {"source": "dentex", "path": str(tmp_path)}
    with pytest.raises(ConfigError, match="data.source 'dentex' does not fit task 'cbct'"):
        load_training_data(parse_config(tiny_document))


def test_folder_source_needs_a_path(tiny_document, tmp_path):
    tiny_document["data"] = {"source": "toothfairy2"}
    with pytest.raises(ConfigError, match="needs a folder: set data.path in the config or pass --data"):
        load_training_data(parse_config(tiny_document))
    with pytest.raises(ConfigError, match="Data folder '.*missing' does not exist"):
        load_training_data(parse_config(tiny_document), data_path=tmp_path / "missing")


def test_data_option_is_refused_for_phantoms(tiny_document, tmp_path):
    with pytest.raises(ConfigError, match="--data is only for folder datasets"):
        load_training_data(parse_config(tiny_document), data_path=tmp_path)


def test_empty_split_is_an_error(tiny_document, tmp_path, monkeypatch):
    from odontoscan.datasets.sources import base

    class OneCase(base.SplitDataset):
        source = "fake"

        def __init__(self):
            self._refs = [base.CaseRef("a", tmp_path / "a.nii.gz", tmp_path / "a.nii.gz", "train")]

    monkeypatch.setattr(training_data, "open_folder_dataset", lambda data, path=None: OneCase())
    tiny_document["data"] = {"source": "nifti_pairs", "path": str(tmp_path), "val_fraction": 0.0}
    with pytest.raises(ConfigError, match="The val split of the nifti_pairs folder is empty"):
        load_training_data(parse_config(tiny_document))
