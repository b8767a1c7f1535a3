"""A real Orthanc (with its DICOMweb plugin) for tests: one process on a free loopback
port with its own storage, basic auth, and ``StableAge`` 1 s. Skips when Orthanc is
missing and cannot be installed."""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

USER = "odo-user-7f3a"
PASSWORD = "s3cret-9b1c-pass"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")


def _orthanc_binary() -> str:
    """Orthanc's path, installing it with apt-get when possible, else skip."""
    if shutil.which("Orthanc") is None:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.skip("Orthanc is not installed and cannot be (needs apt-get as root): apt-get install orthanc orthanc-dicomweb")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "orthanc", "orthanc-dicomweb"]
        done = subprocess.run(install, env=env, capture_output=True, timeout=600)
        if done.returncode != 0:  # empty package lists on a fresh machine
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(install, env=env, capture_output=True, timeout=600)
        if done.returncode != 0 or shutil.which("Orthanc") is None:
            pytest.skip(f"apt-get could not install Orthanc (exit {done.returncode})")
    if not any(Path(d).glob("libOrthancDicomWeb.so*") for d in PLUGIN_DIRS):
        pytest.skip("the Orthanc DICOMweb plugin is not installed: apt-get install orthanc-dicomweb")
    return shutil.which("Orthanc")


class Orthanc:
    """One Orthanc process on a free loopback port with its own storage; restartable."""

    def __init__(self, binary: str, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        plugins = next(d for d in PLUGIN_DIRS if any(Path(d).glob("libOrthancDicomWeb.so*")))
        self.binary, self.folder = binary, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "orthanc.json"
        self.config.write_text(json.dumps({
            "Name": "odontoscan-test", "HttpPort": self.port, "DicomServerEnabled": False,
            "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [plugins], "StableAge": 1,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "StudiesMetadata": "Full"},
        }))
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb = f"{self.url}/dicom-web"
        self.rest = httpx.Client(base_url=self.url, auth=(USER, PASSWORD), timeout=60)
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.rest.get("/system").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        pytest.fail("Orthanc did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def upload(self, folder: Path) -> None:
        for path in sorted(folder.glob("*.dcm")):
            self.rest.post("/instances", content=path.read_bytes()).raise_for_status()

    def wait_stable(self, limit_s: float = 30) -> None:
        """Wait until Orthanc calls every study stable (``StableAge`` after its last instance)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if all(s["IsStable"] for s in self.rest.get("/studies", params={"expand": ""}).json()):
                return
            time.sleep(0.2)
        pytest.fail(f"Orthanc's studies did not become stable within {limit_s} s")

    def series_of(self, study_uid: str) -> dict[str, list[dict]]:
        """Modality -> [simplified tags of the first instance of each series] of a study."""
        found = self.rest.post("/tools/find", json={"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}).json()
        out: dict[str, list[dict]] = {}
        for series in self.rest.get(f"/studies/{found[0]}/series").json():
            tags = self.rest.get(f"/instances/{series['Instances'][0]}/simplified-tags").json()
            out.setdefault(tags["Modality"], []).append(tags)
        return out



@pytest.fixture
def orthanc(tmp_path):
    server = Orthanc(_orthanc_binary(), tmp_path / "orthanc")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.rest.close()


def pacs_env() -> dict[str, str]:
    """The environment variables that give odontoscan the test Orthanc's credentials."""
    return {"ODONTOSCAN_PACS_USER": USER, "ODONTOSCAN_PACS_PASSWORD": PASSWORD}
