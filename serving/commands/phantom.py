"""``odontoscan phantom``: synthetic dental CBCTs and radiographs with exact ground truth."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Synthetic dental CBCTs and radiographs with exact ground truth.", no_args_is_help=True)
console = Console()


class CbctFormat(str, Enum):
    dicom = "dicom"
    nifti = "nifti"
    toothfairy2 = "toothfairy2"


class PanoFormat(str, Enum):
    png = "png"
    dicom = "dicom"
    dentex = "dentex"


class Size(str, Enum):
    full = "full"
    small = "small"


@app.command()
def cbct(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same phantom."),
    fmt: CbctFormat = typer.Option(CbctFormat.dicom, "--format", help="dicom: CT series in OUT/dicom; nifti: OUT/image.nii.gz; toothfairy2: nnU-Net raw layout."),
    size: Size = typer.Option(Size.full, "--size", help="full: about 400x400x300 at 0.2-0.4 mm; small: same anatomy, coarser, for fast tests."),
) -> None:
    """Synthesise a dental CBCT with its label map and ground_truth.json."""
    from odontoscan.datasets.phantom.cbct import write_cbct_phantom

    folder = write_cbct_phantom(seed=seed, out=out, fmt=fmt.value, size=size.value)
    console.print(f"wrote CBCT phantom (seed {seed}) to {escape(str(folder))}")


@app.command()
def pano(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same phantom."),
    fmt: PanoFormat = typer.Option(PanoFormat.png, "--format", help="png: 16-bit PNG + label mask + JSON; dicom: PX DICOM; dentex: DENTEX layout."),
    size: Size = typer.Option(Size.full, "--size", help="Size of the CBCT phantom that is projected."),
) -> None:
    """Synthesise a panoramic radiograph (plus periapical and bitewing crops) with annotations."""
    from odontoscan.datasets.phantom.pano import write_pano_phantom

    folder = write_pano_phantom(seed=seed, out=out, fmt=fmt.value, size=size.value)
    console.print(f"wrote panoramic phantom (seed {seed}) to {escape(str(folder))}")
