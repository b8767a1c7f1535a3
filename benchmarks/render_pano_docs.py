"""Render docs/images/phantom_pano.png (8-bit) and phantom_pano_labels.png (colour label
overlay with tooth boxes) from the full-size seed-0 panoramic phantom.

Usage: python benchmarks/render_pano_docs.py [--seed 0] [--size full] [--width 1300] [--out docs/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from odontoscan.datasets.phantom.dentex import to_8bit
from odontoscan.datasets.phantom.pano import generate_pano
from odontoscan.datasets.labels import label_colours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="full", choices=["full", "small"])
    parser.add_argument("--width", type=int, default=1300)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    args = parser.parse_args()
    pano = generate_pano(args.seed, args.size)
    grey = to_8bit(pano.image)
    scale = args.width / grey.shape[1]
    size = (args.width, int(round(grey.shape[0] * scale)))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "phantom_pano.png"
    Image.fromarray(grey).resize(size, Image.LANCZOS).save(path, optimize=True)
    print(path)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    colour = label_colours()[(pano.labels % 256).astype(np.uint8)].astype(np.float32)
    mask = (pano.labels >= 11)[..., None]  # teeth, pulp, dental work, findings; not bone
    overlay = Image.fromarray(np.where(mask, 0.55 * rgb + 0.45 * colour, rgb).astype(np.uint8))
    draw = ImageDraw.Draw(overlay)
    for ann in pano.annotations:
        x, y, w, h = ann["bbox"]
        outline = (255, 80, 80) if ann["diagnoses"] else (255, 255, 0)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=outline, width=2)
        draw.text((x + 3, y + 2), str(ann["fdi"]) + (" " + "/".join(ann["diagnoses"]) if ann["diagnoses"] else ""), fill=outline)
    path = args.out / "phantom_pano_labels.png"
    overlay.resize(size, Image.LANCZOS).quantize(colors=128).save(path, optimize=True)
    print(path)


if __name__ == "__main__":
    main()
