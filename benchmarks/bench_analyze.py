"""End-to-end analysis benchmark: time per stage and peak memory of ``odontoscan analyze``.

CBCT: a full-size phantom (about 400x400x300 at 0.3 mm) written as a DICOM series,
analysed from the series to all outputs (findings.json, labels.nii.gz, overlays,
report.html, and with --dicom-out the SEG and SR) in a fresh process, so the peak
memory belongs to the analysis alone. Radiograph: a full-size panoramic phantom
(0.1 mm pixels) as PX DICOM, analysed the same way, several times (after a warm-up).
Targets (issue 5): CBCT under 20 s wall and 3 GB peak on 2 CPU cores; panoramic
under 1 s per image.

    python benchmarks/bench_analyze.py [--seed 2100] [--dicom-out] [--pano-repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
def peak_mb():
    with open("/proc/self/status") as fh:
        return int(next(l for l in fh if l.startswith("VmHWM:")).split()[1]) / 1e3
from odontoscan.datasets import load_scan
from odontoscan.models.pipeline import Analyzer
from odontoscan.serving.outputs.write import write_outputs
source, out, dicom, repeat = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
analyzer = Analyzer()
if repeat > 1:  # warm-up: model loading and lazy imports are not part of an analysis
    analyzer.analyze(load_scan(source))
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the high-water mark
runs = []
for i in range(repeat):
    start = time.perf_counter()
    scan = load_scan(source)
    load_s = time.perf_counter() - start
    result = analyzer.analyze(scan)
    result.record("load", load_s)
    write_outputs(result, f"{out}/{i}", source=source, dicom=dicom)
    runs.append({"wall_s": time.perf_counter() - start, "stages_s": {k: round(v, 2) for k, v in result.timings_s.items()}})
print(json.dumps({"runs": runs, "peak_rss_mb": peak_mb(), "shape": list(scan.shape), "findings": len(result.findings.findings)}))
"""


def run_child(source: Path, out: Path, dicom: bool, repeat: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(out), "1" if dicom else "0", str(repeat)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(name: str, figures: dict, target_s: float) -> None:
    walls = [r["wall_s"] for r in figures["runs"]]
    best = min(walls)
    print(f"{name}: shape {figures['shape']}, {figures['findings']} findings")
    for i, run in enumerate(figures["runs"]):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in run["stages_s"].items())
        print(f"  run {i + 1}: {run['wall_s']:.2f} s ({stages})")
    print(f"  best {best:.2f} s = {best / target_s:.2f}x the {target_s:g} s target; peak RSS {figures['peak_rss_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2101, help="phantom seed (2101: 0.3 mm, 400x400x300; never a training seed)")
    parser.add_argument("--dicom-out", action="store_true", help="also write the DICOM SEG and SR")
    parser.add_argument("--pano-repeat", type=int, default=3)
    args = parser.parse_args()

    from odontoscan.datasets.phantom.cbct import generate_cbct, write_phantom_dicom
    from odontoscan.datasets.phantom.pano import write_pano_phantom

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_phantom_dicom(generate_cbct(args.seed, "full"), root / "cbct")
        write_pano_phantom(args.seed, root / "pano", fmt="dicom")
        print(f"phantoms written in {time.perf_counter() - start:.1f} s (not timed below)")
        report("CBCT full size, DICOM series -> all outputs", run_child(root / "cbct" / "dicom", root / "out-cbct", args.dicom_out, 1), 20.0)
        pano_source = next((root / "pano").rglob("*.dcm"))
        report("panoramic, PX DICOM -> all outputs", run_child(pano_source, root / "out-pano", args.dicom_out, args.pano_repeat), 1.0)


if __name__ == "__main__":
    main()
