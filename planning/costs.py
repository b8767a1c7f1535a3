"""Who pays what: fees from the schedule, split between insurance and patient.

Lines are priced in treatment order, because the deductible and the annual maximum
are used up in that order: for each line the patient first pays what is left of the
deductible (unless the category is exempt, by default diagnostic and preventive),
the insurer pays its coverage percentage of the rest, rounded half up to the cent and
capped by what is left of the annual maximum, and the patient pays the remainder.
So ``insurance + patient == fee`` holds exactly for every line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from odontoscan.planning.context import Insurance
from odontoscan.planning.fees import FeeSchedule
from odontoscan.planning.schema import CENT, Category

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Shares:
    """One priced line, in the schedule's currency."""

    fee: Decimal
    insurance: Decimal
    patient: Decimal


def share_costs(
    lines: Sequence[tuple[str | None, Category]], fees: FeeSchedule, insurance: Insurance | None
) -> list[Shares]:
    """Price ``lines`` (code, insurance category; code None = no charge) in the given order."""
    deductible_left = insurance.deductible if insurance else ZERO
    maximum_left = insurance.annual_maximum if insurance else None
    shares = []
    for code, category in lines:
        fee = fees.fee(code) if code is not None else ZERO
        pays = ZERO
        if insurance is not None and fee > 0:
            base = fee
            if category not in insurance.deductible_exempt and deductible_left > 0:
                used = min(deductible_left, base)
                base -= used
                deductible_left -= used
            pays = (base * insurance.percent(code, category) / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            if maximum_left is not None:
                pays = min(pays, maximum_left)
                maximum_left -= pays
        shares.append(Shares(fee=fee, insurance=pays, patient=fee - pays))
    return shares


__all__ = ["Shares", "share_costs"]
