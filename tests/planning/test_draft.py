"""draft_plan on hand-made findings: which procedures, in which order, citing which
findings, at what cost - and what patient context changes."""

from decimal import Decimal

import pytest
import yaml

from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.findings_schema import (
    Finding,
    Findings,
    Measurement,
    ModelInfo,
    ScanInfo,
    Tooth,
    ToothStatus,
)
from odontoscan.datasets.labels import FDI_TEETH
from odontoscan.planning import PatientContext, PhaseName, TreatmentPlan, draft_plan, load_fees, load_rules, parse_rules
from odontoscan.planning.files import packaged


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def fees():
    return load_fees()


@pytest.fixture
def plan_for(rules, fees):
    def make(*items, statuses=None, context=None, tooth_confidence=None, plan_rules=None):
        return draft_plan(make_findings(*items, statuses=statuses, tooth_confidence=tooth_confidence), context,
                          rules=plan_rules or rules, fees=fees)

    return make


def make_findings(*items, statuses=None, tooth_confidence=None):
    """All 32 teeth (present unless ``statuses`` says otherwise) and the given findings."""
    statuses, tooth_confidence = statuses or {}, tooth_confidence or {}
    teeth = [Tooth(fdi=fdi, status=statuses.get(fdi, ToothStatus.PRESENT), confidence=tooth_confidence.get(fdi, 0.95)) for fdi in FDI_TEETH]
    return Findings(
        scan=ScanInfo(modality="CT", shape=[200, 200, 120], spacing_mm=[0.3, 0.3, 0.3], study_instance_uid="1.2.3.4"),
        model=ModelInfo(name="cbct-test", version="0.1.0", sha256="0" * 64),
        teeth=teeth,
        findings=list(items),
    )


def finding(id, kind, fdi, *, grade=None, severity="moderate", confidence=0.9, **mm):
    return Finding(id=id, kind=kind, fdi=fdi, confidence=confidence, severity=severity, grade=grade,
                   measurements={name: Measurement(value=value, unit="mm") for name, value in mm.items()})


def codes(plan, fdi=None):
    return [i.code for i in plan.items() if fdi is None or i.fdi == fdi]


def only(plan, code, fdi=None):
    found = [i for i in plan.items() if i.code == code and (fdi is None or i.fdi == fdi)]
    assert len(found) == 1, (code, fdi, codes(plan))
    return found[0]


def assert_in_plan_order(plan):
    position = {item.id: n for n, item in enumerate(plan.items())}
    for item in plan.items():
        for dependency in item.depends_on:
            assert position[dependency] < position[item.id], (dependency, item.id)
            before = plan.item(dependency)
            assert item.start_week >= before.start_week


# --- phases and dependencies ---------------------------------------------------------------


def test_phases_follow_clinical_order(plan_for):
    plan = plan_for(
        finding("p1", "periapical_lesion", 46, severity="high", diameter_mm=6.0),
        finding("c1", "caries", 16, grade="dentin"),
        finding("e1", "edentulous_site", 36, bone_height_mm=12.0, bone_width_mm=7.5),
        statuses={36: ToothStatus.MISSING},
    )
    assert [p.name for p in plan.phases] == list(PhaseName)
    assert [p.order for p in plan.phases] == [1, 2, 3, 4, 5]
    assert plan.phases[0].items[0].code == "D3330"  # the high-severity lesion starts in the urgent phase
    for earlier, later in zip(plan.phases, plan.phases[1:]):
        assert max(i.start_week for i in earlier.items) < min(i.start_week for i in later.items)
    for phase in plan.phases:
        starts = [i.start_week for i in phase.items]
        assert starts == sorted(starts)
    assert_in_plan_order(plan)
    assert [i.id for i in plan.items()] == [f"item-{n:02d}" for n in range(1, len(plan.items()) + 1)]
    assert "draft for a dentist to confirm" in plan.disclaimer.lower() and plan.status == "draft"


def test_root_canal_comes_before_the_crown_and_both_cite_the_lesion(plan_for, rules):
    plan = plan_for(finding("lesion-7", "periapical_lesion", 46, diameter_mm=4.0))
    root_canal, build_up, crown = only(plan, "D3330", 46), only(plan, "D2950", 46), only(plan, "D2740", 46)
    assert root_canal.finding_ids == crown.finding_ids == build_up.finding_ids == ["lesion-7"]
    assert root_canal.phase is PhaseName.DISEASE_CONTROL and crown.phase is PhaseName.RESTORATIVE
    assert root_canal.id in crown.depends_on and root_canal.id in build_up.depends_on
    healed = root_canal.start_week + root_canal.visits + rules.procedures["D3330"].healing_weeks
    assert crown.start_week >= healed
    assert "infected" in root_canal.explanation and root_canal.risks and root_canal.aftercare
    assert {a.code for a in root_canal.alternatives} >= {"D7140", "D7140+D6010+D6065"}
    contingency = next(c for c in plan.contingencies if root_canal.id in c.item_ids)
    assert "has not healed" in contingency.condition
    assert [a.code for a in contingency.alternatives] == ["D3425", "D7140"]  # apicoectomy (molar) or extraction


@pytest.mark.parametrize(("fdi", "root_canal", "build_up"), [(11, "D3310", False), (14, "D3320", True), (37, "D3330", True)])
def test_root_canal_code_follows_the_tooth_type(plan_for, fdi, root_canal, build_up):
    plan = plan_for(finding("l1", "periapical_lesion", fdi))
    treatment = only(plan, root_canal, fdi)
    assert ("D2950" in codes(plan, fdi)) is build_up
    assert treatment.id in only(plan, "D2740", fdi).depends_on


def test_retreatment_when_the_tooth_already_has_a_root_filling(plan_for):
    plan = plan_for(finding("l1", "periapical_lesion", 36), finding("rf1", "root_canal_filling", 36))
    assert codes(plan, 36) == ["D3348"]
    assert {a.code for a in only(plan, "D3348").alternatives} == {"D3425", "D7140"}
    assert [n.finding_id for n in plan.no_treatment] == []  # the root filling is cited as the reason
    assert only(plan, "D3348").finding_ids == ["l1", "rf1"]


# --- caries ----------------------------------------------------------------------------------------


def test_caries_depth_picks_the_treatment(plan_for):
    plan = plan_for(
        finding("en", "caries", 24, grade="enamel"),
        finding("de", "caries", 16, grade="dentin"),
        finding("an", "caries", 11, grade="dentin"),
        finding("np", "caries", 26, grade="near_pulp", severity="high"),
    )
    varnish = only(plan, "D1206", 24)
    assert [(a.code, a.fee) for a in varnish.alternatives] == [("D2391", Decimal("180.00"))]
    assert only(plan, "D2391", 16).finding_ids == ["de"] and only(plan, "D2330", 11).finding_ids == ["an"]
    assert [a.code for a in only(plan, "D2391", 16).alternatives] == ["D2392"]
    pulp_cap, filling = only(plan, "D3120", 26), only(plan, "D2391", 26)
    assert pulp_cap.finding_ids == filling.finding_ids == ["np"] and pulp_cap.id in filling.depends_on
    assert filling.start_week == pulp_cap.start_week  # same appointment
    assert "D3330+D2950+D2740" in [a.code for a in pulp_cap.alternatives]
    exposure = next(c for c in plan.contingencies if pulp_cap.id in c.item_ids)
    assert [a.code for a in exposure.alternatives] == ["D3110+D2391", "D3330+D2950+D2740"]
    assert not any(i.phase is PhaseName.URGENT for i in plan.items())


def test_deep_caries_with_a_lesion_becomes_one_root_canal_citing_both(plan_for):
    plan = plan_for(finding("c1", "caries", 46, grade="near_pulp"), finding("p1", "periapical_lesion", 46),
                    finding("c2", "caries", 46, grade="dentin"))
    assert codes(plan, 46) == ["D3330", "D2950", "D2740"]  # the filling is superseded, not planned twice
    assert set(only(plan, "D3330").finding_ids) == {"c1", "p1", "c2"}


def test_findings_on_a_tooth_the_chart_says_is_missing_are_not_treated(plan_for):
    plan = plan_for(finding("c1", "caries", 36, grade="dentin"), finding("p1", "periapical_lesion", 46),
                    statuses={36: ToothStatus.BRIDGE_PONTIC, 46: ToothStatus.IMPLANT})
    assert codes(plan, 36) == [] and codes(plan, 46) == []
    reasons = {n.finding_id: n.reason for n in plan.no_treatment}
    assert reasons["c1"] == "Caries reported at tooth 36 (lower left first molar), where the chart shows no natural tooth; check the chart."
    assert reasons["p1"].startswith("A lesion at tooth 46 (lower right first molar), where there is no natural tooth")


# --- missing teeth ------------------------------------------------------------------------------------


def test_missing_tooth_with_enough_bone_gets_an_implant(plan_for, rules):
    plan = plan_for(finding("e1", "edentulous_site", 36, bone_height_mm=11.0, bone_width_mm=6.5), statuses={36: ToothStatus.MISSING})
    implant, crown = only(plan, "D6010", 36), only(plan, "D6065", 36)
    assert implant.finding_ids == crown.finding_ids == ["e1"]
    assert implant.id in crown.depends_on
    assert crown.start_week >= implant.start_week + implant.visits + rules.procedures["D6010"].healing_weeks
    assert [a.code for a in implant.alternatives] == ["D6750+D6750+D6240", "D5214"]
    assert "D7953" not in codes(plan)
    assert any("insufficient" in c.condition for c in plan.contingencies)


@pytest.mark.parametrize(("height", "width"), [(8.0, 7.0), (12.0, 4.5)])
def test_missing_tooth_with_too_little_bone_gets_a_graft_first(plan_for, rules, height, width):
    plan = plan_for(finding("e1", "edentulous_site", 36, bone_height_mm=height, bone_width_mm=width), statuses={36: ToothStatus.MISSING})
    graft, implant = only(plan, "D7953", 36), only(plan, "D6010", 36)
    assert graft.id in implant.depends_on
    assert implant.start_week >= graft.start_week + graft.visits + rules.procedures["D7953"].healing_weeks
    alternatives = {a.option: a for a in graft.alternatives}
    assert alternatives["bridge"].codes == ["D6750", "D6750", "D6240"]
    assert alternatives["bridge"].fee == Decimal("1200.00") * 2 + Decimal("1150.00")
    assert alternatives["partial_denture"].codes == ["D5214"]


def test_upper_molar_with_low_bone_gets_a_sinus_lift(plan_for):
    plan = plan_for(finding("e1", "edentulous_site", 26, bone_height_mm=5.0, bone_width_mm=8.0), statuses={26: ToothStatus.MISSING})
    assert codes(plan, 26) == ["D7951", "D6010", "D6065"]


def test_unmeasured_bone_plans_the_implant_with_a_warning(plan_for):
    plan = plan_for(statuses={36: ToothStatus.MISSING})
    implant = only(plan, "D6010", 36)
    assert implant.finding_ids == []
    assert any("not measured" in w for w in implant.warnings)


def test_avoid_implants_picks_a_bridge(plan_for):
    context = PatientContext(preferences={"avoid_implants": True})
    plan = plan_for(finding("e1", "edentulous_site", 36, bone_height_mm=12.0, bone_width_mm=7.0),
                    statuses={36: ToothStatus.MISSING}, context=context)
    assert not any(code in ("D6010", "D6065") for code in codes(plan))
    first_abutment, pontic, second_abutment = only(plan, "D6750", 35), only(plan, "D6240", 36), only(plan, "D6750", 37)
    assert pontic.finding_ids == ["e1"]
    assert pontic.start_week == first_abutment.start_week == second_abutment.start_week  # made together
    assert [a.code for a in first_abutment.alternatives] == ["D5214"]  # no implant offered
    assert any("avoid implants" in w for w in plan.warnings)


def test_avoid_implants_without_abutments_picks_a_partial_denture(plan_for):
    plan = plan_for(statuses={37: ToothStatus.MISSING, 38: ToothStatus.MISSING, 46: ToothStatus.MISSING},
                    context=PatientContext(preferences={"avoid_implants": True}))
    denture = only(plan, "D5214")
    assert denture.teeth == [37] and "replacing 37" in denture.description  # 38 is a third molar: not replaced
    assert only(plan, "D6240", 46)  # 46 has neighbours: a bridge


def test_young_patient_gets_no_implant(plan_for):
    plan = plan_for(statuses={21: ToothStatus.MISSING}, context=PatientContext(age=16))
    assert "D6010" not in codes(plan) and only(plan, "D6240", 21)
    assert any("minimum age" in w for w in plan.warnings)


def test_implant_waits_for_the_extraction_to_heal(rules, fees):
    document = yaml.safe_load(packaged("plan_rules.yaml").read_text(encoding="utf-8"))
    document["findings"]["periapical_lesion"]["cases"][-1]["option"] = "extraction_implant"
    custom = parse_rules(document, "custom.yaml")
    plan = draft_plan(make_findings(finding("p1", "periapical_lesion", 45)), rules=custom, fees=fees)
    extraction, implant, crown = only(plan, "D7140", 45), only(plan, "D6010", 45), only(plan, "D6065", 45)
    assert extraction.id in implant.depends_on and implant.id in crown.depends_on
    assert implant.start_week >= extraction.start_week + extraction.visits + rules.procedures["D7140"].healing_weeks
    assert_in_plan_order(plan)


# --- impacted teeth -------------------------------------------------------------------------------------


def test_impacted_wisdom_tooth_near_the_canal_is_a_higher_risk_extraction(plan_for):
    plan = plan_for(finding("imp", "impacted_tooth", 38, grade="mesioangular"), finding("can", "canal_proximity", 38, distance_mm=1.2),
                    statuses={38: ToothStatus.IMPACTED})
    extraction = only(plan, "D7240", 38)
    assert extraction.risk_level.value == "high"
    assert "1.2 mm" in extraction.description and any("1.2 mm" in r for r in extraction.risks)
    assert extraction.finding_ids == ["imp", "can"]
    assert [(a.code, a.fee) for a in extraction.alternatives] == [("D7251", Decimal("560.00"))]
    assert plan.no_treatment == []


def test_impacted_wisdom_tooth_far_from_the_canal_is_a_standard_extraction(plan_for):
    plan = plan_for(finding("imp", "impacted_tooth", 48, grade="vertical"), finding("can", "canal_proximity", 48, distance_mm=3.4))
    extraction = only(plan, "D7240", 48)
    assert extraction.risk_level.value == "standard" and extraction.alternatives == []
    assert extraction.finding_ids == ["imp"]
    assert [(n.finding_id, n.reason) for n in plan.no_treatment] == [
        ("can", "Root of tooth 48 (lower right third molar (wisdom tooth)) near the nerve canal (3.4 mm); noted for any surgery there.")
    ]


def test_impacted_tooth_from_the_chart_alone_is_planned_too(plan_for):
    plan = plan_for(statuses={18: ToothStatus.IMPACTED})
    assert only(plan, "D7240", 18).finding_ids == []


# --- periodontal, maintenance, no treatment ------------------------------------------------------------


def test_bone_loss_gets_root_planing_per_quadrant_and_periodontal_maintenance(plan_for):
    plan = plan_for(
        *[finding(f"b{fdi}", "bone_loss", fdi, cej_to_crest_mm=4.5) for fdi in (14, 15, 16, 17, 36, 37)],
        finding("mild", "bone_loss", 41, cej_to_crest_mm=2.5),
    )
    evaluation, full, partial = only(plan, "D0180"), only(plan, "D4341"), only(plan, "D4342")
    assert (full.quadrant, full.teeth, partial.quadrant, partial.teeth) == (1, [14, 15, 16, 17], 3, [36, 37])
    assert set(full.finding_ids) == {"b14", "b15", "b16", "b17"}
    assert evaluation.id in full.depends_on and evaluation.id in partial.depends_on
    maintenance = [i.code for i in plan.phases[-1].items]
    assert maintenance == ["D0120", "D4910"]
    assert [(n.finding_id, n.kind) for n in plan.no_treatment] == [("mild", "bone_loss")]


def test_every_plan_ends_with_recall_and_lists_untreated_findings(plan_for):
    plan = plan_for(finding("r1", "restoration", 25, grade="composite"), finding("s1", "sinus_proximity", 26, distance_mm=0.8))
    assert [p.name for p in plan.phases] == [PhaseName.MAINTENANCE]
    assert codes(plan) == ["D0120", "D1110"]
    reasons = {n.finding_id: n.reason for n in plan.no_treatment}
    assert reasons["r1"].startswith("Existing filling at tooth 25")
    assert "(0.8 mm)" in reasons["s1"]


# --- low confidence ---------------------------------------------------------------------------------------


def test_low_confidence_finding_is_verified_not_treated(plan_for):
    plan = plan_for(finding("c-low", "caries", 26, grade="dentin", confidence=0.42), finding("c-ok", "caries", 16, grade="dentin"),
                    finding("c-low2", "caries", 16, grade="near_pulp", confidence=0.3))
    verify = [i for i in plan.items() if i.verify_clinically]
    assert len(verify) == 1
    check = verify[0]
    assert (check.code, check.fee, check.teeth) == ("D0140", Decimal("85.00"), [16, 26])
    assert check.finding_ids == ["c-low", "c-low2"]
    assert "c-low" in check.explanation and "0.42" in check.explanation
    assert [(a.code, a.note) for a in check.alternatives] == [
        ("D2391", "if the caries (dentin) at tooth 26 is confirmed"),
        ("D3120+D2391", "if the caries (near pulp) at tooth 16 is confirmed"),
    ]
    treated = [i for i in plan.items() if not i.verify_clinically]
    assert not any({"c-low", "c-low2"} & set(i.finding_ids) for i in treated)
    assert codes(plan, 26) == []
    filling = only(plan, "D2391", 16)  # the confident finding is treated, after the check of that tooth
    assert check.id in filling.depends_on and filling.finding_ids == ["c-ok"]
    assert any("verified clinically" in w for w in plan.warnings)


def test_low_confidence_missing_tooth_is_verified_not_replaced(plan_for):
    plan = plan_for(statuses={36: ToothStatus.MISSING}, tooth_confidence={36: 0.4})
    assert "D6010" not in codes(plan)
    assert "tooth 36 charted missing, confidence 0.40" in only(plan, "D0140").explanation


# --- costs --------------------------------------------------------------------------------------------------


INSURED = {"coverage": {"diagnostic": 100, "preventive": 100, "basic": 80, "major": 50}, "deductible": 50}


def test_costs_split_exactly_with_deductible(plan_for):
    plan = plan_for(finding("c1", "caries", 16, grade="dentin"), context=PatientContext(insurance=INSURED))
    lines = [(i.code, i.fee, i.insurance_pays, i.patient_share) for i in plan.items()]
    assert lines == [
        ("D2391", Decimal("180.00"), Decimal("104.00"), Decimal("76.00")),  # (180 - 50 deductible) x 80 %
        ("D0120", Decimal("65.00"), Decimal("65.00"), Decimal("0.00")),  # diagnostic: no deductible
        ("D1110", Decimal("110.00"), Decimal("110.00"), Decimal("0.00")),
    ]
    assert (plan.totals.fee, plan.totals.insurance, plan.totals.patient) == (Decimal("355.00"), Decimal("279.00"), Decimal("76.00"))
    assert plan.currency == "USD"


def test_annual_maximum_caps_insurance(plan_for):
    plan = plan_for(finding("c1", "caries", 16, grade="dentin"), context=PatientContext(insurance={**INSURED, "annual_maximum": 200}))
    assert [i.insurance_pays for i in plan.items()] == [Decimal("104.00"), Decimal("65.00"), Decimal("31.00")]
    assert plan.totals.insurance == Decimal("200.00") and plan.totals.patient == Decimal("155.00")


def test_costs_add_up_from_items_to_phases_to_totals(plan_for, fees):
    context = PatientContext(insurance={"coverage": {"basic": 70, "major": 50, "D6010": 0, "preventive": 100}, "deductible": 75, "annual_maximum": 2000})
    plan = plan_for(
        finding("p1", "periapical_lesion", 46), finding("c1", "caries", 15, grade="dentin"), finding("imp", "impacted_tooth", 38),
        finding("e1", "edentulous_site", 36, bone_height_mm=12.0, bone_width_mm=7.0), finding("b1", "bone_loss", 17, cej_to_crest_mm=5.0),
        statuses={36: ToothStatus.MISSING, 38: ToothStatus.IMPACTED}, context=context,
    )
    for item in plan.items():
        assert item.fee == fees.fee(item.code)
        assert item.insurance_pays + item.patient_share == item.fee
        assert item.insurance_pays >= 0 and item.patient_share >= 0
    assert only(plan, "D6010").insurance_pays == 0  # per-code coverage wins over the category
    for phase in plan.phases:
        assert phase.subtotal == sum(i.fee for i in phase.items)
        assert phase.insurance_subtotal == sum(i.insurance_pays for i in phase.items)
        assert phase.patient_subtotal == sum(i.patient_share for i in phase.items)
    assert plan.totals.fee == sum(p.subtotal for p in plan.phases) == sum(fees.fee(c) for c in codes(plan))
    assert plan.totals.insurance + plan.totals.patient == plan.totals.fee
    assert plan.totals.insurance == Decimal("2000.00")  # the maximum is reached
    assert plan.visits == sum(p.visits for p in plan.phases)


def test_without_insurance_the_patient_pays_everything(plan_for):
    plan = plan_for(finding("c1", "caries", 16, grade="dentin"))
    assert plan.totals.insurance == 0 and plan.totals.patient == plan.totals.fee == Decimal("355.00")


def test_other_fee_schedule_sets_currency_and_fees(rules):
    plan = draft_plan(make_findings(finding("c1", "caries", 16, grade="dentin")), rules=rules, fees="example_eur")
    assert plan.currency == "EUR" and plan.fee_schedule == "example_eur"
    assert only(plan, "D2391").fee == Decimal("160.00")


def test_fee_schedule_without_a_rule_code_is_refused(rules, tmp_path):
    usd = load_fees()
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump({"name": "Short", "currency": "USD", "fees": {c: str(f) for c, f in usd.fees.items() if c != "D7251"}}))
    with pytest.raises(ConfigError, match=r"Fee schedule '.*short.yaml' has no fee for D7251 \(Coronectomy"):
        draft_plan(make_findings(), rules=rules, fees=path)


# --- context warnings and the JSON document --------------------------------------------------------------------


def test_medical_flags_warn_on_matching_procedures(plan_for):
    context = PatientContext(medical_flags=["bisphosphonates", "anticoagulants"])
    plan = plan_for(finding("imp", "impacted_tooth", 38), finding("b1", "bone_loss", 16, cej_to_crest_mm=5.0),
                    finding("c1", "caries", 26, grade="dentin"), context=context)
    extraction, root_planing, filling = only(plan, "D7240"), only(plan, "D4342"), only(plan, "D2391")
    assert any("osteonecrosis" in w for w in extraction.warnings) and any("INR" in w for w in extraction.warnings)
    assert any("INR" in w for w in root_planing.warnings) and not any("osteonecrosis" in w for w in root_planing.warnings)
    assert filling.warnings == []
    assert any("Antiresorptive" in w for w in plan.warnings)


def test_plan_json_round_trips_with_numbers_for_money(plan_for):
    plan = plan_for(finding("p1", "periapical_lesion", 46), statuses={36: ToothStatus.MISSING})
    text = plan.model_dump_json()
    assert TreatmentPlan.model_validate_json(text) == plan
    document = TreatmentPlan.model_validate_json(text).model_dump(mode="json")
    item = document["phases"][0]["items"][0]
    assert isinstance(item["fee"], float) and item["code"] == "D3330"
    assert document["phases"][0]["items"][0]["alternatives"][0]["code"] == "D7140"
    assert set(document["phases"][0]) >= {"name", "order", "items", "subtotal", "patient_subtotal", "weeks"}
    assert set(document) >= {"phases", "totals", "currency", "visits", "weeks", "contingencies", "warnings", "disclaimer"}
    assert document["study_instance_uid"] == "1.2.3.4" and document["findings_model"] == "cbct-test@0.1.0"


def test_plan_that_does_not_add_up_is_refused(plan_for):
    document = plan_for(finding("c1", "caries", 16, grade="dentin")).model_dump(mode="json")
    document["totals"]["fee"] += 1
    with pytest.raises(ValueError, match="totals.fee must be the sum of the phase subtotals"):
        TreatmentPlan.model_validate(document)
