"""What every dataset adapter yields: cases with an image, a label map and metadata,
and a deterministic train/val split recorded in a manifest.

Adapters (ToothFairy2, DENTEX, NIfTI pairs, phantoms) list their cases as
:class:`CaseRef` (cheap: ids and paths), load one as :class:`Case` on demand, and
split with :func:`split_cases` so the same data always gives the same split. The
manifest's hash identifies the exact data a model was trained on (logged to MLflow).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Split = Literal["train", "val"]


@dataclass(frozen=True)
class CaseRef:
    """One case of a dataset, not yet loaded."""

    case_id: str
    image: Path
    label: Path | None
    split: Split = "train"
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, eq=False)
class Case:
    """One loaded case.

    Attributes:
        case_id: the dataset's own id (file stem without channel suffix).
        image: canonical array (volumes RAS ``[x, y, z]``, radiographs ``[row, col]``).
        label: integer label map of the same shape in the DESIGN.md label space
            (ToothFairy2 ids), or None for unlabelled cases.
        spacing: mm per voxel/pixel, in the array's axis order.
        meta: dataset-specific, de-identified extras (e.g. DENTEX boxes).
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, ...]
    split: Split = "train"
    meta: dict = field(default_factory=dict)


def split_of(case_id: str, val_fraction: float, seed: int = 0) -> Split:
    """Deterministic split of one case from a hash of its id (stable as data grows)."""
    digest = hashlib.sha256(f"{seed}:{case_id}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def split_cases(refs: list[CaseRef], val_fraction: float = 0.2, seed: int = 0) -> list[CaseRef]:
    """Assign train/val to each case; at least one val case when there are two or more."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    out = [CaseRef(r.case_id, r.image, r.label, split_of(r.case_id, val_fraction, seed), r.extra) for r in refs]
    if val_fraction > 0 and len(out) >= 2 and not any(r.split == "val" for r in out):
        last = sorted(out, key=lambda r: r.case_id)[-1]
        out = [CaseRef(r.case_id, r.image, r.label, "val" if r is last else r.split, r.extra) for r in out]
    return sorted(out, key=lambda r: r.case_id)


def manifest(refs: list[CaseRef], source: str) -> dict:
    """JSON-ready manifest: source kind, cases with split, and the manifest's sha256."""
    cases = [
        {"case_id": r.case_id, "image": r.image.name, "label": r.label.name if r.label else None, "split": r.split}
        for r in sorted(refs, key=lambda r: r.case_id)
    ]
    body = {"source": source, "cases": cases}
    body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return body


class SplitDataset:
    """Common part of the adapters: a sorted, split list of cases and its manifest.

    Subclasses set ``source`` and fill ``self._refs`` (via :func:`split_cases`), and
    implement ``load(ref) -> Case``.
    """

    source: str = "unknown"
    _refs: list[CaseRef]

    def cases(self, split: Split | None = None) -> list[CaseRef]:
        """All cases, or those of ``split`` ("train" / "val"), sorted by case id."""
        return [r for r in self._refs if split is None or r.split == split]

    def manifest(self) -> dict:
        """Cases with their split and the manifest's sha256 (logged with training runs)."""
        return manifest(self._refs, self.source)
