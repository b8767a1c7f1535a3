"""Coarse-to-fine merging: the fine model draws the boundaries, the coarse one names the teeth."""

import numpy as np
import pytest
from helpers.onnx_models import metadata_for, pointwise_model

from odontoscan.datasets.errors import ModelError
from odontoscan.datasets.labels import TOOTH_CONTACT, Label
from odontoscan.models.metadata import ModelMetadata, RefinerRef, read_model_dir, write_model_dir
from odontoscan.models.refine import dental_region, merge_refined
from odontoscan.models.runtime import OnnxModel

SPACING = (0.5, 0.5, 0.5)


def _coarse() -> np.ndarray:
    """Lower jaw bone (1) with teeth 36 (patient left, high x) and 46 (right, low x) in it."""
    coarse = np.zeros((40, 20, 20), np.uint8)
    coarse[2:38, 2:18, 2:12] = 1
    coarse[26:32, 8:12, 6:16] = 36
    coarse[8:14, 8:12, 6:16] = 46
    return coarse


def test_fine_teeth_take_the_number_of_the_nearest_coarse_tooth():
    coarse = _coarse()
    fine = np.zeros_like(coarse)
    fine[25:33, 7:13, 5:16] = 11  # both teeth a voxel wider than the coarse model drew them
    fine[7:15, 7:13, 5:16] = 11
    merged = merge_refined(coarse, fine, SPACING)
    assert (merged[25:33, 7:13, 5:16] == 36).all()
    assert (merged[7:15, 7:13, 5:16] == 46).all()


def _touching_row() -> tuple[np.ndarray, np.ndarray]:
    """Three touching lower teeth 44 | 45 | 46 (7, 7 and 11 mm wide along x at 0.5 mm
    voxels) as a refiner with the contact class draws them, and a coarse map whose
    boundaries sit 2 voxels too far towards 44."""
    fine = np.zeros((80, 16, 16), np.uint8)
    fine[4:54, 4:12, 4:12] = 11
    fine[17:19, 4:12, 4:12] = TOOTH_CONTACT  # 44 | 45 at x = 18
    fine[31:33, 4:12, 4:12] = TOOTH_CONTACT  # 45 | 46 at x = 32
    coarse = np.zeros_like(fine)
    coarse[4:16, 4:12, 4:12], coarse[16:30, 4:12, 4:12], coarse[30:54, 4:12, 4:12] = 44, 45, 46
    return coarse, fine


def test_teeth_cut_apart_at_their_contacts_take_the_number_most_of_them_got():
    coarse, fine = _touching_row()
    merged = merge_refined(coarse, fine, SPACING)
    assert (merged[4:18, 4:12, 4:12] == 44).all()
    assert (merged[18:32, 4:12, 4:12] == 45).all()
    assert (merged[32:54, 4:12, 4:12] == 46).all()


def test_a_thin_tooth_part_the_peeling_would_wipe_out_keeps_its_own_number():
    coarse, fine = _touching_row()
    fine[56:74, 4:12, 4:7] = 11  # a crowned stump of 47 beyond 46: 3 voxels thin (54 mm^3), not touching it
    coarse[56:74, 4:12, 3:8] = 47
    fine[76:78, 6:8, 6:8], coarse[76:78, 6:8, 6:8] = 11, 48  # a speck the coarse model called 48
    merged = merge_refined(coarse, fine, SPACING)
    assert (merged[56:74, 4:12, 4:7] == 47).all()  # not 46, whose peeled core is nearest
    assert (merged[32:54, 4:12, 4:12] == 46).all()
    assert (merged[76:78, 6:8, 6:8] == 47).all()  # a speck joins its nearest piece: no stray 48


def test_a_tooth_whose_filling_leaves_only_a_thin_wall_keeps_its_own_number():
    coarse, fine = _touching_row()
    fine[17:19, 4:12, 11] = 11  # the 44 | 45 contact not drawn along the top layer: the two touch there
    fine[20:30, 5:11, 4:12] = Label.RESTORATION  # 45 a one-voxel wall around its filling
    merged = merge_refined(coarse, fine, SPACING)
    assert (merged[4:17, 4:12, 4:11] == 44).all()
    assert (merged[19:31, 4:12, 4:12][fine[19:31, 4:12, 4:12] == 11] == 45).all()  # its wall is not shared out between 44 and 46
    assert (merged[20:30, 5:11, 4:12] == Label.RESTORATION).all()


def test_two_teeth_the_contacts_do_not_separate_are_split_between_their_numbers():
    coarse, fine = _touching_row()
    fine[fine == TOOTH_CONTACT] = 11
    fine[31:33, 4:12, 4:12] = TOOTH_CONTACT  # only 45 | 46 drawn: 44 and 45 stay one piece
    merged = merge_refined(coarse, fine, SPACING)
    assert (merged[4:17, 4:12, 4:12] == 44).all()  # two premolars' width: not all 45
    assert (merged[19:31, 4:12, 4:12] == 45).all()
    assert (merged[33:54, 4:12, 4:12] == 46).all()


def test_a_run_of_teeth_no_contact_separates_keeps_the_coarse_numbers():
    fine = np.zeros((96, 16, 16), np.uint8)
    fine[4:92, 4:12, 4:12] = 11  # 43 | 44 45 46 47: only the first contact drawn
    fine[17:19, 4:12, 4:12] = TOOTH_CONTACT
    coarse = np.zeros_like(fine)
    for fdi, (start, stop) in {43: (4, 18), 44: (18, 32), 45: (32, 46), 46: (46, 68), 47: (68, 92)}.items():
        coarse[start:stop, 4:12, 4:12] = fdi
    merged = merge_refined(coarse, fine, SPACING)
    for fdi, (start, stop) in {44: (20, 30), 45: (34, 44), 46: (48, 66), 47: (70, 90)}.items():
        assert (merged[start:stop, 4:12, 4:12] == fdi).all()  # a 37 mm piece is no tooth, nor two


def test_coarse_tooth_voxels_the_fine_model_rejects_become_the_nearest_other_structure():
    coarse = _coarse()
    fine = np.zeros_like(coarse)
    fine[27:31, 8:12, 6:16] = 11  # 36 is thinner than the coarse model thought; 46 is not a tooth at all
    merged = merge_refined(coarse, fine, SPACING)
    assert (merged[27:31, 8:12, 6:16] == 36).all()
    assert (merged[26, 8:12, 6:12] == 1).all()  # inside the jaw: bone
    assert (merged[8:14, 8:12, 6:12] == 1).all()
    assert not np.isin(merged, [46]).any()
    assert (merged[26, 8:12, 14:16] == 0).all()  # above the jaw: background


def test_canal_side_follows_the_nearest_lower_tooth_and_findings_are_kept():
    coarse = _coarse()
    fine = np.zeros_like(coarse)
    fine[3:36, 9:11, 3:5] = 3  # one canal class from the refiner, running under both teeth
    fine[28, 9, 14] = 200  # caries in tooth 36
    merged = merge_refined(coarse, fine, SPACING)
    assert (merged[24:36, 9:11, 3:5] == 3).all()  # under 36 (quadrant 3): the patient's left canal
    assert (merged[3:16, 9:11, 3:5] == 4).all()  # under 46: right
    assert merged[28, 9, 14] == 200


def test_dental_region_is_the_refined_structures_plus_a_margin():
    coarse = _coarse()
    assert dental_region(coarse, SPACING, margin_mm=1.0) == (slice(6, 34), slice(6, 14), slice(4, 18))
    assert dental_region(np.where(coarse == 1, 1, 0), SPACING) is None  # jaw only: nothing to refine


def _pair(tmp_path):
    """A coarse threshold model (tooth 36 where grey > 500) with a refiner that calls a
    voxel tooth (11) where grey > 300, i.e. a wider tooth."""
    fine_dir = tmp_path / "fine"
    fine_meta = metadata_for([0, 11], spacing_mm=(0.5, 0.5, 0.5)).model_copy(update={"refines": True})
    write_model_dir(pointwise_model([0.0, 1.0], [0.3, 0.0]), fine_meta, fine_dir)
    coarse_meta = metadata_for([0, 36], spacing_mm=(1.0, 1.0, 1.0)).model_copy(update={"refiner": RefinerRef()})
    coarse_dir = tmp_path / "coarse"
    write_model_dir(pointwise_model([0.0, 1.0], [0.5, 0.0]), coarse_meta, coarse_dir, refiner_model=fine_dir / "model.onnx")
    return coarse_dir, fine_dir


def test_a_model_with_a_refiner_returns_the_fine_boundaries_with_coarse_numbers(tmp_path):
    coarse_dir, _ = _pair(tmp_path)
    image = np.zeros((32, 32, 32), np.float32)
    image[8:24, 8:24, 8:24] = 400.0  # the refiner's tooth
    image[12:20, 12:20, 12:20] = 900.0  # the coarse model's tooth
    model = OnnxModel(coarse_dir, threads=1)
    assert model.refiner is not None and model.refiner.metadata.refines
    labels = model.segment(image, (0.5, 0.5, 0.5))
    assert (labels[8:24, 8:24, 8:24] == 36).all()
    assert (labels == 36).sum() == 16**3
    coarse_only = model.segment(image, (0.5, 0.5, 0.5), postprocess=False)
    assert (coarse_only == 36).sum() < 16**3


def test_refiner_hash_is_checked_and_a_refiner_never_runs_alone(tmp_path):
    coarse_dir, fine_dir = _pair(tmp_path)
    assert read_model_dir(coarse_dir).metadata.refiner.sha256
    with pytest.raises(ModelError, match="fine half of a coarse-to-fine pair"):
        OnnxModel(fine_dir, threads=1).segment(np.zeros((16, 16, 16), np.float32), (0.5, 0.5, 0.5))
    (coarse_dir / "refiner.onnx").write_bytes((coarse_dir / "refiner.onnx").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256 mismatch for refiner.onnx"):
        OnnxModel(coarse_dir, threads=1)
    (coarse_dir / "refiner.onnx").unlink()
    with pytest.raises(ModelError, match="lacks its refiner refiner.onnx"):
        OnnxModel(coarse_dir, threads=1)


def test_a_refiner_must_predict_only_refinable_classes():
    document = metadata_for([0, 11, 36]).model_dump() | {"refines": True}
    with pytest.raises(ValueError, match="a refining model is a CBCT model"):
        ModelMetadata.model_validate(document)


def test_dental_region_ignores_float_noise_in_the_spacing():
    """A series read along another axis reports 0.7999999999999972 mm: same box, same answer."""
    coarse = _coarse()
    assert dental_region(coarse, (0.8, 0.8, 0.8)) == dental_region(coarse, (0.8, 0.7999999999999972, 0.8000000000000003))
