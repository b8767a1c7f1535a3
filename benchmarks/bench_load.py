"""Scan-ingest benchmark: load time and peak memory for a full-size CBCT DICOM series.

Writes a 400x400x300 CT series (int16, 300 files) to a temporary folder, then loads it
with ``load_scan`` in a fresh process so that the peak-memory figure belongs to the
load alone. Targets (issue 2): under 5 s on 2 cores, peak memory under 3x the
volume's float32 size.

    python benchmarks/bench_load.py [--shape 400 400 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Peak memory is read from VmHWM (this process's own high-water mark; ru_maxrss would
# include the parent's, since Linux carries it over fork/exec), reset after warm-up.
CHILD = r"""
import json, sys, time
def status_mb(key):
    with open("/proc/self/status") as fh:
        line = next(l for l in fh if l.startswith(key + ":"))
    return int(line.split()[1]) / 1e3
def rss_mb():
    return status_mb("VmRSS")
from odontoscan.datasets import load_scan
import numpy as np
load_scan(sys.argv[2])  # warm-up: lazy imports of decoders are not part of the load
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset VmHWM to the current RSS
before = rss_mb()
start = time.perf_counter()
scan = load_scan(sys.argv[1])
seconds = time.perf_counter() - start
peak = status_mb("VmHWM")
print(json.dumps({"seconds": seconds, "rss_before_mb": before, "peak_rss_mb": peak, "shape": list(scan.shape)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=(400, 400, 300))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from odontoscan.datasets.writers import write_ct_series

    shape = tuple(args.shape)
    volume_mb = np.prod(shape) * 4 / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        volume = rng.integers(-1000, 3000, size=shape).astype(np.float32)
        start = time.perf_counter()
        write_ct_series(volume, (0.3, 0.3, 0.3), Path(tmp) / "series")
        print(f"wrote {shape[2]} slices of {shape[0]}x{shape[1]} in {time.perf_counter() - start:.1f} s")
        write_ct_series(np.zeros((16, 16, 4), np.float32), (0.3, 0.3, 0.3), Path(tmp) / "warmup")
        del volume
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / "series"), str(Path(tmp) / "warmup")], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout))
    best = min(runs, key=lambda r: r["seconds"])
    load_peak = max(r["peak_rss_mb"] - r["rss_before_mb"] for r in runs)
    print(f"volume shape {shape}, float32 size {volume_mb:.0f} MB")
    print(f"load time: best {best['seconds']:.2f} s, all {[round(r['seconds'], 2) for r in runs]} (target < 5 s)")
    print(
        f"peak memory of the load: {load_peak:.0f} MB above the process baseline = "
        f"{load_peak / volume_mb:.2f}x the float32 volume (target < 3x)"
    )


if __name__ == "__main__":
    main()
