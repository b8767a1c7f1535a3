"""``odontoscan phantom``: synthetic dental CBCTs and radiographs with exact ground truth."""

from __future__ import annotations

import typer

app = typer.Typer(help="Synthetic dental CBCTs and radiographs with exact ground truth.", no_args_is_help=True)
