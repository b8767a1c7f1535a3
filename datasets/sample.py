"""A small synthetic CBCT study for trying odontoscan before the phantom lab is at hand.

It is a crude head: soft-tissue ellipsoid, a bony horseshoe and bright tooth blobs,
written as a classic DICOM CT series in an LPS frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from odontoscan.datasets.writers import DicomIdentity, deterministic_uid, write_ct_series


def sample_volume(shape: tuple[int, int, int] = (96, 96, 64), seed: int = 0) -> np.ndarray:
    """Grey values (HU-like) of the sample head in index order (i, j, k)."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    vol = np.full(shape, -1000.0, dtype=np.float32)
    vol[(i / 0.9) ** 2 + (j / 0.9) ** 2 + (k / 0.95) ** 2 < 1] = 40.0
    radius = np.hypot(i, j + 0.2)
    arch = (np.abs(radius - 0.55) < 0.08) & (j < 0.3) & (np.abs(k) < 0.5)
    vol[arch] = 900.0
    for angle in np.linspace(0.3, np.pi - 0.3, 12):
        ci, cj = 0.55 * np.cos(angle), 0.55 * np.sin(angle) - 0.2
        for ck in (-0.15, 0.15):
            tooth = (i - ci) ** 2 + (-(j) - cj) ** 2 + ((k - ck) / 1.8) ** 2 < 0.05**2
            vol[tooth] = 2200.0
    vol += rng.normal(0, 20, shape).astype(np.float32)
    return vol


def write_sample_study(out: str | Path, seed: int = 0) -> Path:
    """Write the sample study to ``out/dicom`` and return that folder."""
    out = Path(out)
    identity = DicomIdentity(
        patient_name="Sample^Study",
        patient_id=f"SAMPLE-{seed}",
        study_uid=deterministic_uid("sample-study", seed),
        series_uid=deterministic_uid("sample-series", seed),
        frame_of_reference_uid=deterministic_uid("sample-for", seed),
    )
    folder = out / "dicom"
    write_ct_series(sample_volume(seed=seed), (0.4, 0.4, 0.4), folder, origin=(-19.0, -19.0, -12.0), identity=identity)
    return folder
