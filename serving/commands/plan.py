"""``odontoscan plan``: a findings.json (plus patient context and fees) to a draft treatment plan."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


def plan(
    findings_path: Path = typer.Argument(..., metavar="FINDINGS", help="findings.json written by `odontoscan analyze`."),
    context: Optional[Path] = typer.Option(None, "--context", help="Patient context YAML: age, medical_flags, preferences, insurance."),
    fees: Optional[str] = typer.Option(None, "--fees", help="Fee schedule: a YAML or CSV file, or a shipped one (example_usd, example_eur)."),
    rules: Optional[Path] = typer.Option(None, "--rules", help="Plan rules YAML (default: the shipped plan_rules.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write plan.json and plan.html into."),
    as_json: bool = typer.Option(False, "--json", help="Print plan.json only."),
) -> None:
    """Draft a treatment plan from findings, for a dentist to confirm: phases, costs, insurance share."""
    from odontoscan.datasets.findings_schema import load_findings
    from odontoscan.planning import draft_plan, load_context, write_plan

    findings = load_findings(findings_path)
    patient = load_context(context) if context is not None else None
    result = draft_plan(findings, patient, rules=rules, fees=fees)
    written = write_plan(result, out) if out is not None else None
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    table = Table(title=f"Draft treatment plan ({escape(result.currency)})")
    for column in ("phase", "items", "visits", "weeks", "fee", "insurance", "patient"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase in result.phases:
        table.add_row(escape(phase.title), str(len(phase.items)), str(phase.visits), f"{phase.weeks:g}",
                      f"{phase.subtotal:,.2f}", f"{phase.insurance_subtotal:,.2f}", f"{phase.patient_subtotal:,.2f}")
    table.add_row("[bold]total[/bold]", str(len(result.items())), str(result.visits), f"{result.weeks:g}",
                  f"{result.totals.fee:,.2f}", f"{result.totals.insurance:,.2f}", f"{result.totals.patient:,.2f}")
    console.print(table)
    verify = [i for i in result.items() if i.verify_clinically]
    if verify:
        console.print(f"verify clinically: {escape(', '.join(f for i in verify for f in i.finding_ids) or 'see plan')}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    console.print(f"[bold]{escape(result.disclaimer)}[/bold]")
    if written is not None:
        console.print(f"wrote {escape(str(written[0]))} and {escape(str(written[1]))}")


__all__ = ["plan"]
