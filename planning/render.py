"""The draft treatment plan as files: printable HTML (``plan.html``) and ``plan.json``.

:func:`render_plan_html` gives a whole self-contained page (inline CSS, print
styles, no scripts, no external resources); :func:`render_plan_section` gives the
same content as a fragment, which the findings report embeds. Every piece of text is
HTML-escaped. The disclaimer (a draft for a dentist to confirm) comes first.
:func:`write_plan` writes both files atomically.
"""

from __future__ import annotations

import html
from decimal import Decimal
from pathlib import Path

from odontoscan.planning.schema import PlanItem, PlanPhase, TreatmentPlan
from odontoscan.datasets.writers import atomic_file

_CSS = """
.plan { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; max-width: 1100px; }
.plan h1 { margin-bottom: 4px; }
.plan h2 { margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.plan .disclaimer { background: #fff4d6; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 12px 0; font-weight: 600; }
.plan .warnings { background: #fdecea; border-left: 4px solid #c62828; padding: 8px 12px 8px 28px; }
.plan table { border-collapse: collapse; width: 100%; }
.plan .facts { width: auto; } .plan .facts td { padding: 2px 16px 2px 0; } .plan .facts td:first-child { color: #666; }
.plan .items th, .plan .items td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; font-size: 14px; vertical-align: top; }
.plan .items td.money, .plan .items th.money { text-align: right; white-space: nowrap; }
.plan .items tr.detail td { font-size: 13px; color: #333; border-bottom: 2px solid #bbb; padding-bottom: 8px; }
.plan .items tr.total td { font-weight: 600; border-top: 2px solid #333; }
.plan .tag { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; margin-left: 4px; }
.plan .verify { background: #ffe08a; } .plan .high { background: #f5a3a3; }
.plan ul { margin: 2px 0 4px 0; padding-left: 20px; }
.plan .muted { color: #666; }
.plan footer { margin-top: 28px; font-size: 12px; color: #777; }
@media print {
  .plan { max-width: none; font-size: 12px; }
  .plan h2 { break-after: avoid; }
  .plan tr { break-inside: avoid; }
}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:,.2f} {_e(currency)}"


def _list(title: str, entries: list[str]) -> str:
    if not entries:
        return ""
    return f"<div><strong>{_e(title)}:</strong><ul>" + "".join(f"<li>{_e(x)}</li>" for x in entries) + "</ul></div>"


def _site(item: PlanItem) -> str:
    if item.fdi is not None:
        return str(item.fdi)
    if item.teeth:
        return ", ".join(map(str, item.teeth))
    return "mouth"


def _item_rows(item: PlanItem, currency: str) -> str:
    tags = ""
    if item.verify_clinically:
        tags += '<span class="tag verify">verify clinically</span>'
    if item.risk_level.value == "high":
        tags += '<span class="tag high">higher risk</span>'
    row = (
        f'<tr id="{_e(item.id)}"><td>{_e(item.id)}</td><td>{_e(item.code or "-")}</td><td>{_e(_site(item))}</td>'
        f"<td>{_e(item.description)}{tags}</td><td class=\"money\">{_money(item.fee, currency)}</td>"
        f'<td class="money">{_money(item.insurance_pays, currency)}</td><td class="money">{_money(item.patient_share, currency)}</td>'
        f"<td>{_e(', '.join(item.finding_ids) or '-')}</td></tr>"
    )
    alternatives = [f"{a.label} ({a.code}, {a.fee:,.2f} {currency})" + (f" - {a.note}" if a.note else "") for a in item.alternatives]
    when = f"week {item.start_week:g}, {item.visits} visit(s)" + (f", then {item.healing_weeks:g} weeks of healing" if item.healing_weeks else "")
    detail = (
        f"<p>{_e(item.explanation)}</p><p class=\"muted\">{_e(when)}"
        + (f"; after {_e(', '.join(item.depends_on))}" if item.depends_on else "")
        + "</p>"
        + _list("Warnings", item.warnings)
        + _list("Risks", item.risks)
        + _list("Aftercare", item.aftercare)
        + _list("Alternatives", alternatives)
    )
    return row + f'<tr class="detail"><td></td><td colspan="7">{detail}</td></tr>'


def _phase(phase: PlanPhase, currency: str) -> str:
    head = (
        "<tr><th>Item</th><th>Code</th><th>Tooth</th><th>Procedure</th><th class=\"money\">Fee</th>"
        "<th class=\"money\">Insurance</th><th class=\"money\">Patient</th><th>Findings</th></tr>"
    )
    rows = "".join(_item_rows(item, currency) for item in phase.items)
    total = (
        f'<tr class="total"><td colspan="4">Phase subtotal ({phase.visits} visit(s), {phase.weeks:g} weeks)</td>'
        f'<td class="money">{_money(phase.subtotal, currency)}</td><td class="money">{_money(phase.insurance_subtotal, currency)}</td>'
        f'<td class="money">{_money(phase.patient_subtotal, currency)}</td><td></td></tr>'
    )
    return (
        f"<h2>{phase.order}. {_e(phase.title)}</h2><p class=\"muted\">{_e(phase.purpose)}</p>"
        f'<table class="items">{head}{rows}{total}</table>'
    )


def render_plan_section(plan: TreatmentPlan, *, styles: bool = True) -> str:
    """The plan as an HTML fragment, every text escaped; with ``styles`` it carries its
    own ``<style>`` element, so it can be embedded in another page (the findings report)."""
    c = plan.currency
    facts = [
        ("Status", "DRAFT - to be confirmed by a dentist"),
        ("Total fee", _money(plan.totals.fee, c)),
        ("Insurance (estimate)", _money(plan.totals.insurance, c)),
        ("Patient share (estimate)", _money(plan.totals.patient, c)),
        ("Appointments", str(plan.visits)),
        ("Duration", f"about {plan.weeks:g} weeks"),
        ("Fee schedule", _e(plan.fee_schedule)),
    ]
    parts = [
        f"<style>{_CSS}</style>" if styles else "",
        '<div class="plan">',
        f'<div class="disclaimer">{_e(plan.disclaimer)}</div>',
        '<table class="facts">' + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in facts) + "</table>",
    ]
    if plan.warnings:
        parts.append('<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in plan.warnings) + "</ul>")
    parts += [_phase(phase, c) for phase in plan.phases]
    if plan.contingencies:
        rows = "".join(
            f"<li><strong>{_e(x.condition)}:</strong> {_e(x.action)}"
            + (f" <span class=\"muted\">({_e(', '.join(x.item_ids))})</span>" if x.item_ids else "")
            + (_list("Options", [f"{a.label} ({a.code}, {a.fee:,.2f} {c})" for a in x.alternatives]))
            + "</li>"
            for x in plan.contingencies
        )
        parts.append(f"<h2>If things do not go as planned</h2><ul>{rows}</ul>")
    if plan.no_treatment:
        rows = "".join(
            f"<tr><td>{_e(n.finding_id)}</td><td>{_e(n.fdi if n.fdi is not None else '-')}</td><td>{_e(n.kind.replace('_', ' '))}</td><td>{_e(n.reason)}</td></tr>"
            for n in plan.no_treatment
        )
        parts.append(
            "<h2>Findings without treatment</h2><table class=\"items\"><tr><th>Finding</th><th>Tooth</th><th>Kind</th><th>Why</th></tr>"
            f"{rows}</table>"
        )
    source = f"findings from {_e(plan.findings_model)}" if plan.findings_model else "findings"
    parts.append(
        f"<footer>Draft generated by odontoscan from {source}; rules version {plan.rules_version}, "
        f"plan schema {_e(plan.schema_version)}. Fees are estimates in {_e(c)}; insurance shares are estimates.</footer>"
    )
    parts.append("</div>")
    return "\n".join(parts)


def render_plan_html(plan: TreatmentPlan, title: str = "Draft treatment plan") -> str:
    """A whole printable, self-contained HTML page of the plan."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body class=\"plan\">\n<h1>{_e(title)}</h1>\n"
        f"{render_plan_section(plan, styles=False)}\n</body>\n</html>\n"
    )


PLAN_JSON = "plan.json"
PLAN_HTML = "plan.html"


def write_plan(plan: TreatmentPlan, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``out_dir/plan.json`` and ``out_dir/plan.html``; return their paths.

    Both are rendered into temporary files in ``out_dir`` first and then moved over
    the old files with ``os.replace``, so a failure leaves the old plan untouched and
    a reader never sees a half-written file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_json, plan_html = plan.model_dump_json(indent=2) + "\n", render_plan_html(plan)
    with atomic_file(out_dir / PLAN_JSON) as json_file, atomic_file(out_dir / PLAN_HTML) as html_file:
        json_file.write(plan_json)
        html_file.write(plan_html)
    return out_dir / PLAN_JSON, out_dir / PLAN_HTML


__all__ = ["render_plan_html", "render_plan_section", "write_plan", "PLAN_JSON", "PLAN_HTML"]
