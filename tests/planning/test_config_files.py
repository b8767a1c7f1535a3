"""Plan rules, fee schedules and patient context files: what loads, and what each bad
file is told (the key, the code, the file, the line)."""

from decimal import Decimal

import pytest
import yaml

from odontoscan.datasets.errors import ConfigError
from odontoscan.datasets.findings_schema import FindingKind
from odontoscan.planning.context import MedicalFlag, load_context
from odontoscan.planning.fees import load_fees, packaged_fee_schedules, parse_fee_csv, require_fees
from odontoscan.planning.files import packaged
from odontoscan.planning.rules import load_rules, parse_rules
from odontoscan.planning.schema import Category


@pytest.fixture(scope="module")
def rules_text():
    return packaged("plan_rules.yaml").read_text(encoding="utf-8")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- rules -------------------------------------------------------------------------------


def test_packaged_rules_cover_every_finding_kind_and_hold_the_thresholds():
    rules = load_rules()
    assert set(rules.findings) == set(FindingKind)
    assert set(rules.medical_flags) == set(MedicalFlag)
    t = rules.thresholds
    assert (t.verify_below_confidence, t.implant_min_bone_height_mm, t.implant_min_bone_width_mm, t.canal_high_risk_below_mm) == (0.6, 10.0, 6.0, 2.0)
    assert rules.variants["root_canal"].codes == {"incisor": "D3310", "canine": "D3310", "premolar": "D3320", "molar": "D3330"}
    assert rules.procedures["D6010"].healing_weeks == 12 and "implant" in [tag.value for tag in rules.procedures["D6010"].tags]
    assert rules.procedures["D2740"].category is Category.MAJOR
    assert all(p.explanation for p in rules.procedures.values())


def test_misspelt_key_names_the_key_and_the_file(tmp_path, rules_text):
    bad = _write(tmp_path, "my_rules.yaml", rules_text.replace("verify_below_confidence:", "verify_below_confidance:"))
    with pytest.raises(ConfigError, match="my_rules.yaml") as error:
        load_rules(bad)
    message = str(error.value)
    assert "thresholds.verify_below_confidance: unknown key" in message
    assert "thresholds.verify_below_confidence: required key is missing" in message


def test_misspelt_condition_in_a_case_names_its_path(tmp_path, rules_text):
    bad = _write(tmp_path, "rules.yaml", rules_text.replace("- when: {grade: [dentin]}", "- when: {grade: [dentin], severty: [high]}"))
    with pytest.raises(ConfigError, match=r"findings\.caries\.cases\.3\.when\.severty: unknown key"):
        load_rules(bad)


def test_broken_references_are_listed_together(rules_text):
    document = yaml.safe_load(rules_text)
    document["options"]["bridge"]["steps"][0]["code"] = "D6751"
    document["missing_tooth"][0]["alternatives"] = ["bridgee"]
    document["findings"]["caries"]["cases"][0]["reason"] = "Decay on {toth}."
    with pytest.raises(ConfigError) as error:
        parse_rules(document, "edited.yaml")
    message = str(error.value)
    assert message.startswith("Invalid plan rules 'edited.yaml':")
    assert "options.bridge.steps.0.code: D6751 is neither a code in 'procedures' nor a variant" in message
    assert "missing_tooth.0.alternatives: unknown option 'bridgee'" in message
    assert "findings.caries.cases.0.reason: unknown placeholder {toth}" in message


def test_rules_must_cover_every_finding_kind(rules_text):
    document = yaml.safe_load(rules_text)
    del document["findings"]["sinus_proximity"]
    with pytest.raises(ConfigError, match="findings: missing rules for sinus_proximity"):
        parse_rules(document, "edited.yaml")


def test_rules_file_that_is_not_yaml(tmp_path):
    bad = _write(tmp_path, "broken.yaml", "version: 1\nthresholds: [unclosed\n")
    with pytest.raises(ConfigError, match=r"plan rules '.*broken.yaml' is not valid YAML at line \d+, column \d+"):
        load_rules(bad)


# --- fees --------------------------------------------------------------------------------


def test_shipped_fee_schedules_price_every_rule_code():
    rules = load_rules()
    assert packaged_fee_schedules() == ["example_eur.csv", "example_usd.yaml"]
    usd, eur = load_fees(), load_fees("example_eur")
    assert (usd.currency, eur.currency) == ("USD", "EUR")
    assert usd.fee("D2391") == Decimal("180.00") and eur.fee("D2391") == Decimal("160.00")
    for schedule in (usd, eur):
        require_fees(schedule, rules)  # raises if a code is missing


def test_fee_schedule_missing_a_code_names_the_code_and_both_files(tmp_path):
    usd = load_fees()
    fees = {code: str(fee) for code, fee in usd.fees.items() if code != "D6010"}
    path = _write(tmp_path, "practice.yaml", yaml.safe_dump({"name": "Practice", "currency": "USD", "fees": fees}))
    with pytest.raises(ConfigError) as error:
        require_fees(load_fees(path), load_rules())
    message = str(error.value)
    assert "D6010 (Endosteal implant placement (surgical))" in message
    assert "practice.yaml" in message and "plan_rules.yaml" in message


def test_yaml_fee_schedule_checks(tmp_path):
    def fees_file(**fees):
        return _write(tmp_path, "fees.yaml", yaml.safe_dump({"name": "x", "currency": "USD", "fees": fees}))

    with pytest.raises(ConfigError, match=r"fees: fee of D0120 has more than two decimal places"):
        load_fees(fees_file(D0120="65.005"))
    with pytest.raises(ConfigError, match="fees: fee of D0120 must not be negative"):
        load_fees(fees_file(D0120=-1))
    with pytest.raises(ConfigError, match="fees: 'X0120' is not a procedure code"):
        load_fees(fees_file(X0120=10))
    bad_currency = _write(tmp_path, "cur.yaml", yaml.safe_dump({"name": "x", "currency": "usd", "fees": {"D0120": 1}}))
    with pytest.raises(ConfigError, match="currency: String should match pattern"):
        load_fees(bad_currency)


def test_csv_fee_schedule_parses_exact_fees_and_skips_comments():
    schedule = parse_fee_csv("# comment\ncode,fee,currency\nD0120,60.10,EUR\nD1110, 99.9 ,EUR\n", "mine.csv")
    assert schedule.name == "mine" and schedule.currency == "EUR"
    assert schedule.fees == {"D0120": Decimal("60.10"), "D1110": Decimal("99.90")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,fee,currency\nD0120,sixty,EUR\n", "line 2: fee 'sixty' of D0120 is not a number"),
        ("code,fee,currency\nD0120,60,EUR\n# note\nD0120,61,EUR\n", "line 4: code D0120 is listed twice (first on line 2)"),
        ("code,fee,currency\nD0120,60,EUR\nD1110,90,USD\n", "mixes currencies (EUR, USD)"),
        ("code,fees,currency\nD0120,60,EUR\n", "line 1: unknown column(s) fees"),
        ("code,fee\nD0120,60\n", "line 1: missing column(s) currency"),
        ("code,fee,currency\nD0120,60\n", "line 2: expected 3 values, found 2"),
        ("# only a comment\n", "holds no fees"),
    ],
)
def test_csv_fee_schedule_errors_name_the_file_and_line(text, message):
    with pytest.raises(ConfigError) as error:
        parse_fee_csv(text, "mine.csv")
    assert "Fee schedule 'mine.csv'" in str(error.value)
    assert message in str(error.value)


def test_unknown_fee_schedule_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="'nowhere' does not exist; .* example_eur.csv, example_usd.yaml"):
        load_fees("nowhere")


# --- patient context ---------------------------------------------------------------------------


def test_context_file_loads(tmp_path):
    path = _write(tmp_path, "ctx.yaml", (
        "age: 54\nmedical_flags: [anticoagulants, diabetes]\npreferences: {avoid_implants: true}\n"
        "insurance:\n  coverage: {basic: 80, major: 50, D6010: 0}\n  annual_maximum: 1500\n  deductible: 50\n"
    ))
    context = load_context(path)
    assert context.age == 54 and context.medical_flags == [MedicalFlag.ANTICOAGULANTS, MedicalFlag.DIABETES]
    assert context.preferences.avoid_implants
    insurance = context.insurance
    assert insurance.annual_maximum == Decimal("1500") and insurance.deductible == Decimal("50")
    assert insurance.percent("D6010", Category.MAJOR) == 0 and insurance.percent("D6065", Category.MAJOR) == 50
    assert insurance.percent("D0120", Category.DIAGNOSTIC) == 0  # not listed: not covered


def test_context_rejects_identifiers_and_misspelt_keys_without_echoing_values(tmp_path):
    path = _write(tmp_path, "Jane_Doe.yaml", "name: Jane Doe\nmedical_flag: [diabetes]\nage: 40\n")
    with pytest.raises(ConfigError) as error:
        load_context(path)
    message = str(error.value)
    assert "name: unknown key" in message and "medical_flag: unknown key" in message
    assert "Jane" not in message and "Doe" not in message


def test_context_checks_flags_and_coverage(tmp_path):
    with pytest.raises(ConfigError, match=r"medical_flags\.0: Input should be 'anticoagulants'"):
        load_context(_write(tmp_path, "a.yaml", "medical_flags: [anticoagulant]\n"))
    with pytest.raises(ConfigError, match="insurance.coverage: 'basik' is neither an insurance category"):
        load_context(_write(tmp_path, "b.yaml", "insurance: {coverage: {basik: 80}}\n"))
    with pytest.raises(ConfigError, match="coverage of 'major' must be a percentage from 0 to 100"):
        load_context(_write(tmp_path, "c.yaml", "insurance: {coverage: {major: 150}}\n"))
