"""``odontoscan train``: train a segmentation model from a YAML config (MLflow-tracked).

Import-light: torch, monai and mlflow are imported inside the command. Register with
``app.command()(train)``. Also runnable on its own, e.g. under torchrun::

    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        -m odontoscan.serving.commands.train --config configs/tiny_cbct.yaml
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def train(
    config: Optional[Path] = typer.Option(None, "--config", help="Training config YAML, e.g. configs/cbct_phantom.yaml (optional with --resume)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (ToothFairy2, DENTEX, NIfTI pairs); overrides data.path."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store; default sqlite:///mlflow.db (+ mlartifacts/) here."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a run: its last.pt, or its MLflow run id."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder for best.pt / last.pt (default runs/<name>-<time>)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache of preprocessed phantoms (default ~/.cache/odontoscan/phantoms)."),
) -> None:
    """Train a MONAI segmentation network; prints the MLflow run id and the best checkpoint."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # the CLI process never phones home
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    from odontoscan.training.train import train as run_training

    result = run_training(
        config, data_path=data, tracking_uri=tracking_uri, resume=resume, out=out, cache_dir=cache_dir,
        progress=sys.stderr.isatty(),
    )
    if result.run_id is not None:
        console.print(f"run id: {result.run_id}")
        console.print(f"best checkpoint: {escape(str(result.best_checkpoint))} (val Dice {result.best_metric:.4f}, epoch {result.best_epoch + 1})")


def main() -> None:
    """Run the command alone (``python -m odontoscan.serving.commands.train``), errors as exit 2."""
    from odontoscan.datasets.errors import OdontoscanError

    try:
        typer.run(train)
    except OdontoscanError as exc:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(exc.message)}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
