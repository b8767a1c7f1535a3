"""odontoscan.planning: findings -> a draft treatment plan for a dentist to confirm.

The rules (``configs/plan_rules.yaml``) and fee schedules (``configs/fees/``) are
data, not code. :func:`draft_plan` turns a :class:`~odontoscan.datasets.findings_schema.Findings`
document and an optional :class:`PatientContext` into a :class:`TreatmentPlan`;
:func:`render_plan_html` and :func:`write_plan` turn it into ``plan.html`` and
``plan.json``. Torch-free: this package is on the serving path.
"""

from odontoscan.planning.context import Insurance, MedicalFlag, PatientContext, Preferences, load_context
from odontoscan.planning.draft import draft_plan
from odontoscan.planning.fees import FeeSchedule, load_fees, packaged_fee_schedules
from odontoscan.planning.render import render_plan_html, render_plan_section, write_plan
from odontoscan.planning.rules import PlanRules, load_rules, parse_rules
from odontoscan.planning.schema import (
    Alternative,
    Category,
    Contingency,
    NoTreatment,
    PhaseName,
    PlanItem,
    PlanPhase,
    RiskLevel,
    Totals,
    TreatmentPlan,
)

__all__ = [
    "draft_plan",
    "render_plan_html",
    "render_plan_section",
    "write_plan",
    "PatientContext",
    "Insurance",
    "Preferences",
    "MedicalFlag",
    "load_context",
    "FeeSchedule",
    "load_fees",
    "packaged_fee_schedules",
    "PlanRules",
    "load_rules",
    "parse_rules",
    "TreatmentPlan",
    "PlanPhase",
    "PlanItem",
    "Alternative",
    "Contingency",
    "NoTreatment",
    "Totals",
    "PhaseName",
    "Category",
    "RiskLevel",
]
