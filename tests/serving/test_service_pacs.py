"""POST /v1/jobs {"pacs_study_uid": ...}: the service in process (BentoML's ASGI app under
Starlette's TestClient) retrieves a phantom CT study from a real Orthanc and analyses it;
an unknown study fails its job with study_not_found; no PACS configured answers 422."""

import time

import pydicom
import pytest
from starlette.testclient import TestClient

from helpers.orthanc import PASSWORD, USER, orthanc  # noqa: F401 - orthanc is a fixture
from odontoscan.datasets.phantom.cbct import generate_cbct, write_phantom_dicom

pytestmark = pytest.mark.slow


def _forget_bentoml_metrics() -> None:
    """Unregister BentoML's HTTP metrics from Prometheus's default registry: each service
    app registers them when it starts, so a second app in one process would clash."""
    import prometheus_client

    registry = prometheus_client.REGISTRY
    for collector in list(registry._collector_to_names):
        if any(name.startswith("bentoml_") for name in registry._collector_to_names[collector]):
            registry.unregister(collector)


@pytest.fixture(autouse=True)
def _one_service_app_at_a_time():
    """Each test starts its own service app: forget BentoML's metrics before and after,
    so neither these apps nor other test modules' clash."""
    _forget_bentoml_metrics()
    yield
    _forget_bentoml_metrics()


@pytest.fixture
def pacs_service(orthanc, tmp_path):  # noqa: F811 - the fixture imported above
    """The service configured with the test Orthanc, and the UID of one uploaded phantom CT study."""
    folder = tmp_path / "phantom"
    write_phantom_dicom(generate_cbct(3201, "small"), folder)
    orthanc.upload(folder / "dicom")
    study_uid = pydicom.dcmread(next((folder / "dicom").glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ODONTOSCAN_DATA_DIR", str(tmp_path / "data"))
        env.setenv("ODONTOSCAN_ORT_THREADS", "2")
        env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
        (tmp_path / "prometheus").mkdir()
        env.setenv("ODONTOSCAN_PACS_URL", orthanc.dicomweb)
        env.setenv("ODONTOSCAN_PACS_USER", USER)
        env.setenv("ODONTOSCAN_PACS_PASSWORD", PASSWORD)
        from odontoscan.serving.service import OdontoscanService

        with TestClient(OdontoscanService.to_asgi()) as client:
            yield client, study_uid


def _wait(client: TestClient, job_id: str, limit_s: float = 300) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.5)
    pytest.fail(f"job {job_id} did not end within {limit_s} s")


def test_a_pacs_job_retrieves_and_analyses_the_study(pacs_service):
    client, study_uid = pacs_service
    accepted = client.post("/v1/jobs", json={"pacs_study_uid": study_uid, "overlays": False})
    assert accepted.status_code == 202, accepted.text
    status = _wait(client, accepted.json()["job_id"])
    assert status["status"] == "done", status
    result = client.get(status["links"]["result"]).json()
    assert result["findings"]["teeth"]
    for text in (accepted.text, str(status), str(result)):
        assert USER not in text and PASSWORD not in text

    unknown = client.post("/v1/jobs", json={"pacs_study_uid": "1.2.3.4.5"})
    assert unknown.status_code == 202, unknown.text
    failed = _wait(client, unknown.json()["job_id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "study_not_found"
    assert "1.2.3.4.5" in failed["error"]["message"] and PASSWORD not in failed["error"]["message"]

    bad = client.post("/v1/jobs", json={"pacs_study_uid": "not a uid"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_a_pacs_job_without_a_configured_pacs_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ODONTOSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ODONTOSCAN_ORT_THREADS", "1")
    (tmp_path / "prometheus").mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    for name in ("ODONTOSCAN_PACS_URL", "ODONTOSCAN_PACS_CONFIG", "ODONTOSCAN_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    from odontoscan.serving.service import OdontoscanService

    with TestClient(OdontoscanService.to_asgi()) as client:
        answer = client.post("/v1/jobs", json={"pacs_study_uid": "1.2.3"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "pacs_not_configured" and "ODONTOSCAN_PACS_URL" in error["message"]
