"""ToothFairy2 adapter on a phantom-written dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from odontoscan.datasets.errors import ConfigError, ScanReadError
from odontoscan.datasets.labels import FDI_TEETH, TOOTHFAIRY2_IDS
from odontoscan.datasets.phantom.cbct import generate_cbct, toothfairy2_labels
from odontoscan.datasets.sources.toothfairy2 import ToothFairy2Dataset


@pytest.fixture
def copy(tmp_path, toothfairy2_root):
    target = tmp_path / "tf2"
    shutil.copytree(toothfairy2_root, target)
    return target


def test_cases_split_and_manifest_are_deterministic(toothfairy2_root):
    ds = ToothFairy2Dataset(toothfairy2_root, val_fraction=0.34, seed=0)
    ids = [r.case_id for r in ds.cases()]
    assert ids == ["ToothFairy2F_001", "ToothFairy2F_002", "ToothFairy2F_003"]
    assert len(ds.cases("val")) >= 1 and len(ds.cases("train")) + len(ds.cases("val")) == 3
    again = ToothFairy2Dataset(toothfairy2_root, val_fraction=0.34, seed=0)
    assert [r.split for r in again.cases()] == [r.split for r in ds.cases()]
    assert again.manifest() == ds.manifest()
    assert ds.manifest()["source"] == "toothfairy2"


def test_load_gives_canonical_image_and_uninterpolated_labels(toothfairy2_root):
    ds = ToothFairy2Dataset(toothfairy2_root)
    case = ds.load(ds.cases()[0])
    phantom = generate_cbct(0, "small")
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint16
    assert case.spacing == pytest.approx(phantom.spacing)
    np.testing.assert_allclose(case.image, phantom.image, atol=1.0)
    np.testing.assert_array_equal(case.label, toothfairy2_labels(phantom.labels))
    assert set(np.unique(case.label).tolist()) <= set(TOOTHFAIRY2_IDS)


def test_label_names_keep_the_na_entries(toothfairy2_root):
    names = ToothFairy2Dataset(toothfairy2_root).label_names()
    assert names[1] == "Lower Jawbone" and names[48] == "Lower Right Third Molar (Wisdom Tooth)"
    assert [k for k, v in names.items() if v == "NA"] == [19, 20, 29, 30, 39, 40]
    assert set(FDI_TEETH) <= set(names)


def test_missing_dataset_json(copy):
    (copy / "dataset.json").unlink()
    with pytest.raises(ConfigError, match="dataset.json"):
        ToothFairy2Dataset(copy)


def test_image_without_label(copy):
    (copy / "labelsTr" / "ToothFairy2F_002.mha").unlink()
    with pytest.raises(ScanReadError, match="ToothFairy2F_002_0000.mha' has no label map"):
        ToothFairy2Dataset(copy)


def test_unknown_label_name(copy):
    text = (copy / "dataset.json").read_text().replace('"Pharynx"', '"Tongue"')
    (copy / "dataset.json").write_text(text)
    with pytest.raises(ConfigError, match="'Tongue' .* not in odontoscan's label space"):
        ToothFairy2Dataset(copy)


def test_label_id_not_named_in_dataset_json(copy):
    document = json.loads((copy / "dataset.json").read_text(), object_pairs_hook=lambda kv: kv)
    labels = [(k, v) for k, v in dict(document)["labels"] if v != 1]  # drop "Lower Jawbone"
    (copy / "dataset.json").write_text(json.dumps({"labels": dict(labels)}))
    ds = ToothFairy2Dataset(copy)
    with pytest.raises(ScanReadError, match=r"label ids \[1\]"):
        ds.load(ds.cases()[0])
