"""Patient context: what the plan needs to know about the patient beyond the scan.

Age, medical flags, preferences and insurance change the plan (no implants under the
minimum age or when the patient prefers to avoid them; warnings on surgery for
anticoagulants, bisphosphonates, diabetes, pregnancy...; insurance shares). There
are deliberately no fields for names, ids or dates of birth: unknown keys are
rejected, so a context file cannot carry patient identifiers into a plan.

Example ``ctx.yaml``::

    age: 54
    medical_flags: [anticoagulants, diabetes]
    preferences: {avoid_implants: true}
    insurance:
      coverage: {diagnostic: 100, preventive: 100, basic: 80, major: 50, D6010: 0}
      annual_maximum: 1500
      deductible: 50
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from odontoscan.planning.files import read_yaml_mapping, validate
from odontoscan.planning.schema import Category, Money

CODE_PATTERN = re.compile(r"^D\d{4}$")


class MedicalFlag(str, Enum):
    """Medical history that changes how treatment is planned (warnings per procedure tag)."""

    ANTICOAGULANTS = "anticoagulants"
    BISPHOSPHONATES = "bisphosphonates"
    DIABETES = "diabetes"
    PREGNANCY = "pregnancy"
    SMOKER = "smoker"
    HEAD_NECK_RADIOTHERAPY = "head_neck_radiotherapy"


class Insurance(BaseModel):
    """Dental insurance benefits.

    ``coverage`` maps an insurance category (diagnostic, preventive, basic, major) or a
    procedure code (e.g. ``D6010``) to the percentage the insurer pays; a code entry
    wins over its category, and anything not listed is covered at 0 %. The
    ``deductible`` is paid by the patient first, on procedures outside
    ``deductible_exempt``; ``annual_maximum`` caps what the insurer pays over the plan.
    """

    model_config = ConfigDict(extra="forbid")

    coverage: dict[str, float] = Field(default_factory=dict)
    annual_maximum: Money | None = Field(default=None, ge=0)
    deductible: Money = Field(default=Decimal(0), ge=0)
    deductible_exempt: list[Category] = Field(default_factory=lambda: [Category.DIAGNOSTIC, Category.PREVENTIVE])

    @field_validator("coverage")
    @classmethod
    def _coverage_keys(cls, value: dict[str, float]) -> dict[str, float]:
        categories = {c.value for c in Category}
        for key, percent in value.items():
            if key not in categories and not CODE_PATTERN.match(key):
                raise ValueError(
                    f"'{key}' is neither an insurance category ({', '.join(sorted(categories))}) "
                    "nor a procedure code like D2391"
                )
            if not 0 <= percent <= 100:
                raise ValueError(f"coverage of '{key}' must be a percentage from 0 to 100, got {percent}")
        return value

    def percent(self, code: str, category: Category) -> Decimal:
        """The percentage of ``code`` the insurer pays."""
        value = self.coverage.get(code, self.coverage.get(category.value, 0.0))
        return Decimal(str(value))


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    avoid_implants: bool = False  # plan a bridge or a partial denture instead


class PatientContext(BaseModel):
    """What the plan knows about the patient (no identifiers)."""

    model_config = ConfigDict(extra="forbid")

    age: int | None = Field(default=None, ge=0, le=120)
    medical_flags: list[MedicalFlag] = Field(default_factory=list)
    preferences: Preferences = Field(default_factory=Preferences)
    insurance: Insurance | None = None


def load_context(path: str | Path) -> PatientContext:
    """Read a patient-context YAML file; ConfigError names any unknown or bad key.

    Messages say "patient context file", not the file name, which may name the patient.
    """
    document = read_yaml_mapping(Path(path), "patient context", name="file")
    return validate(PatientContext, document, "patient context", "file")


__all__ = ["MedicalFlag", "Insurance", "Preferences", "PatientContext", "load_context"]
