"""Fee schedules: what each procedure code costs, in one currency.

Two file formats, both shipped as examples in ``configs/fees/``:

YAML (``example_usd.yaml``)::

    name: Example practice fees (USD)
    currency: USD            # ISO 4217
    fees:
      D0120: 65.00
      D2391: 180.00

CSV (``example_eur.csv``): a header ``code,fee,currency`` (``description`` optional),
one procedure a row, the same currency on every row; lines starting with ``#`` are
comments. The schedule's name is the file name.

Fees are exact decimals with at most two decimal places. A schedule must price every
code the plan rules can plan (:func:`require_fees`); the error names the missing
codes and both files.
"""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from odontoscan.datasets.errors import ConfigError
from odontoscan.planning.context import CODE_PATTERN
from odontoscan.planning.files import Traversable, packaged, read_text, read_yaml_mapping, validate
from odontoscan.planning.rules import PlanRules
from odontoscan.planning.schema import CENT, Money

FEES_DIR = "fees"
DEFAULT_FEES = "example_usd.yaml"
CSV_COLUMNS = ("code", "fee", "currency", "description")


class FeeSchedule(BaseModel):
    """Fees per procedure code. ``source`` names the file in error messages."""

    model_config = ConfigDict(extra="forbid")

    name: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")  # ISO 4217, e.g. USD, EUR
    fees: dict[str, Money]
    source: str = Field(default="<fees>", exclude=True)

    @field_validator("fees")
    @classmethod
    def _valid_fees(cls, fees: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, fee in fees.items():
            if not CODE_PATTERN.match(code):
                raise ValueError(f"'{code}' is not a procedure code (a letter D and four digits, e.g. D2391)")
            if fee < 0:
                raise ValueError(f"fee of {code} must not be negative")
            if fee != fee.quantize(CENT):
                raise ValueError(f"fee of {code} has more than two decimal places")
        return {code: fee.quantize(CENT) for code, fee in fees.items()}

    def fee(self, code: str) -> Decimal:
        """The fee of ``code``; ConfigError naming the code and the file when it has none."""
        try:
            return self.fees[code]
        except KeyError:
            raise ConfigError(f"Fee schedule '{self.source}' has no fee for procedure {code}; add one.") from None


def require_fees(fees: FeeSchedule, rules: PlanRules) -> None:
    """Raise ConfigError unless ``fees`` prices every code ``rules`` can plan."""
    missing = sorted(rules.codes() - set(fees.fees))
    if missing:
        listed = ", ".join(f"{c} ({rules.procedures[c].description})" for c in missing)
        raise ConfigError(
            f"Fee schedule '{fees.source}' has no fee for {listed}, used by the plan rules "
            f"'{rules.source}'; add a fee for each of these codes to the schedule."
        )


def _decimal(text: str) -> Decimal:
    value = Decimal(text.strip())
    if not value.is_finite():
        raise InvalidOperation
    return value


def parse_fee_csv(text: str, source: str) -> FeeSchedule:
    """Parse the CSV format (see the module docstring); errors name ``source`` and the line."""
    lines = ["" if line.lstrip().startswith("#") else line for line in text.splitlines()]
    reader = csv.reader(lines)
    header: list[str] | None = None
    fees: dict[str, Decimal] = {}
    first_line: dict[str, int] = {}
    currencies: set[str] = set()
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if header is None:
            header = [c.lower() for c in cells]
            unknown = [c for c in header if c not in CSV_COLUMNS]
            if unknown:
                raise ConfigError(f"Fee schedule '{source}' line {reader.line_num}: unknown column(s) {', '.join(unknown)}; "
                                  f"the columns are {', '.join(CSV_COLUMNS)} (description optional).")
            missing = [c for c in ("code", "fee", "currency") if c not in header]
            if missing:
                raise ConfigError(f"Fee schedule '{source}' line {reader.line_num}: missing column(s) {', '.join(missing)}.")
            continue
        if len(cells) != len(header):
            raise ConfigError(f"Fee schedule '{source}' line {reader.line_num}: expected {len(header)} values, found {len(cells)}.")
        record = dict(zip(header, cells))
        code = record["code"]
        if code in first_line:
            raise ConfigError(f"Fee schedule '{source}' line {reader.line_num}: code {code} is listed twice (first on line {first_line[code]}).")
        try:
            fees[code] = _decimal(record["fee"])
        except InvalidOperation:
            raise ConfigError(f"Fee schedule '{source}' line {reader.line_num}: fee '{record['fee']}' of {code} is not a number.") from None
        first_line[code] = reader.line_num
        currencies.add(record["currency"])
    if header is None or not fees:
        raise ConfigError(f"Fee schedule '{source}' holds no fees; expected a header code,fee,currency and one row per code.")
    if len(currencies) != 1:
        raise ConfigError(f"Fee schedule '{source}' mixes currencies ({', '.join(sorted(currencies))}); use one per file.")
    document = {"name": Path(source).stem, "currency": currencies.pop(), "fees": fees}
    return validate(FeeSchedule, document, "fee schedule", f"'{source}'").model_copy(update={"source": source})


def _read(file: Path | Traversable, source: str) -> FeeSchedule:
    if file.name.lower().endswith(".csv"):
        return parse_fee_csv(read_text(file, "fee schedule"), source)
    document = read_yaml_mapping(file, "fee schedule")
    return validate(FeeSchedule, document, "fee schedule", f"'{source}'").model_copy(update={"source": source})


def packaged_fee_schedules() -> list[str]:
    """File names of the fee schedules shipped in ``configs/fees/``."""
    folder = packaged(FEES_DIR)
    return sorted(f.name for f in folder.iterdir() if f.name.lower().endswith((".yaml", ".yml", ".csv")))


def load_fees(source: str | Path | None = None) -> FeeSchedule:
    """A fee schedule from a YAML or CSV file, or a shipped one by name.

    ``None`` loads the default (``example_usd.yaml``); a path that does not exist is
    looked up among the shipped schedules, with or without its extension
    (``example_eur``).
    """
    if source is not None and Path(source).exists():
        return _read(Path(source), str(source))
    wanted = DEFAULT_FEES if source is None else str(source)
    shipped = packaged_fee_schedules()
    for name in shipped:
        if wanted in (name, Path(name).stem):
            return _read(packaged(FEES_DIR, name), name)
    raise ConfigError(f"Fee schedule '{wanted}' does not exist; give a YAML or CSV file, or one of the shipped "
                      f"schedules: {', '.join(shipped)}.")


__all__ = ["DEFAULT_FEES", "FeeSchedule", "load_fees", "parse_fee_csv", "packaged_fee_schedules", "require_fees"]
