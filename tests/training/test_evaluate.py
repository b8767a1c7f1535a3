"""Evaluation maths on hand-made label maps (known Dice and HD95) and the written report."""

import json

import numpy as np
import pytest
from helpers.onnx_models import threshold_model_dir

from odontoscan.datasets.errors import ConfigError
from odontoscan.training.evaluate import (
    EvalCase,
    dice,
    evaluate_model,
    hd95,
    mean_dice_agreement,
    parse_seeds,
    score_case,
    to_model_space,
)


def test_dice_of_shifted_cubes():
    truth = np.zeros((12, 12, 12), dtype=np.uint8)
    pred = np.zeros_like(truth)
    truth[2:6, 2:6, 2:6] = 5
    pred[3:7, 2:6, 2:6] = 5
    assert dice(pred, truth, 5) == pytest.approx(2 * 48 / 128)  # overlap 3x4x4 of two 64-voxel cubes


def test_empty_and_absent_conventions():
    empty = np.zeros((5, 5), dtype=np.uint8)
    present = empty.copy()
    present[2, 2] = 3
    assert dice(empty, empty, 3) == 1.0 and hd95(empty, empty, 3, (1.0, 1.0)) == 0.0
    assert dice(empty, present, 3) == 0.0 and hd95(empty, present, 3, (1.0, 1.0)) is None


def test_hd95_uses_spacing_in_mm():
    truth = np.zeros((6, 6, 12), dtype=np.uint8)
    pred = np.zeros_like(truth)
    truth[2, 2, 2] = 1
    pred[2, 2, 7] = 1
    assert hd95(pred, truth, 1, (1.0, 1.0, 0.5)) == pytest.approx(2.5)
    # parallel sheets across the whole array: every surface voxel is 3 slices (0.6 mm) away
    truth = np.zeros((8, 8, 10), dtype=np.uint8)
    pred = np.zeros_like(truth)
    truth[:, :, 3] = 1
    pred[:, :, 6] = 1
    assert hd95(pred, truth, 1, (1.0, 1.0, 0.2)) == pytest.approx(0.6)
    assert hd95(truth, truth, 1, (1.0, 1.0, 0.2)) == 0.0


def test_hd95_is_the_95th_percentile_not_the_maximum():
    truth = np.zeros((1, 200), dtype=np.uint8)
    truth[0, 0:100] = 1
    pred = truth.copy()
    pred[0, 180] = 1  # one stray voxel far away
    assert hd95(pred, truth, 1, (1.0, 1.0)) < 5.0


def test_mean_dice_agreement_ignores_background_and_absent_labels():
    a = np.array([[0, 1, 1, 2]])
    assert mean_dice_agreement(a, a) == 1.0
    assert mean_dice_agreement(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert mean_dice_agreement(a, np.array([[0, 1, 1, 0]])) == pytest.approx(0.5)


def test_ground_truth_goes_to_the_model_label_space():
    labels = np.array([0, 11, 111, 5, 200, 1])
    assert to_model_space(labels, [0, 1, 11], {111: 11}).tolist() == [0, 11, 11, 0, 0, 1]


def test_score_case_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        score_case(np.zeros((2, 2)), np.zeros((2, 3)), [1], (1.0, 1.0))


def test_parse_seeds():
    assert parse_seeds("1000-1003") == [1000, 1001, 1002, 1003]
    assert parse_seeds("1-2,7") == [1, 2, 7]
    with pytest.raises(ConfigError, match="Seeds '5-1' are not valid"):
        parse_seeds("5-1")


def test_evaluate_model_writes_json_and_markdown_reports(tmp_path):
    model_dir = threshold_model_dir(tmp_path / "model", classes=[0, 11, 1], merge={111: 11})
    image = np.zeros((20, 20, 20), dtype=np.float32)
    image[5:10, 5:10, 5:10] = 1000.0
    truth = np.zeros(image.shape, dtype=np.uint16)
    truth[5:10, 5:10, 5:10] = 11
    truth[7, 7, 7] = 111  # pulp counts as its tooth
    truth[15:18, 15:18, 15:18] = 1  # jaw the model never predicts
    cases = [EvalCase("case-a", image, truth, (0.5, 0.5, 0.5)), EvalCase("case-b", image, truth, (0.5, 0.5, 0.5))]
    report = evaluate_model(model_dir, cases, tmp_path / "report", data="two synthetic cubes", threads=1)
    assert report.classes[11].dice_mean == pytest.approx(1.0)
    assert report.classes[11].hd95_mean_mm == 0.0
    assert report.classes[1].dice_mean == 0.0 and report.classes[1].hd95_undefined == 2
    assert report.groups == {"teeth": pytest.approx(1.0), "jaws": 0.0, "canals": None}
    assert report.findings is None
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["model"] == "test-model@0.0.1" and len(saved["cases"]) == 2
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| teeth | 1.000 |" in markdown and "| 11 | label 11 | 1.000 | 0.00 | 0 |" in markdown
