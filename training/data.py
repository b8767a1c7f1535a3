"""Cases -> preprocessed training arrays: phantoms (cached on disk) or a dataset folder.

Every image goes through :func:`odontoscan.models.preprocess.preprocess`, the function
inference uses, and every label map through ``resample(order=0)`` to the same grid and
then :func:`odontoscan.training.labels.to_channels`. The result is a list of items
``{"image": float32 [1, ...], "label": uint8 [1, ...], "case_id": str}`` per split,
ready for MONAI transforms, plus the dataset manifest whose sha256 is logged with the run.

Phantom images are quantised exactly as the phantom writers store them (int16 CBCT,
16-bit radiographs), so a phantom trains on the same numbers ``load_scan`` reads back
from its file. Preprocessed phantoms are cached under
``~/.cache/odontoscan/phantoms/<task>-<size>/`` (or ``cache_dir``), keyed by seed, size
and a hash of the preprocessing settings, and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odontoscan.datasets.errors import ConfigError
from odontoscan.models.preprocess import PreprocessConfig, preprocess, resample
from odontoscan.training.config import FolderData, PhantomData, TrainConfig
from odontoscan.training.labels import to_channels
from odontoscan.datasets.writers import atomic_file

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: images are smoothed before they are shrunk (models.preprocess.resample)
SOURCES_FOR_TASK = {"cbct": ("phantom", "toothfairy2", "nifti_pairs"), "radiograph": ("phantom", "dentex")}


@dataclass(frozen=True)
class TrainingData:
    """Preprocessed items of both splits and the manifest identifying the data."""

    train: list[dict]
    val: list[dict]
    manifest: dict

    @property
    def manifest_sha256(self) -> str:
        return self.manifest["sha256"]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/odontoscan/phantoms`` (``~/.cache/...`` when unset)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "odontoscan" / "phantoms"


def stored_phantom_image(image: np.ndarray, task: str) -> np.ndarray:
    """A phantom's grey values as its file stores them (CBCT int16, radiograph uint16), as float32."""
    if task == "cbct":
        return np.rint(image).astype(np.int16).astype(np.float32)
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16).astype(np.float32)


def prepare_arrays(
    image: np.ndarray, label: np.ndarray, spacing: tuple[float, ...], config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed image (float32) and the label map (source ids) on the same grid."""
    out_image = preprocess(image, spacing, config)
    out_label = label if config.spacing_mm is None else resample(label, spacing, config.spacing_mm, order=0)
    if out_image.shape != out_label.shape:
        raise ConfigError(f"image and label grids differ after preprocessing ({out_image.shape} vs {out_label.shape}).")
    return out_image, out_label


def make_item(case_id: str, image: np.ndarray, label: np.ndarray, config: TrainConfig) -> dict:
    """One training item: channel-first image and channel-index label."""
    channels = to_channels(label, config.labels)
    return {"image": image[None].astype(np.float32, copy=False), "label": channels[None], "case_id": case_id}


def _preprocess_key(task: str, config: PreprocessConfig) -> str:
    text = json.dumps({"v": CACHE_VERSION, "task": task, "pre": config.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def generate_phantom(task: str, seed: int, size: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Phantom ``seed`` of a task ("cbct" volume or "radiograph" panoramic): image as its
    file stores it (float32), label map in DESIGN.md ids, spacing (mm)."""
    if task == "cbct":
        from odontoscan.datasets.phantom.cbct import generate_cbct

        phantom = generate_cbct(seed, size)
    else:
        from odontoscan.datasets.phantom.pano import generate_pano

        phantom = generate_pano(seed, size)
    return stored_phantom_image(phantom.image, task), phantom.labels, tuple(phantom.spacing)


def _write_atomically(path: Path, **arrays: np.ndarray) -> None:
    with atomic_file(path, "wb") as handle:
        np.savez(handle, **arrays)


def phantom_arrays(
    seed: int, task: str, size: str, config: PreprocessConfig, cache_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed image and resampled label map (source ids) of phantom ``seed`` of ``task``
    ("cbct" / "radiograph"), cached on disk."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{task}-{size}" / f"{seed}-{_preprocess_key(task, config)}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return stored["image"], stored["label"]
        except (OSError, ValueError, KeyError):
            log.warning("cached phantom %s is unreadable; regenerating it", path.name)
    image, label, spacing = generate_phantom(task, seed, size)
    image, label = prepare_arrays(image, label, spacing, config)
    _write_atomically(path, image=image, label=label)
    return image, label


def phantom_manifest(data: PhantomData, task: str) -> dict:
    """Manifest of a phantom dataset: generator, size and seeds per split, with its sha256."""
    body = {
        "source": f"phantom-{task}",
        "size": data.size,
        "train_seeds": data.train_seeds.seeds,
        "val_seeds": data.val_seeds.seeds,
    }
    if data.full_size_seeds is not None:
        body["full_size_train_seeds"] = data.full_size_seeds.seeds
    body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return body


def open_folder_dataset(data: FolderData, path: str | Path | None = None):
    """The adapter for ``data.source`` at ``path`` (``--data``), else ``data.path``."""
    root = Path(path) if path is not None else data.path
    if root is None:
        raise ConfigError(f"data.source '{data.source}' needs a folder: set data.path in the config or pass --data PATH.")
    if not Path(root).exists():
        raise ConfigError(f"Data folder '{root}' does not exist; check data.path or --data.")
    if data.source == "toothfairy2":
        from odontoscan.datasets.sources.toothfairy2 import ToothFairy2Dataset

        return ToothFairy2Dataset(root, data.val_fraction, data.split_seed)
    if data.source == "nifti_pairs":
        from odontoscan.datasets.sources.nifti_pairs import NiftiPairsDataset

        return NiftiPairsDataset(root, data.val_fraction, data.split_seed)
    from odontoscan.datasets.sources.dentex import DentexDataset

    return DentexDataset(root, data.val_fraction, data.split_seed)


def check_source(config: TrainConfig) -> None:
    """ConfigError when the data source cannot feed the task (e.g. DENTEX radiographs for a CBCT model)."""
    allowed = SOURCES_FOR_TASK[config.task]
    if config.data.source not in allowed:
        raise ConfigError(
            f"data.source '{config.data.source}' does not fit task '{config.task}'; "
            f"use one of {', '.join(allowed)} (or change the task)."
        )


def _require_cases(items: list, split: str, where: str) -> None:
    if not items:
        raise ConfigError(
            f"The {split} split of {where} is empty; add cases or change the split "
            "(data.val_fraction / the seed ranges)."
        )


def load_training_data(
    config: TrainConfig, data_path: str | Path | None = None, cache_dir: str | Path | None = None
) -> TrainingData:
    """Preprocessed train and val items for ``config`` (``data_path`` overrides ``config.data.path``)."""
    check_source(config)
    data = config.data
    if isinstance(data, PhantomData):
        if data_path is not None:
            raise ConfigError("--data is only for folder datasets; this config trains on phantoms (data.source: phantom).")
        full_size = data.full_size_seeds.seeds if data.full_size_seeds is not None else []
        groups = {
            "train": [(seed, data.size) for seed in data.train_seeds.seeds] + [(seed, "full") for seed in full_size],
            "val": [(seed, data.size) for seed in data.val_seeds.seeds],
        }
        splits = {}
        for split, cases in groups.items():
            items = []
            for seed, size in cases:
                image, label = phantom_arrays(seed, config.task, size, config.preprocess, cache_dir)
                items.append(make_item(f"phantom-{seed}" + ("-full" if size != data.size else ""), image, label, config))
            splits[split] = items
        return TrainingData(splits["train"], splits["val"], phantom_manifest(data, config.task))
    dataset = open_folder_dataset(data, data_path)
    where = f"the {data.source} folder"
    refs_of = {split: dataset.cases(split) for split in ("train", "val")}
    for split, refs in refs_of.items():
        _require_cases(refs, split, where)
    splits = {}
    for split, refs in refs_of.items():
        items = []
        for ref in refs:
            case = dataset.load(ref)
            if case.label is None:
                raise ConfigError(f"Case '{case.case_id}' has no label map; training needs labelled cases.")
            image, label = prepare_arrays(case.image, case.label, case.spacing, config.preprocess)
            items.append(make_item(case.case_id, image, label, config))
        splits[split] = items
    return TrainingData(splits["train"], splits["val"], dataset.manifest())
