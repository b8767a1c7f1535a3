"""The CBCT phantom: determinism, labels vs ground truth, anatomy, grey values, formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from odontoscan.datasets import load_scan, measure
from odontoscan.datasets.findings_schema import FindingKind, Findings, ToothStatus
from odontoscan.datasets.geometry import canonicalize
from odontoscan.datasets.labels import FDI_TEETH, PULP_OFFSET, Label
from odontoscan.datasets.phantom.cbct import generate_cbct, write_cbct_phantom, write_toothfairy2_dataset
from odontoscan.datasets.phantom.imaging import HU_MAX

TOOTH_LIKE = (ToothStatus.PRESENT, ToothStatus.IMPACTED, ToothStatus.CROWN)


def centroid_x(labels, label):
    return measure.centroid_index(labels == label)[0]


def lps_to_index(phantom, location):
    return (np.asarray(location) - np.asarray(phantom.origin)) * np.array([-1, -1, 1]) / np.asarray(phantom.spacing)


def test_same_seed_same_phantom_and_different_seed_differs(small_phantom, small_phantoms):
    again = generate_cbct(0, "small")
    np.testing.assert_array_equal(again.image, small_phantom.image)
    np.testing.assert_array_equal(again.labels, small_phantom.labels)
    assert again.ground_truth.model_dump_json() == small_phantom.ground_truth.model_dump_json()
    other = small_phantoms[1]
    assert other.ground_truth.model_dump_json() != small_phantom.ground_truth.model_dump_json()
    assert other.image.shape != small_phantom.image.shape or not np.array_equal(other.image, small_phantom.image)


def test_arrays_and_ground_truth_header(small_phantom):
    p = small_phantom
    assert p.image.dtype == np.float32 and p.labels.dtype == np.uint16
    assert p.image.shape == p.labels.shape
    assert 130 <= p.image.shape[0] <= 170 and 95 <= p.image.shape[2] <= 125
    assert p.spacing == (0.8, 0.8, 0.8)
    gt = p.ground_truth
    assert gt.model.name == "phantom-ground-truth"
    assert gt.scan.shape == list(p.image.shape)
    assert sorted(t.fdi for t in gt.teeth) == sorted(FDI_TEETH)


@pytest.mark.parametrize("seed", range(6))
def test_tooth_chart_matches_labels(small_phantoms, seed):
    p = small_phantoms[seed]
    present = set(np.unique(p.labels).tolist())
    for tooth in p.ground_truth.teeth:
        if tooth.status in TOOTH_LIKE:
            assert tooth.fdi in present, f"tooth {tooth.fdi} ({tooth.status.value}) has no voxels"
        else:
            assert tooth.fdi not in present and PULP_OFFSET + tooth.fdi not in present
    statuses = [t.status for t in p.ground_truth.teeth]
    if ToothStatus.IMPLANT in statuses:
        _, count = ndimage.label(p.labels == Label.IMPLANT)
        assert count >= statuses.count(ToothStatus.IMPLANT)
    if ToothStatus.BRIDGE_PONTIC in statuses:
        assert Label.BRIDGE in present


def _allowed_labels(finding) -> tuple[int, ...]:
    fdi = finding.fdi
    return {
        FindingKind.CARIES: (Label.CARIES,),
        FindingKind.PERIAPICAL_LESION: (Label.PERIAPICAL_LESION,),
        FindingKind.RESTORATION: (Label.RESTORATION,),
        FindingKind.ROOT_CANAL_FILLING: (Label.ROOT_CANAL_FILLING,),
        FindingKind.BONE_LOSS: (Label.LOWER_JAWBONE, Label.UPPER_JAWBONE),
        FindingKind.IMPACTED_TOOTH: (fdi, PULP_OFFSET + fdi),
        FindingKind.CANAL_PROXIMITY: (fdi, Label.LEFT_IAC, Label.RIGHT_IAC),
        FindingKind.SINUS_PROXIMITY: (fdi, Label.LEFT_SINUS, Label.RIGHT_SINUS),
        FindingKind.EDENTULOUS_SITE: (Label.LOWER_JAWBONE, Label.UPPER_JAWBONE),
    }[finding.kind]


@pytest.mark.parametrize("seed", range(6))
def test_findings_sit_on_their_voxels(small_phantoms, seed):
    p = small_phantoms[seed]
    for finding in p.ground_truth.findings:
        index = lps_to_index(p, finding.location_mm)
        assert finding.evidence.slice_index == int(round(index[2]))
        reach = 3 + int(np.ceil(finding.measurements["distance_mm"].value / 2 / p.spacing[0])) if "distance_mm" in finding.measurements else 3
        lo = np.maximum(np.floor(index - reach).astype(int), 0)
        hi = np.floor(index + reach + 1).astype(int)
        window = p.labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        assert np.isin(window, _allowed_labels(finding)).any(), finding.id
        assert finding.id.startswith(finding.kind.value.replace("_", "-") + f"-{finding.fdi}-")


def test_every_part_and_finding_kind_appears_across_seeds(small_phantoms):
    labels, kinds, statuses, grades = set(), set(), set(), set()
    for p in small_phantoms.values():
        labels |= set(np.unique(p.labels).tolist())
        kinds |= {f.kind for f in p.ground_truth.findings}
        statuses |= {t.status for t in p.ground_truth.teeth}
        grades |= {f.grade for f in p.ground_truth.findings if f.kind is FindingKind.CARIES}
    assert set(range(1, 11)) <= labels
    assert {200, 201, 202, 203} <= labels
    assert kinds == set(FindingKind)
    assert statuses == set(ToothStatus)
    assert grades == {"enamel", "dentin", "near_pulp"}


def test_left_and_right_are_the_patients(small_phantom):
    labels = small_phantom.labels
    # canonical RAS: x index grows toward the patient's right
    assert centroid_x(labels, 11) > centroid_x(labels, 21)
    assert centroid_x(labels, 13) > centroid_x(labels, 23)
    assert centroid_x(labels, 43) > centroid_x(labels, 33)
    assert centroid_x(labels, Label.LEFT_IAC) < centroid_x(labels, Label.RIGHT_IAC)
    assert centroid_x(labels, Label.LEFT_SINUS) < centroid_x(labels, Label.RIGHT_SINUS)
    for p in (16, 17):
        if (labels == p).any() and (labels == p + 10).any():
            assert centroid_x(labels, p) > centroid_x(labels, p + 10)
    # upper teeth above lower teeth, sinuses above both
    assert measure.centroid_index(labels == 11)[2] > measure.centroid_index(labels == 41)[2]
    assert measure.centroid_index(labels == Label.RIGHT_SINUS)[2] > measure.centroid_index(labels == 11)[2]


def test_grey_values_look_like_cbct(small_phantoms):
    p = small_phantoms[1]
    image, labels = p.image, p.labels
    lo, hi = np.percentile(image, [0.5, 99.5])
    assert -1030 <= lo <= -950 and 1500 <= hi <= 4000
    air = image[(labels == 0) & (image < -500)]
    assert abs(np.median(air) + 1000) < 30
    teeth = image[np.isin(labels, FDI_TEETH)]
    bone = image[labels == Label.LOWER_JAWBONE]
    enamel, dentin = np.percentile(teeth, 97), np.median(teeth)
    assert enamel > dentin + 400 and dentin > np.median(bone) + 400
    assert 200 < np.median(bone) < 1500
    assert image[labels == Label.IMPLANT].max() == HU_MAX
    assert np.median(image[labels == Label.PHARYNX]) < -800
    assert np.median(image[np.isin(labels, (Label.LEFT_IAC, Label.RIGHT_IAC))]) < 600


def test_anatomical_sizes(small_phantom):
    labels, spacing = small_phantom.labels, small_phantom.spacing
    # upper central incisor crown width along the arch (mesiodistal): 7-10 mm
    direction = (measure.centroid_index(labels == 12) - measure.centroid_index(labels == 21)) * spacing
    low, high = measure.extent_along_mm(labels == 11, spacing, (0, 0, 0), direction)
    assert 7.0 <= high - low + spacing[0] <= 10.0
    # tooth length (crown + root) of the upper canine: about 27 mm
    assert 22 <= measure.largest_diameter_mm(labels == 13, spacing) <= 32
    # canal width from its cross-sections (canals run mostly front to back)
    for canal in (Label.LEFT_IAC, Label.RIGHT_IAC):
        areas = np.count_nonzero(labels == canal, axis=(0, 2)) * spacing[0] * spacing[2]
        width = 2 * np.sqrt(np.median(areas[areas > 0]) / np.pi)
        assert 2.0 <= width <= 4.5


def test_dicom_output_loads_back(small_phantom, dicom_phantom_dir):
    scan = load_scan(dicom_phantom_dir / "dicom")
    assert scan.shape == small_phantom.image.shape
    assert scan.spacing == pytest.approx(small_phantom.spacing)
    np.testing.assert_allclose(scan.array, small_phantom.image, atol=1.0)  # integer HU
    assert scan.geometry.origin == pytest.approx(small_phantom.origin, abs=1e-3)
    assert scan.meta.manufacturer == "odontoscan phantom"
    assert scan.meta.study_instance_uid == small_phantom.ground_truth.scan.study_instance_uid
    image = sitk.ReadImage(str(dicom_phantom_dir / "labels.nii.gz"))
    labels, _, geometry = canonicalize(
        sitk.GetArrayFromImage(image).transpose(2, 1, 0), image.GetSpacing(), image.GetOrigin(),
        np.array(image.GetDirection()).reshape(3, 3),
    )
    np.testing.assert_array_equal(labels, small_phantom.labels)
    assert geometry.origin == pytest.approx(small_phantom.origin, abs=1e-3)
    truth = Findings.model_validate_json((dicom_phantom_dir / "ground_truth.json").read_text())
    assert truth == small_phantom.ground_truth


def test_nifti_layout(tmp_path, small_phantom):
    folder = write_cbct_phantom(0, tmp_path / "nifti", fmt="nifti", size="small")
    assert sorted(p.name for p in folder.iterdir()) == ["ground_truth.json", "image.nii.gz", "labels.nii.gz"]
    scan = load_scan(folder / "image.nii.gz")
    np.testing.assert_allclose(scan.array, np.rint(small_phantom.image), atol=0.51)
    assert scan.geometry.origin == pytest.approx(small_phantom.origin, abs=1e-3)


def test_toothfairy2_layout(tmp_path):
    folder = write_toothfairy2_dataset([2, 3], tmp_path / "tf2", size="small")
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["ToothFairy2F_001_0000.mha", "ToothFairy2F_002_0000.mha"]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["ToothFairy2F_001.mha", "ToothFairy2F_002.mha"]
    text = (folder / "dataset.json").read_text()
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    document = dict(pairs)
    assert document["name"] == "ToothFairy2" and document["file_ending"] == ".mha"
    assert dict(document["channel_names"]) == {"0": "CBCT"} and document["numTraining"] == 2
    labels = document["labels"]
    assert labels[0] == ("background", 0) and ("Upper Right Third Molar (Wisdom Tooth)", 18) in labels
    assert [v for k, v in labels if k == "NA"] == [19, 20, 29, 30, 39, 40]
    label_map = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "ToothFairy2F_001.mha")))
    assert set(np.unique(label_map).tolist()) <= {v for _, v in labels if _ != "NA"}
