"""The odontoscan inference API: a BentoML service for the planning UI and other clients.

Start it with ``odontoscan serve`` or ``bentoml serve odontoscan.serving.service:OdontoscanService``.
The OpenAPI description is served at ``/docs.json`` (and browsable at ``/``).

Endpoints (everything under ``/v1`` needs an API key when keys are configured, sent as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``):

* ``POST /v1/analyze`` - multipart form: ``file`` (DICOM zip or file, NIfTI, MHA, NRRD,
  PNG, JPEG, TIFF) and options ``modality``, ``pixel_spacing`` (mm), ``series``,
  ``overlays``, ``report``. Analyses synchronously and answers ``{"result_id",
  "findings", "links"}``. Radiographs from concurrent requests are batched adaptively.
* ``POST /v1/jobs`` - the same form; answers 202 ``{"job_id", "status": "queued"}`` at
  once. ``GET /v1/jobs/{id}`` gives status (queued/running/done/failed), progress,
  the error when failed and the result links when done.
* ``GET /v1/results/{id}`` (findings + links), ``GET /v1/results/{id}/{path}`` (a
  stored file: findings.json, labels.nii.gz, report.html, overlays/*.png),
  ``DELETE /v1/results/{id}``.
* ``POST /v1/plan`` - JSON ``{"findings": {...} | null, "result_id": str | null,
  "context": {...} | null}`` -> draft treatment plan.
* ``GET /v1/models`` - the loaded models: name, version, sha256, label map.
* ``/livez``, ``/readyz``, ``/metrics`` (Prometheus) - BentoML's, without API key.

Errors always have the body ``{"error": {"code", "message"}}``: 400 unreadable scan,
401 no or wrong API key, 404 unknown id, 413 upload too large, 415 unsupported file
type, 422 invalid options, 501 planning not installed, 503 overloaded. Messages never
carry patient data, and the uploaded file's name is never used or stored.

Configuration, from the environment (``odontoscan serve`` sets it from its options):
``ODONTOSCAN_CBCT_MODEL``, ``ODONTOSCAN_RADIOGRAPH_MODEL`` (directory, shipped name or
``models:/NAME@alias``), ``ODONTOSCAN_DATA_DIR`` (results and jobs; default
``~/.local/share/odontoscan/service``), ``ODONTOSCAN_MAX_UPLOAD_MB`` (1024),
``ODONTOSCAN_API_KEYS`` (comma-separated; none: no authentication),
``ODONTOSCAN_WORKERS`` (1), ``ODONTOSCAN_ORT_THREADS`` (default: cores // workers),
``ODONTOSCAN_BATCHING`` (1; 0 analyses each radiograph on its own),
``ODONTOSCAN_REQUEST_TIMEOUT_S`` (600), ``MLFLOW_TRACKING_URI`` (for ``models:/``),
``ODONTOSCAN_PACS_URL`` (+ ``_USER``/``_PASSWORD`` or ``_TOKEN``) or ``ODONTOSCAN_PACS_CONFIG``
(the PACS of ``POST /v1/jobs {"pacs_study_uid"}``; none: such jobs are refused with 422).

Each worker process has one :class:`~odontoscan.models.pipeline.Analyzer` and runs at
most one synchronous CBCT analysis, one radiograph batch and one job at a time.

Client example (Python, httpx)::

    import time, httpx

    with httpx.Client(base_url="http://127.0.0.1:3000", timeout=600,
                      headers={"Authorization": "Bearer MY-KEY"}) as api:
        with open("pano.png", "rb") as scan:
            answer = api.post("/v1/analyze", files={"file": scan}, data={"pixel_spacing": "0.1"})
        answer.raise_for_status()  # errors: answer.json()["error"]["code"], ["message"]
        result = answer.json()
        print([t["fdi"] for t in result["findings"]["teeth"] if t["status"] == "missing"])
        report = api.get(result["links"]["report"]).text

        with open("cbct.zip", "rb") as scan:
            job = api.post("/v1/jobs", files={"file": scan}).json()
        while (status := api.get(f"/v1/jobs/{job['job_id']}").json())["status"] in ("queued", "running"):
            time.sleep(2)
        plan = api.post("/v1/plan", json={"result_id": status["result_id"], "context": {"age": 54}}).json()

The same with curl::

    curl -H "Authorization: Bearer MY-KEY" -F file=@pano.png -F pixel_spacing=0.1 http://127.0.0.1:3000/v1/analyze
    curl -H "Authorization: Bearer MY-KEY" -F file=@cbct.zip http://127.0.0.1:3000/v1/jobs
    curl -H "Authorization: Bearer MY-KEY" http://127.0.0.1:3000/v1/jobs/JOB_ID
    curl -H "Authorization: Bearer MY-KEY" -O http://127.0.0.1:3000/v1/results/RESULT_ID/report.html
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, BinaryIO

import anyio
import bentoml
from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from bentoml.exceptions import ServiceUnavailable
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import ConfigError, OdontoscanError, ScanReadError, UnsupportedFormatError
from odontoscan.datasets.findings_schema import Findings
from odontoscan.datasets.readers.archive import ArchiveLimits
from odontoscan.datasets.scan import Scan
from odontoscan.datasets.version import odontoscan_version
from odontoscan.models.pipeline import AnalysisResult, Analyzer
from odontoscan.models.registry import DEFAULT_MODELS, available_models
from odontoscan.models.runtime import THREADS_ENV, ort_threads
from odontoscan.serving.api_models import (
    AnalysisResponse,
    AnalyzeForm,
    AnalyzeOptions,
    ApiError,
    PacsJobRequest,
    ErrorBody,
    ErrorInfo,
    JobAccepted,
    JobStatus,
    Links,
    ModelEntry,
    ModelsResponse,
    PlanRequest,
    Progress,
    describe_validation,
)
from odontoscan.serving.jobs import Job, JobRunner, JobState, Store, new_id
from odontoscan.serving.pacs import ENV_URL, DicomWebClient, PacsConfig, load_pacs_config
from odontoscan.serving.outputs.write import FINDINGS_FILE, LABELS_FILE, OVERLAYS_DIR, REPORT_FILE, write_outputs

log = logging.getLogger("odontoscan.serving")

MAX_BATCH_SIZE = 8
ENV_PACS_CONFIG = "ODONTOSCAN_PACS_CONFIG"
PACS_UPLOAD = "pacs-study"  # the job's "upload": a folder the worker retrieves the study into
MAX_BATCH_LATENCY_MS = 120_000  # the dispatcher answers 503 past this; radiographs take ~1 s each
STAGE_FRACTIONS = {"retrieving": 0.01, "loading": 0.05, "inference": 0.1, "findings": 0.8, "outputs": 0.9}
UPLOAD_HELP = (
    "Send a DICOM file or a .zip of a DICOM series, a NIfTI (.nii/.nii.gz), MHA or NRRD volume, "
    "or a PNG, JPEG or TIFF radiograph."
)


# --- configuration -------------------------------------------------------------------


def _env_number(name: str, default: float, kind: type = int) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number.") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw}.")
    return value


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value; use 1 or 0.")


def _pacs_from_env() -> PacsConfig | None:
    """The PACS of ODONTOSCAN_PACS_CONFIG / ODONTOSCAN_PACS_URL (+ credentials), or None
    when neither is set. Raises ConfigError when they are set but wrong."""
    config_file = os.environ.get(ENV_PACS_CONFIG) or None
    if config_file is None and not os.environ.get(ENV_URL):
        return None
    return load_pacs_config(None, config_file)


def default_data_dir() -> Path:
    """Where results and jobs are kept when ODONTOSCAN_DATA_DIR is not set."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "odontoscan" / "service"


@dataclass(frozen=True)
class Settings:
    """The service configuration, read once per worker from the environment."""

    cbct_model: str = DEFAULT_MODELS["cbct"]
    radiograph_model: str = DEFAULT_MODELS["radiograph"]
    data_dir: Path = field(default_factory=default_data_dir)
    max_upload_mb: float = 1024
    api_keys: tuple[str, ...] = ()
    workers: int = 1
    threads: int = 1  # ONNX Runtime intra-op threads of each worker
    batching: bool = True
    tracking_uri: str | None = None
    pacs: PacsConfig | None = None  # where POST /v1/jobs {"pacs_study_uid"} retrieves studies from


    @classmethod
    def from_env(cls) -> Settings:
        workers = _env_number("ODONTOSCAN_WORKERS", 1)
        threads = ort_threads() if os.environ.get(THREADS_ENV) else max(1, ort_threads() // workers)
        keys = tuple(k.strip() for k in os.environ.get("ODONTOSCAN_API_KEYS", "").split(",") if k.strip())
        return cls(
            cbct_model=os.environ.get("ODONTOSCAN_CBCT_MODEL") or DEFAULT_MODELS["cbct"],
            radiograph_model=os.environ.get("ODONTOSCAN_RADIOGRAPH_MODEL") or DEFAULT_MODELS["radiograph"],
            data_dir=Path(os.environ.get("ODONTOSCAN_DATA_DIR") or default_data_dir()),
            max_upload_mb=_env_number("ODONTOSCAN_MAX_UPLOAD_MB", 1024, float),
            api_keys=keys,
            workers=workers,
            threads=threads,
            batching=_env_flag("ODONTOSCAN_BATCHING", True),
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
            pacs=_pacs_from_env(),
        )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


# --- uploads -------------------------------------------------------------------------

_MAGIC = (
    (b"PK\x03\x04", ".zip"),
    (b"PK\x05\x06", ".zip"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"\x1f\x8b", ".nii.gz"),
    (b"NRRD", ".nrrd"),
)
_METAIMAGE_KEYS = (b"ObjectType", b"NDims", b"Comment", b"ObjectSubType", b"TransformType")


def sniff_suffix(head: bytes) -> str | None:
    """The file suffix ``load_scan`` needs for an upload starting with ``head``, or None."""
    if head[128:132] == b"DICM":
        return ".dcm"
    for magic, suffix in _MAGIC:
        if head.startswith(magic):
            return suffix
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] == b"n+2\x00":
        return ".nii"
    if head.lstrip().startswith(_METAIMAGE_KEYS):
        return ".mha"
    return None


def _copy(source: BinaryIO, target: Path) -> None:
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


async def save_upload(form: AnalyzeForm, folder: Path) -> Path:
    """Store the uploaded scan in ``folder`` as ``upload<suffix>``, the suffix taken from
    its content: the client's file name is never used (it may name the patient)."""
    head = await form.file.read(4096)
    if not head:
        raise ScanReadError("The uploaded file is empty. " + UPLOAD_HELP)
    suffix = sniff_suffix(head)
    if suffix is None:
        raise UnsupportedFormatError("The uploaded file is not a scan format odontoscan reads. " + UPLOAD_HELP)
    await form.file.seek(0)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"upload{suffix}"
    await anyio.to_thread.run_sync(_copy, form.file.file, target)
    return target


# --- HTTP plumbing -------------------------------------------------------------------


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def log_unexpected(what: str, exc: BaseException) -> None:
    """Log an unexpected exception by type and stack only: its text may quote input data."""
    log.error("%s failed: %s\n%s", what, type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))


def _current_settings() -> Settings:
    try:
        return bentoml.get_current_service().settings
    except Exception:  # noqa: BLE001 - no instance yet (should not happen inside a request)
        return Settings.from_env()


def key_accepted(headers: Headers, keys: tuple[str, ...]) -> bool:
    """Whether the request carries one of ``keys`` (Authorization: Bearer, or X-API-Key)."""
    sent = headers.get("x-api-key", "")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        sent = token.strip()
    return bool(sent) and any(hmac.compare_digest(sent.encode(), key.encode()) for key in keys)


class ApiGuard:
    """ASGI middleware of the ``/v1`` app: API key (before the body is read), upload
    size limit (declared or streamed), and a JSON 500 instead of a traceback."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = _current_settings()
        headers = Headers(scope=scope)
        if settings.api_keys and not key_accepted(headers, settings.api_keys):
            message = "A valid API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'."
            await error_response(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        limit = settings.max_upload_bytes
        too_large = error_response(
            413,
            "upload_too_large",
            f"The upload is larger than the limit of {settings.max_upload_mb:g} MB; send a smaller file "
            "or raise the limit (odontoscan serve --max-upload-mb, ODONTOSCAN_MAX_UPLOAD_MB).",
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        state = {"received": 0, "rejected": False, "started": False}

        async def limited_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request" and not state["rejected"]:
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["rejected"] = True
                    if not state["started"]:
                        state["started"] = True
                        await too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if state["rejected"]:
                return  # the 413 has been sent; the app's late answer is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception as exc:  # noqa: BLE001 - a bad request must never take the service down
            if state["rejected"]:
                return
            log_unexpected(f"{scope.get('method')} {scope.get('path')}", exc)
            if not state["started"]:
                message = "The server failed unexpectedly; the server log has the details. Try again or report the problem."
                await error_response(500, "internal_error", message)(scope, receive, send)


_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


async def _odontoscan_error(_: Any, exc: OdontoscanError) -> JSONResponse:
    return error_response(exc.http_status, exc.code, exc.message)


async def _validation_error(_: Any, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid_request", f"Invalid request: {describe_validation(list(exc.errors()))}.")


async def _http_error(_: Any, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "The request was refused."
    return error_response(exc.status_code, _STATUS_CODES.get(exc.status_code, "http_error"), message, exc.headers)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


async def _json_body(request: Request) -> Any:
    """The request's JSON body; a 422 when it is not JSON."""
    try:
        return await request.json()
    except ValueError:
        raise ApiError(422, "invalid_request", "The request body is not valid JSON.") from None


def _validated(model: type[BaseModel], data: Any) -> Any:
    """``data`` as ``model``; a validation error answers 422 like FastAPI's own."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


api = FastAPI(
    title="odontoscan API",
    version=odontoscan_version(),
    description="Dental CBCT and radiograph analysis: findings, overlays, reports and draft treatment plans.",
)
api.add_middleware(ApiGuard)
api.add_exception_handler(OdontoscanError, _odontoscan_error)
api.add_exception_handler(RequestValidationError, _validation_error)
api.add_exception_handler(StarletteHTTPException, _http_error)

UploadForm = Annotated[AnalyzeForm, Form(media_type="multipart/form-data")]


@lru_cache(maxsize=1)
def _metrics() -> dict[str, Any]:
    """Prometheus metrics of this process, created on first use (after BentoML has set
    up multiprocess collection)."""
    import prometheus_client

    return {
        "analyses": prometheus_client.Counter(
            "odontoscan_analyses", "Analyses by path (sync, job) and outcome (ok or error code)", ["path", "outcome"]
        ),
        "seconds": prometheus_client.Histogram(
            "odontoscan_analysis_seconds", "Seconds from upload stored to outputs written", ["kind"],
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
        ),
    }


@dataclass
class _Waiting:
    """A radiograph waiting for the batch API, and what became of it."""

    scan: Scan
    result: AnalysisResult | None = None
    error: BaseException | None = None


# --- the service ---------------------------------------------------------------------


@bentoml.service(
    workers=_env_number("ODONTOSCAN_WORKERS", 1),
    traffic={"timeout": _env_number("ODONTOSCAN_REQUEST_TIMEOUT_S", 600)},
)
@bentoml.asgi_app(api, path="/v1")
class OdontoscanService:
    """odontoscan inference API: findings, overlays and reports for dental CBCT scans and
    radiographs, draft treatment plans, and background jobs for long analyses."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.store = Store(self.settings.data_dir)
        self.store.clean_stale()
        self.store.recover()
        s = self.settings
        self.analyzer = Analyzer(s.cbct_model, s.radiograph_model, threads=s.threads, tracking_uri=s.tracking_uri)
        for task in ("cbct", "radiograph"):  # load now: a bad model fails the start, not a request
            self.analyzer.model(task)
        self._locks = {True: threading.Lock(), False: threading.Lock()}  # by Scan.is_volume
        self._waiting: dict[str, _Waiting] = {}
        self.runner = JobRunner(self.store, self._run_job)
        self.runner.start()
        log.info(
            "odontoscan service ready: models %s, %s; %d ONNX threads; batching %s",
            self.analyzer.model("cbct").metadata.model_key,
            self.analyzer.model("radiograph").metadata.model_key,
            s.threads,
            "on" if s.batching else "off",
        )

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.runner.stop()

    def __is_ready__(self) -> bool:
        return self.runner.alive

    # --- analysis -------------------------------------------------------------------

    def _load(self, upload: Path, options: AnalyzeOptions) -> Scan:
        return load_scan(
            upload,
            series_uid=options.series,
            modality=options.modality,
            pixel_spacing_mm=options.pixel_spacing,
            archive_limits=ArchiveLimits.from_env(),
        )

    def _analyze_now(self, scan: Scan, on_stage: Any = None) -> AnalysisResult:
        with self._locks[scan.is_volume]:
            return self.analyzer.analyze(scan, on_stage=on_stage)

    def _store_result(self, result: AnalysisResult, upload: Path, options: AnalyzeOptions) -> str:
        with self.store.new_result() as (result_id, staging):
            write_outputs(result, staging, source=upload, overlays=options.overlays, report=options.report, dicom=False)
        return result_id

    @bentoml.api(
        batchable=True,
        max_batch_size=MAX_BATCH_SIZE,
        max_latency_ms=MAX_BATCH_LATENCY_MS,
        route="/internal/radiograph-batch",
    )
    def radiograph_batch(self, tickets: list[str]) -> list[str]:
        """Internal, called by /v1/analyze: analyse the radiographs waiting under ``tickets``.

        BentoML's adaptive batching gathers the tickets of concurrent requests into one
        list (the images differ in size, so a batch is a list, not a stacked array).
        Tickets are random and live only inside this worker process: other callers get
        "unknown" back and nothing runs. A failing image fails only its own request.
        """
        log.debug("radiograph batch of %d", len(tickets))
        outcomes = []
        for ticket in tickets:
            waiting = self._waiting.get(ticket)
            if waiting is None:
                outcomes.append("unknown")
                continue
            try:
                waiting.result = self.analyzer.analyze(waiting.scan)
            except Exception as exc:  # noqa: BLE001 - handed back to the request that sent the image
                waiting.error = exc
            outcomes.append("done")
        return outcomes

    async def _analyze_batched(self, scan: Scan) -> AnalysisResult:
        ticket = new_id()
        waiting = self._waiting[ticket] = _Waiting(scan)
        try:
            client = getattr(self, "to_async", None)  # BentoML's in-process client of this service
            if client is None:
                await anyio.to_thread.run_sync(self.radiograph_batch.local, [ticket])
            else:
                await client.radiograph_batch([ticket])
        except ServiceUnavailable:
            raise ApiError(503, "busy", "The service is busy; retry in a few seconds.") from None
        finally:
            self._waiting.pop(ticket, None)
        if waiting.error is not None:
            raise waiting.error
        if waiting.result is None:
            raise RuntimeError("the batch API returned without analysing the radiograph")
        return waiting.result

    async def _analyze_upload(self, upload: Path, options: AnalyzeOptions) -> AnalysisResponse:
        started = time.perf_counter()
        outcome = "internal_error"
        try:
            scan = await anyio.to_thread.run_sync(self._load, upload, options)
            load_s = time.perf_counter() - started
            if scan.is_volume or not self.settings.batching:
                result = await anyio.to_thread.run_sync(self._analyze_now, scan)
            else:
                result = await self._analyze_batched(scan)
            result.record("load", load_s)
            result_id = await anyio.to_thread.run_sync(self._store_result, result, upload, options)
            outcome = "ok"
            _metrics()["seconds"].labels("volume" if scan.is_volume else "radiograph").observe(time.perf_counter() - started)
        except OdontoscanError as exc:
            outcome = exc.code
            raise
        finally:
            _metrics()["analyses"].labels("sync", outcome).inc()
        return AnalysisResponse(result_id=result_id, findings=result.findings, links=self._links(result_id))

    def _retrieve(self, request: PacsJobRequest, folder: Path) -> None:
        """Retrieve the study's image series (of ``request.modality`` when given) from the
        service's PACS into ``folder`` (emptied first). Raises PacsError."""
        if self.settings.pacs is None:  # configured at submit time, but not in this worker
            raise ConfigError(f"This service has no PACS ({ENV_URL} or {ENV_PACS_CONFIG}); submit the scan as an upload.")
        shutil.rmtree(folder, ignore_errors=True)
        modality = request.modality.value if request.modality else None
        with DicomWebClient(self.settings.pacs) as client:
            series = client.image_series(request.pacs_study_uid, modality)
            client.retrieve(request.pacs_study_uid, folder, series_uid=series.series_uid, expected=series.instances)

    def _run_job(self, job: Job, progress: Any) -> str:
        """Run one job (in the job thread): the stored upload to a stored result."""
        started = time.perf_counter()
        from_pacs = job.upload == PACS_UPLOAD
        options = (PacsJobRequest if from_pacs else AnalyzeOptions).model_validate_json(job.options)
        upload = self.store.job_dir(job.id) / job.upload
        outcome = "internal_error"
        try:
            if from_pacs:
                progress("retrieving", STAGE_FRACTIONS["retrieving"])
                self._retrieve(options, upload)
            elif not upload.is_file():
                raise ScanReadError("The job's uploaded scan is missing from the data directory; submit the scan again.")
            progress("loading", STAGE_FRACTIONS["loading"])
            scan = self._load(upload, options)
            load_s = time.perf_counter() - started
            result = self.analyzer.analyze(scan, on_stage=lambda stage: progress(stage, STAGE_FRACTIONS.get(stage, 0.1)))
            result.record("load", load_s)
            progress("outputs", STAGE_FRACTIONS["outputs"])
            result_id = self._store_result(result, upload, options)
            outcome = "ok"
            _metrics()["seconds"].labels("volume" if scan.is_volume else "radiograph").observe(time.perf_counter() - started)
            return result_id
        except OdontoscanError as exc:
            outcome = exc.code
            raise
        finally:
            _metrics()["analyses"].labels("job", outcome).inc()

    # --- answers --------------------------------------------------------------------

    def _result_folder(self, result_id: str) -> Path:
        folder = self.store.result_dir(result_id)
        if folder is None:
            raise ApiError(404, "not_found", f"There is no result '{result_id[:40]}'; check the id (results are kept until deleted).")
        return folder

    def _links(self, result_id: str) -> Links:
        folder = self.store.results / result_id
        base = f"/v1/results/{result_id}"
        overlays = sorted(p.relative_to(folder).as_posix() for p in (folder / OVERLAYS_DIR).glob("*.png"))
        return Links(
            result=base,
            findings=f"{base}/{FINDINGS_FILE}",
            labels=f"{base}/{LABELS_FILE}" if (folder / LABELS_FILE).is_file() else None,
            report=f"{base}/{REPORT_FILE}" if (folder / REPORT_FILE).is_file() else None,
            overlays=[f"{base}/{name}" for name in overlays],
        )

    def _stored_findings(self, result_id: str) -> Findings:
        return Findings.model_validate_json((self._result_folder(result_id) / FINDINGS_FILE).read_bytes())

    def _job_status(self, job: Job) -> JobStatus:
        done = job.status is JobState.DONE and job.result_id and self.store.result_dir(job.result_id)
        return JobStatus(
            job_id=job.id,
            status=job.status,
            progress=Progress(stage=job.stage, fraction=job.fraction),
            error=ErrorInfo(code=job.error_code, message=job.error_message or "") if job.error_code else None,
            result_id=job.result_id,
            links=self._links(job.result_id) if done else None,
            created_at=datetime.fromtimestamp(job.created, timezone.utc),
            updated_at=datetime.fromtimestamp(job.updated, timezone.utc),
        )

    # --- endpoints ------------------------------------------------------------------

    @api.post("/analyze", response_model=AnalysisResponse, responses=_errors(400, 401, 413, 415, 422, 503))
    async def analyze(self, form: UploadForm) -> AnalysisResponse:
        """Analyse one scan now and store its outputs; answers the findings and the links to the files."""
        options = form.options()
        with tempfile.TemporaryDirectory(dir=self.store.tmp, prefix="request-") as tmp:
            upload = await save_upload(form, Path(tmp))
            return await self._analyze_upload(upload, options)

    @api.post(
        "/jobs",
        status_code=202,
        response_model=JobAccepted,
        responses=_errors(401, 413, 415, 422),
        openapi_extra={"requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"$ref": "#/components/schemas/AnalyzeForm"}},
            "application/json": {"schema": PacsJobRequest.model_json_schema(ref_template="#/components/schemas/{model}")},
        }}},
    )
    async def submit_job(self, request: Request) -> JSONResponse:
        """Queue one scan for analysis in the background (for long CBCT work); poll GET /v1/jobs/{job_id}.

        The scan is a multipart upload (as for /v1/analyze) or, with a JSON body
        ``{"pacs_study_uid": ...}``, a study the job retrieves from the service's PACS."""
        job_id = new_id()
        folder = self.store.job_dir(job_id)
        if request.headers.get("content-type", "").lower().startswith("application/json"):
            body = _validated(PacsJobRequest, await _json_body(request))
            if self.settings.pacs is None:
                raise ApiError(
                    422, "pacs_not_configured",
                    f"This service has no PACS: set {ENV_URL} (and its credentials) or {ENV_PACS_CONFIG} "
                    "to analyse studies by pacs_study_uid, or upload the scan as multipart 'file'.",
                )
            await anyio.to_thread.run_sync(self.store.add_job, job_id, PACS_UPLOAD, body.model_dump_json())
        else:
            form = await request.form()
            try:
                fields = {k: v for k, v in form.multi_items() if v != ""}
                upload_form = _validated(AnalyzeForm, fields)
                options = upload_form.options()
                upload = await save_upload(upload_form, folder)
                await anyio.to_thread.run_sync(self.store.add_job, job_id, upload.name, options.model_dump_json())
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            finally:
                await form.close()
        self.runner.wake()
        status_url = f"/v1/jobs/{job_id}"
        accepted = JobAccepted(job_id=job_id, status=JobState.QUEUED, links={"status": status_url})
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202, headers={"Location": status_url})

    @api.get("/jobs/{job_id}", response_model=JobStatus, responses=_errors(401, 404))
    async def job_status(self, job_id: str) -> JobStatus:
        """Status, progress, error or result links of a job."""
        job = await anyio.to_thread.run_sync(self.store.get_job, job_id)
        if job is None:
            raise ApiError(404, "not_found", f"There is no job '{job_id[:40]}'; check the id.")
        return self._job_status(job)

    @api.get("/results/{result_id}", response_model=AnalysisResponse, responses=_errors(401, 404))
    async def get_result(self, result_id: str) -> AnalysisResponse:
        """The findings and file links of a stored result."""
        findings = await anyio.to_thread.run_sync(self._stored_findings, result_id)
        return AnalysisResponse(result_id=result_id, findings=findings, links=self._links(result_id))

    @api.get("/results/{result_id}/{path:path}", response_class=FileResponse, responses=_errors(400, 401, 404))
    async def result_file(self, result_id: str, path: str) -> FileResponse:
        """One stored file of a result: findings.json, labels.nii.gz, report.html, overlays/NAME.png."""
        folder = self._result_folder(result_id)
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or "\\" in path or any(p in (".", "..") or p.startswith(".") for p in parts):
            raise ApiError(400, "invalid_path", "File paths are relative to the result, e.g. report.html or overlays/pano.png.")
        target = folder.joinpath(*parts)
        if not target.resolve().is_relative_to(folder.resolve()) or not target.is_file():
            raise ApiError(404, "not_found", f"Result '{result_id}' has no file '{path[:100]}'; see its links.")
        return FileResponse(target)

    @api.delete("/results/{result_id}", status_code=204, responses=_errors(401, 404))
    async def delete_result(self, result_id: str) -> Response:
        """Delete a stored result and all its files."""
        if not await anyio.to_thread.run_sync(self.store.delete_result, result_id):
            raise ApiError(404, "not_found", f"There is no result '{result_id[:40]}'; check the id.")
        return Response(status_code=204)

    @api.post(
        "/plan",
        responses={200: {"description": "The draft treatment plan (odontoscan.planning.TreatmentPlan)."}, **_errors(401, 404, 422, 501)},
    )
    async def plan(self, body: PlanRequest) -> JSONResponse:
        """Draft a treatment plan from findings (inline or a stored result's) and the patient context."""
        try:
            from odontoscan.planning import PatientContext, draft_plan
        except ImportError:
            raise ApiError(
                501, "planning_unavailable", "Draft plans are not available: this installation has no odontoscan.planning."
            ) from None
        findings = body.findings or await anyio.to_thread.run_sync(self._stored_findings, body.result_id)
        try:
            context = PatientContext.model_validate(body.context) if body.context is not None else None
        except ValidationError as exc:
            raise ApiError(422, "invalid_context", f"Invalid patient context: {describe_validation(exc.errors(), skip=())}.") from None
        drafted = await anyio.to_thread.run_sync(lambda: draft_plan(findings, context))
        return JSONResponse(drafted.model_dump(mode="json"))

    @api.get("/models", response_model=ModelsResponse, responses=_errors(401))
    async def models(self) -> ModelsResponse:
        """The loaded models (name, version, sha256, label map) and the shipped ones."""
        entries = []
        for task in ("cbct", "radiograph"):
            m = self.analyzer.model(task).metadata
            labels = {k: m.label_names[k] for k in m.output_classes}
            entries.append(
                ModelEntry(
                    task=task, name=m.name, version=m.version, sha256=m.sha256, precision=m.precision, modalities=m.modalities,
                    spatial_dims=m.spatial_dims, labels=labels, training_data=m.training_data, metrics=m.metrics,
                )
            )
        return ModelsResponse(service_version=odontoscan_version(), models=entries, shipped=sorted(available_models()))


@api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def _unknown(request: Request) -> None:
    """Any other path under /v1: a JSON 404 (405 when only the method is wrong), not
    BentoML's plain-text one. Registered after the service's routes, so it comes last."""
    if any(route.matches(request.scope)[0] is Match.PARTIAL for route in api.routes if getattr(route, "endpoint", None) is not _unknown):
        raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}; see /docs.json.")
    raise ApiError(404, "not_found", f"There is no endpoint {request.url.path}; see /docs.json for the API.")


__all__ = ["OdontoscanService", "Settings", "api", "sniff_suffix", "save_upload", "default_data_dir"]
