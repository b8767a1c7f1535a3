"""Held-out evaluation of an exported model: per-class Dice and HD95 (mm), report.json + report.md.

Torch-free: it runs the ONNX model through :class:`odontoscan.models.runtime.OnnxModel`,
so evaluation measures exactly what serving will do.

Conventions (per class, per case): both masks empty -> Dice 1, HD95 0; one empty and
the other not -> Dice 0, HD95 undefined (``None``, counted in ``hd95_undefined``).
HD95 is the 95th percentile of the symmetric surface distances (pred surface to
truth surface and back, pooled), in mm using the voxel spacing. Surfaces are the
mask voxels with a 6-neighbour (4 in 2D) outside the mask, the array border counting
as outside.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.measure import surface
from odontoscan.datasets.findings_schema import Findings, load_findings
from odontoscan.datasets.geometry import Geometry
from odontoscan.datasets.labels import FDI_TEETH, PULP_OFFSET
from odontoscan.training.config import LabelConfig
from odontoscan.training.evaluate_findings import FindingCounts, compare, find_pairs
from odontoscan.training.labels import to_channels

log = logging.getLogger(__name__)

GROUPS: dict[str, tuple[int, ...]] = {
    "teeth": FDI_TEETH,
    "jaws": (1, 2),
    "canals": (3, 4),
}


# --- metrics on label maps --------------------------------------------------------------


def dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    """Dice of one label between two label maps (1.0 when both lack it)."""
    a, b = pred == label, truth == label
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def mean_dice_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the labels present in either map (background excluded; 1.0 if none)."""
    labels = [int(v) for v in np.union1d(np.unique(a), np.unique(b)) if v != 0]
    if not labels:
        return 1.0
    return float(np.mean([dice(a, b, label) for label in labels]))


def hd95(pred: np.ndarray, truth: np.ndarray, label: int, spacing: tuple[float, ...]) -> float | None:
    """95th percentile Hausdorff distance (mm) of one label; 0.0 if both lack it, None if one does."""
    a, b = pred == label, truth == label
    has_a, has_b = bool(a.any()), bool(b.any())
    if not has_a and not has_b:
        return 0.0
    if has_a != has_b:
        return None
    box = _union_box(a | b)  # EDT on the bounding box only: exact, as all surface points lie inside
    a, b = a[box], b[box]
    surface_a, surface_b = surface(a), surface(b)
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=spacing)[surface_a]
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=spacing)[surface_b]
    return float(np.percentile(np.concatenate([to_b, to_a]), 95))


def _union_box(mask: np.ndarray) -> tuple[slice, ...]:
    coords = np.nonzero(mask)
    return tuple(slice(max(int(c.min()) - 1, 0), int(c.max()) + 2) for c in coords)


# --- report --------------------------------------------------------------------------------


class ClassScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dice: float
    hd95_mm: float | None


class CaseResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: str
    scores: dict[int, ClassScore]
    seconds: float
    mistakes: list[str] = Field(default_factory=list)  # the findings' errors in this case (with ground truth)


class ClassSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    dice_mean: float
    hd95_mean_mm: float | None  # over cases where it is defined
    hd95_undefined: int  # cases where one map has the class and the other not


class EvaluationReport(BaseModel):
    """What ``report.json`` holds; ``findings`` is reserved for finding-level metrics."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str  # name@version
    model_sha256: str | None
    data: str
    created: date
    cases: list[CaseResult]
    classes: dict[int, ClassSummary]
    groups: dict[str, float | None]  # mean Dice over the group's classes (None if the model has none)
    metrics: dict[str, float] = Field(default_factory=dict)  # flat held-out metrics for model cards / MLflow
    findings: dict[str, float] | None = None  # finding-level metrics (a later issue fills this)


def score_case(pred: np.ndarray, truth: np.ndarray, labels: Iterable[int], spacing: tuple[float, ...]) -> dict[int, ClassScore]:
    """Dice and HD95 for each label id (label maps in the same id space and shape)."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    return {int(k): ClassScore(dice=dice(pred, truth, k), hd95_mm=hd95(pred, truth, k, spacing)) for k in labels}


def summarise(
    cases: list[CaseResult], label_names: dict[int, str], *, model: str, model_sha256: str | None, data: str
) -> EvaluationReport:
    """Per-class means over cases, group means and a flat metrics dict."""
    labels = sorted({k for case in cases for k in case.scores})
    classes: dict[int, ClassSummary] = {}
    for k in labels:
        scores = [case.scores[k] for case in cases if k in case.scores]
        defined = [s.hd95_mm for s in scores if s.hd95_mm is not None]
        classes[k] = ClassSummary(
            name=label_names.get(k, str(k)),
            dice_mean=float(np.mean([s.dice for s in scores])),
            hd95_mean_mm=float(np.mean(defined)) if defined else None,
            hd95_undefined=len(scores) - len(defined),
        )
    groups: dict[str, float | None] = {}
    for group, ids in GROUPS.items():
        members = [classes[k].dice_mean for k in ids if k in classes]
        groups[group] = float(np.mean(members)) if members else None
    metrics = {f"dice_{group}": value for group, value in groups.items() if value is not None}
    if classes:
        metrics["dice_mean"] = float(np.mean([c.dice_mean for c in classes.values()]))
    return EvaluationReport(
        model=model, model_sha256=model_sha256, data=data, created=date.today(),
        cases=cases, classes=classes, groups=groups, metrics=metrics,
    )


def render_markdown(report: EvaluationReport) -> str:
    """report.md: group means, then one row per class (mean over cases)."""
    lines = [
        f"# Evaluation of {report.model}",
        "",
        f"Data: {report.data}. Cases: {len(report.cases)}. Date: {report.created.isoformat()}.",
        "",
        "| Group | Mean Dice |",
        "|---|---|",
    ]
    lines += [f"| {g} | {_fmt(v)} |" for g, v in report.groups.items()]
    lines += ["", "| Id | Class | Dice | HD95 (mm) | HD95 undefined |", "|---|---|---|---|---|"]
    for k, c in report.classes.items():
        lines.append(f"| {k} | {c.name} | {_fmt(c.dice_mean)} | {_fmt(c.hd95_mean_mm, 2)} | {c.hd95_undefined} |")
    if report.findings:
        lines += ["", "## Findings", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in report.findings.items()]
    wrong = [case for case in report.cases if case.mistakes]
    if wrong:
        lines += ["", "## Mistakes per case", ""]
        lines += [f"- {case.case_id}: {'; '.join(case.mistakes)}" for case in wrong]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def write_report(report: EvaluationReport, out_dir: str | Path) -> Path:
    """Write report.json and report.md into ``out_dir`` (temp dir, then moved into place)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".tmp-") as tmp:
        (Path(tmp) / "report.json").write_text(report.model_dump_json(indent=2) + "\n")
        (Path(tmp) / "report.md").write_text(render_markdown(report))
        for name in ("report.json", "report.md"):
            shutil.move(str(Path(tmp) / name), str(out_dir / name))
    return out_dir


# --- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalCase:
    """One held-out scan: image, label map of DESIGN.md ids (same shape) and spacing (mm);
    phantoms also carry their ground-truth findings (and the volume's placement, so
    locations compare in the patient frame), which adds the findings metrics."""

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, ...]
    truth: Findings | None = None
    geometry: Geometry | None = None


def phantom_cases(seeds: Iterable[int], size: str = "small", task: str = "cbct") -> Iterator[EvalCase]:
    """Phantoms as held-out cases: CBCT volumes (``task="cbct"``) or panoramic radiographs
    (``"radiograph"``), grey values as their files store them, labels in DESIGN.md ids.
    Use seeds never used in training (configs keep them apart)."""
    from odontoscan.datasets.phantom.cbct import generate_cbct
    from odontoscan.datasets.phantom.pano import generate_pano
    from odontoscan.training.data import stored_phantom_image

    for seed in seeds:
        if task == "cbct":
            phantom = generate_cbct(seed, size)
            geometry = phantom.geometry
        else:
            phantom, geometry = generate_pano(seed, size), None
        image = stored_phantom_image(phantom.image, task)
        yield EvalCase(f"phantom-{seed}-{size}", image, phantom.labels, tuple(phantom.spacing), phantom.ground_truth, geometry)


def dataset_cases(source: str, path: str | Path, split: str = "val", val_fraction: float = 0.2, split_seed: int = 0) -> Iterator[EvalCase]:
    """Labelled cases of a dataset folder in a published layout ("toothfairy2", "dentex",
    "nifti_pairs"), from one split of the deterministic train/val split training uses
    (same ``val_fraction`` and ``split_seed`` as the training config), or all ("all")."""
    from odontoscan.training.config import FolderData
    from odontoscan.training.data import open_folder_dataset

    dataset = open_folder_dataset(FolderData(source=source, val_fraction=val_fraction, split_seed=split_seed), path)
    refs = dataset.cases(None if split == "all" else split)
    if not refs:
        raise ConfigError(f"The {source} dataset at '{path}' has no '{split}' cases to evaluate.")
    for ref in refs:
        case = dataset.load(ref)
        if case.label is None:
            raise ConfigError(f"Case '{case.case_id}' has no label map; evaluation needs labelled cases.")
        yield EvalCase(case.case_id, case.image.astype(np.float32, copy=False), case.label, case.spacing)


def to_model_space(labels: np.ndarray, classes: list[int], merge: dict[int, int]) -> np.ndarray:
    """Ground truth in the model's ids: ``merge`` applied (pulp 111 -> 11), ids outside
    ``classes`` set to 0 — the mapping training uses (:func:`odontoscan.training.labels.to_channels`)."""
    channels = to_channels(labels, LabelConfig(classes=classes, merge=merge))
    return np.asarray(classes, dtype=labels.dtype)[channels]


def evaluate_model(
    model_dir: str | Path,
    cases: Iterable[EvalCase],
    out_dir: str | Path,
    *,
    data: str = "held-out cases",
    threads: int | None = None,
    precision: str = "fp32",
) -> EvaluationReport:
    """Segment each case with the ONNX model, score it and write report.json + report.md."""
    from odontoscan.models.runtime import OnnxModel

    from odontoscan.models.findings import extract_findings
    from odontoscan.models.pipeline import model_info

    model = OnnxModel(model_dir, threads=threads, precision=precision)  # type: ignore[arg-type]
    m = model.metadata
    results: list[CaseResult] = []
    counts: FindingCounts | None = None
    for case in cases:
        started = time.perf_counter()
        pred = model.segment(case.image, case.spacing)
        seconds = time.perf_counter() - started
        truth = to_model_space(case.labels, m.output_classes, m.output_merge)
        scores = score_case(pred, truth, m.output_classes[1:], case.spacing)
        mistakes: list[str] = []
        if case.truth is not None:
            found = extract_findings(pred, case.spacing, scan=case.truth.scan, model=model_info(m), image=case.image, geometry=case.geometry)
            counts = counts or FindingCounts()
            one = compare(found, case.truth)
            counts.add(one)
            mistakes = one.mistakes
        results.append(CaseResult(case_id=case.case_id, scores=scores, seconds=seconds, mistakes=mistakes))
        log.info("evaluated %s in %.1f s", case.case_id, seconds)
    report = summarise(results, m.label_names, model=m.model_key, model_sha256=m.sha256, data=data)
    if counts is not None:
        report.findings = counts.metrics()
    write_report(report, out_dir)
    return report


def evaluate_outputs(pred_dir: str | Path, truth_dir: str | Path, out_dir: str | Path) -> EvaluationReport:
    """Compare analysis outputs with ground truth (``odontoscan evaluate PRED GT``): the
    findings metrics of :mod:`odontoscan.training.evaluate_findings`, plus per-class
    Dice/HD95 where both folders hold ``labels.nii.gz`` (pulp counts as its tooth)."""
    from odontoscan.datasets import load_scan
    from odontoscan.datasets.panoramic import tooth_number

    counts, results, model = FindingCounts(), [], None
    for name, pred_file, truth_file in find_pairs(pred_dir, truth_dir):
        pred, truth = load_findings(pred_file), load_findings(truth_file)
        model = model or f"{pred.model.name}@{pred.model.version}"
        one = compare(pred, truth)
        counts.add(one)
        scores: dict[int, ClassScore] = {}
        pred_labels, truth_labels = pred_file.parent / "labels.nii.gz", truth_file.parent / "labels.nii.gz"
        if pred_labels.is_file() and truth_labels.is_file():
            p, t = load_scan(pred_labels), load_scan(truth_labels)
            a, b = np.rint(p.array).astype(np.int32), np.rint(t.array).astype(np.int32)
            teeth = tooth_number(b)  # pulp counts as its tooth
            b = np.where(teeth > 0, teeth, b)
            if a.shape == b.shape:
                ids = [int(k) for k in np.union1d(np.unique(a), np.unique(b)) if 0 < k < PULP_OFFSET]
                scores = score_case(a, b, ids, p.spacing)
        results.append(CaseResult(case_id=name, scores=scores, seconds=0.0, mistakes=one.mistakes))
    from odontoscan.datasets.labels import label_names

    report = summarise(results, label_names(), model=model or "unknown", model_sha256=None, data=f"outputs in {pred_dir} vs {truth_dir}")
    report.findings = counts.metrics()
    write_report(report, out_dir)
    return report


def parse_seeds(text: str) -> list[int]:
    """Seeds from "1000-1019" (inclusive), "3,5,8" or a mix ("1-3,7")."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(v) for v in part.split("-", 1))
                if last < first:
                    raise ValueError
                seeds.extend(range(first, last + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"Seeds '{text}' are not valid; write a range such as 1000-1019 or a list such as 3,5,8.") from None
    if not seeds:
        raise ConfigError("No seeds given; write a range such as 1000-1019.")
    return seeds


__all__ = [
    "ClassScore", "CaseResult", "ClassSummary", "EvaluationReport", "EvalCase",
    "dice", "hd95", "mean_dice_agreement", "score_case", "summarise", "render_markdown",
    "write_report", "phantom_cases", "dataset_cases", "evaluate_outputs", "to_model_space", "evaluate_model", "parse_seeds",
]
