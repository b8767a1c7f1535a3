"""Session-wide CBCT phantoms (small size) shared by the phantom tests (read-only)."""

from __future__ import annotations

import pytest

from odontoscan.datasets.phantom.cbct import CBCTPhantom, generate_cbct, write_cbct_phantom

COVERAGE_SEEDS = tuple(range(6))


@pytest.fixture(scope="session")
def small_phantoms() -> dict[int, CBCTPhantom]:
    """Small phantoms of seeds 0-5, generated once (do not modify their arrays)."""
    return {seed: generate_cbct(seed, "small") for seed in COVERAGE_SEEDS}


@pytest.fixture(scope="session")
def small_phantom(small_phantoms) -> CBCTPhantom:
    return small_phantoms[0]


@pytest.fixture(scope="session")
def dicom_phantom_dir(tmp_path_factory):
    """Seed 0, small, written as a DICOM CT series + labels.nii.gz + ground_truth.json."""
    return write_cbct_phantom(0, tmp_path_factory.mktemp("cbct-dicom"), fmt="dicom", size="small")
