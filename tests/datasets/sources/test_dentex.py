"""DENTEX adapter on a phantom-written dataset and on hand-made broken layouts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from odontoscan.datasets.errors import ConfigError, ScanReadError
from odontoscan.datasets.phantom.dentex import write_dentex_dataset
from odontoscan.datasets.sources.dentex import DentexDataset, categories

DISEASE_JSON = "training_data/quadrant-enumeration-disease/train_quadrant_enumeration_disease.json"


@pytest.fixture(scope="module")
def dentex_root(tmp_path_factory):
    """Three small pano phantoms in the DENTEX layout (do not modify; copy first)."""
    return write_dentex_dataset([0, 1, 2], tmp_path_factory.mktemp("dentex"), size="small")


@pytest.fixture
def copy(tmp_path, dentex_root):
    target = tmp_path / "dentex"
    shutil.copytree(dentex_root, target)
    return target


def tiny_dataset(root, annotations, **overrides):
    """One 40x60 image with the given annotations in the disease layout."""
    folder = root / "training_data" / "quadrant-enumeration-disease"
    (folder / "xrays").mkdir(parents=True)
    Image.fromarray(np.full((40, 60), 100, dtype=np.uint8)).save(folder / "xrays" / "train_0.png")
    doc = {"images": [{"height": 40, "width": 60, "id": 1, "file_name": "train_0.png"}], "annotations": annotations}
    doc.update(categories())
    doc.update(overrides)
    (folder / "train_quadrant_enumeration_disease.json").write_text(json.dumps(doc))
    return root


def test_cases_split_and_manifest_are_deterministic(dentex_root):
    ds = DentexDataset(dentex_root, val_fraction=0.34, seed=0)
    assert [r.case_id for r in ds.cases()] == ["train_0", "train_1", "train_2"]
    assert len(ds.cases("val")) >= 1 and len(ds.cases("train")) + len(ds.cases("val")) == 3
    again = DentexDataset(dentex_root, val_fraction=0.34, seed=0)
    assert [r.split for r in again.cases()] == [r.split for r in ds.cases()]
    assert again.manifest() == ds.manifest() and ds.manifest()["source"] == "dentex"


def test_load_rasterises_diseased_teeth_with_their_diagnoses(dentex_root):
    ds = DentexDataset(dentex_root)
    doc = json.loads((dentex_root / DISEASE_JSON).read_text())
    for ref in ds.cases():
        case = ds.load(ref)
        assert case.image.dtype == np.float32 and case.image.ndim == 2
        assert case.label.shape == case.image.shape and case.label.dtype == np.uint16
        teeth = case.meta["teeth"]
        image_id = next(i["id"] for i in doc["images"] if i["file_name"] == f"{ref.case_id}.png")
        expected = [a for a in doc["annotations"] if a["image_id"] == image_id]
        assert len(teeth) == len(expected)
        assert set(np.unique(case.label)) - {0} == {t["fdi"] for t in teeth}
        for tooth in teeth:
            x, y, w, h = tooth["bbox"]
            r, c = np.nonzero(case.label == tooth["fdi"])
            assert r.min() >= y - 1 and r.max() <= y + h and c.min() >= x - 1 and c.max() <= x + w
            assert tooth["diagnosis"] in ("Impacted", "Caries", "Periapical Lesion", "Deep Caries")


def test_phantom_truth_survives_the_round_trip(dentex_root):
    from odontoscan.datasets.phantom.coco import tooth_owner
    from odontoscan.datasets.phantom.pano import generate_pano

    pano = generate_pano(2, "small")
    owner = tooth_owner(pano.labels)
    case = DentexDataset(dentex_root).load(next(r for r in DentexDataset(dentex_root).cases() if r.case_id == "train_2"))
    expected = sorted((a["fdi"], d) for a in pano.annotations for d in a["diagnoses"])
    assert sorted((t["fdi"], t["diagnosis"]) for t in case.meta["teeth"]) == expected
    for fdi in {f for f, _ in expected}:
        a, b = case.label == fdi, owner == fdi
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.8  # polygon vs exact mask


def test_enumeration_subset_has_every_tooth(dentex_root):
    ds = DentexDataset(dentex_root, subset="quadrant_enumeration")
    case = ds.load(ds.cases()[0])
    assert len(set(np.unique(case.label)) - {0}) >= 20
    assert all(t["diagnosis"] is None for t in case.meta["teeth"])


def test_category_ids_map_to_fdi(tmp_path):
    polygon = [[10, 5, 20, 5, 20, 30, 10, 30]]
    anns = [
        {"id": 1, "image_id": 1, "category_id_1": 2, "category_id_2": 5, "category_id_3": 3, "bbox": [10, 5, 11, 26], "segmentation": polygon, "area": 286, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id_1": 0, "category_id_2": 7, "category_id_3": 0, "bbox": [40, 10, 8, 8], "segmentation": [], "area": 64, "iscrowd": 0},
    ]
    ds = DentexDataset(tiny_dataset(tmp_path, anns))
    case = ds.load(ds.cases()[0])
    assert [(t["fdi"], t["diagnosis"]) for t in case.meta["teeth"]] == [(36, "Deep Caries"), (18, "Impacted")]
    assert case.label[15, 15] == 36 and case.label[12, 44] == 18  # polygon, then bbox fallback
    assert case.spacing == (1.0, 1.0)


def test_missing_json_is_a_scan_read_error(copy):
    (copy / DISEASE_JSON).unlink()
    with pytest.raises(ScanReadError, match="train_quadrant_enumeration_disease.json' is missing"):
        DentexDataset(copy)


def test_missing_image_is_a_scan_read_error(copy):
    (copy / "training_data/quadrant-enumeration-disease/xrays/train_1.png").unlink()
    with pytest.raises(ScanReadError, match="lists image 'train_1.png', which is missing"):
        DentexDataset(copy)


def test_unknown_category_id_is_a_config_error(tmp_path):
    anns = [{"id": 7, "image_id": 1, "category_id_1": 7, "category_id_2": 0, "category_id_3": 1, "bbox": [1, 1, 2, 2]}]
    with pytest.raises(ConfigError, match=r"annotation 7 .* category_id_1=7, which \"categories_1\" does not list"):
        DentexDataset(tiny_dataset(tmp_path, anns))


def test_unknown_diagnosis_name_and_bad_json_are_config_errors(tmp_path, copy):
    with pytest.raises(ConfigError, match="is not a DENTEX category"):
        DentexDataset(tiny_dataset(tmp_path, [], categories_3=[{"id": 0, "name": "Fracture"}]))
    (copy / DISEASE_JSON).write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        DentexDataset(copy)


def test_missing_root_and_bad_subset(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        DentexDataset(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="subset must be one of"):
        DentexDataset(tmp_path, subset="quadrant")
