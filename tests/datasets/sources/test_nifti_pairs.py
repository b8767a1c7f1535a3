"""NIfTI-pairs adapter on phantom-written pairs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from odontoscan.datasets.errors import ConfigError, ScanReadError
from odontoscan.datasets.sources.nifti_pairs import NiftiPairsDataset


@pytest.fixture
def copy(tmp_path, nifti_pairs_root):
    target = tmp_path / "pairs"
    shutil.copytree(nifti_pairs_root, target)
    return target


def test_cases_and_split(nifti_pairs_root):
    ds = NiftiPairsDataset(nifti_pairs_root, val_fraction=0.5, seed=3)
    assert [r.case_id for r in ds.cases()] == ["case_a", "case_b"]
    assert [r.image.name for r in ds.cases()] == ["case_a.nii.gz", "case_b_0000.nii.gz"]
    assert len(ds.cases("val")) == 1
    assert NiftiPairsDataset(nifti_pairs_root, val_fraction=0.5, seed=3).manifest() == ds.manifest()
    assert ds.manifest()["source"] == "nifti_pairs"


def test_load_without_dataset_json_keeps_odontoscan_ids(nifti_pairs_root):
    ds = NiftiPairsDataset(nifti_pairs_root)
    for ref in ds.cases():
        case = ds.load(ref)
        expected = np.load(nifti_pairs_root / f"{ref.case_id}_labels.npy")
        np.testing.assert_array_equal(case.label, expected)
        assert case.image.shape == case.label.shape and case.image.dtype == np.float32
    assert ds.label_names()[200] == "Caries"


def test_dataset_json_remaps_by_name(copy):
    names = {"background": 0, "Lower Jawbone": 1, "Upper Jawbone": 2}
    (copy / "dataset.json").write_text(json.dumps({"labels": names}))
    ds = NiftiPairsDataset(copy)
    assert ds.label_names() == {0: "background", 1: "Lower Jawbone", 2: "Upper Jawbone"}
    with pytest.raises(ScanReadError, match="label ids .* the dataset's label table does not name"):
        ds.load(ds.cases()[0])


def test_unknown_label_name(copy):
    (copy / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "Jaw": 1}}))
    with pytest.raises(ConfigError, match="'Jaw' .* not in odontoscan's label space"):
        NiftiPairsDataset(copy)


def test_image_without_label(copy):
    (copy / "labels" / "case_b.nii.gz").unlink()
    with pytest.raises(ScanReadError, match="case_b_0000.nii.gz' has no label map 'labels/case_b.nii.gz'"):
        NiftiPairsDataset(copy)


def test_missing_images_folder(tmp_path):
    with pytest.raises(ConfigError, match="no images/ folder"):
        NiftiPairsDataset(tmp_path)


def test_label_id_outside_the_label_space(copy):
    import SimpleITK as sitk

    path = copy / "labels" / "case_a.nii.gz"
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array[0, 0, 0] = 77
    broken = sitk.GetImageFromArray(array)
    broken.CopyInformation(image)
    sitk.WriteImage(broken, str(path))
    ds = NiftiPairsDataset(copy)
    with pytest.raises(ScanReadError, match=r"label ids \[77\] that are not in odontoscan's label space"):
        ds.load(ds.cases()[0])
