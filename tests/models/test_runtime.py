"""ONNX inference runtime: threads, Gaussian blending, bounded memory, label ids back on the scan grid."""

import os
import tracemalloc

import numpy as np
import pytest
from helpers.onnx_models import metadata_for, pointwise_model, threshold_model_dir

from odontoscan.datasets.errors import ConfigError
from odontoscan.models.metadata import write_model_dir
from odontoscan.models.runtime import OnnxModel, ort_threads
from odontoscan.models.sliding_window import blend_slabs, gaussian_importance, window_starts


def test_thread_setting_argument_env_and_default(tmp_path, monkeypatch):
    threshold_model_dir(tmp_path)
    monkeypatch.delenv("ODONTOSCAN_ORT_THREADS", raising=False)
    assert ort_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("ODONTOSCAN_ORT_THREADS", "3")
    model = OnnxModel(tmp_path)
    assert model.threads == 3
    assert model.session.get_session_options().intra_op_num_threads == 3
    assert model.session.get_session_options().inter_op_num_threads == 1
    assert OnnxModel(tmp_path, threads=1).session.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv("ODONTOSCAN_ORT_THREADS", "many")
    with pytest.raises(ConfigError, match="ODONTOSCAN_ORT_THREADS='many' is not a whole number"):
        ort_threads()


def test_windows_cover_every_edge():
    assert window_starts(40, 16, 0.25) == [0, 12, 24]
    assert window_starts(16, 16, 0.5) == [0]
    assert window_starts(17, 16, 0.0) == [0, 1]
    weights = gaussian_importance((16, 8))
    assert weights.max() == pytest.approx(1.0) and weights.min() > 0


def test_constant_model_output_blends_to_a_constant_map():
    image = np.random.default_rng(0).random((37, 29, 45), dtype=np.float32)
    constant = np.array([1.0, -2.0, 3.5], dtype=np.float32)

    def predict(batch):
        return np.broadcast_to(constant[None, :, None, None, None], (batch.shape[0], 3, *batch.shape[2:])).copy()

    covered = np.zeros(image.shape[-1], dtype=int)
    for start, stop, logits in blend_slabs(image, predict, (16, 16, 16), num_classes=3, overlap=0.5, batch_size=3, chunk=7):
        assert logits.shape == (3, 37, 29, stop - start)
        np.testing.assert_allclose(logits, np.broadcast_to(constant[:, None, None, None], logits.shape), rtol=1e-5)
        covered[start:stop] += 1
    assert np.all(covered == 1)  # every slice of the last axis finalised exactly once


def test_blending_reproduces_a_position_dependent_output():
    """A model whose logit is the input itself gives back the image at every voxel."""
    image = np.random.default_rng(1).random((20, 24, 50), dtype=np.float32)
    out = np.zeros_like(image)
    for start, stop, logits in blend_slabs(image, lambda b: b.copy(), (8, 16, 16), num_classes=1, overlap=0.3):
        out[..., start:stop] = logits[0]
    np.testing.assert_allclose(out, image, rtol=1e-5)


def test_labels_map_to_design_ids_on_the_input_grid(tmp_path):
    threshold_model_dir(tmp_path, classes=[0, 36], spacing_mm=(1.0, 1.0, 1.0))
    model = OnnxModel(tmp_path, threads=1)
    image = np.zeros((41, 37, 27), dtype=np.float32)  # odd shape at 0.5 mm: 20.5 voxels at 1 mm
    image[10:20, 8:18, 6:16] = 1000.0
    labels = model.segment(image, (0.5, 0.5, 0.5))
    assert labels.shape == image.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 36}
    truth = np.where(image > 500, 36, 0)
    assert np.mean(labels == truth) > 0.99


def test_region_of_interest_leaves_the_rest_background(tmp_path):
    threshold_model_dir(tmp_path, classes=[0, 11])
    model = OnnxModel(tmp_path, threads=1)
    image = np.full((30, 30, 30), 1000.0, dtype=np.float32)
    labels = model.segment(image, (1.0, 1.0, 1.0), roi=(slice(5, 15), slice(0, 30), slice(10, 40)))
    assert labels[5:15, :, 10:].min() == 11
    assert labels.sum() == 11 * 10 * 30 * 20


def test_small_scan_is_padded_to_the_window(tmp_path):
    threshold_model_dir(tmp_path, classes=[0, 200])
    labels = OnnxModel(tmp_path, threads=1).segment(np.full((5, 9, 3), 900.0, dtype=np.float32), (1.0, 1.0, 1.0))
    assert labels.shape == (5, 9, 3) and np.all(labels == 200)


def test_memory_stays_bounded_on_a_large_volume(tmp_path):
    classes = [0, 1, 2, 3] + [q * 10 + p for q in (1, 2, 3, 4) for p in range(1, 8)]  # 32 channels
    threshold_model_dir(tmp_path, classes=classes)
    model = OnnxModel(tmp_path, threads=1)
    image = np.zeros((96, 96, 256), dtype=np.float32)
    image[20:40, 20:40, 100:200] = 1000.0
    whole_volume_logits = len(classes) * image.size * 4
    tracemalloc.start()
    labels = model.segment(image, (1.0, 1.0, 1.0), batch_size=4)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert labels[30, 30, 150] == classes[1] and labels[0, 0, 0] == 0
    # ring buffer (33 x 96 x 96 x 16 x 4 = 19 MB), one finalised chunk and the float32
    # image (and its normalisation temporary), instead of 302 MB of whole-volume logits
    assert peak < 0.25 * whole_volume_logits, f"peak {peak / 1e6:.0f} MB"


def test_slivers_of_a_tooth_number_on_another_tooth_join_that_tooth(tmp_path):
    """The network paints a 2-pixel sliver of 12 on tooth 11; a real tooth 12 elsewhere stays 12."""
    # grey 700 -> 11, grey 900 -> 12 (logits: 0.5 | x | 2x - 0.8 on x = grey / 1000)
    onnx_bytes = pointwise_model([0.0, 1.0, 2.0], [0.5, 0.0, -0.8], spatial_dims=2)
    write_model_dir(onnx_bytes, metadata_for([0, 11, 12], patch_size=(16, 16), task="radiograph"), tmp_path)
    image = np.zeros((40, 40), np.float32)
    image[4:16, 4:16] = 700
    image[9:11, 15:16] = 900  # sliver on the edge of 11
    image[24:36, 24:36] = 900
    labels = OnnxModel(tmp_path, threads=1).segment(image, (0.4, 0.4))
    assert (labels[4:16, 4:16] == 11).all()
    assert (labels[24:36, 24:36] == 12).all()
    raw = OnnxModel(tmp_path, threads=1).segment(image, (0.4, 0.4), postprocess=False)
    assert (raw[9:11, 15] == 12).all()


def test_a_mirrored_pass_averages_each_window_with_its_left_right_mirror_image(tmp_path):
    threshold_model_dir(tmp_path / "cbct", classes=[0, 11, 201])
    model = OnnxModel(tmp_path / "cbct", threads=1)
    x = np.random.default_rng(2).random((2, 1, 8, 6, 4), dtype=np.float32)
    # a network that answers each voxel alike, whichever way the patient faces: unchanged
    np.testing.assert_allclose(model.predict_mirrored(x), model.predict_logits_patch(x), rtol=1e-6)
    ramp = np.arange(8.0)[:, None, None]  # a network favouring the patient's left (x) for teeth and lesions
    model.predict_logits_patch = lambda batch: np.concatenate([0 * batch, batch * ramp, batch * ramp], axis=1)
    logits = model.predict_mirrored(x)
    np.testing.assert_allclose(logits[:, 1:2], x * 3.5, rtol=1e-6)  # teeth evened out: (i + 7 - i) / 2
    np.testing.assert_allclose(logits[:, 2:3], x * np.maximum(ramp, 7 - ramp), rtol=1e-6)  # a lesion seen in either pass
    write_model_dir(pointwise_model([0.0, 1.0], [0.0, 0.0], spatial_dims=2), metadata_for([0, 11], patch_size=(16, 16), task="radiograph"), tmp_path / "pano")
    radiograph = OnnxModel(tmp_path / "pano", threads=1)
    radiograph.predict_logits_patch = lambda batch: batch * np.arange(6.0)  # radiographs: left-right is the columns
    image = np.random.default_rng(3).random((1, 1, 4, 6), dtype=np.float32)
    np.testing.assert_allclose(radiograph.predict_mirrored(image), image * 2.5, rtol=1e-6)
