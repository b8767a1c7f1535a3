"""Drafting a treatment plan from findings: :func:`draft_plan`.

The steps, all driven by ``plan_rules.yaml``:

1. Findings (and charted teeth) below the confidence threshold are not treated: they
   go into one "verify clinically" item, with what would be done if confirmed.
2. Every other finding of a kind with cases, every impacted tooth and every missing
   tooth to replace becomes a *subject*; the first case whose conditions hold picks
   its option (or no action). Patient context enters here (implants allowed or not).
3. On one tooth, an option that supersedes another takes over its findings (a root
   canal and crown replaces a filling); equal options merge.
4. Options expand into items: one per step and site, each step waiting for the one
   before it; items on the same code and site merge. Procedures that need an earlier
   extraction or graft to heal (``requires_healed``) wait for it on the same tooth.
5. The recall (maintenance) option is added, items are scheduled and ordered, priced
   (insurance, deductible, annual maximum) and grouped into phases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from odontoscan.datasets.findings_schema import FindingKind, Findings, ToothStatus
from odontoscan.datasets.labels import is_upper, tooth_type
from odontoscan.planning.context import PatientContext
from odontoscan.planning.costs import share_costs
from odontoscan.planning.fees import FeeSchedule, load_fees, require_fees
from odontoscan.planning.rules import (
    BoneState,
    Case,
    Facts,
    PlanRules,
    Site,
    Step,
    Tag,
    VariantBy,
    load_rules,
)
from odontoscan.planning.schedule import Job, schedule
from odontoscan.planning.subjects import MISSING_TOOTH, Chart, Subject, words
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

Key = tuple  # (code, site), site = ("tooth", fdi) | ("arch", "upper") | ("quadrant", q) | ("mouth",)


def draft_plan(
    findings: Findings,
    context: PatientContext | None = None,
    *,
    rules: PlanRules | str | Path | None = None,
    fees: FeeSchedule | str | Path | None = None,
) -> TreatmentPlan:
    """Draft a treatment plan (a draft for a dentist to confirm) from ``findings``.

    ``rules`` and ``fees`` are loaded objects, files, or None for the packaged
    ``plan_rules.yaml`` and the default fee schedule (a shipped schedule may also be
    named, e.g. ``"example_eur"``). Raises ConfigError for invalid rules, a fee
    schedule that misses a code the rules use, or an unknown schedule.
    """
    rules = rules if isinstance(rules, PlanRules) else load_rules(rules)
    fees = fees if isinstance(fees, FeeSchedule) else load_fees(fees)
    require_fees(fees, rules)
    return _Drafter(findings, context or PatientContext(), rules, fees).plan()


@dataclass
class _Choice:
    """The option a case picked for a subject (findings merge in when options coincide)."""

    subject: Subject
    case: Case
    option: str
    finding_ids: list[str]
    reasons: list[str]
    urgent: bool
    keys: list[Key] = field(default_factory=list)


@dataclass
class _Unit:
    """A step resolved to one code on one site."""

    code: str
    step_index: int
    step: Step
    site: tuple
    fdi: int | None
    teeth: tuple[int, ...]
    quadrant: int | None


@dataclass
class _Draft:
    """An item being built; becomes a PlanItem once scheduled and priced."""

    key: Key
    code: str | None
    phase: PhaseName
    fdi: int | None
    teeth: list[int]
    quadrant: int | None
    seq: int
    finding_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    note: str = ""
    extra_risks: list[str] = field(default_factory=list)
    risk_level: RiskLevel = RiskLevel.STANDARD
    alternatives: list[Alternative] = field(default_factory=list)
    deps: set = field(default_factory=set)
    leader: Key | None = None
    verify: bool = False
    warnings: list[str] = field(default_factory=list)
    explanation: str | None = None  # replaces reasons + procedure text (verify item)


def _add_unique(target: list, values) -> None:
    for value in values:
        if value not in target:
            target.append(value)


class _Drafter:
    """One drafting run (see the module docstring for the steps)."""

    def __init__(self, findings: Findings, context: PatientContext, rules: PlanRules, fees: FeeSchedule) -> None:
        self.findings, self.context, self.rules, self.fees = findings, context, rules, fees
        age = context.age
        self.too_young = age is not None and age < rules.thresholds.minimum_implant_age
        self.implants_allowed = not (self.too_young or context.preferences.avoid_implants)
        self.chart = Chart(findings, rules, self.implants_allowed)
        self.drafts: dict[Key, _Draft] = {}
        self.choices: list[_Choice] = []
        self.no_action: dict[str, str] = {}  # finding id -> reason
        self.warnings: list[str] = []
        self.quadrant_teeth: dict[int, set[int]] = {}
        self.perio_planned = False

    # --- choosing options -----------------------------------------------------------

    def _cases(self, subject: Subject) -> list[Case]:
        if subject.kind == MISSING_TOOTH:
            return self.rules.missing_tooth
        return self.rules.findings[FindingKind(subject.kind)].cases

    def _match(self, subject: Subject) -> Case | None:
        return next((case for case in self._cases(subject) if case.when.matches(subject.facts)), None)

    def _no_action_text(self, subject: Subject, case: Case | None) -> str:
        if case is not None and case.no_action:
            return case.no_action.format_map(subject.values)
        if subject.kind != MISSING_TOOTH and self.rules.findings[FindingKind(subject.kind)].no_action:
            return self.rules.findings[FindingKind(subject.kind)].no_action.format_map(subject.values)
        return "No planning rule applies; review clinically."

    def _choose(self, subject: Subject) -> None:
        case = self._match(subject)
        if case is None or case.option is None:
            for finding_id in subject.finding_ids:
                self.no_action[finding_id] = self._no_action_text(subject, case)
            return
        ids = list(subject.finding_ids)
        for fact, finding_id in subject.modifiers.items():
            if getattr(case.when, fact) is True:  # the case relies on this finding: cite it
                _add_unique(ids, [finding_id])
        for kind in case.when.tooth_has or []:  # so do findings the case requires on the tooth
            _add_unique(ids, [f.id for f in self.chart.tooth_findings(subject.fdi, kind)])
        urgent = subject.kind != MISSING_TOOTH and subject.severity in self.rules.findings[FindingKind(subject.kind)].urgent_severities
        self.choices.append(_Choice(subject, case, case.option, ids, [case.reason.format_map(subject.values)], urgent))

    def _resolve_same_tooth(self) -> None:
        """Superseded options hand their findings to the option that replaces them; equal options merge."""
        kept: list[_Choice] = []
        for choice in self.choices:
            absorbed = False
            for other in list(kept):
                if choice.subject.fdi is None or other.subject.fdi != choice.subject.fdi:
                    continue
                if other.option == choice.option or choice.option in self.rules.options[other.option].supersedes:
                    winner, loser, absorbed = other, choice, True
                elif other.option in self.rules.options[choice.option].supersedes:
                    winner, loser = choice, other
                    kept.remove(other)
                else:
                    continue
                _add_unique(winner.finding_ids, loser.finding_ids)
                _add_unique(winner.reasons, loser.reasons)
                winner.urgent = winner.urgent or loser.urgent
                if absorbed:
                    break
            if not absorbed:
                kept.append(choice)
        self.choices = kept

    # --- options to units -------------------------------------------------------------

    def _sites(self, subject: Subject, site: Site) -> list[tuple] | None:
        """(site key, fdi, teeth, quadrant) for each item a step makes; None if impossible here."""
        fdi = subject.fdi
        if fdi is None and site is not Site.MOUTH:
            return None
        if site is Site.TOOTH:
            return [(("tooth", fdi), fdi, (fdi,), None)]
        if site in (Site.ABUTMENTS, Site.PONTICS):
            gap = subject.gap or (fdi,)
            abutments = self.chart.abutments(gap)
            if abutments is None or len(gap) > self.rules.thresholds.max_bridge_span:
                return None
            teeth = abutments if site is Site.ABUTMENTS else gap
            return [(("tooth", t), t, (t,), None) for t in teeth]
        if site is Site.ARCH:
            name = "upper" if is_upper(fdi) else "lower"
            return [(("arch", name), None, subject.gap or (fdi,), None)]
        if site is Site.QUADRANT:
            return [(("quadrant", fdi // 10), None, (fdi,), fdi // 10)]
        return [(("mouth",), None, (), None)]

    def _code(self, reference: str, fdi: int | None, quadrant: int | None) -> str:
        variant = self.rules.variants.get(reference)
        if variant is None:
            return reference
        if variant.by is VariantBy.TOOTH_TYPE:
            key = tooth_type(fdi).value
        elif variant.by is VariantBy.ARCH:
            key = "upper" if is_upper(fdi) else "lower"
        elif variant.by is VariantBy.QUADRANT_SIZE:
            teeth = self.quadrant_teeth.get(quadrant, set())
            key = "full" if len(teeth) >= self.rules.thresholds.full_quadrant_min_teeth else "partial"
        else:
            key = "treated" if self.perio_planned else "none"
        return variant.codes[key]

    def _units(self, subject: Subject, option: str) -> list[_Unit] | None:
        units = []
        for index, step in enumerate(self.rules.options[option].steps):
            sites = self._sites(subject, step.site)
            if sites is None:
                return None
            for site, fdi, teeth, quadrant in sites:
                tooth = fdi if fdi is not None else subject.fdi
                if step.tooth_types is not None and (tooth is None or tooth_type(tooth) not in step.tooth_types):
                    continue
                units.append(_Unit(self._code(step.code, tooth, quadrant), index, step, site, fdi, teeth, quadrant))
        return units

    def _alternative(self, subject: Subject, option: str, note: str = "") -> Alternative | None:
        if not self.implants_allowed and self.rules.option_has_tag(option, Tag.IMPLANT):
            return None
        units = self._units(subject, option)
        if not units:
            return None
        codes = [u.code for u in units]
        fee = sum((self.fees.fee(c) for c in codes), Decimal("0.00"))
        return Alternative(option=option, label=self.rules.options[option].label, codes=codes, fee=fee, note=note)

    # --- units to drafts -----------------------------------------------------------------

    def _group(self, key: Key) -> Key:
        return self.drafts[key].leader or key

    def _put(self, unit: _Unit, phase: PhaseName, finding_ids: list[str], reasons: list[str]) -> _Draft:
        key = (unit.code, unit.site)
        draft = self.drafts.get(key)
        if draft is None:
            draft = _Draft(key, unit.code, phase, unit.fdi, list(unit.teeth), unit.quadrant, seq=len(self.drafts))
            self.drafts[key] = draft
        elif phase.order < draft.phase.order:
            draft.phase = phase
        _add_unique(draft.teeth, unit.teeth)
        _add_unique(draft.finding_ids, finding_ids)
        _add_unique(draft.reasons, reasons)
        return draft

    def _expand(self, choice: _Choice, units: list[_Unit]) -> None:
        made: list[tuple[_Unit, Key]] = []
        for unit in units:
            phase = PhaseName.URGENT if choice.urgent and unit.step_index == 0 else unit.step.phase
            draft = self._put(unit, phase, choice.finding_ids, choice.reasons)
            same_step = [k for u, k in made if u.step_index == unit.step_index]
            leader = None
            if same_step:
                leader = self._group(same_step[0])
            elif unit.step.same_visit and made and self.drafts[made[-1][1]].phase is draft.phase:
                leader = self._group(made[-1][1])
            if leader is not None and leader != draft.key and draft.leader is None and self.drafts[leader].phase is draft.phase:
                draft.leader = leader
            draft.deps |= {k for u, k in made if u.step_index < unit.step_index and k != draft.key}
            made.append((unit, draft.key))
            _add_unique(choice.keys, [draft.key])
        if not choice.keys:
            return
        first = self.drafts[choice.keys[0]]
        case, subject = choice.case, choice.subject
        if case.note and case.note.format_map(subject.values) not in first.note:
            first.note = "; ".join(filter(None, [first.note, case.note.format_map(subject.values)]))
        _add_unique(first.extra_risks, [r.format_map(subject.values) for r in case.risks])
        if case.risk_level is RiskLevel.HIGH:
            first.risk_level = RiskLevel.HIGH
        known = {a.option for a in first.alternatives}
        for name in case.alternatives:
            alternative = self._alternative(subject, name) if name not in known and name != choice.option else None
            if alternative is not None:
                first.alternatives.append(alternative)
        if subject.facts.bone is BoneState.UNKNOWN and self.rules.option_has_tag(choice.option, Tag.IMPLANT):
            _add_unique(first.warnings, [self.rules.notes.bone_not_measured.format_map(subject.values)])

    def _link_healing(self) -> None:
        """Wait for an extraction or graft to heal before what needs healed bone on that tooth."""
        procedures = self.rules.procedures
        for draft in self.drafts.values():
            if draft.code is None or draft.fdi is None:
                continue
            needs = set(procedures[draft.code].requires_healed)
            for other in self.drafts.values():
                if (other is not draft and other.fdi == draft.fdi and other.code is not None
                        and needs & set(procedures[other.code].tags) and other.phase.order <= draft.phase.order
                        and draft.key not in other.deps):
                    draft.deps.add(other.key)

    # --- the verify item ---------------------------------------------------------------------

    def _verify(self) -> None:
        lines, ids, teeth, alternatives = [], [], [], []
        limit = self.rules.thresholds.verify_below_confidence
        for finding in self.chart.uncertain:
            where = f"tooth {finding.fdi}" if finding.fdi is not None else "no tooth number"
            grade = f" ({words(finding.grade)})" if finding.grade else ""
            label = f"{words(finding.kind.value)}{grade} at {where}"
            lines.append(f"{label} [{finding.id}], confidence {finding.confidence:.2f}")
            ids.append(finding.id)
            if finding.fdi is not None:
                _add_unique(teeth, [finding.fdi])
                if self.rules.findings[finding.kind].cases:  # what would be done if it is confirmed
                    subject = self.chart.finding_subject(finding)
                    case = self._match(subject)
                    alternative = self._alternative(subject, case.option, f"if the {label} is confirmed") if case and case.option else None
                    if alternative is not None:
                        alternatives.append(alternative)
        for finding in self.chart.confident:  # treatable kinds need a tooth number
            if finding.fdi is None and self.rules.findings[finding.kind].cases:
                lines.append(f"{words(finding.kind.value)} [{finding.id}] without a tooth number")
                ids.append(finding.id)
        replaceable_statuses = (ToothStatus.MISSING, ToothStatus.IMPACTED)
        for tooth in self.findings.teeth:
            if tooth.status in replaceable_statuses and tooth.confidence < limit:
                lines.append(f"tooth {tooth.fdi} charted {tooth.status.value}, confidence {tooth.confidence:.2f}")
                _add_unique(teeth, [tooth.fdi])
        if not lines:
            return
        code = self.rules.verify.code
        site = ("mouth", "verify")
        draft = _Draft((code, site), code, self.rules.verify.phase, teeth[0] if len(teeth) == 1 else None, sorted(teeth), None,
                       seq=-1, finding_ids=ids, verify=True, alternatives=alternatives)
        draft.explanation = f"{self.rules.verify.explanation} To verify: " + "; ".join(lines) + "."
        self.drafts[draft.key] = draft
        self.warnings.append(self.rules.notes.verification_pending)
        for other in self.drafts.values():  # do not treat a tooth before its uncertain findings are checked
            if other is not draft and other.phase.order >= draft.phase.order and set(other.teeth) & set(teeth):
                other.deps.add(draft.key)

    # --- the plan ---------------------------------------------------------------------------

    def plan(self) -> TreatmentPlan:
        for subject in self.chart.subjects():
            self._choose(subject)
        self._resolve_same_tooth()
        usable = []
        for choice in self.choices:
            if not self._units(choice.subject, choice.option):
                label = self.rules.options[choice.option].label
                self.warnings.append(f"'{label}' cannot be planned at {choice.subject.values['tooth']}; review this site.")
                for finding_id in choice.finding_ids:
                    self.no_action[finding_id] = f"'{label}' cannot be planned here; review clinically."
                continue
            usable.append(choice)
        for choice in usable:
            if any(s.site is Site.QUADRANT for s in self.rules.options[choice.option].steps):
                self.quadrant_teeth.setdefault(choice.subject.fdi // 10, set()).add(choice.subject.fdi)
            if self.rules.option_has_tag(choice.option, Tag.PERIODONTAL_THERAPY):
                self.perio_planned = True
        for choice in usable:
            self._expand(choice, self._units(choice.subject, choice.option))
        recall_rule = self.rules.recall
        recall = _Choice(Subject("recall", None, [], Facts(), self.chart.values(None)), Case(option=recall_rule.option, reason=recall_rule.reason),
                         recall_rule.option, [], [recall_rule.reason], urgent=False)
        self._expand(recall, self._units(recall.subject, recall.option))
        self._link_healing()
        self._verify()
        self._context_warnings()
        return self._assemble(usable)

    def _context_warnings(self) -> None:
        flags = self.context.medical_flags
        for flag in flags:
            rule = self.rules.medical_flags[flag]
            if rule.plan_warning:
                self.warnings.append(rule.plan_warning)
            for draft in self.drafts.values():
                if draft.code is not None and set(rule.applies_to) & set(self.rules.procedures[draft.code].tags):
                    _add_unique(draft.warnings, [rule.warning])
        if self.chart.replaceable():
            if self.too_young:
                self.warnings.append(self.rules.notes.implants_not_for_age)
            elif self.context.preferences.avoid_implants:
                self.warnings.append(self.rules.notes.implants_avoided)

    def _assemble(self, choices: list[_Choice]) -> TreatmentPlan:
        rules, procedures = self.rules, self.rules.procedures
        jobs = [
            Job(d.key, d.phase.order, procedures[d.code].visits if d.code else 1, procedures[d.code].healing_weeks if d.code else 0,
                frozenset(d.deps), d.leader)
            for d in sorted(self.drafts.values(), key=lambda d: d.seq)  # verification first among equals
        ]
        timing = schedule(jobs, rules.scheduling.visit_interval_weeks)
        ordered = sorted(self.drafts.values(), key=lambda d: (d.phase.order, timing.start[d.key], d.seq))
        ids = {d.key: f"item-{n:02d}" for n, d in enumerate(ordered, start=1)}
        categories = [procedures[d.code].category if d.code else Category.DIAGNOSTIC for d in ordered]
        shares = share_costs([(d.code, c) for d, c in zip(ordered, categories)], self.fees, self.context.insurance)
        items: dict[PhaseName, list[PlanItem]] = {}
        for draft, category, share in zip(ordered, categories, shares):
            procedure = procedures[draft.code] if draft.code else None
            description = procedure.description if procedure else "Clinical verification of uncertain findings"
            if draft.quadrant is not None:
                description += f", quadrant {draft.quadrant} (teeth {', '.join(map(str, sorted(draft.teeth)))})"
            elif draft.key[1][0] == "arch":
                description += f", replacing {', '.join(map(str, sorted(draft.teeth)))}"
            if draft.note:
                description += f" - {draft.note}"
            explanation = draft.explanation or " ".join(draft.reasons + ([procedure.explanation] if procedure else []))
            items.setdefault(draft.phase, []).append(PlanItem(
                id=ids[draft.key], phase=draft.phase, code=draft.code, description=description, fdi=draft.fdi,
                teeth=sorted(draft.teeth), quadrant=draft.quadrant, category=category,
                fee=share.fee, insurance_pays=share.insurance, patient_share=share.patient,
                finding_ids=draft.finding_ids, explanation=explanation,
                risks=(list(procedure.risks) if procedure else []) + draft.extra_risks,
                aftercare=list(procedure.aftercare) if procedure else [],
                alternatives=draft.alternatives,
                depends_on=sorted(ids[k] for k in draft.deps),
                verify_clinically=draft.verify, risk_level=draft.risk_level, warnings=draft.warnings,
                visits=procedure.visits if procedure else 1, healing_weeks=procedure.healing_weeks if procedure else 0,
                start_week=timing.start[draft.key],
            ))
        phases = []
        for name in PhaseName:
            if name not in items:
                continue
            start, end = timing.phase_span[name.order]
            phase_items = items[name]
            phases.append(PlanPhase(
                name=name, order=name.order, title=rules.phases[name].title, purpose=rules.phases[name].purpose,
                items=phase_items,
                subtotal=sum((i.fee for i in phase_items), Decimal("0.00")),
                insurance_subtotal=sum((i.insurance_pays for i in phase_items), Decimal("0.00")),
                patient_subtotal=sum((i.patient_share for i in phase_items), Decimal("0.00")),
                visits=timing.visits[name.order], weeks=end - start,
            ))
        insurance = self.context.insurance
        if insurance is not None and insurance.annual_maximum is not None and timing.weeks > 52:
            self.warnings.append(rules.notes.benefit_years)
        return TreatmentPlan(
            disclaimer=rules.disclaimer.strip(),
            currency=self.fees.currency,
            fee_schedule=self.fees.name,
            rules_version=rules.version,
            study_instance_uid=self.findings.scan.study_instance_uid,
            findings_model=f"{self.findings.model.name}@{self.findings.model.version}",
            phases=phases,
            totals=Totals(
                fee=sum((p.subtotal for p in phases), Decimal("0.00")),
                insurance=sum((p.insurance_subtotal for p in phases), Decimal("0.00")),
                patient=sum((p.patient_subtotal for p in phases), Decimal("0.00")),
            ),
            visits=sum(p.visits for p in phases),
            weeks=timing.weeks,
            contingencies=self._contingencies(choices, ids),
            warnings=list(dict.fromkeys(self.warnings)),
            no_treatment=self._no_treatment(),
        )

    def _contingencies(self, choices: list[_Choice], ids: dict[Key, str]) -> list[Contingency]:
        found: dict[tuple, Contingency] = {}
        for choice in choices:
            for name in choice.case.contingencies:
                rule, subject = self.rules.contingencies[name], choice.subject
                key = (name, subject.fdi)
                item_ids = sorted({ids[k] for k in choice.keys})
                if key in found:
                    _add_unique(found[key].item_ids, item_ids)
                    _add_unique(found[key].finding_ids, choice.finding_ids)
                    continue
                alternatives = [a for a in (self._alternative(subject, o) for o in rule.options) if a is not None]
                found[key] = Contingency(
                    condition=rule.condition.format_map(subject.values), action=rule.action.format_map(subject.values),
                    item_ids=item_ids, finding_ids=list(choice.finding_ids), fdi=subject.fdi, alternatives=alternatives,
                )
        return list(found.values())

    def _no_treatment(self) -> list[NoTreatment]:
        cited = {i for d in self.drafts.values() for i in d.finding_ids}
        entries = []
        for finding in self.findings.findings:
            if finding.id in cited:
                continue
            reason = self.no_action.get(finding.id)
            if reason is None:
                kind_rules = self.rules.findings[finding.kind]
                reason = kind_rules.no_action.format_map(self.chart.values(finding.fdi, finding)) if kind_rules.no_action else (
                    "No planning rule applies; review clinically.")
            entries.append(NoTreatment(finding_id=finding.id, kind=finding.kind.value, fdi=finding.fdi, reason=reason))
        return entries


__all__ = ["draft_plan"]
