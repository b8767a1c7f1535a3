"""DENTEX-style (COCO) tooth annotations of a projected label map.

Each visible tooth becomes one dict with the DENTEX keys: ``category_id_1`` (quadrant
index 0-3 for FDI quadrants 1-4), ``category_id_2`` (tooth index 0-7 for positions 1-8),
``bbox`` [x, y, w, h] and ``segmentation`` (one polygon, integer pixel coordinates, x =
column, y = row), ``area`` (mask pixels), ``iscrowd`` 0, plus ``fdi`` and ``diagnoses``
(DENTEX diagnosis names taken from the ground truth). A tooth's mask is its own label,
its pulp, and the caries, fillings, root-canal fillings and crowns that sit on it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from odontoscan.datasets.findings_schema import FindingKind, Findings
from odontoscan.datasets.labels import Label
from odontoscan.datasets.panoramic import tooth_number
from odontoscan.datasets.sources.dentex import DIAGNOSIS_IDS, Diagnosis, categories

_ON_TOOTH = (Label.CARIES, Label.RESTORATION, Label.ROOT_CANAL_FILLING, Label.CROWN)
# Moore neighbourhood, clockwise on screen (row down): N, NE, E, SE, S, SW, W, NW.
_STEPS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
MAX_POLYGON_POINTS = 80


def tooth_owner(labels: np.ndarray) -> np.ndarray:
    """Per pixel the FDI number of the tooth it belongs to (0 elsewhere)."""
    owner = tooth_number(labels.astype(np.int64))
    attach = np.isin(labels, _ON_TOOTH) & (owner == 0)
    if attach.any() and owner.any():
        _, (rows, cols) = ndimage.distance_transform_edt(owner == 0, return_indices=True)
        owner[attach] = owner[rows[attach], cols[attach]]
    return owner


def outline(mask: np.ndarray) -> list[int]:
    """Outer boundary of the largest component of ``mask`` as a flat [x0, y0, x1, y1, ...]
    polygon (Moore-neighbour tracing, thinned to at most MAX_POLYGON_POINTS points)."""
    components, count = ndimage.label(mask)
    if count == 0:
        return []
    largest = 1 + int(np.argmax(ndimage.sum_labels(mask, components, range(1, count + 1))))
    fg = np.pad(components == largest, 1)
    start = tuple(np.argwhere(fg)[0])  # topmost, then leftmost: its west neighbour is background
    point, back = start, 6
    path = [start]
    for _ in range(4 * fg.sum() + 8):
        for k in range(1, 9):
            d = (back + k) % 8
            nxt = (point[0] + _STEPS[d][0], point[1] + _STEPS[d][1])
            if fg[nxt]:
                prev = (point[0] + _STEPS[(d + 7) % 8][0], point[1] + _STEPS[(d + 7) % 8][1])
                back = _STEPS.index((prev[0] - nxt[0], prev[1] - nxt[1]))
                point = nxt
                break
        else:  # a single isolated pixel
            break
        if point == start:
            break
        path.append(point)
    keep = path[:: max(1, int(np.ceil(len(path) / MAX_POLYGON_POINTS)))]
    return [int(v) for r, c in keep for v in (c - 1, r - 1)]


def _diagnoses(truth: Findings) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for f in truth.findings:
        if f.fdi is None:
            continue
        if f.kind is FindingKind.IMPACTED_TOOTH:
            name = Diagnosis.IMPACTED
        elif f.kind is FindingKind.CARIES:
            name = Diagnosis.DEEP_CARIES if f.grade == "near_pulp" else Diagnosis.CARIES
        elif f.kind is FindingKind.PERIAPICAL_LESION:
            name = Diagnosis.PERIAPICAL_LESION
        else:
            continue
        names = out.setdefault(f.fdi, [])
        if name.value not in names:
            names.append(name.value)
    return out


def tooth_annotations(labels: np.ndarray, truth: Findings, image_id: int = 1) -> list[dict]:
    """One DENTEX-style annotation per tooth visible in the projected label map."""
    owner = tooth_owner(labels)
    diagnoses = _diagnoses(truth)
    present = [int(f) for f in np.unique(owner) if f]
    boxes = ndimage.find_objects(owner, max_label=max(present, default=0))
    out = []
    for fdi in present:
        rows, cols = boxes[fdi - 1]
        local = owner[rows, cols] == fdi
        polygon = outline(local)
        polygon = [v + (cols.start if i % 2 == 0 else rows.start) for i, v in enumerate(polygon)]
        out.append(
            {
                "id": len(out) + 1,
                "image_id": image_id,
                "category_id_1": fdi // 10 - 1,
                "category_id_2": fdi % 10 - 1,
                "fdi": fdi,
                "diagnoses": diagnoses.get(fdi, []),
                "bbox": [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
                "segmentation": [polygon],
                "area": int(local.sum()),
                "iscrowd": 0,
            }
        )
    return out


def annotation_json(images: list[tuple[int, str, int, int, list[dict]]], per_diagnosis: bool, diagnoses: bool = True) -> dict:
    """COCO document with DENTEX's keys from (image_id, file_name, height, width, teeth).

    ``per_diagnosis``: one annotation per (tooth, diagnosis) with ``category_id_3``, and
    only diseased teeth (DENTEX's quadrant-enumeration-disease); otherwise one per tooth
    (keeping ``fdi`` and ``diagnoses``). ``diagnoses`` False drops ``categories_3``
    (DENTEX's quadrant_enumeration).
    """
    annotations = []
    for image_id, _, _, _, teeth in images:
        for tooth in teeth:
            base = {k: v for k, v in tooth.items() if k not in ("fdi", "diagnoses", "id")}
            base["image_id"] = image_id
            if not per_diagnosis:
                extra = {"fdi": tooth["fdi"], "diagnoses": tooth["diagnoses"]} if diagnoses else {}
                annotations.append({"id": len(annotations) + 1, **base, **extra})
                continue
            for name in tooth["diagnoses"]:
                annotations.append({"id": len(annotations) + 1, **base, "category_id_3": DIAGNOSIS_IDS[Diagnosis(name)]})
    doc = {
        "images": [{"height": h, "width": w, "id": i, "file_name": name} for i, name, h, w, _ in images],
        "annotations": annotations,
    }
    doc.update(categories(with_diagnosis=diagnoses))
    return doc
