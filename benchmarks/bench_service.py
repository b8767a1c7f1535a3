"""Inference API benchmark: radiograph throughput and latency, adaptive batching on and off,
and CBCT job latency, against a real ``odontoscan serve`` on a loopback port.

For each batching mode a fresh server starts (``--batching`` / ``--no-batching``), is
warmed up (BentoML's dispatcher profiles the first dozen requests before it batches),
then gets ``--requests`` panoramic phantom PNGs from 1 and from 8 concurrent clients
(``POST /v1/analyze``). Printed: requests per second, p50 and p95 latency, and the
mean adaptive batch size from /metrics. Then, on the last server, ``--cbct-jobs``
jobs with a small CBCT phantom (NIfTI): seconds from submit to done.

    python benchmarks/bench_service.py [--requests 32] [--pano-size small|full] [--workers 1] [--cbct-jobs 1]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

SHIM = "import typer; from odontoscan.serving.commands.serve import serve; typer.run(serve)"


def serve_command() -> list[str]:
    from odontoscan.serving import cli

    names = {c.name or (c.callback.__name__ if c.callback else None) for c in cli.app.registered_commands}
    return [sys.executable, "-m", "odontoscan.serving.cli", "serve"] if "serve" in names else [sys.executable, "-c", SHIM]


def start_server(data: Path, batching: bool, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--port", str(port), "--data-dir", str(data), "--workers", str(workers), "--batching" if batching else "--no-batching"]
    with open(log, "ab") as out:
        proc = subprocess.Popen([*serve_command(), *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("server not ready in 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def load_test(url: str, image: bytes, options: dict, requests: int, clients: int) -> dict:
    def one(_: int) -> float:
        started = time.perf_counter()
        answer = client.post("/v1/analyze", files={"file": ("pano.png", image)}, data=options)
        answer.raise_for_status()
        return time.perf_counter() - started

    with httpx.Client(base_url=url, timeout=600) as client, ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        latencies = sorted(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    return {
        "rps": requests / wall,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))],
    }


def batch_stats(url: str) -> tuple[float, float]:
    """Sum and count of the adaptive batch size histogram so far."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = sum(float(v) for v in re.findall(r"^bentoml_service_adaptive_batch_size_sum\{.*\} (\S+)$", text, re.M))
    count = sum(float(v) for v in re.findall(r"^bentoml_service_adaptive_batch_size_count\{.*\} (\S+)$", text, re.M))
    return total, count


def cbct_job_seconds(url: str, volume: bytes) -> tuple[float, dict]:
    with httpx.Client(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        job = client.post("/v1/jobs", files={"file": ("cbct.nii.gz", volume)}).json()
        while (status := client.get(f"/v1/jobs/{job['job_id']}").json())["status"] in ("queued", "running"):
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        if status["status"] != "done":
            raise SystemExit(f"CBCT job failed: {status['error']}")
        findings = client.get(status["links"]["findings"]).json()
    return seconds, findings["timings_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="radiograph requests per measurement")
    parser.add_argument("--pano-size", choices=("small", "full"), default="small", help="phantom pixel size: small 0.4 mm, full 0.1 mm")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cbct-jobs", type=int, default=1)
    parser.add_argument("--no-outputs", action="store_true", help="skip overlays and report (label map and findings only)")
    args = parser.parse_args()

    import numpy as np

    from odontoscan.datasets.phantom.cbct import generate_cbct
    from odontoscan.datasets.phantom.pano import generate_pano, save_png16
    from odontoscan.datasets.writers import write_volume

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        root = Path(tmp)
        pano = generate_pano(7, args.pano_size)
        save_png16(pano.image, root / "pano.png")
        image = (root / "pano.png").read_bytes()
        options = {"pixel_spacing": str(pano.spacing[0])}
        if args.no_outputs:
            options.update(overlays="false", report="false")
        phantom = generate_cbct(7, "small")
        write_volume(np.rint(phantom.image).astype(np.int16), phantom.spacing, root / "cbct.nii.gz")
        volume = (root / "cbct.nii.gz").read_bytes()
        print(f"radiograph {pano.image.shape[0]}x{pano.image.shape[1]} px at {pano.spacing[0]} mm; CBCT {'x'.join(map(str, phantom.image.shape))} "
              f"at {phantom.spacing[0]} mm; {args.workers} worker(s); {len(os.sched_getaffinity(0))} cores; outputs {'off' if args.no_outputs else 'on'}")
        print(f"{'batching':<9} {'clients':>7} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'mean batch':>10}")
        proc = url = None
        for batching in (True, False):
            proc, url = start_server(root / f"data-{batching}", batching, args.workers, root / "server.log")
            try:
                load_test(url, image, options, 16, 8)  # warm-up; lets the dispatcher profile
                for clients in (1, 8):
                    before = batch_stats(url)
                    figures = load_test(url, image, options, args.requests, clients)
                    after = batch_stats(url)
                    batches = after[1] - before[1]
                    mean = f"{(after[0] - before[0]) / batches:.2f}" if batches else "-"
                    print(f"{'on' if batching else 'off':<9} {clients:>7} {figures['rps']:>7.2f} {figures['p50']:>7.2f} {figures['p95']:>7.2f} {mean:>10}")
                if not batching:
                    for _ in range(args.cbct_jobs):
                        seconds, timings = cbct_job_seconds(url, volume)
                        stages = ", ".join(f"{k} {v / 1000:.1f}" for k, v in timings.items())
                        print(f"CBCT job: {seconds:.1f} s from submit to done ({stages} s)")
            finally:
                stop_server(proc)


if __name__ == "__main__":
    main()
