"""``odontoscan screen``: batch pre-screening of a folder, zip or list of studies."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console()


def screen(
    source: Path = typer.Argument(..., metavar="INPUT", help="Folder of studies, zip of studies, or a list file (one path per line)."),
    out: Path = typer.Option(..., "--out", help="Output folder: studies/<study>/ results, triage.csv/.json/.html."),
    workers: int = typer.Option(1, "--workers", help="Parallel worker processes (each holds one analysis in memory, ~2 GB for a full CBCT)."),
    cbct_model: str = typer.Option("cbct-phantom", "--cbct-model", help="CBCT model: directory, shipped name or models:/NAME@alias."),
    radiograph_model: str = typer.Option("pano-phantom", "--radiograph-model", help="Radiograph model: directory, shipped name or models:/NAME@alias."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Render overlays and report.html per study."),
    top: int = typer.Option(20, "--top", help="How many ranked studies to print."),
) -> None:
    """Analyse many studies and rank them by urgency; re-running skips finished studies."""
    from odontoscan.serving.screen import screen as run

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("screening", total=None, rate="")
        started = progress.get_time()

        def advance(key: str, done: int, total: int) -> None:
            elapsed = max(progress.get_time() - started, 1e-6)
            progress.update(task, completed=done, total=total, rate=f"{done / elapsed * 60:.1f} studies/min")

        summary = run(source, out, workers=workers, cbct_model=cbct_model, radiograph_model=radiograph_model,
                      overlays=overlays, on_progress=advance)
    table = Table(title=f"Triage: {summary.total} studies ({summary.analysed} analysed now, {summary.skipped} already done, {summary.failed} failed)")
    for column in ("rank", "study", "status", "urgency", "findings", "top findings / error"):
        table.add_column(column, overflow="fold")
    for row in summary.rows[:top]:
        detail = row.top_findings if row.status == "done" else f"{row.error_code}: {row.error}"
        table.add_row(str(row.rank), escape(row.study), row.status, "" if row.urgency is None else f"{row.urgency:.2f}", str(row.findings), escape(detail))
    console.print(table)
    console.print(f"wrote {escape(str(out / 'triage.html'))} in {summary.seconds:.1f} s")


__all__ = ["screen"]
