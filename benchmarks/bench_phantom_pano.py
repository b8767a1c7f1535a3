"""Panoramic phantom benchmark: time and peak memory to make a pano from a full-size CBCT.

Generates the full-size CBCT phantom (about 400x400x300 voxels; not timed as part of
the pano), then times and measures (tracemalloc, numpy buffers included) the arch fit,
a plain X-ray reformat, a label reformat, and the whole pano phantom (image formation
with blurred layers, labels, annotations, ground truth). Target (issue 3): a reformat
under 5 s on 2 cores with memory bounded by chunked sampling.

    python benchmarks/bench_phantom_pano.py [--seed 0] [--size full]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from odontoscan.datasets.panoramic import arch_from_labels, reformat
from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.phantom.pano import pano_from_cbct


def measure(label: str, fn):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<28} {seconds:7.2f} s   peak {peak / 1e6:8.1f} MB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="full", choices=["full", "small"])
    args = parser.parse_args()
    start = time.perf_counter()
    cbct = generate_cbct(args.seed, args.size)
    volume_mb = cbct.image.nbytes / 1e6
    print(f"CBCT phantom {cbct.image.shape} float32 ({volume_mb:.0f} MB) in {time.perf_counter() - start:.1f} s")
    arch = measure("arch_from_labels", lambda: arch_from_labels(cbct.labels, cbct.spacing))
    image, mapping = measure("reformat xray (15 mm, 0.1 mm)", lambda: reformat(cbct.image, cbct.spacing, arch, mode="xray"))
    print(f"{'':<28} pano {image.shape[0]}x{image.shape[1]} px")
    measure("reformat label", lambda: reformat(cbct.labels, cbct.spacing, arch, mode="label", mapping=mapping))
    pano = measure("pano_from_cbct (all)", lambda: pano_from_cbct(cbct))
    print(f"{'':<28} pano phantom {pano.image.shape[0]}x{pano.image.shape[1]} px, {len(pano.annotations)} teeth annotated")


if __name__ == "__main__":
    main()
