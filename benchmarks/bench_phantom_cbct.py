"""Time and peak memory of generating a full-size CBCT phantom and writing it as DICOM.

Usage: python benchmarks/bench_phantom_cbct.py [--seed 0] [--size full]
Targets: generation under 30 s on 2 CPU cores, peak memory under 4 GB.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from odontoscan.datasets.phantom.cbct import write_phantom_dicom, generate_cbct


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="full", choices=["full", "small"])
    args = parser.parse_args()

    start = time.perf_counter()
    phantom = generate_cbct(args.seed, args.size)
    generated = time.perf_counter() - start
    print(f"generate_cbct(seed={args.seed}, size={args.size}): {generated:.1f} s, "
          f"shape {phantom.image.shape}, spacing {phantom.spacing[0]:.3f} mm, peak RSS {_peak_rss_mb():.0f} MB")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_phantom_dicom(phantom, Path(tmp))
        written = time.perf_counter() - start
        files = len(list((Path(tmp) / "dicom").iterdir()))
    print(f"write DICOM series ({files} slices) + labels.nii.gz: {written:.1f} s, peak RSS {_peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
