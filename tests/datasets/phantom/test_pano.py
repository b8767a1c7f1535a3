"""The panoramic phantom: determinism, labels vs ground truth, annotations, crops, formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from odontoscan.datasets import load_scan
from odontoscan.datasets.findings_schema import Findings, ToothStatus
from odontoscan.datasets.labels import PULP_OFFSET
from odontoscan.datasets.phantom.pano import VISIBLE_KINDS, crops, generate_pano, pano_from_cbct, write_pano_phantom

TOOTH_LIKE = (ToothStatus.PRESENT, ToothStatus.IMPACTED, ToothStatus.CROWN)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def panos(small_phantoms):
    return {seed: pano_from_cbct(small_phantoms[seed]) for seed in SEEDS}


def test_same_seed_same_pano(panos):
    again = generate_pano(0, "small")
    first = panos[0]
    np.testing.assert_array_equal(again.image, first.image)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert again.annotations == first.annotations
    assert again.ground_truth.model_dump_json() == first.ground_truth.model_dump_json()
    assert not np.array_equal(panos[1].labels, first.labels) or panos[1].labels.shape != first.labels.shape


def test_image_arrays_and_header(panos):
    pano = panos[0]
    assert pano.image.dtype == np.float32 and pano.labels.dtype == np.uint16
    assert pano.image.shape == pano.labels.shape
    assert pano.image.min() >= 0 and pano.image.max() <= 65535
    assert pano.spacing == (0.4, 0.4)
    assert pano.ground_truth.scan.modality == "PX"
    assert pano.ground_truth.scan.shape == list(pano.image.shape)
    # Teeth are brighter than the bone around them, which is brighter than the sinuses.
    teeth = pano.image[(pano.labels >= 11) & (pano.labels <= 48)].mean()
    bone = pano.image[np.isin(pano.labels, (1, 2))].mean()
    sinus = pano.image[np.isin(pano.labels, (5, 6))].mean()
    assert teeth > bone > sinus


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_agree_with_the_tooth_chart(panos, small_phantoms, seed):
    pano = panos[seed]
    present = set(np.unique(pano.labels).tolist())
    chart = {t.fdi: t.status for t in pano.ground_truth.teeth}
    assert chart == {t.fdi: t.status for t in small_phantoms[seed].ground_truth.teeth}
    for fdi, status in chart.items():
        if status in TOOTH_LIKE:
            assert fdi in present, f"tooth {fdi} ({status.value}) has no pixels"
        else:
            assert fdi not in present and PULP_OFFSET + fdi not in present


@pytest.mark.parametrize("seed", SEEDS)
def test_annotations_and_findings_match_the_labels(panos, seed):
    pano = panos[seed]
    rows, cols = pano.labels.shape
    annotated = {a["fdi"] for a in pano.annotations}
    assert annotated == {t.fdi for t in pano.ground_truth.teeth if t.status in TOOTH_LIKE}
    for ann in pano.annotations:
        x, y, w, h = ann["bbox"]
        r, c = np.nonzero(pano.labels == ann["fdi"])
        assert r.min() >= y and r.max() < y + h and c.min() >= x and c.max() < x + w
        assert ann["category_id_1"] == ann["fdi"] // 10 - 1 and ann["category_id_2"] == ann["fdi"] % 10 - 1
        polygon = np.asarray(ann["segmentation"][0]).reshape(-1, 2)
        assert len(polygon) >= 3 and polygon[:, 0].min() >= x and polygon[:, 1].max() < y + h
    for finding in pano.ground_truth.findings:
        assert finding.kind in VISIBLE_KINDS
        row_mm, col_mm = finding.location_mm
        assert 0 <= row_mm < rows * 0.4 and 0 <= col_mm < cols * 0.4
    diagnosed = {(a["fdi"], d) for a in pano.annotations for d in a["diagnoses"]}
    impacted = {t.fdi for t in pano.ground_truth.teeth if t.status is ToothStatus.IMPACTED}
    assert {(f, "Impacted") for f in impacted} <= diagnosed


def test_patient_right_is_on_the_image_left(panos):
    pano = panos[0]
    cols = {a["fdi"]: a["bbox"][0] + a["bbox"][2] / 2 for a in pano.annotations}
    right = [c for f, c in cols.items() if f // 10 in (1, 4)]
    left = [c for f, c in cols.items() if f // 10 in (2, 3)]
    assert max(right) < min(left) + 5 / 0.4  # incisors may overlap a few mm at the midline
    assert np.mean(right) < np.mean(left)


def test_crops_have_matching_label_masks(panos):
    out = crops(panos[0])
    assert {k for k in out if k.startswith("bitewing_")} == {"bitewing_right", "bitewing_left"}
    assert sum(k.startswith("periapical_") for k in out) == 4
    for name, (image, labels) in out.items():
        assert image.shape == labels.shape and min(image.shape) > 20
        if name.startswith("periapical_"):
            assert int(name.split("_")[1]) in np.unique(labels)


def test_png_layout(tmp_path):
    out = write_pano_phantom(0, tmp_path / "png", fmt="png", size="small")
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"pano.png", "labels.png", "annotations.json", "ground_truth.json"} <= names
    crop_names = {n for n in names if n.startswith("crops/") and not n.startswith("crops/labels/")}
    assert crop_names and all(n.startswith(("crops/periapical_", "crops/bitewing_")) for n in crop_names)
    assert {f"crops/labels/{n[len('crops/'):]}" for n in crop_names} == {n for n in names if n.startswith("crops/labels/")}
    with Image.open(out / "pano.png") as im:
        assert im.mode in ("I;16", "I") and im.size[::-1] == tuple(json.loads((out / "annotations.json").read_text())["images"][0][k] for k in ("height", "width"))
    with Image.open(out / "labels.png") as im:
        assert 11 <= np.asarray(im).max() <= 300
    doc = json.loads((out / "annotations.json").read_text())
    assert {"images", "annotations", "categories_1", "categories_2", "categories_3"} <= set(doc)
    Findings.model_validate_json((out / "ground_truth.json").read_text())


def test_dicom_layout_loads_as_px_with_spacing(tmp_path):
    out = write_pano_phantom(0, tmp_path / "dcm", fmt="dicom", size="small")
    assert (out / "pano.dcm").is_file() and not (out / "pano.png").exists()
    assert (out / "labels.png").is_file() and (out / "annotations.json").is_file()
    scan = load_scan(out / "pano.dcm")
    assert scan.modality.value == "PX" and scan.spacing == pytest.approx((0.4, 0.4))
    assert scan.pixel_spacing_known
    with Image.open(out / "labels.png") as im:
        assert scan.shape == np.asarray(im).shape


def test_dentex_layout(tmp_path):
    out = write_pano_phantom(1, tmp_path / "dentex", fmt="dentex", size="small")
    disease = out / "training_data" / "quadrant-enumeration-disease"
    assert (disease / "xrays" / "train_0.png").is_file()
    doc = json.loads((disease / "train_quadrant_enumeration_disease.json").read_text())
    assert doc["images"] == [{"height": doc["images"][0]["height"], "width": doc["images"][0]["width"], "id": 1, "file_name": "train_0.png"}]
    assert [c["name"] for c in doc["categories_3"]] == ["Impacted", "Caries", "Periapical Lesion", "Deep Caries"]
    assert all({"category_id_1", "category_id_2", "category_id_3", "bbox", "segmentation", "area", "iscrowd"} <= set(a) for a in doc["annotations"])
    enum = out / "training_data" / "quadrant_enumeration"
    assert (enum / "train_quadrant_enumeration.json").is_file() and (enum / "xrays" / "train_0.png").is_file()
    with Image.open(disease / "xrays" / "train_0.png") as im:
        assert im.mode == "L"


def test_unknown_format_and_size_are_refused(tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        write_pano_phantom(0, tmp_path, fmt="jpeg", size="small")
    with pytest.raises(ValueError, match="size must be one of"):
        generate_pano(0, "tiny")
