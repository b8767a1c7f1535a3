"""Findings against ground truth: what ``odontoscan evaluate PRED GT`` measures.

Per case (a predicted ``findings.json`` and a ground-truth ``ground_truth.json`` or
``findings.json`` in the same schema):

- tooth-status accuracy over the 32 FDI positions, and the F1 of "missing";
- per finding kind, sensitivity (truth findings matched) and precision (predicted
  findings matched); a prediction matches a truth finding of the same kind on the
  same tooth, or - when either has no tooth - within ``MATCH_MM`` of it;
- mean absolute error of the measurements of matched pairs, per kind and name
  (``canal_proximity.distance_mm`` is the canal-distance error).

Metrics over several cases pool the counts (micro average), so a kind seen once in
twenty cases weighs what it should. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.findings_schema import Finding, Findings, ToothStatus

MATCH_MM = 10.0
PRED_FILES = ("findings.json",)
TRUTH_FILES = ("ground_truth.json", "findings.json")


@dataclass
class FindingCounts:
    """Pooled counts of one or more case comparisons."""

    teeth: int = 0
    teeth_correct: int = 0
    missing_tp: int = 0
    missing_fp: int = 0
    missing_fn: int = 0
    truth: dict[str, int] = field(default_factory=dict)  # kind -> truth findings
    found: dict[str, int] = field(default_factory=dict)  # kind -> truth findings matched
    predicted: dict[str, int] = field(default_factory=dict)  # kind -> predicted findings
    correct: dict[str, int] = field(default_factory=dict)  # kind -> predicted findings matched
    errors: dict[str, list[float]] = field(default_factory=dict)  # "kind.measurement" -> |pred - truth|
    # what was wrong, readably: "chart 27: present -> missing", "missed caries 36", "false periapical_lesion 11"
    mistakes: list[str] = field(default_factory=list)

    def add(self, other: FindingCounts) -> None:
        for name in ("teeth", "teeth_correct", "missing_tp", "missing_fp", "missing_fn"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.mistakes.extend(other.mistakes)
        for name in ("truth", "found", "predicted", "correct"):
            mine = getattr(self, name)
            for kind, n in getattr(other, name).items():
                mine[kind] = mine.get(kind, 0) + n
        for key, values in other.errors.items():
            self.errors.setdefault(key, []).extend(values)

    def metrics(self) -> dict[str, float]:
        """Flat metrics: tooth_status_accuracy, missing_f1, <kind>_sensitivity/_precision, <kind.name>_mae."""
        out: dict[str, float] = {}
        if self.teeth:
            out["tooth_status_accuracy"] = self.teeth_correct / self.teeth
            denominator = 2 * self.missing_tp + self.missing_fp + self.missing_fn
            out["missing_f1"] = 1.0 if denominator == 0 else 2 * self.missing_tp / denominator
        for kind in sorted(set(self.truth) | set(self.predicted)):
            if self.truth.get(kind):
                out[f"{kind}_sensitivity"] = self.found.get(kind, 0) / self.truth[kind]
            if self.predicted.get(kind):
                out[f"{kind}_precision"] = self.correct.get(kind, 0) / self.predicted[kind]
        for key, values in sorted(self.errors.items()):
            out[f"{key}_mae"] = float(np.mean(values))
        return out


def compare(pred: Findings, truth: Findings, match_mm: float = MATCH_MM) -> FindingCounts:
    """Counts for one case."""
    counts = FindingCounts()
    truth_status = {t.fdi: t.status for t in truth.teeth}
    for tooth in pred.teeth:
        expected = truth_status[tooth.fdi]
        counts.teeth += 1
        counts.teeth_correct += tooth.status is expected
        pred_missing, true_missing = tooth.status is ToothStatus.MISSING, expected is ToothStatus.MISSING
        counts.missing_tp += pred_missing and true_missing
        counts.missing_fp += pred_missing and not true_missing
        counts.missing_fn += true_missing and not pred_missing
        if tooth.status is not expected:
            counts.mistakes.append(f"chart {tooth.fdi}: {expected.value} -> {tooth.status.value}")
    kinds = {f.kind.value for f in truth.findings} | {f.kind.value for f in pred.findings}
    for kind in sorted(kinds):
        truths = [f for f in truth.findings if f.kind.value == kind]
        preds = [f for f in pred.findings if f.kind.value == kind]
        pairs = _match(preds, truths, match_mm)
        counts.truth[kind] = len(truths)
        counts.predicted[kind] = len(preds)
        counts.found[kind] = counts.correct[kind] = len(pairs)
        counts.mistakes += [f"missed {kind} {_tooth(t)}" for t in truths if not any(t is b for _, b in pairs)]
        counts.mistakes += [f"false {kind} {_tooth(f)}" for f in preds if not any(f is a for a, _ in pairs)]
        for p, t in pairs:
            for name, measured in t.measurements.items():
                other = p.measurements.get(name)
                if other is not None and other.unit == measured.unit:
                    counts.errors.setdefault(f"{kind}.{name}", []).append(abs(other.value - measured.value))
    return counts


def _match(preds: list[Finding], truths: list[Finding], match_mm: float) -> list[tuple[Finding, Finding]]:
    """Greedy one-to-one pairs: same tooth first, then nearest location within ``match_mm``."""
    pairs, free = [], list(truths)
    for p in preds:
        same_tooth = [t for t in free if p.fdi is not None and t.fdi == p.fdi]
        candidates = same_tooth or [t for t in free if (p.fdi is None or t.fdi is None) and _distance(p, t) <= match_mm]
        if candidates:
            best = min(candidates, key=lambda t: _distance(p, t))
            pairs.append((p, best))
            free.remove(best)
    return pairs


def _tooth(finding: Finding) -> str:
    return str(finding.fdi) if finding.fdi is not None else "(no tooth)"


def _distance(a: Finding, b: Finding) -> float:
    if a.location_mm is None or b.location_mm is None or len(a.location_mm) != len(b.location_mm):
        return float("inf")
    return float(np.linalg.norm(np.subtract(a.location_mm, b.location_mm)))


def find_pairs(pred_dir: str | Path, truth_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """(case name, prediction file, truth file) pairs: the two folders themselves when each
    holds a findings file, else their sub-folders with the same names."""
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    for folder in (pred_dir, truth_dir):
        if not folder.is_dir():
            raise ConfigError(f"'{folder}' is not a folder; pass an analysis output folder and a ground-truth folder.")
    pred_file, truth_file = _file_in(pred_dir, PRED_FILES), _file_in(truth_dir, TRUTH_FILES)
    if pred_file and truth_file:
        return [(pred_dir.name, pred_file, truth_file)]
    pairs = []
    for sub in sorted(p for p in pred_dir.iterdir() if p.is_dir()):
        p, t = _file_in(sub, PRED_FILES), _file_in(truth_dir / sub.name, TRUTH_FILES)
        if p and t:
            pairs.append((sub.name, p, t))
    if not pairs:
        raise ConfigError(
            f"No case to compare: '{pred_dir}' needs findings.json (or case sub-folders holding one) and "
            f"'{truth_dir}' ground_truth.json or findings.json (in sub-folders of the same names)."
        )
    return pairs


def _file_in(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


__all__ = ["FindingCounts", "compare", "find_pairs", "MATCH_MM"]
