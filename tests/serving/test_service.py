"""The inference API in process: BentoML's ASGI app of OdontoscanService under Starlette's
TestClient, one service instance for the module (models load once), a phantom CBCT
(cropped to the dentition so it analyses in a few seconds) and a phantom panoramic."""

import logging
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pytest
from starlette.testclient import TestClient

from odontoscan.datasets.findings_schema import Findings
from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.phantom.pano import write_pano_phantom
from odontoscan.datasets.writers import write_volume
from odontoscan.models.registry import available_models
from odontoscan.datasets.errors import SeriesGeometryError
from odontoscan.serving.jobs import INTERRUPTED, JobRunner, JobState, Store, process_owner

KEY = "test-key-1"
SECRETS = ("Secret^Patient", "ID-SECRET-4711")
ERROR_KEYS = {"error"}


def cropped_cbct(seed: int):
    """A small CBCT phantom cut down to a box around its teeth: (image, spacing)."""
    phantom = generate_cbct(seed, "small")
    teeth = np.argwhere((phantom.labels >= 11) & (phantom.labels <= 48))
    lo, hi = teeth.min(0) - 4, teeth.max(0) + 5
    box = tuple(slice(max(0, int(a)), int(b)) for a, b in zip(lo, hi))
    return phantom.image[box], phantom.spacing


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    image, spacing = cropped_cbct(1)
    write_volume(np.rint(image).astype(np.int16), spacing, root / "cbct.nii.gz")
    write_pano_phantom(2, root / "pano", "png", "small")
    write_pano_phantom(3, root / "pano-dicom", "dicom", "small")
    dicom = root / "pano-dicom" / "pano.dcm"
    ds = pydicom.dcmread(dicom)
    ds.PatientName, ds.PatientID = SECRETS
    ds.save_as(dicom)
    return {"cbct": root / "cbct.nii.gz", "pano": root / "pano" / "pano.png", "pano_dicom": dicom}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ODONTOSCAN_DATA_DIR", str(data))
        env.setenv("ODONTOSCAN_API_KEYS", f"{KEY}, test-key-2")
        env.setenv("ODONTOSCAN_MAX_UPLOAD_MB", "6")
        env.setenv("ODONTOSCAN_ORT_THREADS", "2")
        env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("prometheus")))
        from odontoscan.serving.service import OdontoscanService

        with TestClient(OdontoscanService.to_asgi(), headers={"Authorization": f"Bearer {KEY}"}) as client:
            yield client, data


@pytest.fixture
def client(service):
    return service[0]


def upload(path: Path, name: str = "scan"):
    return {"file": (name, path.read_bytes())}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text and body["error"]["message"]
    return body["error"]


def wait_for_job(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout} s: {status}")


def assert_gone(path: Path, timeout: float = 5) -> None:
    """The job thread deletes an upload just after it records the job's end."""
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not path.exists(), path


# --- infrastructure --------------------------------------------------------------------


def test_health_metrics_and_openapi_need_no_key(client):
    bare = {"Authorization": ""}
    assert client.get("/livez", headers=bare).status_code == 200
    assert client.get("/readyz", headers=bare).status_code == 200
    metrics = client.get("/metrics", headers=bare)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    spec = client.get("/docs.json", headers=bare).json()
    for path in ("/v1/analyze", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/results/{result_id}/{path}", "/v1/plan", "/v1/models"):
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]


def test_models_lists_the_loaded_models_with_their_label_maps(client):
    body = client.get("/v1/models").json()
    shipped = available_models()
    assert set(body["shipped"]) == set(shipped)
    by_task = {m["task"]: m for m in body["models"]}
    assert by_task["cbct"]["name"] == "cbct-phantom" and by_task["radiograph"]["name"] == "pano-phantom"
    for entry in by_task.values():
        assert entry["version"] == shipped[entry["name"]].version
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
    assert by_task["cbct"]["labels"]["1"] and by_task["cbct"]["labels"]["11"]


# --- analyze and results ---------------------------------------------------------------


def test_analyze_cbct_returns_findings_and_serves_every_file(client, scans):
    response = client.post("/v1/analyze", files=upload(scans["cbct"], "Doe_Jane.nii.gz"))
    assert response.status_code == 200, response.text
    body = response.json()
    findings = Findings.model_validate(body["findings"])
    assert findings.scan.modality == "CT" and len(findings.teeth) == 32
    assert sum(t.status.value == "present" for t in findings.teeth) >= 16
    links = body["links"]
    assert links["report"] and links["labels"] and links["overlays"]
    stored = client.get(links["findings"])
    assert Findings.model_validate_json(stored.content) == findings
    assert client.get(links["report"]).headers["content-type"].startswith("text/html")
    assert client.get(links["overlays"][0]).headers["content-type"] == "image/png"
    assert client.get(links["labels"]).content[:2] == b"\x1f\x8b"
    assert "Doe" not in response.text
    again = client.get(links["result"]).json()
    assert again["result_id"] == body["result_id"] and again["links"] == links


def test_analyze_radiograph_with_options(client, scans):
    response = client.post("/v1/analyze", files=upload(scans["pano"]), data={"pixel_spacing": "0.4", "overlays": "false", "report": "false"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["findings"]["scan"]["spacing_mm"] == [0.4, 0.4] and body["findings"]["scan"]["pixel_spacing_known"]
    assert body["links"]["overlays"] == [] and body["links"]["report"] is None and body["links"]["labels"]


def test_no_patient_identifier_reaches_answers(client, scans):
    good = client.post("/v1/analyze", files=upload(scans["pano_dicom"], "Secret^Patient.dcm"))
    assert good.status_code == 200, good.text
    report = client.get(good.json()["links"]["report"]).text
    truncated = scans["pano_dicom"].read_bytes()[:5000]
    bad = client.post("/v1/analyze", files={"file": ("ID-SECRET-4711.dcm", truncated)})
    assert_error(bad, 400, bad.json()["error"]["code"])
    for text in (good.text, report, bad.text):
        for secret in SECRETS + ("Secret",):
            assert secret not in text


def test_results_can_be_deleted(client, scans):
    result = client.post("/v1/analyze", files=upload(scans["pano"]), data={"pixel_spacing": "0.4", "report": "false"}).json()
    assert client.delete(f"/v1/results/{result['result_id']}").status_code == 204
    assert_error(client.get(result["links"]["findings"]), 404, "not_found")
    assert_error(client.delete(f"/v1/results/{result['result_id']}"), 404, "not_found")


def test_result_files_reject_path_traversal(client, scans, service):
    result = client.post("/v1/analyze", files=upload(scans["pano"]), data={"pixel_spacing": "0.4", "overlays": "false"}).json()
    base = f"/v1/results/{result['result_id']}"
    for path in ("..%2F..%2Fodontoscan.sqlite3", "%2e%2e/%2e%2e/odontoscan.sqlite3", "overlays/..%2F..%2F..%2Fodontoscan.sqlite3", "%2Fetc%2Fpasswd", ".tmp"):
        assert_error(client.get(f"{base}/{path}"), 400, "invalid_path")
    assert_error(client.get(f"{base}/no-such-file.png"), 404, "not_found")
    assert_error(client.get("/v1/results/0123456789abcdef0123456789abcdef/report.html"), 404, "not_found")
    assert_error(client.get("/v1/results/..%2F..%2Fetc/report.html"), 404, "not_found")


# --- errors ------------------------------------------------------------------------------


def test_api_key_is_required_when_configured(client):
    assert_error(client.get("/v1/models", headers={"Authorization": ""}), 401, "unauthorized")
    assert_error(client.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert client.get("/v1/models", headers={"Authorization": "", "X-API-Key": "test-key-2"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": f"bearer {KEY}"}).status_code == 200
    refused = client.post("/v1/analyze", headers={"Authorization": ""}, files={"file": ("a", b"x" * 100)})
    assert_error(refused, 401, "unauthorized")
    assert refused.headers["www-authenticate"] == "Bearer"


def test_upload_limit_applies_to_declared_and_streamed_bodies(client):
    big = b"\x89PNG\r\n\x1a\n" + bytes(7 * 1024 * 1024)
    error = assert_error(client.post("/v1/analyze", files={"file": ("big.png", big)}), 413, "upload_too_large")
    assert "6 MB" in error["message"]
    boundary = "odontoscan-test"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'.encode()

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield head
        for _ in range(8):
            yield bytes(1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = client.post("/v1/jobs", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(streamed, 413, "upload_too_large")


def test_bad_uploads_and_options_get_clear_errors(client, scans):
    assert_error(client.post("/v1/analyze", files={"file": ("notes.txt", b"not a scan at all " * 20)}), 415, "unsupported_format")
    assert_error(client.post("/v1/analyze", files={"file": ("empty.png", b"")}), 400, "unreadable_scan")
    broken = assert_error(client.post("/v1/analyze", files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + bytes(300))}), 400, "unreadable_scan")
    assert "png" in broken["message"]
    error = assert_error(client.post("/v1/analyze", files=upload(scans["pano"]), data={"pixel_spacing": "-1"}), 422, "invalid_request")
    assert "pixel_spacing" in error["message"]
    error = assert_error(client.post("/v1/analyze", files=upload(scans["pano"]), data={"modality": "MR"}), 422, "invalid_request")
    assert "modality" in error["message"]
    error = assert_error(client.post("/v1/analyze", files=upload(scans["pano"]), data={"overlay": "false"}), 422, "invalid_request")
    assert "overlay" in error["message"]
    assert_error(client.post("/v1/analyze", data={"pixel_spacing": "0.4"}), 422, "invalid_request")
    assert_error(client.post("/v1/analyze", files=upload(scans["pano"]), data={"modality": "CT"}), 422, "wrong_dimension")
    assert_error(client.get("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "not_found")
    assert_error(client.get("/v1/jobs/not-an-id"), 404, "not_found")
    assert_error(client.get("/v1/no-such-endpoint"), 404, "not_found")
    assert_error(client.get("/v1/analyze"), 405, "method_not_allowed")
    assert client.get("/readyz").status_code == 200  # still serving


# --- jobs --------------------------------------------------------------------------------


def test_job_runs_to_completion(client, scans, service):
    accepted = client.post("/v1/jobs", files=upload(scans["cbct"]))
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["status"] == "queued" and accepted.headers["location"] == job["links"]["status"] == f"/v1/jobs/{job['job_id']}"
    status = wait_for_job(client, job["job_id"])
    assert status["status"] == "done", status
    assert status["progress"] == {"stage": "done", "fraction": 1.0} and status["error"] is None
    findings = Findings.model_validate_json(client.get(status["links"]["findings"]).content)
    assert findings.scan.modality == "CT" and set(findings.timings_ms) >= {"load", "inference", "outputs"}
    assert client.get(status["links"]["report"]).status_code == 200
    assert_gone(service[1] / "jobs" / job["job_id"])  # the upload is deleted


def test_failed_job_reports_the_reader_error(client, service):
    job = client.post("/v1/jobs", files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + bytes(300))}).json()
    status = wait_for_job(client, job["job_id"], timeout=30)
    assert status["status"] == "failed" and status["progress"]["stage"] == "failed"
    assert status["error"]["code"] == "unreadable_scan" and "png" in status["error"]["message"]
    assert status["links"] is None and status["result_id"] is None
    assert_gone(service[1] / "jobs" / job["job_id"])


# --- plan --------------------------------------------------------------------------------


def _planning():
    planning = pytest.importorskip("odontoscan.planning")
    if not hasattr(planning, "draft_plan"):
        pytest.skip("odontoscan.planning.draft_plan is not written yet")
    return planning


def test_plan_from_a_result_or_inline_findings(client, scans):
    planning = _planning()
    result = client.post("/v1/analyze", files=upload(scans["pano"]), data={"pixel_spacing": "0.4", "overlays": "false"}).json()
    from_result = client.post("/v1/plan", json={"result_id": result["result_id"], "context": {"age": 54}})
    assert from_result.status_code == 200, from_result.text
    planning.TreatmentPlan.model_validate(from_result.json())
    inline = client.post("/v1/plan", json={"findings": result["findings"]})
    assert inline.status_code == 200 and inline.json() == client.post("/v1/plan", json={"result_id": result["result_id"]}).json()
    assert_error(client.post("/v1/plan", json={"result_id": result["result_id"], "context": {"patient_name": "Doe"}}), 422, "invalid_context")
    assert_error(client.post("/v1/plan", json={"result_id": result["result_id"], "findings": result["findings"]}), 422, "invalid_request")
    assert_error(client.post("/v1/plan", json={}), 422, "invalid_request")
    assert_error(client.post("/v1/plan", json={"result_id": "0123456789abcdef0123456789abcdef"}), 404, "not_found")


def test_plan_without_the_planning_package_is_501(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "odontoscan.planning", None)  # makes the import fail
    assert_error(client.post("/v1/plan", json={"result_id": "0123456789abcdef0123456789abcdef"}), 501, "planning_unavailable")


# --- concurrency -------------------------------------------------------------------------


def test_concurrent_radiographs_are_batched_without_errors(client, scans, caplog):
    caplog.set_level(logging.DEBUG, logger="odontoscan.serving")
    data = scans["pano"].read_bytes()

    def one(_):
        return client.post("/v1/analyze", files={"file": ("p.png", data)}, data={"pixel_spacing": "0.4", "overlays": "false", "report": "false"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(16)))
    assert [r.status_code for r in responses] == [200] * 16, [r.text for r in responses if r.status_code != 200]
    assert len({r.json()["result_id"] for r in responses}) == 16
    sizes = [int(m.group(1)) for m in re.finditer(r"radiograph batch of (\d+)", caplog.text)]
    assert sum(sizes) == 16 and max(sizes) > 1, sizes


# --- the store ---------------------------------------------------------------------------


def test_store_fails_jobs_of_dead_workers_and_keeps_queued_ones(tmp_path):
    store = Store(tmp_path)
    for job_id in ("a" * 32, "b" * 32):
        store.job_dir(job_id).mkdir()
        store.add_job(job_id, "upload.png", "{}")
    dead = "999999999:1.000"
    assert store.claim(dead).id == "a" * 32
    assert store.recover() == ["a" * 32]
    lost = store.get_job("a" * 32)
    assert lost.status is JobState.FAILED and (lost.error_code, lost.error_message) == INTERRUPTED
    assert not store.job_dir("a" * 32).exists()
    assert store.get_job("b" * 32).status is JobState.QUEUED
    owner = process_owner()
    assert store.claim(owner).id == "b" * 32 and store.recover() == []


def test_store_updates_only_the_owners_job(tmp_path):
    store = Store(tmp_path)
    store.add_job("c" * 32, "upload.png", "{}")
    owner = process_owner()
    store.claim(owner)
    assert not store.finish("c" * 32, "other:1.0", "d" * 32)
    assert store.requeue("c" * 32, owner)
    assert not store.finish("c" * 32, owner, "d" * 32)  # back in the queue: no longer running
    assert store.get_job("c" * 32).status is JobState.QUEUED


def test_store_results_appear_whole_or_not_at_all(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.new_result() as (failed_id, staging):
            staging.mkdir()
            (staging / "findings.json").write_text("{}")
            raise RuntimeError("interrupted")
    assert store.result_dir(failed_id) is None and not list(store.results.iterdir())
    with store.new_result() as (result_id, staging):
        staging.mkdir()
        (staging / "findings.json").write_text("{}")
    assert (store.result_dir(result_id) / "findings.json").is_file()
    assert store.result_dir("../" + result_id) is None


def test_runner_puts_its_running_job_back_when_stopped(tmp_path):
    store = Store(tmp_path)
    job_id = "e" * 32
    store.job_dir(job_id).mkdir()
    store.add_job(job_id, "upload.png", "{}")
    started, release = threading.Event(), threading.Event()

    def run(job, progress):
        started.set()
        release.wait(10)
        return "f" * 32

    runner = JobRunner(store, run, poll_s=0.05)
    runner.start()
    assert started.wait(10)
    runner.stop()
    assert store.get_job(job_id).status is JobState.QUEUED
    release.set()
    runner._thread.join(10)
    assert store.get_job(job_id).status is JobState.QUEUED  # the late finish does not count
    assert store.job_dir(job_id).exists()  # the next start runs it again


def test_runner_reports_errors_without_their_text_in_the_log(tmp_path, caplog):
    store = Store(tmp_path)
    errors = {"a" * 32: SeriesGeometryError("Slices 4 and 5 overlap; export the series again."), "b" * 32: RuntimeError("Doe^Jane")}
    for job_id in errors:
        store.job_dir(job_id).mkdir()
        store.add_job(job_id, "upload.png", "{}")

    def run(job, progress):
        raise errors[job.id]

    runner = JobRunner(store, run, poll_s=0.05)
    runner.start()
    deadline = time.monotonic() + 10
    while any(store.get_job(j).status is not JobState.FAILED for j in errors) and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop()
    geometry, unexpected = store.get_job("a" * 32), store.get_job("b" * 32)
    assert (geometry.error_code, geometry.error_message) == ("invalid_series_geometry", "Slices 4 and 5 overlap; export the series again.")
    assert unexpected.error_code == "internal_error" and "Doe" not in unexpected.error_message
    assert "RuntimeError" in caplog.text and "Doe" not in caplog.text


@pytest.mark.parametrize(
    "head, suffix",
    [
        (b"\x00" * 128 + b"DICM" + b"\x00" * 10, ".dcm"),
        (b"PK\x03\x04rest", ".zip"),
        (b"\x89PNG\r\n\x1a\nrest", ".png"),
        (b"\xff\xd8\xff\xe0rest", ".jpg"),
        (b"II*\x00rest", ".tif"),
        (b"\x1f\x8brest", ".nii.gz"),
        (b"NRRD0004\n", ".nrrd"),
        (b"ObjectType = Image\nNDims = 3\n", ".mha"),
        (b"\x5c\x01\x00\x00" + b"\x00" * 340 + b"n+1\x00", ".nii"),
        (b"GIF89a", None),
        (b"%PDF-1.7", None),
    ],
)
def test_upload_type_comes_from_the_content(head, suffix):
    from odontoscan.serving.service import sniff_suffix

    assert sniff_suffix(head) == suffix
