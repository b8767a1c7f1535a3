"""One analysis, torch-free: a loaded Scan -> label map -> Findings, with stage timings.

:class:`Analyzer` holds one ONNX model per task ("cbct" volumes, "radiograph" 2D
images), loaded on first use and reused for every scan (the service keeps one
Analyzer per worker). :meth:`Analyzer.analyze` picks the model by the scan's
dimensionality, checks that it fits the scan's modality, segments, numbers the
teeth and extracts the findings. Writing the outputs is the caller's job
(:mod:`odontoscan.serving.outputs`).

Radiographs without a known pixel spacing are segmented as if their pixels were
``ASSUMED_PIXEL_MM`` (a typical panoramic detector), and their measurements are
reported in pixels, marked as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from odontoscan.datasets.findings_schema import Findings, ModelInfo, ScanInfo
from odontoscan.datasets.scan import Scan
from odontoscan.models.findings import extract_findings
from odontoscan.models.metadata import ModelMetadata, check_fits
from odontoscan.models.registry import DEFAULT_MODELS, resolve
from odontoscan.models.runtime import OnnxModel

ASSUMED_PIXEL_MM = 0.1
STAGES = ("load", "preprocess", "inference", "postprocess", "findings", "outputs")


@dataclass
class AnalysisResult:
    """What one analysis produced: the label map on the scan's canonical grid and the findings."""

    scan: Scan
    labels: np.ndarray
    findings: Findings
    model: ModelMetadata
    timings_s: dict[str, float] = field(default_factory=dict)

    def record(self, stage: str, seconds: float) -> None:
        """Add a stage's seconds (also to ``findings.timings_ms``)."""
        self.timings_s[stage] = self.timings_s.get(stage, 0.0) + seconds
        self.findings.timings_ms[stage] = round(1000 * self.timings_s[stage], 1)


class Analyzer:
    """Segmentation models by task and the analysis of one scan at a time.

    Args:
        cbct_model, radiograph_model: model directory, shipped model name or
            ``models:/NAME@alias`` (see :func:`odontoscan.models.registry.resolve`).
        threads: ONNX Runtime intra-op threads (default: $ODONTOSCAN_ORT_THREADS or the cores).
        tracking_uri: MLflow tracking URI for ``models:/`` names.
    """

    def __init__(
        self,
        cbct_model: str | Path = DEFAULT_MODELS["cbct"],
        radiograph_model: str | Path = DEFAULT_MODELS["radiograph"],
        *,
        threads: int | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.specs = {"cbct": cbct_model, "radiograph": radiograph_model}
        self.threads = threads
        self.tracking_uri = tracking_uri
        self._models: dict[str, OnnxModel] = {}

    def model(self, task: str) -> OnnxModel:
        """The loaded model of ``task`` ("cbct" or "radiograph"), loading it on first use."""
        if task not in self._models:
            self._models[task] = OnnxModel(resolve(self.specs[task], tracking_uri=self.tracking_uri), threads=self.threads)
        return self._models[task]

    def analyze(self, scan: Scan, *, on_stage: Callable[[str], None] | None = None) -> AnalysisResult:
        """Segment ``scan`` and extract its findings. ``on_stage`` is called with each
        stage name as it starts (for progress displays)."""
        notify = on_stage or (lambda stage: None)
        model = self.model("cbct" if scan.is_volume else "radiograph")
        check_fits(model.metadata, scan)
        inference_spacing = scan.spacing if scan.pixel_spacing_known else (ASSUMED_PIXEL_MM,) * scan.array.ndim
        notify("inference")
        timings: dict[str, float] = {}
        labels = model.segment(scan.array, tuple(inference_spacing), timings=timings)
        notify("findings")
        started = time.perf_counter()
        findings = extract_findings(
            labels,
            scan.spacing,
            scan=scan_info(scan),
            model=model_info(model.metadata),
            image=scan.array,
            geometry=scan.geometry if scan.is_volume else None,
        )
        result = AnalysisResult(scan=scan, labels=labels, findings=findings, model=model.metadata)
        for stage, seconds in timings.items():
            result.record(stage, seconds)
        result.record("findings", time.perf_counter() - started)
        return result


def scan_info(scan: Scan) -> ScanInfo:
    """The ``scan`` block of findings.json: technical facts and UIDs, nothing identifying."""
    return ScanInfo(
        modality=scan.modality.value,
        shape=list(scan.array.shape),
        spacing_mm=[round(float(s), 4) for s in scan.spacing],
        pixel_spacing_known=scan.pixel_spacing_known,
        study_instance_uid=scan.meta.study_instance_uid,
        series_instance_uid=scan.meta.series_instance_uid,
    )


def model_info(metadata: ModelMetadata) -> ModelInfo:
    return ModelInfo(name=metadata.name, version=metadata.version, sha256=metadata.sha256 or "")


__all__ = ["Analyzer", "AnalysisResult", "scan_info", "model_info", "STAGES", "ASSUMED_PIXEL_MM"]
