"""``odontoscan export``, ``promote`` and ``evaluate``: ship, promote and score models.

Typer command functions; the CLI registers them with ``app.command()(export)`` etc.
Heavy imports (torch, mlflow, onnxruntime) happen inside each command so that
``odontoscan --help`` stays fast. Library errors are OdontoscanError subclasses,
which the CLI turns into exit status 2.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.markup import escape

from odontoscan.datasets.errors import ConfigError

if TYPE_CHECKING:
    from odontoscan.training.evaluate import EvaluationReport

console = Console()


class Size(str, Enum):
    small = "small"
    full = "full"


class DatasetSource(str, Enum):
    toothfairy2 = "toothfairy2"
    dentex = "dentex"
    nifti_pairs = "nifti_pairs"


def export(
    out: Path = typer.Option(..., "--out", help="Model directory to write (model.onnx, model.json, MODEL_CARD.md)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name, also the MLflow registered-model name (e.g. cbct-phantom); with --model: default its name."),
    version: Optional[str] = typer.Option(None, "--version", help="Model version written into model.json (e.g. 0.1.0); with --model: default its version."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint file written by training."),
    run: Optional[str] = typer.Option(None, "--run", help="MLflow run id whose best checkpoint to export (instead of --checkpoint)."),
    model: Optional[Path] = typer.Option(None, "--model", help="An exported coarse CBCT model to pair with --refiner (instead of --checkpoint; its graph is kept as it is)."),
    quantize: bool = typer.Option(False, "--quantize", help="Also write an int8 model when it agrees with fp32 (Dice >= 0.95)."),
    register: bool = typer.Option(True, "--register/--no-register", help="Log and register the model in MLflow."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)."),
    refiner: Optional[Path] = typer.Option(None, "--refiner", help="Exported fine model (trained with labels.refines) to store with this CBCT model as its coarse-to-fine pair."),
    second_refiner: Optional[Path] = typer.Option(None, "--second-refiner", help="With --model: another exported fine model, trained alike, whose periapical lesions join the refiner's (a lesion either sees is kept)."),
) -> None:
    """Export a trained checkpoint to ONNX, check parity with PyTorch, register it in MLflow;
    or (--model with --refiner) pair an exported coarse model with a retrained fine one."""
    from odontoscan.datasets.errors import ConfigError
    from odontoscan.training.export import export_model, pair_model

    if sum(x is not None for x in (checkpoint, run, model)) != 1:
        raise ConfigError("Give exactly one of --checkpoint FILE, --run RUN_ID or --model DIR.")
    if model is not None:
        if refiner is None:
            raise ConfigError("--model DIR re-exports a coarse model with a new refiner; give --refiner FINE_MODEL_DIR.")
        if quantize:
            raise ConfigError("--quantize needs the checkpoint (--checkpoint or --run); --model keeps the model's own int8 file if it has one.")
        paired = pair_model(
            model, refiner, out, second_refiner=second_refiner, name=name, version=version, register=register, tracking_uri=tracking_uri
        )
        second = f", second opinion on lesions {escape(str(second_refiner))}" if second_refiner is not None else ""
        console.print(f"wrote {escape(paired.metadata.model_key)} to {escape(str(paired.out_dir))} (refiner {escape(str(refiner))}{second})")
        console.print("its card's held-out figures were measured with the previous refiner: run `odontoscan evaluate --model` on it")
        if paired.registered_version is not None:
            console.print(f"registered as models:/{escape(paired.metadata.name)}/{paired.registered_version} (run {paired.mlflow_run_id})")
        return
    if second_refiner is not None:
        raise ConfigError("--second-refiner joins a pair made with --model DIR --refiner FINE_MODEL_DIR.")
    if name is None or version is None:
        raise ConfigError("Exporting a checkpoint needs --name and --version.")
    result = export_model(
        checkpoint, out, name=name, version=version, run_id=run, tracking_uri=tracking_uri, quantize=quantize, register=register,
        refiner=refiner,
    )
    p = result.parity
    console.print(f"wrote {escape(result.metadata.model_key)} to {escape(str(result.out_dir))}")
    console.print(f"parity with PyTorch: max |logit diff| {p.max_abs_diff:.2e} (limit {p.limit:.2e}), argmax Dice agreement {p.dice_agreement:.4f}")
    if result.int8 is not None:
        console.print(f"int8: {'kept' if result.int8.kept else 'dropped'} ({escape(result.int8.reason)})")
    if result.registered_version is not None:
        console.print(f"registered as models:/{escape(name)}/{result.registered_version} (run {result.mlflow_run_id})")


def promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Registered model version to promote."),
    alias: str = typer.Option("champion", "--alias", help="Registry alias that serving follows (models:/NAME@alias)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)."),
) -> None:
    """Point a registry alias (default: champion) at a model version."""
    from odontoscan.training.mlflow_models import promote as promote_version

    promote_version(name, version, alias=alias, tracking_uri=tracking_uri)
    console.print(f"models:/{escape(name)}@{escape(alias)} -> version {escape(version)}")


def evaluate(
    pred: Optional[Path] = typer.Argument(None, help="Analysis output folder (or a folder of them) to compare with GT instead of scoring a model."),
    gt: Optional[Path] = typer.Argument(None, help="Ground truth: a phantom folder with ground_truth.json (or a folder of them)."),
    out: Path = typer.Option(..., "--out", help="Folder for report.json and report.md."),
    model: str = typer.Option("cbct-phantom", "--model", help="Model directory, shipped model name or models:/NAME@alias."),
    phantom_seeds: str = typer.Option("1000-1019", "--phantom-seeds", help="Held-out phantom seeds, e.g. 1000-1019 (never the training seeds)."),
    size: Size = typer.Option(Size.small, "--size", help="Phantom size: small (fast) or full."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on a dataset folder instead of phantoms (needs --source)."),
    source: Optional[DatasetSource] = typer.Option(None, "--source", help="Layout of --data: toothfairy2, dentex or nifti_pairs."),
    split: str = typer.Option("val", "--split", help="Which split of --data: val (as training split it), train or all."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads (default: $ODONTOSCAN_ORT_THREADS or all usable cores)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI, for models:/ names."),
) -> None:
    """Score a model on held-out phantoms (of the model's task) or a dataset split: per-class
    Dice and HD95 (mm), and findings metrics where ground truth has them. With PRED GT:
    compare analysis outputs with ground truth instead."""
    from odontoscan.models.metadata import read_model_dir
    from odontoscan.models.registry import resolve
    from odontoscan.training.evaluate import dataset_cases, evaluate_model, evaluate_outputs, parse_seeds, phantom_cases

    if pred is not None:
        if gt is None:
            raise ConfigError("Comparing outputs needs two folders: odontoscan evaluate PRED_DIR GT_DIR --out DIR.")
        report = evaluate_outputs(pred, gt, out)
        _print_report(report, out)
        return

    model_dir = resolve(model, tracking_uri=tracking_uri)
    task = read_model_dir(model_dir).metadata.task
    if data is not None:
        if source is None:
            raise ConfigError("--data needs --source (toothfairy2, dentex or nifti_pairs) to say how the folder is laid out.")
        if split not in ("val", "train", "all"):
            raise ConfigError(f"--split must be val, train or all, got '{split}'.")
        cases, described = dataset_cases(source.value, data, split), f"{source.value} dataset, {split} split"
    else:
        cases = phantom_cases(parse_seeds(phantom_seeds), size.value, task)
        kind = "CBCT" if task == "cbct" else "panoramic"
        described = f"{kind} phantoms seeds {phantom_seeds}, size {size.value}"
    report = evaluate_model(model_dir, cases, out, data=described, threads=threads)
    _print_report(report, out)


def _print_report(report: "EvaluationReport", out: Path) -> None:
    groups = ", ".join(f"{g} {v:.3f}" for g, v in report.groups.items() if v is not None)
    if report.cases:
        console.print(f"{escape(report.model)} on {len(report.cases)} cases: mean Dice {report.metrics.get('dice_mean', float('nan')):.3f} ({groups})")
    if report.findings:
        headline = ("tooth_status_accuracy", "missing_f1", "caries_sensitivity", "caries_precision",
                    "periapical_lesion_sensitivity", "periapical_lesion_precision", "canal_proximity.distance_mm_mae")
        shown = ", ".join(f"{k} {report.findings[k]:.3f}" for k in headline if k in report.findings)
        console.print(f"findings: {shown}")
    console.print(f"wrote {escape(str(out / 'report.md'))}")


__all__ = ["export", "promote", "evaluate"]
