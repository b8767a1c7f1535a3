"""DENTEX (MICCAI 2023, panoramic radiographs) in its published layout.

Layout::

    ROOT/training_data/quadrant-enumeration-disease/xrays/train_<n>.png
    ROOT/training_data/quadrant-enumeration-disease/train_quadrant_enumeration_disease.json
    ROOT/training_data/quadrant_enumeration/xrays/train_<n>.png
    ROOT/training_data/quadrant_enumeration/train_quadrant_enumeration.json

The JSON files are COCO-like: ``images`` (id, file_name, height, width), ``annotations``
(id, image_id, ``category_id_1`` quadrant index, ``category_id_2`` tooth index,
``category_id_3`` diagnosis index - disease subset only - bbox [x, y, w, h],
segmentation polygons, area, iscrowd) and the tables ``categories_1`` (names 1-4: FDI
quadrant), ``categories_2`` (names "1"-"8": FDI position) and ``categories_3``
(0 Impacted, 1 Caries, 2 Periapical Lesion, 3 Deep Caries). The disease subset
annotates only abnormal teeth, one annotation per (tooth, diagnosis).

Verified against public code that reads the released files: the folder and JSON names
(note the hyphens in ``quadrant-enumeration-disease`` and the underscore in
``quadrant_enumeration``), the ``categories_1/2/3`` keys, the diagnosis ids and names,
``categories_1`` names as integers and ``categories_2`` names as strings (in
``train_quadrant_enumeration.json``), zero-based ``train_<n>.png`` file names and
one-based image and annotation ids. Not verified: the ``categories_1`` name type inside
the disease JSON (names are read as either), the exact key order, and the validation
and test folders (``validation_data/``, ``test_data/``), which this adapter does not read.
Images are 8-bit PNGs without pixel spacing, so cases carry spacing (1.0, 1.0) px.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from odontoscan.datasets.errors import ConfigError, ScanReadError
from odontoscan.datasets.readers.image2d import read_image
from odontoscan.datasets.sources.base import Case, CaseRef, SplitDataset, split_cases

SOURCE = "dentex"
TRAINING = "training_data"
XRAYS = "xrays"
DISEASE = "quadrant-enumeration-disease"
ENUMERATION = "quadrant_enumeration"
JSON_NAMES = {
    DISEASE: "train_quadrant_enumeration_disease.json",
    ENUMERATION: "train_quadrant_enumeration.json",
}


class Diagnosis(str, Enum):
    """DENTEX diagnoses, with the published names as values."""

    IMPACTED = "Impacted"
    CARIES = "Caries"
    PERIAPICAL_LESION = "Periapical Lesion"
    DEEP_CARIES = "Deep Caries"


DIAGNOSIS_IDS = {Diagnosis.IMPACTED: 0, Diagnosis.CARIES: 1, Diagnosis.PERIAPICAL_LESION: 2, Diagnosis.DEEP_CARIES: 3}


def categories(with_diagnosis: bool = True) -> dict[str, list[dict]]:
    """The category tables as DENTEX publishes them."""
    tables = {
        "categories_1": [{"id": q - 1, "name": q, "supercategory": q} for q in (1, 2, 3, 4)],
        "categories_2": [{"id": t - 1, "name": str(t), "supercategory": str(t)} for t in range(1, 9)],
    }
    if with_diagnosis:
        tables["categories_3"] = [{"id": i, "name": d.value, "supercategory": d.value} for d, i in DIAGNOSIS_IDS.items()]
    return tables


def _table(doc: dict, key: str, json_name: str, numeric: bool) -> dict[int, int | str]:
    entries = doc.get(key)
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"'{json_name}' has no \"{key}\" table; use the JSON file as released by DENTEX.")
    out = {}
    for entry in entries:
        try:
            out[int(entry["id"])] = int(entry["name"]) if numeric else Diagnosis(str(entry["name"]).strip())
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"'{json_name}': entry {entry!r} of \"{key}\" is not a DENTEX category.") from exc
    return out


class DentexDataset(SplitDataset):
    """Cases of a DENTEX folder (one subset) with a deterministic train/val split.

    ``root`` is the DENTEX folder holding ``training_data/`` (or the subset folder
    itself). ``subset`` is ``"quadrant-enumeration-disease"`` (abnormal teeth with
    diagnoses) or ``"quadrant_enumeration"`` (all teeth, no diagnoses).
    """

    source = SOURCE

    def __init__(self, root: str | Path, val_fraction: float = 0.2, seed: int = 0, subset: str = DISEASE) -> None:
        if subset not in JSON_NAMES:
            raise ConfigError(f"DENTEX subset must be one of {', '.join(JSON_NAMES)}, got '{subset}'.")
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"DENTEX folder '{root}' does not exist.")
        self.subset = subset
        self.folder = root if (root / JSON_NAMES[subset]).exists() or root.name == subset else root / TRAINING / subset
        self.json_name = JSON_NAMES[subset]
        self._doc = self._read_json()
        self._quadrants = _table(self._doc, "categories_1", self.json_name, numeric=True)
        self._positions = _table(self._doc, "categories_2", self.json_name, numeric=True)
        self._diagnoses = _table(self._doc, "categories_3", self.json_name, numeric=False) if subset == DISEASE else {}
        self._annotations = self._group_annotations()
        self._refs = split_cases(self._find_cases(), val_fraction, seed)

    def _read_json(self) -> dict:
        path = self.folder / self.json_name
        if not path.is_file():
            raise ScanReadError(
                f"'{self.json_name}' is missing in '{self.folder}'; point DentexDataset at the DENTEX "
                f"folder that holds '{TRAINING}/{self.subset}/{self.json_name}'."
            )
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"'{self.json_name}' is not valid JSON ({exc}); re-download it.") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(doc.get("annotations"), list):
            raise ConfigError(f"'{self.json_name}' lacks the COCO \"images\" and \"annotations\" lists.")
        return doc

    def _fdi_and_diagnosis(self, ann: dict) -> tuple[int, str | None]:
        where = f"annotation {ann.get('id')} of '{self.json_name}'"
        checks = [("category_id_1", self._quadrants, "categories_1"), ("category_id_2", self._positions, "categories_2")]
        if self.subset == DISEASE:
            checks.append(("category_id_3", self._diagnoses, "categories_3"))
        values = []
        for key, table, name in checks:
            value = ann.get(key)
            if value not in table:
                raise ConfigError(
                    f"{where} has {key}={value!r}, which \"{name}\" does not list (known ids: "
                    f"{sorted(table)}); fix the annotation or use the released JSON."
                )
            values.append(table[value])
        fdi = values[0] * 10 + values[1]
        return fdi, (values[2].value if len(values) > 2 else None)

    def _group_annotations(self) -> dict[int, list[dict]]:
        grouped: dict[int, list[dict]] = {}
        for ann in self._doc["annotations"]:
            fdi, diagnosis = self._fdi_and_diagnosis(ann)
            entry = {"fdi": fdi, "diagnosis": diagnosis, "bbox": [float(v) for v in ann.get("bbox", [])]}
            entry["segmentation"] = ann.get("segmentation") or []
            grouped.setdefault(ann.get("image_id"), []).append(entry)
        return grouped

    def _find_cases(self) -> list[CaseRef]:
        refs = []
        for image in self._doc["images"]:
            path = self.folder / XRAYS / str(image.get("file_name"))
            if not path.is_file():
                raise ScanReadError(
                    f"'{self.json_name}' lists image '{image.get('file_name')}', which is missing from "
                    f"'{self.subset}/{XRAYS}'; restore the file or remove it from the JSON."
                )
            extra = {"image_id": image.get("id"), "height": image.get("height"), "width": image.get("width")}
            refs.append(CaseRef(path.stem, path, None, extra=extra))
        if not refs:
            raise ScanReadError(f"'{self.json_name}' lists no images.")
        return refs

    def load(self, ref: CaseRef) -> Case:
        """Grey float32 image [row, col] and a uint16 FDI label map rasterised from the
        segmentation polygons (bbox where a polygon is missing); ``meta["teeth"]`` lists
        {fdi, diagnosis, bbox} per annotation."""
        image = read_image(ref.image)
        annotations = self._annotations.get(ref.extra.get("image_id"), [])
        canvas = Image.new("I", (image.shape[1], image.shape[0]), 0)
        draw = ImageDraw.Draw(canvas)
        for ann in sorted(annotations, key=lambda a: -a["bbox"][2] * a["bbox"][3] if len(a["bbox"]) == 4 else 0):
            polygons = [p for p in ann["segmentation"] if isinstance(p, list) and len(p) >= 6]
            for polygon in polygons:
                draw.polygon([float(v) for v in polygon], fill=ann["fdi"])
            if not polygons and len(ann["bbox"]) == 4:
                x, y, w, h = ann["bbox"]
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=ann["fdi"])
        label = np.asarray(canvas, dtype=np.int32).astype(np.uint16)
        teeth = [{"fdi": a["fdi"], "diagnosis": a["diagnosis"], "bbox": a["bbox"]} for a in annotations]
        meta = {"source": SOURCE, "subset": self.subset, "teeth": teeth, "pixel_spacing_known": False}
        return Case(ref.case_id, image, label, (1.0, 1.0), ref.split, meta)


__all__ = ["DentexDataset", "Diagnosis", "DIAGNOSIS_IDS", "categories", "JSON_NAMES", "DISEASE", "ENUMERATION"]
