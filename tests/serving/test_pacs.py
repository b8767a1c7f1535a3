"""PACS integration against a real Orthanc process: QIDO/WADO/STOW, screen --pacs --push,
an outage mid-batch and its resume. Credentials never show up in outputs, logs or errors."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

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
from helpers.orthanc import PASSWORD, USER, Orthanc, orthanc  # noqa: F401 - orthanc is a fixture

pytestmark = pytest.mark.slow

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
        orthanc.wait_stable()  # watch leaves studies Orthanc does not yet call stable for the next look
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert "1 analysed now" in outputs[0] and "0 analysed now" in outputs[1] and "1 analysed now (0 failed), 1 already done" in outputs[2]
    assert sorted(p.name for p in (tmp_path / "out" / "studies").iterdir()) == sorted(uid for uid, _, _ in phantoms[:2])
    state = json.loads((tmp_path / "out" / "watch_state.json").read_text())
    assert state["last_change"] > 0 and state["waiting"] == {}  # Orthanc's change log was followed
