"""The ``odontoscan`` command line.

Thin entry point: each command parses its options, calls one typed library function
by keyword and prints the result. Heavy imports happen inside the commands so that
``odontoscan --help`` stays fast. Library errors (:class:`OdontoscanError`) become a
one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from odontoscan.datasets.errors import OdontoscanError
from odontoscan.datasets.version import odontoscan_version
from odontoscan.serving.commands import analyze, models, phantom, plan, screen, serve, train

app = typer.Typer(
    name="odontoscan",
    help="Dental CBCT and radiograph analysis: findings, overlays, DICOM SEG/SR, draft plans.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"odontoscan {odontoscan_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version_: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """odontoscan: dental CBCT and radiograph analysis."""


@app.command()
def info(
    path: Path = typer.Argument(..., help="Scan: DICOM folder/zip/file, NIfTI, MHA, NRRD, PNG/JPEG/TIFF."),
    series: Optional[str] = typer.Option(None, "--series", help="Series Instance UID to read when there are several."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
) -> None:
    """Describe a scan: modality, shape, spacing, orientation and the series chosen.

    No patient identifiers are printed.
    """
    from odontoscan.serving.describe import describe_scan
    from odontoscan.datasets import load_scan

    scan = load_scan(path, series_uid=series)
    description = describe_scan(scan)
    if as_json:
        console.print_json(json.dumps(description))
        return
    table = Table(title="Scan", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in description.items():
        if key == "other_series":
            continue
        table.add_row(key.replace("_", " "), escape(str(value)))
    console.print(table)
    others = description["other_series"]
    if others:
        listing = Table(title="Other series in the input (not read; choose one with --series UID)")
        for column in ("series_instance_uid", "modality", "images", "frames", "rows", "columns"):
            listing.add_column(column.replace("_", " "), overflow="fold")
        for other in others:
            listing.add_row(*(escape(str(other[c])) for c in ("series_instance_uid", "modality", "images", "frames", "rows", "columns")))
        console.print(listing)


app.command()(analyze.analyze)
app.command()(analyze.schema)
app.command()(plan.plan)
app.command()(screen.screen)
app.command()(screen.watch)
app.command()(serve.serve)
app.command()(train.train)
app.command()(models.export)
app.command()(models.promote)
app.command()(models.evaluate)
app.add_typer(phantom.app, name="phantom")


def main() -> None:
    """Console-script entry point: run the app, turning odontoscan errors into exit 2."""
    try:
        app()
    except OdontoscanError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(exc.message)}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
