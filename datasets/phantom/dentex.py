"""Pano phantoms written as a DENTEX dataset (the published layout, see
:mod:`odontoscan.datasets.sources.dentex`).

``write_dentex_dataset(seeds, out, size)`` writes each seed's pano as an 8-bit PNG
``train_<n>.png`` (n from 0, image id n + 1) into both training subsets:
``quadrant-enumeration-disease`` (abnormal teeth only, one annotation per tooth and
diagnosis) and ``quadrant_enumeration`` (every visible tooth), each with its COCO JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from odontoscan.datasets.writers import staged_output
from odontoscan.datasets.phantom.coco import annotation_json
from odontoscan.datasets.phantom.pano import generate_pano
from odontoscan.datasets.sources.dentex import DISEASE, ENUMERATION, JSON_NAMES, TRAINING, XRAYS


def to_8bit(image: np.ndarray) -> np.ndarray:
    """A 0..65535 radiograph as 8-bit grey (DENTEX images are 8-bit PNGs)."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)


def write_dentex_dataset(seeds: Iterable[int], out: Path, size: str = "full") -> Path:
    """Write pano phantoms ``seeds`` as one DENTEX folder; returns ``out``."""
    out = Path(out)
    entries = []
    with staged_output(out) as staging:
        folder = staging / TRAINING
        for n, seed in enumerate(seeds):
            pano = generate_pano(seed, size)
            name = f"train_{n}.png"
            grey = Image.fromarray(to_8bit(pano.image))
            for subset in (DISEASE, ENUMERATION):
                path = folder / subset / XRAYS / name
                path.parent.mkdir(parents=True, exist_ok=True)
                grey.save(path)
            height, width = pano.image.shape
            entries.append((n + 1, name, height, width, pano.annotations))
        documents = {
            DISEASE: annotation_json(entries, per_diagnosis=True),
            ENUMERATION: annotation_json(entries, per_diagnosis=False, diagnoses=False),
        }
        for subset, doc in documents.items():
            (folder / subset / JSON_NAMES[subset]).write_text(json.dumps(doc))
    return out


__all__ = ["write_dentex_dataset", "to_8bit"]
