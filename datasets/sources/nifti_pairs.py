"""Generic image/label pairs in NIfTI: the simplest way to bring your own labelled CBCTs.

Layout::

    ROOT/images/<id>.nii.gz        (or <id>_0000.nii.gz, nnU-Net style)
    ROOT/labels/<id>.nii.gz        label map on the image's voxel grid
    ROOT/dataset.json              optional: {"labels": {"background": 0, "Lower Jawbone": 1, ...}}

Without dataset.json the label maps must already use odontoscan's label space
(ToothFairy2 ids, pulp 111-148, findings 200-203); with it, ids are remapped by name.
Every image needs a label map.
"""

from __future__ import annotations

from pathlib import Path

from odontoscan.datasets.errors import ConfigError, ScanReadError
from odontoscan.datasets.labels import label_names as space_names
from odontoscan.datasets.sources.base import Case, CaseRef, SplitDataset, split_cases
from odontoscan.datasets.sources.volumes import label_lookup, load_case, read_label_table

SOURCE = "nifti_pairs"
SUFFIX = ".nii.gz"


def case_id_of(image: Path) -> str:
    """Case id of an image file: the name without .nii.gz and without a _0000 channel suffix."""
    stem = image.name[: -len(SUFFIX)]
    return stem[: -len("_0000")] if stem.endswith("_0000") else stem


class NiftiPairsDataset(SplitDataset):
    """Cases of an images/ + labels/ NIfTI folder with a deterministic train/val split."""

    source = SOURCE

    def __init__(self, root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> None:
        self.root = Path(root)
        if not (self.root / "images").is_dir():
            raise ConfigError(f"'{self.root.name}' has no images/ folder; see the NIfTI pairs layout.")
        table = self.root / "dataset.json"
        self._pairs = read_label_table(table) if table.exists() else None
        self._lookup = label_lookup(self._pairs, f"{self.root.name}/dataset.json") if self._pairs else None
        self._refs = split_cases(self._find_cases(), val_fraction, seed)

    def _find_cases(self) -> list[CaseRef]:
        images = sorted((self.root / "images").glob(f"*{SUFFIX}"))
        if not images:
            raise ScanReadError(f"'{self.root.name}/images' holds no {SUFFIX} images.")
        refs, seen = [], set()
        for image in images:
            case_id = case_id_of(image)
            if case_id in seen:
                raise ScanReadError(f"Case '{case_id}' has two images in images/; keep one.")
            seen.add(case_id)
            label = self.root / "labels" / f"{case_id}{SUFFIX}"
            if not label.is_file():
                raise ScanReadError(f"Image '{image.name}' has no label map 'labels/{case_id}{SUFFIX}'.")
            refs.append(CaseRef(case_id, image, label))
        return refs

    def load(self, ref: CaseRef) -> Case:
        """Canonical float32 image and uint16 label map of one case."""
        return load_case(ref, self._lookup)

    def label_names(self) -> dict[int, str]:
        """Id -> name from dataset.json, or odontoscan's label space without one."""
        if self._pairs is None:
            return space_names(include_pulp=True)
        return {value: name for name, value in self._pairs}

