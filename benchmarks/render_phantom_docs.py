"""Render docs/images/phantom_cbct_{axial,coronal,sagittal}.png from the full-size seed-0
CBCT phantom (grey slices through the teeth, plus label-overlay variants).

Usage: python benchmarks/render_phantom_docs.py [--seed 0] [--size full] [--out docs/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.phantom.preview import render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="full", choices=["full", "small"])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    args = parser.parse_args()
    phantom = generate_cbct(args.seed, args.size)
    for path in render(phantom.image, phantom.labels, args.out, overlay=True):
        print(path)


if __name__ == "__main__":
    main()
