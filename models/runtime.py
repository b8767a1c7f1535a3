"""Run an exported model with ONNX Runtime: one patch, or a whole scan to a label map.

Torch-free (numpy + onnxruntime). :class:`OnnxModel` loads a model directory (or a
bare ``.onnx`` file with embedded metadata) once; :meth:`OnnxModel.segment` turns a
scan array into a label map of DESIGN.md ids on the scan's own grid.

Threads: one setting, ``threads`` argument, else ``$ODONTOSCAN_ORT_THREADS``, else
the CPU cores this process may run on; intra-op threads use it, inter-op is 1.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np

from odontoscan.datasets.errors import ConfigError, ModelError
from odontoscan.datasets.geometry import left_right_axis
from odontoscan.datasets.labels import FDI_TEETH, Label
from odontoscan.models.metadata import ModelMetadata, read_model_dir, read_refiner
from odontoscan.models.preprocess import preprocess, resample_labels
from odontoscan.models.refine import dental_region, merge_refined
from odontoscan.models.sliding_window import blend_slabs
from odontoscan.models.teeth import assign_tooth_sides, tidy_teeth

log = logging.getLogger(__name__)

THREADS_ENV = "ODONTOSCAN_ORT_THREADS"
# Test-time flip (OnnxModel.predict_mirrored): periapical lesions seen in either pass
# are kept. Averaged, a lesion one pass paints faintly shrinks below what is reported
# (tuning phantoms: 2 of 50 lesions lost, against 3 more false ones kept this way);
# a missed lesion costs a screening reader more than a false one they can dismiss.
# A refiner with a second opinion (odontoscan.training.export.second_opinion) also takes
# these classes from its second network where its first one sees background.
EITHER_PASS = (Label.PERIAPICAL_LESION,)
Box = tuple[slice, ...]  # region of interest: one slice per array axis, in scan voxels


def ort_threads(threads: int | None = None) -> int:
    """The intra-op thread count: ``threads``, else $ODONTOSCAN_ORT_THREADS, else usable cores."""
    if threads is None:
        value = os.environ.get(THREADS_ENV)
        if value:
            try:
                threads = int(value)
            except ValueError:
                raise ConfigError(f"{THREADS_ENV}={value!r} is not a whole number; set it to a thread count such as 2.") from None
        else:
            try:
                threads = len(os.sched_getaffinity(0))
            except AttributeError:  # not on Linux
                threads = os.cpu_count() or 1
    if threads < 1:
        raise ConfigError(f"ONNX Runtime thread count must be at least 1, got {threads}.")
    return threads


class OnnxModel:
    """An exported segmentation model loaded into an ONNX Runtime CPU session.

    Args:
        path: model directory (``model.onnx`` + ``model.json``) or an ``.onnx`` file.
        threads: intra-op threads (see :func:`ort_threads`).
        precision: "fp32" (``model.onnx``) or "int8" (``model.int8.onnx``).
    """

    def __init__(self, path: str | Path, threads: int | None = None, precision: Literal["fp32", "int8"] = "fp32") -> None:
        import onnxruntime as ort

        model_dir = read_model_dir(path, precision=precision)
        self.path = model_dir.onnx_path
        self.metadata: ModelMetadata = model_dir.metadata
        self.threads = ort_threads(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"ONNX Runtime cannot load '{self.path.name}' ({type(exc).__name__}: {exc}).") from None
        self.session_options = options
        refiner = read_refiner(model_dir)
        self.refiner: OnnxModel | None = OnnxModel(refiner.onnx_path, threads=self.threads) if refiner is not None else None

    @property
    def num_classes(self) -> int:
        return len(self.metadata.classes)

    def predict_logits_patch(self, x: np.ndarray) -> np.ndarray:
        """Logits ``[B, C, *spatial]`` for preprocessed input ``[B, 1, *spatial]`` or ``[*spatial]``.

        Spatial sizes must be multiples of ``metadata.size_multiple``.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == self.metadata.spatial_dims:
            x = x[None, None]
        if x.ndim != self.metadata.spatial_dims + 2 or x.shape[1] != 1:
            raise ValueError(f"input must be [B, 1, *spatial] with {self.metadata.spatial_dims} spatial axes, got {x.shape}")
        multiple = self.metadata.size_multiple
        if any(n % multiple for n in x.shape[2:]):
            raise ValueError(f"spatial sizes {x.shape[2:]} must be multiples of {multiple} for this network")
        m = self.metadata
        return self.session.run([m.output_name], {m.input_name: np.ascontiguousarray(x)})[0]

    def predict_mirrored(self, x: np.ndarray) -> np.ndarray:
        """Logits of a batch ``[B, 1, *spatial]`` averaged with those of its left-right
        mirror image, mirrored back: test-time flip. Only for a model whose classes have
        no sides (a refiner: every tooth one class, both canals one); it costs a second
        pass and, on tuning phantoms, made tooth Dice 0.002-0.008 higher and dropped most
        false caries. Classes in ``EITHER_PASS`` take the larger of the two logits
        instead: seen in either pass is seen."""
        axis = 2 + left_right_axis(self.metadata.spatial_dims)
        out = self.predict_logits_patch(x)
        mirrored = np.flip(self.predict_logits_patch(np.ascontiguousarray(np.flip(x, axis))), axis)
        mean = 0.5 * (out + mirrored)
        for channel, label in enumerate(self.metadata.classes):
            if label in EITHER_PASS:
                mean[:, channel] = np.maximum(out[:, channel], mirrored[:, channel])
        return mean

    def segment(
        self,
        array: np.ndarray,
        spacing: tuple[float, ...],
        *,
        roi: Box | None = None,
        overlap: float = 0.25,
        batch_size: int = 2,
        postprocess: bool = True,
        timings: dict[str, float] | None = None,
    ) -> np.ndarray:
        """Label map of DESIGN.md ids with exactly ``array.shape`` (uint8, or uint16 for ids > 255).

        Ids are ``metadata.output_classes``: a ``tooth_sides="midline"`` model's left
        teeth are numbered from the midline (:mod:`odontoscan.models.teeth`) unless
        ``postprocess`` is false, which returns the network's own ids. ``timings``, when
        given, receives the seconds spent in "preprocess", "inference" and "postprocess".

        ``array`` is a scan in canonical index order with voxel size ``spacing`` (mm).
        ``roi`` limits inference to a box of scan voxels (everything outside is
        background). A model with a refiner runs it, with a test-time flip
        (:meth:`predict_mirrored`), on the dental region it found
        (:mod:`odontoscan.models.refine`) unless ``postprocess`` is false. Peak memory beyond the input and the
        output label maps: the preprocessed image (float32), a label map at the model's
        spacing and the blending buffers of :mod:`odontoscan.models.sliding_window`.
        """
        m = self.metadata
        if m.refines:
            raise ModelError(f"Model '{m.name}' is the fine half of a coarse-to-fine pair; run the coarse model that names it as its refiner.")
        if array.ndim != m.spatial_dims or len(spacing) != array.ndim:
            raise ModelError(f"Model '{m.name}' needs a {m.spatial_dims}D array with one spacing per axis, got {array.shape}.")
        lut = np.asarray(m.classes, dtype=np.uint8 if max(m.classes) <= 255 else np.uint16)
        out = np.zeros(array.shape, dtype=lut.dtype)
        box = _clip_box(roi, array.shape) if roi is not None else tuple(slice(0, n) for n in array.shape)
        region = array[box]
        if region.size == 0:
            return out
        clock = _Clock(timings)
        image = preprocess(region, tuple(spacing), m.preprocess)
        clock.lap("preprocess")
        labels = self._segment_preprocessed(image, lut, overlap=overlap, batch_size=batch_size)
        del image
        clock.lap("inference")
        model_spacing = tuple(m.preprocess.spacing_mm) if m.preprocess.spacing_mm is not None else tuple(spacing)
        if m.tooth_sides == "midline" and postprocess:  # on the model's grid: same answer, far fewer voxels
            labels = assign_tooth_sides(labels, model_spacing)
        if postprocess and self.refiner is None:  # a refined map gets this in the merge
            labels = tidy_teeth(labels, model_spacing, self._tooth_numbers())
        if m.preprocess.spacing_mm is not None:
            labels = resample_labels(labels, m.preprocess.spacing_mm, tuple(spacing), shape=region.shape)
        clock.lap("postprocess")
        if self.refiner is not None and postprocess:
            self._refine(region, tuple(spacing), labels, clock)
        out[box] = labels
        return out

    def _refine(self, region: np.ndarray, spacing: tuple[float, ...], labels: np.ndarray, clock: _Clock) -> None:
        """Re-segment the dental region of ``labels`` (the coarse answer on ``region``'s grid)
        with the refiner and merge its answer in place."""
        fine_model = self.refiner
        assert fine_model is not None
        dental = dental_region(labels, spacing)
        if dental is None:
            return
        fine_meta = fine_model.metadata
        fine_spacing = tuple(fine_meta.preprocess.spacing_mm) if fine_meta.preprocess.spacing_mm is not None else spacing
        image = preprocess(region[dental], spacing, fine_meta.preprocess)
        clock.lap("preprocess")
        fine_lut = np.asarray(fine_meta.classes, dtype=labels.dtype)
        fine = fine_model._segment_preprocessed(image, fine_lut, overlap=0.25, batch_size=2, mirror=True)
        del image
        clock.lap("inference")
        coarse = resample_labels(labels[dental], spacing, fine_spacing, shape=fine.shape)
        merged = merge_refined(coarse, fine, fine_spacing, self._tooth_numbers())
        labels[dental] = resample_labels(merged, fine_spacing, spacing, shape=labels[dental].shape)
        clock.lap("postprocess")

    def _tooth_numbers(self) -> list[int]:
        """The FDI numbers this model can output."""
        return [c for c in self.metadata.output_classes if c in FDI_TEETH]

    def _segment_preprocessed(
        self, image: np.ndarray, lut: np.ndarray, *, overlap: float, batch_size: int, mirror: bool = False
    ) -> np.ndarray:
        """Sliding-window label map (DESIGN ids) of a preprocessed image, same shape;
        ``mirror``: average each window's logits with its mirror image's (see :meth:`predict_mirrored`)."""
        m = self.metadata
        patch = [int(p) for p in m.patch_size]
        shape = image.shape
        padded_shape = tuple(max(n, p) for n, p in zip(shape, patch))
        if padded_shape != shape:
            image = np.pad(image, [(0, p - n) for n, p in zip(shape, padded_shape)], mode="constant")
        labels = np.zeros(padded_shape, dtype=lut.dtype)
        for start, stop, logits in blend_slabs(
            image, self.predict_mirrored if mirror else self.predict_logits_patch, patch,
            num_classes=self.num_classes, overlap=overlap, batch_size=batch_size,
        ):
            labels[..., start:stop] = lut[np.argmax(logits, axis=0)]
        return labels[tuple(slice(0, n) for n in shape)]


class _Clock:
    """Adds the seconds since the previous lap to ``timings[name]`` (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


def _clip_box(roi: Box, shape: tuple[int, ...]) -> Box:
    if len(roi) != len(shape):
        raise ValueError(f"roi needs one slice per axis ({len(shape)}), got {len(roi)}")
    return tuple(slice(*s.indices(n)[:2]) for s, n in zip(roi, shape))
