"""Preview images of a CBCT phantom: windowed axial, coronal and sagittal slices through
the teeth, optionally with a colour overlay of the label map (for docs and eyeballing).

Slices are displayed radiologically: axial and coronal with the patient's right on the
image's left, anterior up in axial views, superior up in coronal/sagittal views.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from odontoscan.datasets.labels import FDI_TEETH, PULP_OFFSET, label_colours

WINDOW = (-800.0, 3500.0)  # grey window (HU) that shows soft tissue, bone, teeth and metal


def _grey(plane: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW
    return (np.clip((plane - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def tooth_slices(labels: np.ndarray) -> tuple[int, int, int]:
    """(x, y, z) indices of the planes to show: axial through lower roots in bone, coronal
    with the most tooth voxels, sagittal through the first/second molars."""
    teeth = np.isin(labels, FDI_TEETH) | ((labels > PULP_OFFSET) & (labels < PULP_OFFSET + 50))
    lower_teeth = np.isin(labels, [f for f in FDI_TEETH if f >= 30]).sum(axis=(0, 1))
    mandible = (labels == 1).sum(axis=(0, 1))
    z = int(np.argmax(np.minimum(lower_teeth, mandible / 4)))  # roots in bone
    y = int(np.argmax(teeth.sum(axis=(0, 2))))
    molar = np.isin(labels, (16, 46, 17, 47))
    x = int(np.argwhere(molar)[:, 0].mean()) if molar.any() else int(np.argmax(teeth.sum(axis=(1, 2))))
    return x, y, z


def planes(image: np.ndarray, index: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Display-oriented 2D planes (rows, columns) of a canonical RAS volume."""
    x, y, z = index
    return {
        "axial": image[::-1, ::-1, z].T,  # rows: anterior at top; columns: patient right on the left
        "coronal": image[::-1, y, ::-1].T,  # rows: superior at top
        "sagittal": image[x, :, ::-1].T[:, ::-1],  # rows: superior at top; anterior on the left
    }


def render(image: np.ndarray, labels: np.ndarray, out_dir: Path, prefix: str = "phantom_cbct", overlay: bool = False) -> list[Path]:
    """Write ``<prefix>_{axial,coronal,sagittal}.png`` (and ``_overlay`` variants)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = tooth_slices(labels)
    grey_planes = planes(image, index)
    label_planes = planes(labels, index)
    table = label_colours()
    written = []
    for name, plane in grey_planes.items():
        grey = _grey(plane)
        path = out_dir / f"{prefix}_{name}.png"
        Image.fromarray(grey).save(path, optimize=True)
        written.append(path)
        if overlay:
            lab = label_planes[name]
            rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
            colour = table[(lab % 256).astype(np.uint8)].astype(np.float32)
            mask = (lab > 0)[..., None]
            rgb = np.where(mask, 0.55 * rgb + 0.45 * colour, rgb).astype(np.uint8)
            path = out_dir / f"{prefix}_{name}_overlay.png"
            Image.fromarray(rgb).save(path, optimize=True)
            written.append(path)
    return written
