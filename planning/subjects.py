"""What there is to plan for in one findings document, and what is known about each.

A *subject* is one thing the rules decide about: a confident finding of a kind that
has cases (caries, periapical lesion, impacted tooth, bone loss), an impacted tooth
charted without a finding, or a missing tooth to replace. Its *facts* are what the
``when`` conditions of ``plan_rules.yaml`` test (grade, tooth status, other findings
on the tooth, canal or sinus distance under the thresholds, bone available, whether a
bridge is possible...); its *values* fill the placeholders of the rule texts.
Findings below the confidence threshold are set aside (:attr:`Chart.uncertain`) and
never become subjects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from odontoscan.datasets.findings_schema import Finding, FindingKind, Findings, Severity, ToothStatus
from odontoscan.datasets.labels import ToothType, arch_of, is_upper, tooth_name, tooth_type
from odontoscan.planning.rules import TEMPLATE_FIELDS, BoneState, Facts, PlanRules

ABUTMENT_STATUSES = frozenset({ToothStatus.PRESENT, ToothStatus.CROWN})
MISSING_TOOTH = "missing_tooth"


def number(value: float) -> str:
    return f"{round(value, 1):g}"


def words(kind: str) -> str:
    return kind.replace("_", " ")


@dataclass
class Subject:
    """One thing to plan for: a finding, an impacted tooth or a tooth to replace."""

    kind: str  # a FindingKind value or MISSING_TOOTH
    fdi: int | None
    finding_ids: list[str]
    facts: Facts
    values: dict[str, str]
    severity: Severity | None = None
    gap: tuple[int, ...] = ()  # missing teeth next to each other, in arch order
    modifiers: dict[str, str] = field(default_factory=dict)  # fact name -> id of the finding behind it


class Chart:
    """The findings seen for planning: confident and uncertain findings, per tooth."""

    def __init__(self, findings: Findings, rules: PlanRules, implants_allowed: bool) -> None:
        self.findings, self.rules, self.implants_allowed = findings, rules, implants_allowed
        limit = rules.thresholds.verify_below_confidence
        self.confident = [f for f in findings.findings if f.confidence >= limit]
        self.uncertain = [f for f in findings.findings if f.confidence < limit]
        self.by_tooth: dict[int, list[Finding]] = {}
        for finding in self.confident:
            if finding.fdi is not None:
                self.by_tooth.setdefault(finding.fdi, []).append(finding)

    def tooth_findings(self, fdi: int | None, kind: FindingKind) -> list[Finding]:
        return [f for f in self.by_tooth.get(fdi, []) if f.kind is kind] if fdi is not None else []

    def _distance(self, fdi: int | None, kind: FindingKind) -> tuple[float, str] | None:
        """The smallest confident ``distance_mm`` of ``kind`` findings on the tooth, and its finding id."""
        found = [(f.measurements["distance_mm"].value, f.id) for f in self.tooth_findings(fdi, kind) if "distance_mm" in f.measurements]
        return min(found) if found else None

    def values(self, fdi: int | None, finding: Finding | None = None) -> dict[str, str]:
        values = {name: "?" for name in TEMPLATE_FIELDS}
        if fdi is not None:
            values.update(tooth=f"tooth {fdi} ({tooth_name(fdi).lower()})", fdi=str(fdi), quadrant=str(fdi // 10), teeth=str(fdi))
        canal, sinus = self._distance(fdi, FindingKind.CANAL_PROXIMITY), self._distance(fdi, FindingKind.SINUS_PROXIMITY)
        if canal:
            values["distance_mm"] = number(canal[0])
        if sinus:
            values["sinus_distance_mm"] = number(sinus[0])
        if finding is not None:
            values.update(kind=words(finding.kind.value), severity=finding.severity.value,
                          grade=words(finding.grade) if finding.grade else "not graded", confidence=f"{finding.confidence:.2f}")
            for name, measurement in finding.measurements.items():
                if name in TEMPLATE_FIELDS:
                    values[name] = number(measurement.value)
            if finding.kind is FindingKind.SINUS_PROXIMITY and "distance_mm" in finding.measurements:
                values["sinus_distance_mm"] = values.pop("distance_mm")
                values["distance_mm"] = "?"
        return values

    def finding_subject(self, finding: Finding) -> Subject:
        fdi = finding.fdi
        thresholds = self.rules.thresholds
        modifiers: dict[str, str] = {}
        canal, sinus = self._distance(fdi, FindingKind.CANAL_PROXIMITY), self._distance(fdi, FindingKind.SINUS_PROXIMITY)
        own = finding.measurements.get("distance_mm")
        canal_high = sinus_high = None
        if fdi is not None:
            canal_high = bool(canal and canal[0] < thresholds.canal_high_risk_below_mm) or bool(
                own and finding.kind is FindingKind.IMPACTED_TOOTH and not is_upper(fdi) and own.value < thresholds.canal_high_risk_below_mm)
            sinus_high = bool(sinus and sinus[0] < thresholds.sinus_high_risk_below_mm)
            if canal_high and canal:
                modifiers["canal_high_risk"] = canal[1]
            if sinus_high and sinus:
                modifiers["sinus_high_risk"] = sinus[1]
        cej = finding.measurements.get("cej_to_crest_mm")
        facts = Facts(
            grade=finding.grade,
            severity=finding.severity,
            tooth_status=self.findings.tooth(fdi).status if fdi is not None else None,
            tooth_has=frozenset(f.kind for f in self.by_tooth.get(fdi, [])) if fdi is not None else frozenset(),
            third_molar=fdi % 10 == 8 if fdi is not None else None,
            canal_high_risk=canal_high,
            sinus_high_risk=sinus_high,
            mild_bone_loss=cej.value < thresholds.mild_bone_loss_below_mm if cej is not None else None,
            upper_posterior=self._upper_posterior(fdi),
        )
        values = self.values(fdi, finding)
        if own is not None and finding.kind is FindingKind.IMPACTED_TOOTH and not canal:
            values["distance_mm"] = number(own.value)
        return Subject(finding.kind.value, fdi, [finding.id], facts, values, finding.severity, modifiers=modifiers)

    @staticmethod
    def _upper_posterior(fdi: int | None) -> bool | None:
        if fdi is None:
            return None
        return is_upper(fdi) and tooth_type(fdi) in (ToothType.PREMOLAR, ToothType.MOLAR)

    def _impacted_subject(self, fdi: int) -> Subject:
        """An impacted tooth from the chart, without an impacted_tooth finding."""
        stand_in = Finding(id="-", kind=FindingKind.IMPACTED_TOOTH, fdi=fdi, confidence=self.findings.tooth(fdi).confidence,
                           severity=Severity.MODERATE)
        subject = self.finding_subject(stand_in)
        subject.finding_ids = []
        return subject

    def replaceable(self) -> set[int]:
        """Teeth charted missing (confidently) that the rules replace."""
        limit, thresholds = self.rules.thresholds.verify_below_confidence, self.rules.thresholds
        return {
            t.fdi for t in self.findings.teeth
            if t.status is ToothStatus.MISSING and t.confidence >= limit and (thresholds.replace_third_molars or t.fdi % 10 != 8)
        }

    def _gap(self, fdi: int, replaceable: set[int]) -> tuple[int, ...]:
        arch = arch_of(fdi)
        i = j = arch.index(fdi)
        while i > 0 and arch[i - 1] in replaceable:
            i -= 1
        while j < len(arch) - 1 and arch[j + 1] in replaceable:
            j += 1
        return arch[i:j + 1]

    def abutments(self, gap: tuple[int, ...]) -> tuple[int, int] | None:
        arch = arch_of(gap[0])
        i, j = arch.index(gap[0]) - 1, arch.index(gap[-1]) + 1
        if i < 0 or j >= len(arch):
            return None
        limit = self.rules.thresholds.verify_below_confidence
        ends = [self.findings.tooth(arch[i]), self.findings.tooth(arch[j])]
        if all(t.status in ABUTMENT_STATUSES and t.confidence >= limit for t in ends):
            return arch[i], arch[j]
        return None

    def _missing_subject(self, fdi: int, replaceable: set[int]) -> Subject:
        thresholds = self.rules.thresholds
        sites = self.tooth_findings(fdi, FindingKind.EDENTULOUS_SITE)
        height = [f.measurements["bone_height_mm"].value for f in sites if "bone_height_mm" in f.measurements]
        width = [f.measurements["bone_width_mm"].value for f in sites if "bone_width_mm" in f.measurements]
        if (height and min(height) < thresholds.implant_min_bone_height_mm) or (width and min(width) < thresholds.implant_min_bone_width_mm):
            bone = BoneState.INSUFFICIENT
        elif height and width:
            bone = BoneState.SUFFICIENT
        else:
            bone = BoneState.UNKNOWN
        gap = self._gap(fdi, replaceable)
        facts = Facts(
            tooth_status=ToothStatus.MISSING,
            third_molar=fdi % 10 == 8,
            implants_allowed=self.implants_allowed,
            bone=bone,
            bridge_possible=len(gap) <= thresholds.max_bridge_span and self.abutments(gap) is not None,
            upper_posterior=self._upper_posterior(fdi),
        )
        values = self.values(fdi)
        values["teeth"] = ", ".join(map(str, gap))
        if height:
            values["bone_height_mm"] = number(min(height))
        if width:
            values["bone_width_mm"] = number(min(width))
        return Subject(MISSING_TOOTH, fdi, [f.id for f in sites], facts, values, gap=gap)

    def subjects(self) -> list[Subject]:
        subjects = []
        for finding in self.confident:
            if self.rules.findings[finding.kind].cases and finding.fdi is not None:
                subjects.append(self.finding_subject(finding))
        limit = self.rules.thresholds.verify_below_confidence
        for tooth in self.findings.teeth:
            if (tooth.status is ToothStatus.IMPACTED and tooth.confidence >= limit
                    and not self.tooth_findings(tooth.fdi, FindingKind.IMPACTED_TOOTH)
                    and not any(f.fdi == tooth.fdi and f.kind is FindingKind.IMPACTED_TOOTH for f in self.uncertain)):
                subjects.append(self._impacted_subject(tooth.fdi))
        replaceable = self.replaceable()
        subjects += [self._missing_subject(fdi, replaceable) for fdi in sorted(replaceable)]
        return subjects


__all__ = ["Chart", "Subject", "MISSING_TOOTH", "number", "words"]
