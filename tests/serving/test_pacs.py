"""PACS integration against a real Orthanc process: QIDO/WADO/STOW, screen --pacs --push,
an outage mid-batch and its resume. Credentials never show up in outputs, logs or errors."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from odontoscan.datasets.errors import (
    ConfigError,
    PacsAuthError,
    PacsStoreError,
    PartialRetrieveError,
    StudyNotFoundError,
)
from odontoscan.datasets.phantom.cbct import generate_cbct, write_phantom_dicom
from odontoscan.serving.pacs import DicomWebClient, PacsConfig, load_pacs_config
from odontoscan.serving.screen import screen

pytestmark = pytest.mark.slow

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

    def series_of(self, study_uid: str) -> dict[str, list[dict]]:
        """Modality -> [simplified tags of the first instance of each series] of a study."""
        found = self.rest.post("/tools/find", json={"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}).json()
        out: dict[str, list[dict]] = {}
        for series in self.rest.get(f"/studies/{found[0]}/series").json():
            tags = self.rest.get(f"/instances/{series['Instances'][0]}/simplified-tags").json()
            out.setdefault(tags["Modality"], []).append(tags)
        return out


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """Three small phantom CT studies as DICOM folders: (study UID, series UID, folder)."""
    import pydicom

    out = []
    for seed in (3101, 3102, 3103):
        folder = tmp_path_factory.mktemp(f"phantom{seed}")
        write_phantom_dicom(generate_cbct(seed, "small"), folder)
        first = pydicom.dcmread(next((folder / "dicom").glob("*.dcm")), stop_before_pixels=True)
        out.append((first.StudyInstanceUID, first.SeriesInstanceUID, folder / "dicom"))
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


def _config(server: Orthanc, **kwargs) -> PacsConfig:
    return load_pacs_config(server.dicomweb, env={"ODONTOSCAN_PACS_USER": USER, "ODONTOSCAN_PACS_PASSWORD": PASSWORD}).model_copy(update=kwargs)


def _assert_no_credentials(*texts: str, folder: Path | None = None) -> None:
    blobs = [t.encode() for t in texts]
    if folder is not None:
        blobs += [p.read_bytes() for p in folder.rglob("*") if p.is_file()]
    for blob in blobs:
        assert PASSWORD.encode() not in blob and USER.encode() not in blob


def test_client_search_retrieve_store_and_its_errors(orthanc, phantoms, tmp_path):
    study_uid, series_uid, folder = phantoms[0]
    orthanc.upload(folder)
    with DicomWebClient(_config(orthanc)) as client:
        [study] = client.search_studies(modality="CT")
        assert study.study_uid == study_uid and study.instances == len(list(folder.glob("*.dcm")))
        assert client.search_studies(modality="MR") == []
        series = client.image_series(study_uid, "CT")
        assert series.series_uid == series_uid
        files = client.retrieve(study_uid, tmp_path / "got", series_uid=series_uid, expected=series.instances)
        assert len(files) == study.instances
        from odontoscan.datasets import load_scan

        assert load_scan(tmp_path / "got").meta.series_instance_uid == series_uid
        with pytest.raises(PartialRetrieveError, match=f"returned {study.instances} of {study.instances + 1} instances"):
            client.retrieve(study_uid, tmp_path / "partial", expected=study.instances + 1)
        with pytest.raises(StudyNotFoundError, match="Study 1.2.3.4 is not"):
            client.image_series("1.2.3.4")
        (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
        with pytest.raises(PacsStoreError, match=r"refused to store 1 file\(s\) \(HTTP 4\d\d"):
            client.store([tmp_path / "junk.dcm"])
    wrong = PacsConfig(url=orthanc.dicomweb, auth={"user": USER, "password": "wrong-password"})
    with DicomWebClient(wrong) as client, pytest.raises(PacsAuthError, match="refused the credentials \\(HTTP 401\\)") as error:
        client.search_studies()
    _assert_no_credentials(str(error.value))
    assert "wrong-password" not in str(error.value)
    with pytest.raises(ConfigError, match="must not hold credentials"):
        load_pacs_config(f"http://{USER}:{PASSWORD}@127.0.0.1:{orthanc.port}/dicom-web", env={})


def test_config_file_with_auth_from_the_environment(tmp_path):
    (tmp_path / "pacs.yaml").write_text("url: http://pacs.example:8042/dicom-web/\nauth:\n  user: screener\n  password_env: MY_PACS_PW\n")
    config = load_pacs_config(config_file=tmp_path / "pacs.yaml", env={"MY_PACS_PW": "pw"})
    assert (config.url, config.auth.user, config.auth.password.get_secret_value()) == ("http://pacs.example:8042/dicom-web", "screener", "pw")
    assert "pw" not in repr(config)
    with pytest.raises(ConfigError, match="'MY_PACS_PW', which is not set"):
        load_pacs_config(config_file=tmp_path / "pacs.yaml", env={})
    token = load_pacs_config("http://other:80/dicom-web", tmp_path / "pacs.yaml", env={"ODONTOSCAN_PACS_TOKEN": "tok", "MY_PACS_PW": "pw"})
    assert token.url == "http://other:80/dicom-web" and token.auth.token.get_secret_value() == "tok"


def test_screen_pacs_push_stores_seg_and_sr_referencing_the_ct(orthanc, phantoms, tmp_path):
    for _, _, folder in phantoms[:2]:
        orthanc.upload(folder)
    env = {**os.environ, "ODONTOSCAN_PACS_USER": USER, "ODONTOSCAN_PACS_PASSWORD": PASSWORD}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "odontoscan.serving.cli", "screen", "--pacs", orthanc.dicomweb, "--out", str(out),
               "--push", "--no-overlays", "--since", "2000-01-01"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert "2 studies (2 analysed now, 0 already done, 0 failed)" in result.stdout
    for study_uid, series_uid, _ in phantoms[:2]:
        assert (out / "studies" / study_uid / "pushed.json").is_file()
        series = orthanc.series_of(study_uid)
        assert sorted(series) == ["CT", "SEG", "SR"] and len(series["SEG"]) == len(series["SR"]) == 1
        seg_refs = [s["SeriesInstanceUID"] for s in series["SEG"][0]["ReferencedSeriesSequence"]]
        evidence = series["SR"][0]["CurrentRequestedProcedureEvidenceSequence"]
        sr_refs = [s["SeriesInstanceUID"] for e in evidence for s in e["ReferencedSeriesSequence"]]
        assert seg_refs == [series_uid] and series_uid in sr_refs
    _assert_no_credentials(result.stdout, result.stderr, folder=out)

    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and "0 analysed now, 2 already done" in again.stdout
    assert len(orthanc.series_of(phantoms[0][0])["SEG"]) == 1  # nothing pushed twice


def test_an_outage_mid_batch_fails_the_rest_clearly_and_a_rerun_completes(orthanc, phantoms, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    for _, _, folder in phantoms:
        orthanc.upload(folder)
    config = _config(orthanc, retries=2, backoff_s=0.1)
    out = tmp_path / "out"
    first = screen(None, out, pacs=config, push=True, overlays=False, on_progress=lambda *_: orthanc.stop())
    assert (first.total, first.analysed, first.failed) == (3, 3, 2)
    failed = [r for r in first.rows if r.status == "failed"]
    assert len(failed) == 2 and all(r.error_code == "pacs_unreachable" and r.error.startswith("PACS unreachable") for r in failed)
    for row in failed:
        assert json.loads((out / "studies" / row.study / "error.json").read_text())["code"] == "pacs_unreachable"
        assert not (out / "studies" / row.study / "pushed.json").exists()

    orthanc.start()  # same storage
    second = screen(None, out, pacs=config, push=True, overlays=False)
    assert (second.total, second.analysed, second.skipped, second.failed) == (3, 2, 1, 0)
    assert all(r.status == "done" for r in second.rows)
    for study_uid, _, _ in phantoms:
        assert sorted(orthanc.series_of(study_uid)) == ["CT", "SEG", "SR"]
    _assert_no_credentials(caplog.text, *(r.error or "" for r in first.rows), folder=out)


def test_watch_once_analyses_new_studies_only_once(orthanc, phantoms, tmp_path):
    orthanc.upload(phantoms[0][2])
    env = {**os.environ, "ODONTOSCAN_PACS_USER": USER, "ODONTOSCAN_PACS_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "odontoscan.serving.cli", "watch", "--pacs", orthanc.dicomweb, "--out", str(tmp_path / "out"),
               "--once", "--no-overlays"]
    outputs = []
    for upload in (None, None, phantoms[1][2]):
        if upload is not None:
            orthanc.upload(upload)
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert "1 analysed now" in outputs[0] and "0 analysed now" in outputs[1] and "1 analysed now (0 failed), 1 already done" in outputs[2]
    assert sorted(p.name for p in (tmp_path / "out" / "studies").iterdir()) == sorted(uid for uid, _, _ in phantoms[:2])
