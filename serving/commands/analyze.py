"""``odontoscan analyze`` and ``odontoscan schema``: one scan to findings and outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from odontoscan.datasets.findings_schema import Findings, ToothStatus
from odontoscan.datasets.scan import Modality

console = Console()
err_console = Console(stderr=True)


def analyze(
    scan_path: Path = typer.Argument(..., metavar="SCAN", help="DICOM folder/zip/file, NIfTI, MHA, NRRD, PNG/JPEG/TIFF."),
    out: Path = typer.Option(..., "--out", help="Output folder (findings.json, labels.nii.gz, overlays/, report.html)."),
    modality: Optional[Modality] = typer.Option(None, "--modality", help="Force the modality (CT for volumes; PX, DX, IO, CR for radiographs)."),
    series: Optional[str] = typer.Option(None, "--series", help="Series Instance UID to read when the input holds several."),
    pixel_spacing: Optional[float] = typer.Option(None, "--pixel-spacing", help="Pixel size (mm) of a radiograph whose file does not say."),
    cbct_model: str = typer.Option("cbct-phantom", "--cbct-model", help="CBCT model: directory, shipped name or models:/NAME@alias."),
    radiograph_model: str = typer.Option("pano-phantom", "--radiograph-model", help="Radiograph model: directory, shipped name or models:/NAME@alias."),
    dicom_out: bool = typer.Option(False, "--dicom-out", help="Also write seg.dcm (DICOM SEG) and sr.dcm (TID 1500 SR); needs a DICOM input."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Render overlay PNGs."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html."),
    as_json: bool = typer.Option(False, "--json", help="Print findings.json only (progress goes to stderr)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads (default: $ODONTOSCAN_ORT_THREADS or all usable cores)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI, for models:/ names."),
) -> None:
    """Analyse one scan: tooth chart, findings and measurements, with overlays and a report."""
    from odontoscan.datasets import load_scan
    from odontoscan.models.pipeline import Analyzer
    from odontoscan.serving.outputs.write import write_outputs

    progress = err_console if as_json else console
    analyzer = Analyzer(cbct_model, radiograph_model, threads=threads, tracking_uri=tracking_uri)
    with progress.status("loading the scan") as status:
        started = time.perf_counter()
        scan = load_scan(scan_path, series_uid=series, modality=modality, pixel_spacing_mm=pixel_spacing)
        load_s = time.perf_counter() - started
        result = analyzer.analyze(scan, on_stage=lambda stage: status.update(f"{stage} ({scan.modality.value} {'x'.join(map(str, scan.shape))})"))
        result.record("load", load_s)
        status.update("writing outputs")
        write_outputs(result, out, source=scan_path, overlays=overlays, report=report, dicom=dicom_out)
    if as_json:
        print(result.findings.model_dump_json(indent=2))
        return
    print_summary(result.findings, out)


def schema() -> None:
    """Print the JSON Schema of findings.json."""
    print(json.dumps(Findings.model_json_schema(), indent=2))


def print_summary(findings: Findings, out: Path) -> None:
    """Tooth chart counts, the findings table and the stage timings."""
    counts = {status: sum(t.status is status for t in findings.teeth) for status in ToothStatus}
    chart = ", ".join(f"{n} {status.value.replace('_', ' ')}" for status, n in counts.items() if n)
    console.print(f"[bold]{escape(findings.scan.modality)}[/bold] {'x'.join(map(str, findings.scan.shape))} with "
                  f"{escape(findings.model.name)}@{escape(findings.model.version)}: {chart}")
    missing = [str(t.fdi) for t in findings.teeth if t.status is ToothStatus.MISSING]
    if missing:
        console.print(f"missing teeth: {', '.join(missing)}")
    table = Table(title=f"{len(findings.findings)} findings")
    for column in ("id", "tooth", "kind", "severity", "confidence", "measurements"):
        table.add_column(column, overflow="fold")
    for f in findings.findings:
        measures = ", ".join(f"{k} {m.value:g} {m.unit.value}" for k, m in f.measurements.items())
        grade = f" ({f.grade})" if f.grade else ""
        table.add_row(escape(f.id), str(f.fdi or "-"), escape(f.kind.value.replace("_", " ") + grade), f.severity.value, f"{f.confidence:.2f}", escape(measures))
    console.print(table)
    timings = ", ".join(f"{stage} {ms / 1000:.2f} s" for stage, ms in findings.timings_ms.items())
    console.print(f"time: {timings}")
    console.print(f"wrote {escape(str(out))}")


__all__ = ["analyze", "schema", "print_summary"]
