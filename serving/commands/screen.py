"""``odontoscan screen``: batch pre-screening of a folder, zip or list of studies, or of a PACS."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console()


def screen(
    source: Optional[Path] = typer.Argument(None, metavar="[INPUT]", help="Folder of studies, zip of studies, or a list file (one path per line); omit with --pacs."),
    out: Path = typer.Option(..., "--out", help="Output folder: studies/<study>/ results, triage.csv/.json/.html."),
    pacs: Optional[str] = typer.Option(None, "--pacs", help="DICOMweb root of a PACS to screen instead of INPUT (e.g. http://127.0.0.1:8042/dicom-web). Credentials: ODONTOSCAN_PACS_USER/_PASSWORD or _TOKEN, or --pacs-config."),
    pacs_config: Optional[Path] = typer.Option(None, "--pacs-config", help="YAML/JSON file with the PACS url and auth (see README, 'PACS (Orthanc)')."),
    study: list[str] = typer.Option([], "--study", help="Study Instance UID to screen (repeatable); default: every study found by --since/--modality."),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"], help="Only studies dated on or after YYYY-MM-DD."),
    modality: str = typer.Option("CT", "--modality", help="Modality of the studies and series to screen in the PACS."),
    push: bool = typer.Option(False, "--push", help="Store the DICOM SEG and SR of each study back into the PACS (STOW-RS)."),
    workers: int = typer.Option(1, "--workers", help="Parallel worker processes (each holds one analysis in memory, ~2 GB for a full CBCT)."),
    cbct_model: str = typer.Option("cbct-phantom", "--cbct-model", help="CBCT model: directory, shipped name or models:/NAME@alias."),
    radiograph_model: str = typer.Option("pano-phantom", "--radiograph-model", help="Radiograph model: directory, shipped name or models:/NAME@alias."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Render overlays and report.html per study."),
    top: int = typer.Option(20, "--top", help="How many ranked studies to print."),
) -> None:
    """Analyse many studies and rank them by urgency; re-running skips finished studies."""
    from odontoscan.serving.screen import screen as run

    config = None
    if pacs or pacs_config:
        from odontoscan.serving.pacs import load_pacs_config

        config = load_pacs_config(pacs, pacs_config)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("screening", total=None, rate="")
        started = progress.get_time()

        def advance(key: str, done: int, total: int) -> None:
            elapsed = max(progress.get_time() - started, 1e-6)
            progress.update(task, completed=done, total=total, rate=f"{done / elapsed * 60:.1f} studies/min")

        summary = run(source, out, pacs=config, study_uids=study, since=since.date() if since else None, modality=modality,
                      push=push, workers=workers, cbct_model=cbct_model, radiograph_model=radiograph_model,
                      overlays=overlays, on_progress=advance)
    table = Table(title=f"Triage: {summary.total} studies ({summary.analysed} analysed now, {summary.skipped} already done, {summary.failed} failed)")
    for column in ("rank", "study", "status", "urgency", "findings", "top findings / error"):
        table.add_column(column, overflow="fold")
    for row in summary.rows[:top]:
        detail = row.top_findings if row.status == "done" else f"{row.error_code}: {row.error}"
        table.add_row(str(row.rank), escape(row.study), row.status, "" if row.urgency is None else f"{row.urgency:.2f}", str(row.findings), escape(detail))
    console.print(table)
    console.print(f"wrote {escape(str(out / 'triage.html'))} in {summary.seconds:.1f} s")




def watch(
    pacs: Optional[str] = typer.Option(None, "--pacs", help="DICOMweb root of the PACS to watch (credentials as for screen --pacs)."),
    pacs_config: Optional[Path] = typer.Option(None, "--pacs-config", help="YAML/JSON file with the PACS url and auth."),
    out: Path = typer.Option(..., "--out", help="Output folder, as for screen; what is done there is never redone."),
    interval: float = typer.Option(60.0, "--interval", help="Seconds between two looks at the PACS."),
    once: bool = typer.Option(False, "--once", help="Look once, analyse what is new, and exit."),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"], help="Only studies dated on or after YYYY-MM-DD."),
    modality: str = typer.Option("CT", "--modality", help="Modality of the studies and series to analyse."),
    push: bool = typer.Option(False, "--push", help="Store the DICOM SEG and SR of each study back into the PACS."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Render overlays and report.html per study."),
) -> None:
    """Watch a PACS: analyse each new study once it is complete (Orthanc: stable; else QIDO poll), remembering what is done in OUT."""
    import time

    from odontoscan.serving.pacs import load_pacs_config
    from odontoscan.serving.screen import watch_once

    config = load_pacs_config(pacs, pacs_config)
    while True:
        summary = watch_once(out, config, since=since.date() if since else None, modality=modality, push=push, overlays=overlays)
        console.print(f"{summary.total} studies in the PACS: {summary.analysed} analysed now ({summary.failed} failed), {summary.skipped} already done")
        if once:
            return
        time.sleep(interval)


__all__ = ["screen", "watch"]
