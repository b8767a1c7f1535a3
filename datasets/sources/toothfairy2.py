"""ToothFairy2 (MICCAI 2024) in its published nnU-Net raw layout.

Layout::

    ROOT/dataset.json               {"labels": {"background": 0, "Lower Jawbone": 1, ...,
                                     "NA": 19, "NA": 20, ...}, "file_ending": ".mha", ...}
    ROOT/imagesTr/<case>_0000.mha   CBCT, one channel
    ROOT/labelsTr/<case>.mha        label map (ToothFairy2 ids)

Label names are matched to odontoscan's label space (the ids are ToothFairy2's own, so
the lookup is the identity for the published file); the repeated "NA" keys of the
published dataset.json are kept by parsing with ``object_pairs_hook``.
"""

from __future__ import annotations

from pathlib import Path

from odontoscan.datasets.errors import ConfigError, ScanReadError
from odontoscan.datasets.sources.base import Case, CaseRef, SplitDataset, split_cases
from odontoscan.datasets.sources.volumes import label_lookup, load_case, read_label_table

SOURCE = "toothfairy2"


class ToothFairy2Dataset(SplitDataset):
    """Cases of a ToothFairy2 folder with a deterministic train/val split."""

    source = SOURCE

    def __init__(self, root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(f"ToothFairy2 folder '{self.root}' does not exist.")
        self._pairs = read_label_table(self.root / "dataset.json")
        self._lookup = label_lookup(self._pairs, f"{self.root.name}/dataset.json")
        self._refs = split_cases(self._find_cases(), val_fraction, seed)

    def _find_cases(self) -> list[CaseRef]:
        images = sorted((self.root / "imagesTr").glob("*_0000.mha"))
        if not images:
            raise ScanReadError(f"'{self.root.name}/imagesTr' holds no <case>_0000.mha images.")
        refs = []
        for image in images:
            case_id = image.name[: -len("_0000.mha")]
            label = self.root / "labelsTr" / f"{case_id}.mha"
            if not label.is_file():
                raise ScanReadError(f"Image '{image.name}' has no label map 'labelsTr/{case_id}.mha'.")
            refs.append(CaseRef(case_id, image, label))
        return refs

    def load(self, ref: CaseRef) -> Case:
        """Canonical float32 image and uint16 label map of one case."""
        return load_case(ref, self._lookup)

    def label_names(self) -> dict[int, str]:
        """Id -> name as dataset.json lists them (unused ids as "NA")."""
        return {value: name for name, value in self._pairs}

