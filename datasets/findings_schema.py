"""The ``findings.json`` schema: what every analysis (and every phantom's ground truth) says.

One pydantic model serves predictions and phantom ground truth alike, so
``odontoscan evaluate PRED GT`` compares like with like. It lives in ``datasets``
because the phantom lab writes it and ``models`` (which fills it from predictions)
sits above ``datasets`` in the dependency order.

Units are part of every measurement; positions (``location_mm``) are in the DICOM
patient frame (LPS, millimetres) for volumes, and (row, column) in mm - or pixels
when the spacing is unknown - for radiographs. Nothing here identifies a patient:
scans are referenced by Study/Series Instance UID only.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from odontoscan.datasets.labels import FDI_TEETH

SCHEMA_VERSION = "1.0"


class ToothStatus(str, Enum):
    PRESENT = "present"
    MISSING = "missing"
    IMPLANT = "implant"
    IMPACTED = "impacted"
    CROWN = "crown"
    BRIDGE_PONTIC = "bridge_pontic"


class FindingKind(str, Enum):
    CARIES = "caries"
    PERIAPICAL_LESION = "periapical_lesion"
    RESTORATION = "restoration"
    ROOT_CANAL_FILLING = "root_canal_filling"
    BONE_LOSS = "bone_loss"
    IMPACTED_TOOTH = "impacted_tooth"
    CANAL_PROXIMITY = "canal_proximity"  # lower root to inferior alveolar canal
    SINUS_PROXIMITY = "sinus_proximity"  # upper root to maxillary sinus floor
    EDENTULOUS_SITE = "edentulous_site"  # bone available at a missing tooth


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


class Unit(str, Enum):
    MM = "mm"
    MM2 = "mm2"  # areas on radiographs with known pixel spacing
    MM3 = "mm3"
    PX = "px"  # radiograph with unknown pixel spacing
    PX2 = "px2"
    DEGREE = "deg"
    RATIO = "ratio"


class Measurement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    unit: Unit


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlay: str | None = None  # path relative to the output folder, e.g. overlays/pano.png
    slice_index: int | None = None  # axial slice (canonical z index) for volumes


class ScanInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: str
    shape: list[int]
    spacing_mm: list[float]
    pixel_spacing_known: bool = True
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str
    version: str
    sha256: str


class Tooth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fdi: int
    status: ToothStatus
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("fdi")
    @classmethod
    def _valid_fdi(cls, v: int) -> int:
        if v not in FDI_TEETH:
            raise ValueError(f"fdi must be a permanent-tooth FDI number, got {v}")
        return v


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    kind: FindingKind
    fdi: int | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    severity: Severity
    grade: str | None = None  # e.g. caries depth: enamel, dentin, near_pulp
    location_mm: list[float] | None = None
    measurements: dict[str, Measurement] = Field(default_factory=dict)
    evidence: Evidence = Field(default_factory=Evidence)

    @field_validator("fdi")
    @classmethod
    def _valid_fdi(cls, v: int | None) -> int | None:
        if v is not None and v not in FDI_TEETH:
            raise ValueError(f"fdi must be a permanent-tooth FDI number or null, got {v}")
        return v


class Findings(BaseModel):
    """Everything one analysis found in one scan (the findings.json document)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: str = SCHEMA_VERSION
    scan: ScanInfo
    model: ModelInfo
    teeth: list[Tooth]
    findings: list[Finding] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _chart_complete(self) -> Findings:
        numbers = sorted(t.fdi for t in self.teeth)
        if numbers != sorted(FDI_TEETH):
            raise ValueError("teeth must list each of the 32 FDI positions 11-48 exactly once")
        ids = [f.id for f in self.findings]
        if len(ids) != len(set(ids)):
            raise ValueError("finding ids must be unique")
        return self

    def tooth(self, fdi: int) -> Tooth:
        return next(t for t in self.teeth if t.fdi == fdi)


def load_findings(path: str | Path) -> Findings:
    """Read a findings.json (or a phantom's ground_truth.json); a ConfigError saying what
    is wrong when the file cannot be read or is not a findings document."""
    from odontoscan.datasets.errors import ConfigError

    path = Path(path)
    try:
        return Findings.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"Findings file '{path}' cannot be read ({type(exc).__name__}); give the findings.json of an analysis.") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"'{path}' is not a valid findings.json ({exc.error_count()} problem(s), first at {where}: {first['msg']}); "
            "give the findings.json of an analysis."
        ) from None
