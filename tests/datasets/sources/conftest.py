"""Small phantom-written datasets for the adapter tests (generated once per session)."""

from __future__ import annotations

import numpy as np
import pytest

from odontoscan.datasets.phantom.cbct import generate_cbct, write_toothfairy2_dataset
from odontoscan.datasets.writers import write_volume


@pytest.fixture(scope="session")
def toothfairy2_root(tmp_path_factory):
    """Three small phantoms in the ToothFairy2 layout (do not modify; copy first)."""
    return write_toothfairy2_dataset([0, 1, 2], tmp_path_factory.mktemp("tf2"), size="small")


@pytest.fixture(scope="session")
def nifti_pairs_root(tmp_path_factory):
    """Two small phantoms as images/ + labels/ NIfTI pairs (one with a _0000 suffix)."""
    root = tmp_path_factory.mktemp("pairs")
    for seed, image_name in ((3, "case_a.nii.gz"), (4, "case_b_0000.nii.gz")):
        phantom = generate_cbct(seed, "small")
        geometry = phantom.geometry
        case = image_name.replace("_0000", "").replace(".nii.gz", "")
        write_volume(np.rint(phantom.image).astype(np.int16), phantom.spacing, root / "images" / image_name, geometry)
        write_volume(phantom.labels, phantom.spacing, root / "labels" / f"{case}.nii.gz", geometry)
        np.save(root / f"{case}_labels.npy", phantom.labels)
    return root
