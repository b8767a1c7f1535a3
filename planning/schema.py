"""The draft treatment plan: what :func:`draft_plan` returns and ``plan.json`` holds.

A plan is a list of phases in clinical order (urgent, disease control, restorative,
prosthetic, maintenance), each a list of items: one procedure (CDT-style code) on one
site (a tooth, a quadrant, an arch or the whole mouth). Every item cites the finding
ids that justify it and carries the patient texts. Money is a ``Decimal`` in the fee
schedule's currency, rounded to cents, and adds up exactly: item fee = insurance +
patient share, phase subtotals = the sums of their items, totals = the sums of the
phases (checked when a plan is built or parsed). In JSON, money is a number.

Durations are in weeks from the start of treatment. The plan holds no patient
identifiers: the scan is referenced by Study Instance UID only.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, computed_field, model_validator

PLAN_SCHEMA_VERSION = "1.0"

Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""An amount in the plan's currency, exact to the cent (a number in JSON)."""

CENT = Decimal("0.01")


class PhaseName(str, Enum):
    """Treatment phases, declared in clinical order."""

    URGENT = "urgent"
    DISEASE_CONTROL = "disease_control"
    RESTORATIVE = "restorative"
    PROSTHETIC = "prosthetic"
    MAINTENANCE = "maintenance"

    @property
    def order(self) -> int:
        """1 for urgent ... 5 for maintenance."""
        return list(PhaseName).index(self) + 1


class Category(str, Enum):
    """Insurance benefit category of a procedure (coverage is set per category or per code)."""

    DIAGNOSTIC = "diagnostic"
    PREVENTIVE = "preventive"
    BASIC = "basic"
    MAJOR = "major"


class RiskLevel(str, Enum):
    STANDARD = "standard"
    HIGH = "high"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Alternative(_Model):
    """Another way to treat the same problem: one option, possibly several procedures."""

    option: str  # the option's name in plan_rules.yaml, e.g. "bridge"
    label: str
    codes: list[str]  # in order, e.g. ["D6750", "D6240", "D6750"]
    fee: Money
    note: str = ""

    @model_validator(mode="before")
    @classmethod
    def _derived_code(cls, data: object) -> object:
        # ``code`` is computed from ``codes``; a parsed plan.json carries it too.
        if isinstance(data, dict) and "code" in data:
            data = dict(data)
            code = data.pop("code")
            if code != "+".join(data.get("codes", [])):
                raise ValueError("code must be the codes joined with '+'")
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def code(self) -> str:
        """The codes joined with '+', e.g. "D6750+D6240+D6750"."""
        return "+".join(self.codes)


class PlanItem(_Model):
    """One procedure on one site."""

    id: str
    phase: PhaseName
    code: str | None  # CDT-style code; None only for an uncoded "verify clinically" item
    description: str
    fdi: int | None = None  # the tooth, for tooth-level items
    teeth: list[int] = Field(default_factory=list)  # every tooth the item concerns
    quadrant: int | None = None  # 1-4, for quadrant-level items (root planing)
    category: Category
    fee: Money
    insurance_pays: Money
    patient_share: Money
    finding_ids: list[str] = Field(default_factory=list)
    explanation: str
    risks: list[str] = Field(default_factory=list)
    aftercare: list[str] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)  # item ids that must come first
    verify_clinically: bool = False
    risk_level: RiskLevel = RiskLevel.STANDARD
    warnings: list[str] = Field(default_factory=list)
    visits: int = Field(ge=0)
    healing_weeks: float = Field(ge=0)  # to wait after this item before its dependants
    start_week: float = Field(ge=0)  # weeks from the start of treatment

    @model_validator(mode="after")
    def _shares_add_up(self) -> PlanItem:
        if self.insurance_pays + self.patient_share != self.fee:
            raise ValueError(f"item {self.id}: insurance_pays + patient_share must equal fee")
        return self


class PlanPhase(_Model):
    """One phase with its items (in order of treatment) and its sums."""

    name: PhaseName
    order: int
    title: str
    purpose: str = ""
    items: list[PlanItem]
    subtotal: Money
    insurance_subtotal: Money
    patient_subtotal: Money
    visits: int
    weeks: float  # from the start of this phase to the end of its last appointment

    @model_validator(mode="after")
    def _sums(self) -> PlanPhase:
        if self.order != self.name.order:
            raise ValueError(f"phase {self.name.value} must have order {self.name.order}")
        if self.subtotal != sum((i.fee for i in self.items), Decimal(0)):
            raise ValueError(f"phase {self.name.value}: subtotal must be the sum of the item fees")
        if self.insurance_subtotal != sum((i.insurance_pays for i in self.items), Decimal(0)):
            raise ValueError(f"phase {self.name.value}: insurance_subtotal must be the sum of insurance_pays")
        if self.patient_subtotal != sum((i.patient_share for i in self.items), Decimal(0)):
            raise ValueError(f"phase {self.name.value}: patient_subtotal must be the sum of patient shares")
        return self


class Totals(_Model):
    fee: Money
    insurance: Money
    patient: Money


class Contingency(_Model):
    """What to do if planned treatment does not work out (e.g. a lesion does not heal)."""

    condition: str
    action: str
    item_ids: list[str] = Field(default_factory=list)  # the planned items it concerns
    finding_ids: list[str] = Field(default_factory=list)
    fdi: int | None = None
    alternatives: list[Alternative] = Field(default_factory=list)


class NoTreatment(_Model):
    """A finding no item treats, and why (existing work, monitoring, a referral note)."""

    finding_id: str
    kind: str
    fdi: int | None = None
    reason: str


class TreatmentPlan(_Model):
    """A draft treatment plan for one patient, for a dentist to confirm."""

    schema_version: str = PLAN_SCHEMA_VERSION
    status: Literal["draft"] = "draft"
    disclaimer: str
    currency: str
    fee_schedule: str  # the schedule's name
    rules_version: int
    study_instance_uid: str | None = None
    findings_model: str | None = None  # "name@version" of the model that produced the findings
    phases: list[PlanPhase]
    totals: Totals
    visits: int
    weeks: float  # from the first appointment until the last item has healed
    contingencies: list[Contingency] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    no_treatment: list[NoTreatment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> TreatmentPlan:
        orders = [p.order for p in self.phases]
        if orders != sorted(set(orders)):
            raise ValueError("phases must be in clinical order, each at most once")
        if self.totals.fee != sum((p.subtotal for p in self.phases), Decimal(0)):
            raise ValueError("totals.fee must be the sum of the phase subtotals")
        if self.totals.insurance != sum((p.insurance_subtotal for p in self.phases), Decimal(0)):
            raise ValueError("totals.insurance must be the sum of the phase insurance subtotals")
        if self.totals.patient != sum((p.patient_subtotal for p in self.phases), Decimal(0)):
            raise ValueError("totals.patient must be the sum of the phase patient subtotals")
        ids = [i.id for i in self.items()]
        if len(ids) != len(set(ids)):
            raise ValueError("item ids must be unique")
        unknown = {d for i in self.items() for d in i.depends_on} - set(ids)
        if unknown:
            raise ValueError(f"depends_on names unknown items: {sorted(unknown)}")
        return self

    def items(self) -> list[PlanItem]:
        """Every item, in treatment order."""
        return [item for phase in self.phases for item in phase.items]

    def item(self, item_id: str) -> PlanItem:
        return next(i for i in self.items() if i.id == item_id)


__all__ = [
    "PLAN_SCHEMA_VERSION",
    "CENT",
    "Money",
    "PhaseName",
    "Category",
    "RiskLevel",
    "Alternative",
    "PlanItem",
    "PlanPhase",
    "Totals",
    "Contingency",
    "NoTreatment",
    "TreatmentPlan",
]
