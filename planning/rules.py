"""The planning rules (``configs/plan_rules.yaml``): loading and validating them.

The YAML file, not code, says which procedures treat which findings: the procedure
catalog (code, insurance category, visits, healing weeks, patient texts), variants
(one step, a code per tooth type / arch / quadrant size), named options (ordered
steps), the cases per finding kind (first match wins), contingencies, medical-flag
warnings and every threshold. :func:`load_rules` checks the whole file, unknown keys
and broken cross-references included, and raises one :class:`ConfigError` listing
every problem with its key path.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.findings_schema import FindingKind, Severity, ToothStatus
from odontoscan.datasets.labels import ToothType
from odontoscan.planning.context import CODE_PATTERN, MedicalFlag
from odontoscan.planning.files import packaged, read_yaml_mapping, validate
from odontoscan.planning.schema import Category, PhaseName, RiskLevel

RULES_FILE = "plan_rules.yaml"

TEMPLATE_FIELDS = frozenset({
    "tooth", "fdi", "grade", "severity", "kind", "confidence", "distance_mm", "sinus_distance_mm",
    "diameter_mm", "bone_height_mm", "bone_width_mm", "cej_to_crest_mm", "quadrant", "teeth",
})


class Tag(str, Enum):
    """What kind of procedure it is: medical flags and dependencies refer to tags."""

    DIAGNOSTIC = "diagnostic"
    PREVENTIVE = "preventive"
    RESTORATIVE = "restorative"
    ENDODONTIC = "endodontic"
    PERIODONTAL_THERAPY = "periodontal_therapy"
    SURGICAL = "surgical"
    EXTRACTION = "extraction"
    IMPLANT = "implant"
    GRAFT = "graft"
    PROSTHETIC = "prosthetic"
    REMOVABLE = "removable"


class VariantBy(str, Enum):
    """What picks a variant's code, and the keys its ``codes`` must have."""

    TOOTH_TYPE = "tooth_type"
    ARCH = "arch"
    QUADRANT_SIZE = "quadrant_size"
    PERIODONTAL_THERAPY = "periodontal_therapy"

    @property
    def keys(self) -> frozenset[str]:
        return {
            VariantBy.TOOTH_TYPE: frozenset(t.value for t in ToothType),
            VariantBy.ARCH: frozenset({"upper", "lower"}),
            VariantBy.QUADRANT_SIZE: frozenset({"full", "partial"}),
            VariantBy.PERIODONTAL_THERAPY: frozenset({"none", "treated"}),
        }[self]


class Site(str, Enum):
    """Where a step's item goes."""

    TOOTH = "tooth"  # the finding's (or missing) tooth
    ABUTMENTS = "abutments"  # the teeth either side of a gap (bridge)
    PONTICS = "pontics"  # each missing tooth of a gap (bridge)
    ARCH = "arch"  # one item per arch (partial denture)
    QUADRANT = "quadrant"  # one item per quadrant (root planing)
    MOUTH = "mouth"  # one item for the whole mouth


class BoneState(str, Enum):
    SUFFICIENT = "sufficient"
    INSUFFICIENT = "insufficient"
    UNKNOWN = "unknown"  # not measured


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Strict):
    verify_below_confidence: float = Field(ge=0, le=1)
    implant_min_bone_height_mm: float = Field(gt=0)
    implant_min_bone_width_mm: float = Field(gt=0)
    canal_high_risk_below_mm: float = Field(gt=0)
    sinus_high_risk_below_mm: float = Field(gt=0)
    mild_bone_loss_below_mm: float = Field(gt=0)
    full_quadrant_min_teeth: int = Field(ge=1)
    max_bridge_span: int = Field(ge=1)
    minimum_implant_age: int = Field(ge=0)
    replace_third_molars: bool


class Scheduling(_Strict):
    visit_interval_weeks: float = Field(gt=0)


class PhaseText(_Strict):
    title: str
    purpose: str = ""


class Procedure(_Strict):
    description: str
    category: Category
    visits: int = Field(ge=0)
    healing_weeks: float = Field(ge=0)
    tags: list[Tag] = Field(default_factory=list)
    requires_healed: list[Tag] = Field(default_factory=list)  # wait for these on the same tooth
    explanation: str
    risks: list[str] = Field(default_factory=list)
    aftercare: list[str] = Field(default_factory=list)


class Variant(_Strict):
    by: VariantBy
    codes: dict[str, str]

    @model_validator(mode="after")
    def _keys(self) -> Variant:
        if set(self.codes) != self.by.keys:
            raise ValueError(f"codes of a '{self.by.value}' variant need exactly the keys {', '.join(sorted(self.by.keys))}")
        return self


class Step(_Strict):
    code: str  # a procedure code or a variant name
    phase: PhaseName
    site: Site = Site.TOOTH
    same_visit: bool = False  # done in the appointments of the step before
    tooth_types: list[ToothType] | None = None  # only on these tooth types


class Option(_Strict):
    label: str
    steps: list[Step] = Field(min_length=1)
    supersedes: list[str] = Field(default_factory=list)  # options it replaces on the same tooth


@dataclass(frozen=True)
class Facts:
    """What is known about one thing to treat, for matching :class:`When` conditions."""

    grade: str | None = None
    severity: Severity | None = None
    tooth_status: ToothStatus | None = None
    tooth_has: frozenset[FindingKind] = frozenset()
    third_molar: bool | None = None
    canal_high_risk: bool | None = None
    sinus_high_risk: bool | None = None
    mild_bone_loss: bool | None = None
    implants_allowed: bool | None = None
    bone: BoneState | None = None
    bridge_possible: bool | None = None
    upper_posterior: bool | None = None


class When(_Strict):
    """Conditions of a case; all given ones must hold (lists: any of the values)."""

    grade: list[str] | None = None
    severity: list[Severity] | None = None
    tooth_status: list[ToothStatus] | None = None
    tooth_has: list[FindingKind] | None = None  # all of these kinds on the same tooth
    third_molar: bool | None = None
    canal_high_risk: bool | None = None
    sinus_high_risk: bool | None = None
    mild_bone_loss: bool | None = None
    implants_allowed: bool | None = None
    bone: list[BoneState] | None = None
    bridge_possible: bool | None = None
    upper_posterior: bool | None = None

    def matches(self, facts: Facts) -> bool:
        for name in ("grade", "severity", "tooth_status", "bone"):
            wanted = getattr(self, name)
            if wanted is not None and getattr(facts, name) not in wanted:
                return False
        if self.tooth_has is not None and not set(self.tooth_has) <= facts.tooth_has:
            return False
        for name in ("third_molar", "canal_high_risk", "sinus_high_risk", "mild_bone_loss",
                     "implants_allowed", "bridge_possible", "upper_posterior"):
            wanted = getattr(self, name)
            if wanted is not None and getattr(facts, name) is not wanted:
                return False
        return True


class Case(_Strict):
    """One rule: when the conditions hold, plan ``option`` (or nothing, with ``no_action``)."""

    when: When = Field(default_factory=When)
    option: str | None
    alternatives: list[str] = Field(default_factory=list)
    contingencies: list[str] = Field(default_factory=list)
    reason: str = ""  # why, for the patient; first sentence of the explanation
    no_action: str | None = None
    risk_level: RiskLevel = RiskLevel.STANDARD
    note: str = ""  # appended to the first item's description
    risks: list[str] = Field(default_factory=list)  # added to the first item's risks

    @model_validator(mode="after")
    def _option_or_reason(self) -> Case:
        if self.option is None and not self.no_action:
            raise ValueError("a case with 'option: null' needs a 'no_action' text")
        if self.option is not None and not self.reason:
            raise ValueError("a case with an option needs a 'reason' text")
        return self


class KindRules(_Strict):
    urgent_severities: list[Severity] = Field(default_factory=list)  # first step goes to "urgent"
    cases: list[Case] = Field(default_factory=list)
    no_action: str | None = None  # when no case applies (or there are none)

    @model_validator(mode="after")
    def _something(self) -> KindRules:
        if not self.cases and not self.no_action:
            raise ValueError("give 'cases' or a 'no_action' text")
        return self


class ContingencyRule(_Strict):
    condition: str
    action: str
    options: list[str] = Field(default_factory=list)


class FlagRule(_Strict):
    applies_to: list[Tag]
    warning: str
    plan_warning: str | None = None


class VerifyRule(_Strict):
    code: str | None  # e.g. D0140 limited evaluation; null for an uncoded item
    phase: PhaseName
    explanation: str


class RecallRule(_Strict):
    option: str
    reason: str


class Notes(_Strict):
    """Warnings for the dentist that the drafting adds to the plan or to items."""

    implants_not_for_age: str
    implants_avoided: str
    bone_not_measured: str  # on an implant item; may use {tooth}
    verification_pending: str
    benefit_years: str


class PlanRules(_Strict):
    """The whole rules file. ``source`` names it in error messages."""

    version: int
    disclaimer: str
    thresholds: Thresholds
    scheduling: Scheduling
    phases: dict[PhaseName, PhaseText]
    procedures: dict[str, Procedure]
    variants: dict[str, Variant] = Field(default_factory=dict)
    options: dict[str, Option]
    findings: dict[FindingKind, KindRules]
    missing_tooth: list[Case]
    contingencies: dict[str, ContingencyRule] = Field(default_factory=dict)
    medical_flags: dict[MedicalFlag, FlagRule]
    verify: VerifyRule
    recall: RecallRule
    notes: Notes
    source: str = Field(default="<rules>", exclude=True)

    def codes(self) -> set[str]:
        """Every procedure code the rules can plan."""
        return set(self.procedures)

    def step_codes(self, step: Step) -> set[str]:
        """The codes a step may resolve to."""
        variant = self.variants.get(step.code)
        return set(variant.codes.values()) if variant else {step.code}

    def option_has_tag(self, option: str, tag: Tag) -> bool:
        """Whether any procedure of ``option`` carries ``tag`` (e.g. implant)."""
        return any(tag in self.procedures[c].tags for s in self.options[option].steps for c in self.step_codes(s))


def _template_problems(text: str) -> list[str]:
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:
        return [f"bad braces ({exc})"]
    return [f"unknown placeholder {{{n}}} (allowed: {', '.join(sorted(TEMPLATE_FIELDS))})" for n in sorted(names - TEMPLATE_FIELDS)]


def _reference_problems(rules: PlanRules) -> list[str]:
    """Cross-references the field types cannot check, each as 'key.path: problem'."""
    problems: list[str] = []
    missing = [p.value for p in PhaseName if p not in rules.phases]
    if missing:
        problems.append(f"phases: missing {', '.join(missing)}")
    missing = [k.value for k in FindingKind if k not in rules.findings]
    if missing:
        problems.append(f"findings: missing rules for {', '.join(missing)}")
    missing = [f.value for f in MedicalFlag if f not in rules.medical_flags]
    if missing:
        problems.append(f"medical_flags: missing {', '.join(missing)}")
    for code in rules.procedures:
        if not CODE_PATTERN.match(code):
            problems.append(f"procedures.{code}: not a procedure code (a letter D and four digits, e.g. D2391)")
    for name, variant in rules.variants.items():
        if CODE_PATTERN.match(name):
            problems.append(f"variants.{name}: a variant name must not look like a procedure code")
        for key, code in variant.codes.items():
            if code not in rules.procedures:
                problems.append(f"variants.{name}.codes.{key}: code {code} is not in 'procedures'")
    for name, option in rules.options.items():
        for i, step in enumerate(option.steps):
            if step.code not in rules.procedures and step.code not in rules.variants:
                problems.append(f"options.{name}.steps.{i}.code: {step.code} is neither a code in 'procedures' nor a variant")
            if i and step.phase.order < option.steps[i - 1].phase.order:
                problems.append(f"options.{name}.steps.{i}.phase: a later step cannot be in an earlier phase")
            if i and step.same_visit and step.phase is not option.steps[i - 1].phase:
                problems.append(f"options.{name}.steps.{i}.same_visit: a step done in the same visit must be in the same phase")
        if option.steps[0].same_visit:
            problems.append(f"options.{name}.steps.0.same_visit: the first step has no step before it")
        problems += [f"options.{name}.supersedes: unknown option '{s}'" for s in option.supersedes if s not in rules.options]

    def check_case(case: Case, where: str) -> None:
        for name in [case.option] if case.option else []:
            if name not in rules.options:
                problems.append(f"{where}.option: unknown option '{name}'")
        problems.extend(f"{where}.alternatives: unknown option '{a}'" for a in case.alternatives if a not in rules.options)
        problems.extend(f"{where}.contingencies: unknown contingency '{c}'" for c in case.contingencies if c not in rules.contingencies)
        for field in ("reason", "no_action", "note"):
            problems.extend(f"{where}.{field}: {p}" for p in _template_problems(getattr(case, field) or ""))
        for i, risk in enumerate(case.risks):
            problems.extend(f"{where}.risks.{i}: {p}" for p in _template_problems(risk))

    for kind, kind_rules in rules.findings.items():
        for i, case in enumerate(kind_rules.cases):
            check_case(case, f"findings.{kind.value}.cases.{i}")
        problems.extend(f"findings.{kind.value}.no_action: {p}" for p in _template_problems(kind_rules.no_action or ""))
    for i, case in enumerate(rules.missing_tooth):
        check_case(case, f"missing_tooth.{i}")
    for name, contingency in rules.contingencies.items():
        problems.extend(f"contingencies.{name}.options: unknown option '{o}'" for o in contingency.options if o not in rules.options)
        for field in ("condition", "action"):
            problems.extend(f"contingencies.{name}.{field}: {p}" for p in _template_problems(getattr(contingency, field)))
    for field, text in rules.notes:
        problems.extend(f"notes.{field}: {p}" for p in _template_problems(text))
    if rules.verify.code is not None and rules.verify.code not in rules.procedures:
        problems.append(f"verify.code: code {rules.verify.code} is not in 'procedures'")
    if rules.recall.option not in rules.options:
        problems.append(f"recall.option: unknown option '{rules.recall.option}'")
    return problems


def parse_rules(document: dict, source: str = "<dict>") -> PlanRules:
    """Validate a rules mapping (as read from YAML); ``source`` names it in errors."""
    rules = validate(PlanRules, document, "plan rules", f"'{source}'")
    problems = _reference_problems(rules)
    if problems:
        raise ConfigError(f"Invalid plan rules '{source}':\n  " + "\n  ".join(problems))
    return rules.model_copy(update={"source": source})


def load_rules(path: str | Path | None = None) -> PlanRules:
    """Read and validate plan rules; ``None`` loads the packaged ``plan_rules.yaml``."""
    source = packaged(RULES_FILE) if path is None else Path(path)
    document = read_yaml_mapping(source, "plan rules")
    return parse_rules(document, RULES_FILE if path is None else str(path))


__all__ = [
    "RULES_FILE",
    "TEMPLATE_FIELDS",
    "Tag",
    "VariantBy",
    "Site",
    "BoneState",
    "Facts",
    "When",
    "Case",
    "Option",
    "Step",
    "Procedure",
    "Notes",
    "PlanRules",
    "parse_rules",
    "load_rules",
]
