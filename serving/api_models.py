"""Request and response models of the inference API (the HTTP contract, published in OpenAPI).

Every error answer has the body ``{"error": {"code", "message"}}`` (:class:`ErrorBody`):
odontoscan errors keep their own ``code`` and ``http_status``, and :class:`ApiError`
covers what only HTTP can go wrong with (401, 404, 413, 501, 503).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, model_validator

from odontoscan.datasets.errors import OdontoscanError
from odontoscan.datasets.findings_schema import Findings
from odontoscan.datasets.scan import Modality
from odontoscan.serving.jobs import JobState


class ApiError(OdontoscanError):
    """An HTTP-level refusal: missing API key, unknown id, upload too large, busy..."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. unreadable_scan, upload_too_large.")
    message: str = Field(description="What was wrong and what to do; never contains patient data.")


class ErrorBody(BaseModel):
    error: ErrorInfo


class AnalyzeOptions(BaseModel):
    """Options of one analysis (form fields beside the uploaded file)."""

    model_config = ConfigDict(extra="forbid")

    modality: Modality | None = Field(None, description="Force the modality: CT for volumes; PX, DX, IO, CR for radiographs.")
    pixel_spacing: float | None = Field(None, gt=0, le=10, description="Pixel size in mm of a radiograph whose file does not state it.")
    series: str | None = Field(None, pattern=r"^[0-9.]{1,64}$", description="Series Instance UID to read when the upload holds several.")
    overlays: bool = Field(True, description="Render overlay PNGs.")
    report: bool = Field(True, description="Write report.html.")


class AnalyzeForm(AnalyzeOptions):
    """The multipart form of ``/v1/analyze`` and ``/v1/jobs``: the scan and its options."""

    file: UploadFile = Field(
        description="The scan: DICOM zip or file, NIfTI (.nii/.nii.gz), MHA, NRRD, PNG, JPEG or TIFF. Its name is not used."
    )

    def options(self) -> AnalyzeOptions:
        return AnalyzeOptions.model_validate(self.model_dump(exclude={"file"}))


class PacsJobRequest(AnalyzeOptions):
    """The JSON body of ``/v1/jobs`` for a study in the service's PACS (instead of an upload):
    its Study Instance UID and the usual options. ``modality`` also picks the series
    (default: the image series with the most instances)."""

    pacs_study_uid: str = Field(pattern=r"^[0-9.]{1,64}$", description="Study Instance UID of the study in the configured PACS.")


class Links(BaseModel):
    """Where the stored files of a result are served (paths on this server)."""

    result: str
    findings: str
    labels: str | None = Field(description="Label map (NIfTI, in the source geometry).")
    report: str | None
    overlays: list[str]


class AnalysisResponse(BaseModel):
    result_id: str
    findings: Findings
    links: Links


class Progress(BaseModel):
    stage: str = Field(description="queued, starting, retrieving (PACS jobs), loading, inference, findings, outputs, done or failed.")
    fraction: float = Field(ge=0, le=1, description="Share of the work done when the stage started (a rough guide, not a time estimate).")


class JobAccepted(BaseModel):
    job_id: str
    status: JobState
    links: dict[str, str] = Field(description='{"status": "/v1/jobs/{job_id}"}')


class JobStatus(BaseModel):
    job_id: str
    status: JobState
    progress: Progress
    error: ErrorInfo | None = None
    result_id: str | None = None
    links: Links | None = Field(None, description="The result's files, once the job is done.")
    created_at: datetime
    updated_at: datetime


class ModelEntry(BaseModel):
    """One loaded model, from its model.json."""

    model_config = ConfigDict(protected_namespaces=())

    task: str
    name: str
    version: str
    sha256: str | None
    precision: str
    modalities: list[str]
    spatial_dims: int
    labels: dict[int, str] = Field(description="Label id (DESIGN.md label space) -> name, for every id the label map may hold.")
    training_data: str
    metrics: dict[str, float]


class ModelsResponse(BaseModel):
    service_version: str
    models: list[ModelEntry]
    shipped: list[str] = Field(description="Names of the models shipped with this installation.")


class PlanRequest(BaseModel):
    """Findings to plan from (inline, or a stored result's) and the patient context."""

    model_config = ConfigDict(extra="forbid")

    findings: Findings | None = Field(None, description="A findings.json document.")
    result_id: str | None = Field(None, description="Plan from the findings of this stored result instead.")
    context: dict[str, Any] | None = Field(
        None, description="Patient context: age, medical_flags, preferences, insurance (odontoscan.planning.PatientContext)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> PlanRequest:
        if (self.findings is None) == (self.result_id is None):
            raise ValueError("give exactly one of findings and result_id")
        return self


def describe_validation(errors: list[dict[str, Any]], skip: tuple[str, ...] = ("body",)) -> str:
    """One line naming each invalid field and why, without the values sent (they may be personal)."""
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in skip) or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


__all__ = [
    "ApiError",
    "ErrorInfo",
    "ErrorBody",
    "AnalyzeOptions",
    "AnalyzeForm",
    "PacsJobRequest",
    "Links",
    "AnalysisResponse",
    "Progress",
    "JobAccepted",
    "JobStatus",
    "ModelEntry",
    "ModelsResponse",
    "PlanRequest",
    "describe_validation",
]
