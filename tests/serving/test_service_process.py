"""``odontoscan serve`` as a real server on a loopback port: analyse a phantom DICOM zip, run
jobs, and restart on the same data directory - after a clean stop and after a kill -
without losing a finished result or silently dropping a job."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from odontoscan.datasets.phantom.cbct import generate_cbct, write_phantom_dicom
from odontoscan.datasets.phantom.pano import write_pano_phantom

pytestmark = pytest.mark.slow

SHIM = "import typer; from odontoscan.serving.commands.serve import serve; typer.run(serve)"


def serve_command() -> list[str]:
    """``odontoscan serve`` once the CLI registers it, else the command function run by typer."""
    from odontoscan.serving import cli

    names = {c.name or (c.callback.__name__ if c.callback else None) for c in cli.app.registered_commands}
    if "serve" in names:
        return [sys.executable, "-m", "odontoscan.serving.cli", "serve"]
    return [sys.executable, "-c", SHIM]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``odontoscan serve`` process tree on a free port, logging to a file."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ODONTOSCAN_ORT_THREADS": "2", "BENTOML_HOME": str(data_dir.parent / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [*serve_command(), "--port", str(self.port), "--data-dir", str(data_dir)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if self.client.get("/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the server and its workers and wait until all are gone."""
        self.client.close()
        try:
            procs = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=30)
        for proc in alive:
            proc.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    phantom = generate_cbct(4, "small")
    teeth = np.argwhere((phantom.labels >= 11) & (phantom.labels <= 48))
    lo, hi = teeth.min(0) - 4, teeth.max(0) + 5
    box = tuple(slice(max(0, int(a)), int(b)) for a, b in zip(lo, hi))
    cropped = replace(phantom, image=phantom.image[box], labels=phantom.labels[box])  # seconds, not minutes, to analyse
    write_phantom_dicom(cropped, root / "case")
    with zipfile.ZipFile(root / "cbct.zip", "w") as archive:
        for path in sorted((root / "case" / "dicom").iterdir()):
            archive.write(path, f"dicom/{path.name}")
    write_pano_phantom(5, root / "pano", "png", "small")
    return {"cbct": root / "cbct.zip", "pano": root / "pano" / "pano.png"}


@pytest.fixture
def servers(tmp_path):
    started: list[Server] = []

    def start() -> Server:
        server = Server(tmp_path / "data", tmp_path / "server.log")
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)


def submit(server: Server, path: Path, **options: str) -> str:
    answer = server.client.post("/v1/jobs", files={"file": (path.name, path.read_bytes())}, data=options)
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def wait_for(server: Server, job_id: str, states: tuple[str, ...], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.client.get(f"/v1/jobs/{job_id}").json()
        if status["status"] in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}: {status}")


def test_results_and_jobs_survive_restarts(servers, scans, tmp_path):
    first = servers()
    analysed = first.client.post("/v1/analyze", files={"file": ("cbct.zip", scans["cbct"].read_bytes())})
    assert analysed.status_code == 200, analysed.text
    result = analysed.json()
    assert result["findings"]["scan"]["modality"] == "CT" and len(result["findings"]["teeth"]) == 32
    pano = first.client.post("/v1/analyze", files={"file": ("pano.png", scans["pano"].read_bytes())}, data={"pixel_spacing": "0.4"})
    assert pano.status_code == 200, pano.text  # through the batch API, in a real server
    job_id = submit(first, scans["pano"], pixel_spacing="0.4")
    done = wait_for(first, job_id, ("done", "failed"))
    assert done["status"] == "done", done
    metrics = first.client.get("/metrics").text
    assert "odontoscan_analyses_total" in metrics and "bentoml_service_adaptive_batch_size" in metrics
    first.stop(signal.SIGTERM)

    second = servers()  # same data directory
    assert second.client.get(f"/v1/jobs/{job_id}").json() == done
    for link in (result["links"]["report"], result["links"]["labels"], done["links"]["findings"]):
        assert second.client.get(link).status_code == 200, link
    assert second.client.get(f"/v1/results/{result['result_id']}").json()["findings"] == result["findings"]

    running = submit(second, scans["cbct"])
    queued = submit(second, scans["pano"], pixel_spacing="0.4")  # one worker: waits behind the CBCT
    wait_for(second, running, ("running",), timeout=60)
    assert second.client.get(f"/v1/jobs/{queued}").json()["status"] == "queued"
    second.stop(signal.SIGKILL)  # a crash: no chance to clean up

    third = servers()
    lost = third.client.get(f"/v1/jobs/{running}").json()
    assert lost["status"] == "failed" and lost["error"]["code"] == "interrupted", lost
    assert "submit the scan again" in lost["error"]["message"]
    rerun = wait_for(third, queued, ("done", "failed"))
    assert rerun["status"] == "done", rerun
    assert not (tmp_path / "data" / "jobs" / running).exists()
    third.stop(signal.SIGTERM)
    assert third.process.returncode is not None
    shutil.rmtree(tmp_path / "bentoml", ignore_errors=True)
