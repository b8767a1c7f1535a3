"""Shared parts of the volume dataset adapters (ToothFairy2, NIfTI pairs): reading a
``dataset.json`` label table, mapping its names onto odontoscan's label space, and
loading an image with its label map in the same canonical frame.

Label maps are never interpolated: they are read, moved to canonical orientation by
axis permutation/flips only (:func:`odontoscan.datasets.geometry.canonicalize`) and
remapped id by id through a lookup table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from odontoscan.datasets.errors import ConfigError, ScanReadError
from odontoscan.datasets.geometry import canonicalize
from odontoscan.datasets.labels import label_names
from odontoscan.datasets.load import load_scan
from odontoscan.datasets.readers import itk_volume
from odontoscan.datasets.sources.base import Case, CaseRef

UNUSED_NAMES = {"na", "background"}
_GEOMETRY_TOL_MM = 1e-3


def read_label_table(path: Path) -> list[tuple[str, int]]:
    """(name, id) pairs of a dataset.json "labels" object, repeated keys ("NA") kept."""
    if not path.is_file():
        raise ConfigError(f"'{path.name}' is missing in '{path.parent.name}'; the dataset folder needs its dataset.json.")
    try:
        document = json.loads(path.read_text(), object_pairs_hook=lambda pairs: pairs)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"'{path.name}' is not valid JSON ({exc}); fix or re-download it.") from exc
    labels = dict(document).get("labels") if isinstance(document, list) else None
    if not isinstance(labels, list):
        raise ConfigError(f"'{path.name}' has no \"labels\" object mapping names to ids.")
    try:
        return [(str(name), int(value)) for name, value in labels]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"'{path.name}': every label must map a name to an integer id.") from exc


def label_lookup(pairs: list[tuple[str, int]], source: str) -> dict[int, int]:
    """Dataset id -> odontoscan id, matched by name (case-insensitive). "NA" and
    "background" map to 0. Raises ConfigError for a name odontoscan does not know."""
    known = {name.lower(): label for label, name in label_names(include_pulp=True).items()}
    lookup = {}
    for name, value in pairs:
        key = name.strip().lower()
        if key in UNUSED_NAMES:
            lookup[value] = 0
        elif key in known:
            lookup[value] = known[key]
        else:
            raise ConfigError(
                f"{source}: label name '{name}' (id {value}) is not in odontoscan's label space; "
                "rename it to one of the names of odontoscan.datasets.labels.label_names()."
            )
    return lookup


def remap(label: np.ndarray, lookup: dict[int, int] | None, name: str) -> np.ndarray:
    """Label map with dataset ids replaced by odontoscan ids (uint16)."""
    values = np.unique(label)
    if lookup is None:
        allowed = set(label_names(include_pulp=True))
        unknown = [int(v) for v in values if int(v) not in allowed]
        if unknown:
            raise ScanReadError(f"'{name}' holds label ids {unknown[:5]} that are not in odontoscan's label space.")
        return label.astype(np.uint16)
    unknown = [int(v) for v in values if int(v) not in lookup]
    if unknown:
        raise ScanReadError(
            f"'{name}' holds label ids {unknown[:5]} that the dataset's label table does not name; "
            "add them to dataset.json or fix the label map."
        )
    table = np.zeros(int(values.max()) + 1, dtype=np.uint16)
    for source_id, target in lookup.items():
        if 0 <= source_id < len(table):
            table[source_id] = target
    return table[label]


def load_case(ref: CaseRef, lookup: dict[int, int] | None) -> Case:
    """Load a case: canonical float32 image and its uint16 label map in the same frame."""
    scan = load_scan(ref.image, ndim=3)
    label = None
    if ref.label is not None:
        image = itk_volume.read_itk(ref.label)
        xyz = itk_volume.array_xyz(image)
        direction = np.array(image.GetDirection()).reshape(3, 3)
        canon, _, geometry = canonicalize(xyz, image.GetSpacing(), image.GetOrigin(), direction)
        if canon.shape != scan.array.shape or not np.allclose(geometry.origin, scan.geometry.origin, atol=_GEOMETRY_TOL_MM):
            raise ScanReadError(
                f"'{ref.label.name}' does not cover the same voxels as '{ref.image.name}' "
                f"(shape {canon.shape} vs {scan.array.shape}); write the label map on the image's grid."
            )
        if not np.issubdtype(canon.dtype, np.integer):
            raise ScanReadError(f"'{ref.label.name}' holds non-integer values; a label map must be integer.")
        label = remap(np.ascontiguousarray(canon), lookup, ref.label.name)
    return Case(ref.case_id, scan.array, label, scan.spacing, ref.split, {"source_format": scan.meta.source_format})
