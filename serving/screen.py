"""Batch pre-screening: analyse many studies and rank them by urgency.

``screen(INPUT, OUT)`` takes a folder of studies (each sub-folder, zip, NIfTI/MHA/
NRRD file, DICOM file or image is one study; a folder holding DICOM files itself is
one study), a zip of such a folder, or a list file (one path per line, ``#``
comments, relative paths from the list's folder). Each study's outputs go to
``OUT/studies/<key>/`` (the ``odontoscan analyze`` layout, written atomically); a
study that fails gets ``error.json`` there instead and the batch goes on. The
ranking is written as ``OUT/triage.csv``, ``triage.json`` and ``triage.html``.

Re-running the same command skips finished studies (those with findings.json) and
retries failed or interrupted ones, so a killed batch resumes where it stopped.

With ``pacs=`` (a :class:`~odontoscan.serving.pacs.PacsConfig`) the studies come from a
PACS over DICOMweb instead: found by QIDO (or given by Study Instance UID), the image
series of each retrieved by WADO into a temporary folder and analysed the same way
(``OUT/studies/<StudyInstanceUID>/``). With ``push=True`` the DICOM SEG and SR are
stored back into the PACS (STOW) and the study counts as done only once that
succeeded (``pushed.json``); a study analysed but not stored is pushed on the next run.
Workers are separate processes, each analysing one study at a time (memory stays
at workers x one analysis); ONNX Runtime threads per worker are the usable cores
divided by the workers.

Urgency score (explained in the README): the sum over findings of kind weight x
severity weight x confidence, plus 0.5 per missing tooth other than third molars.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from odontoscan.datasets.errors import ConfigError, OdontoscanError, OutputError
from odontoscan.datasets.findings_schema import Findings, FindingKind, Severity, ToothStatus
from odontoscan.datasets.readers.archive import extract_zip
from odontoscan.datasets.readers.dicom_series import is_dicom_file
from odontoscan.datasets.writers import atomic_file

if TYPE_CHECKING:
    from odontoscan.serving.pacs import PacsConfig

STUDY_SUFFIXES = (".zip", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
LIST_SUFFIXES = (".txt", ".lst", ".list")
KIND_WEIGHTS = {
    FindingKind.PERIAPICAL_LESION: 3.0,
    FindingKind.CARIES: 2.0,
    FindingKind.BONE_LOSS: 2.0,
    FindingKind.IMPACTED_TOOTH: 1.0,
    FindingKind.CANAL_PROXIMITY: 0.5,
    FindingKind.EDENTULOUS_SITE: 0.5,
}
SEVERITY_WEIGHTS = {Severity.INFO: 0.5, Severity.LOW: 1.0, Severity.MODERATE: 2.0, Severity.HIGH: 3.0}
MISSING_TOOTH_WEIGHT = 0.5
STUDIES_DIR = "studies"
PUSHED_FILE = "pushed.json"
WATCH_STATE_FILE = "watch_state.json"


@dataclass(frozen=True)
class Study:
    """One study of a batch: a stable key (its folder under OUT/studies) and where it is
    (a path; for a PACS study, the temporary folder it is retrieved into and its UID)."""

    key: str
    source: Path
    uid: str | None = None


class TriageRow(BaseModel):
    """One line of the triage: a ranked study."""

    model_config = ConfigDict(extra="forbid")

    rank: int
    study: str
    status: str  # done or failed
    urgency: float | None = None
    modality: str | None = None
    findings: int = 0
    high_severity: int = 0
    missing_teeth: int = 0
    top_findings: str = ""
    error_code: str | None = None
    error: str | None = None


@dataclass
class ScreenSummary:
    """What one run did: studies analysed now, skipped (already done) and failed."""

    total: int
    analysed: int
    skipped: int
    failed: int
    rows: list[TriageRow]
    seconds: float


# --- finding the studies ------------------------------------------------------------------


def find_studies(source: str | Path, workdir: Path) -> list[Study]:
    """The studies of an input folder, zip of studies or list file (zips are extracted
    into ``workdir``). Raises ConfigError for an input that holds no study."""
    source = Path(source)
    if not source.exists():
        raise ConfigError(f"Screening input '{source}' does not exist; give a folder of studies, a zip or a list file.")
    if source.is_file() and source.name.lower().endswith(LIST_SUFFIXES):
        paths = _list_file(source)
    elif source.is_file() and source.suffix.lower() == ".zip":
        extracted = workdir / "input"
        shutil.rmtree(extracted, ignore_errors=True)
        extracted.mkdir(parents=True)
        extract_zip(source, extracted)
        paths = _folder_studies(_single_root(extracted))
    elif source.is_dir():
        paths = _folder_studies(source)
    else:
        raise ConfigError(f"Screening input '{source.name}' is neither a folder of studies, a zip nor a list file (.txt).")
    if not paths:
        raise ConfigError(f"Screening input '{source.name}' holds no study (sub-folders, zips, NIfTI/MHA/NRRD, DICOM or image files).")
    keys: dict[str, int] = {}
    studies = []
    for path in paths:
        key = _key(path.name)
        keys[key] = keys.get(key, 0) + 1
        studies.append(Study(key if keys[key] == 1 else f"{key}-{keys[key]}", path))
    return studies


def pacs_studies(
    config: PacsConfig, workdir: Path, *, study_uids: list[str] | tuple[str, ...] = (), since: date | None = None,
    modality: str | None = "CT",
) -> list[Study]:
    """The studies to screen in a PACS: those given by UID (each checked to exist), else
    every study with ``modality`` dated ``since`` or later (QIDO). Raises PacsError."""
    from odontoscan.datasets.errors import StudyNotFoundError
    from odontoscan.serving.pacs import DicomWebClient

    with DicomWebClient(config) as client:
        if study_uids:
            uids = []
            for uid in study_uids:
                if not client.search_studies(study_uid=uid):
                    raise StudyNotFoundError(f"Study {uid} is not in the PACS at {config.display_url()}.")
                uids.append(uid)
        else:
            uids = [s.study_uid for s in client.search_studies(modality=modality, since=since)]
    return [Study(_key(uid), workdir / "pacs" / _key(uid), uid=uid) for uid in dict.fromkeys(uids)]


def _list_file(path: Path) -> list[Path]:
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        study = Path(line) if Path(line).is_absolute() else path.parent / line
        if not study.exists():
            raise ConfigError(f"Line {number} of list file '{path.name}' names a path that does not exist: '{line}'.")
        out.append(study)
    return out


def _single_root(folder: Path) -> Path:
    """A zip holding one top-level folder of studies: that folder."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() and not _holds_dicom(entries[0]) else folder


def _folder_studies(folder: Path) -> list[Path]:
    if _holds_dicom(folder):
        return [folder]
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.name.lower().endswith(STUDY_SUFFIXES):
            out.append(entry)
    return out


def _holds_dicom(folder: Path) -> bool:
    """A folder with DICOM files directly in it is one study, not a folder of studies."""
    return any(p.is_file() and (p.suffix.lower() == ".dcm" or is_dicom_file(p)) for p in folder.iterdir())


def _key(name: str) -> str:
    for suffix in sorted(STUDY_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"


# --- urgency ----------------------------------------------------------------------------


def urgency(findings: Findings) -> float:
    """Urgency score of one study (higher = see sooner); see the module docstring."""
    score = sum(
        KIND_WEIGHTS.get(f.kind, 0.0) * SEVERITY_WEIGHTS[f.severity] * f.confidence for f in findings.findings
    )
    missing = sum(t.status is ToothStatus.MISSING and t.fdi % 10 != 8 for t in findings.teeth)
    return round(score + MISSING_TOOTH_WEIGHT * missing, 2)


def _row(study: str, findings: Findings) -> TriageRow:
    weighted = sorted(
        (f for f in findings.findings if KIND_WEIGHTS.get(f.kind)),
        key=lambda f: KIND_WEIGHTS[f.kind] * SEVERITY_WEIGHTS[f.severity],
        reverse=True,
    )
    top = "; ".join(
        f"{f.kind.value.replace('_', ' ')}{f' {f.fdi}' if f.fdi else ''} ({f.severity.value})" for f in weighted[:3]
    )
    return TriageRow(
        rank=0,
        study=study,
        status="done",
        urgency=urgency(findings),
        modality=findings.scan.modality,
        findings=len(findings.findings),
        high_severity=sum(f.severity is Severity.HIGH for f in findings.findings),
        missing_teeth=sum(t.status is ToothStatus.MISSING for t in findings.teeth),
        top_findings=top,
    )


# --- running ----------------------------------------------------------------------------

_ANALYZER = None  # one per worker process


def _init_worker(cbct_model: str, radiograph_model: str, threads: int | None) -> None:
    global _ANALYZER
    from odontoscan.models.pipeline import Analyzer

    _ANALYZER = Analyzer(cbct_model, radiograph_model, threads=threads)


def _analyse(study: Study, target: Path, overlays: bool, pacs: PacsConfig | None = None, push: bool = False,
             modality: str | None = None) -> dict:
    """Analyse one study into ``target`` (retrieving it from ``pacs`` first, storing its
    SEG + SR there with ``push``); returns {"ok": True} or {"ok": False, "code", "message"}."""
    from odontoscan.datasets import load_scan
    from odontoscan.serving.outputs.write import write_outputs

    error_file = target / "error.json"
    try:
        started = time.perf_counter()
        if not (target / "findings.json").is_file():  # else: analysed, only the push is missing
            if pacs is not None:
                _retrieve(pacs, study, modality)
            scan = load_scan(study.source)
            load_s = time.perf_counter() - started
            result = _ANALYZER.analyze(scan)
            result.record("load", load_s)
            write_outputs(result, target, source=study.source, overlays=overlays, report=overlays, dicom=push)
        if push:
            _push(pacs, study, target)
        error_file.unlink(missing_ok=True)
        return {"ok": True, "seconds": time.perf_counter() - started}
    except OdontoscanError as exc:
        outcome = {"ok": False, "code": exc.code, "message": exc.message}
    except Exception as exc:  # noqa: BLE001 - one bad study must not stop the batch
        outcome = {"ok": False, "code": "analysis_failed", "message": f"Analysis failed ({type(exc).__name__})."}
    finally:
        if study.uid is not None:
            shutil.rmtree(study.source, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    _write_atomic(error_file, json.dumps({"code": outcome["code"], "message": outcome["message"]}, indent=2))
    return outcome


def _retrieve(pacs: PacsConfig, study: Study, modality: str | None) -> None:
    """Retrieve the image series of a PACS study into ``study.source`` (a fresh folder)."""
    from odontoscan.serving.pacs import DicomWebClient

    shutil.rmtree(study.source, ignore_errors=True)
    with DicomWebClient(pacs) as client:
        series = client.image_series(study.uid, modality)
        client.retrieve(study.uid, study.source, series_uid=series.series_uid, expected=series.instances)


def _push(pacs: PacsConfig, study: Study, target: Path) -> None:
    """Store the study's SEG and SR in the PACS, then record ``pushed.json``."""
    from odontoscan.serving.outputs.write import SEG_FILE, SR_FILE
    from odontoscan.serving.pacs import DicomWebClient

    files = [target / name for name in (SEG_FILE, SR_FILE) if (target / name).is_file()]
    if not files:
        raise OutputError(f"Study {study.key} has no DICOM SEG/SR to push; delete its folder and run again.")
    with DicomWebClient(pacs) as client:
        client.store(files)
    _write_atomic(target / PUSHED_FILE, json.dumps({"files": [f.name for f in files], "pacs": pacs.display_url()}, indent=2))


def _done(folder: Path, push: bool) -> bool:
    """A study is done when analysed and, with ``push``, stored in the PACS."""
    return (folder / "findings.json").is_file() and (not push or (folder / PUSHED_FILE).is_file())


def screen(
    source: str | Path | None,
    out: str | Path,
    *,
    pacs: PacsConfig | None = None,
    study_uids: list[str] | tuple[str, ...] = (),
    since: date | None = None,
    modality: str | None = "CT",
    push: bool = False,
    workers: int = 1,
    cbct_model: str = "cbct-phantom",
    radiograph_model: str = "pano-phantom",
    overlays: bool = True,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> ScreenSummary:
    """Analyse every study of ``source`` not yet done into ``out`` and write the triage.

    ``source`` is a folder, zip or list file; or None with ``pacs`` (then ``study_uids``,
    ``since`` and ``modality`` select the studies, see :func:`pacs_studies`).
    ``on_progress(study_key, done, total)`` is called after each study (for progress bars).
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    if (source is None) == (pacs is None):
        raise ConfigError("Give either an INPUT (folder, zip or list file) or --pacs URL, not both.")
    if push and pacs is None:
        raise ConfigError("--push stores results back into a PACS: it needs --pacs URL.")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if pacs is not None:
        studies = pacs_studies(pacs, out / ".work", study_uids=study_uids, since=since, modality=modality)
    else:
        studies = find_studies(source, out / ".work")
    folder = out / STUDIES_DIR
    for stale in folder.glob("*/.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    todo = [s for s in studies if not _done(folder / s.key, push)]
    extra = (pacs, push, modality)
    progress = on_progress or (lambda key, done, total: None)
    done_count = len(studies) - len(todo)
    threads = max(1, _cores() // workers)
    failed = 0
    if workers == 1 or len(todo) <= 1:
        _init_worker(cbct_model, radiograph_model, threads)
        for study in todo:
            failed += not _analyse(study, folder / study.key, overlays, *extra)["ok"]
            done_count += 1
            progress(study.key, done_count, len(studies))
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(cbct_model, radiograph_model, threads)) as pool:
            futures = {pool.submit(_analyse, study, folder / study.key, overlays, *extra): study for study in todo}
            for future in as_completed(futures):
                failed += not future.result()["ok"]
                done_count += 1
                progress(futures[future].key, done_count, len(studies))
    rows = write_triage(out, [s.key for s in studies], push=push)
    shutil.rmtree(out / ".work", ignore_errors=True)
    return ScreenSummary(len(studies), len(todo), len(studies) - len(todo), failed, rows, time.perf_counter() - started)


def watch_once(
    out: str | Path,
    pacs: PacsConfig,
    *,
    since: date | None = None,
    modality: str | None = "CT",
    push: bool = False,
    overlays: bool = True,
    cbct_model: str = "cbct-phantom",
    radiograph_model: str = "pano-phantom",
) -> ScreenSummary:
    """One look of ``odontoscan watch``: screen the PACS's studies not yet done.

    When the PACS is Orthanc, its change log (``/changes?since=N``) tells which studies
    are still arriving (NewStudy, no StableStudy yet): those wait for the next look. The
    last change index and the waiting studies are kept in ``OUT/watch_state.json``.
    Other PACSs: every study found by QIDO (as :func:`screen`). Raises PacsError.
    """
    from odontoscan.serving.pacs import DicomWebClient

    out = Path(out)
    options = {"pacs": pacs, "since": since, "modality": modality, "push": push, "overlays": overlays,
               "cbct_model": cbct_model, "radiograph_model": radiograph_model}
    with DicomWebClient(pacs) as client:
        root = client.orthanc_root()
        if root is None:
            return screen(None, out, **options)
        state_file = out / WATCH_STATE_FILE
        state = json.loads(state_file.read_text()) if state_file.is_file() else {}
        waiting: dict[str, str] = dict(state.get("waiting", {}))  # Orthanc study id -> StudyInstanceUID
        changes, last = client.orthanc_study_changes(root, int(state.get("last_change", 0)))
        for study_id, stable in changes.items():
            uid = None if stable is not False else client.orthanc_study_uid(root, study_id)
            if uid is None:
                waiting.pop(study_id, None)
            else:
                waiting[study_id] = uid
        arriving = set(waiting.values())
        uids = [s.study_uid for s in client.search_studies(modality=modality, since=since) if s.study_uid not in arriving]
    summary = screen(None, out, study_uids=uids, **options) if uids else ScreenSummary(0, 0, 0, 0, [], 0.0)
    _write_atomic(state_file, json.dumps({"last_change": last, "waiting": waiting}, indent=2))
    return summary


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --- triage -----------------------------------------------------------------------------


def write_triage(out: Path, keys: list[str], *, push: bool = False) -> list[TriageRow]:
    """Rank the studies of ``keys`` (done first by urgency, then failed) and write
    triage.json, triage.csv and triage.html into ``out`` (with ``push``, a study not yet
    stored in the PACS counts as failed)."""
    rows: list[TriageRow] = []
    for key in keys:
        folder = out / STUDIES_DIR / key
        if _done(folder, push):
            rows.append(_row(key, Findings.model_validate_json((folder / "findings.json").read_text())))
        else:
            error = json.loads((folder / "error.json").read_text()) if (folder / "error.json").is_file() else {}
            rows.append(TriageRow(rank=0, study=key, status="failed", error_code=error.get("code", "not_analysed"),
                                  error=error.get("message", "The study was not analysed (interrupted); run the command again.")))
    rows.sort(key=lambda r: (r.status != "done", -(r.urgency or 0.0), r.study))
    for rank, row in enumerate(rows, start=1):
        row.rank = rank
    _write_atomic(out / "triage.json", json.dumps([r.model_dump() for r in rows], indent=2))
    _write_atomic(out / "triage.csv", _csv(rows))
    _write_atomic(out / "triage.html", _html(rows))
    return rows


def _csv(rows: list[TriageRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(TriageRow.model_fields))
    writer.writeheader()
    for row in rows:
        writer.writerow(row.model_dump())
    return buffer.getvalue()


def _html(rows: list[TriageRow]) -> str:
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in ("rank", "study", "status", "urgency", "modality", "findings", "high", "missing", "top findings / error"))
    body = []
    for r in rows:
        link = f'<a href="{STUDIES_DIR}/{html.escape(r.study)}/report.html">{html.escape(r.study)}</a>' if r.status == "done" else html.escape(r.study)
        detail = html.escape(r.top_findings if r.status == "done" else f"{r.error_code}: {r.error}")
        cells = [str(r.rank), link, html.escape(r.status), "" if r.urgency is None else f"{r.urgency:.2f}", html.escape(r.modality or ""),
                 str(r.findings), str(r.high_severity), str(r.missing_teeth), detail]
        css = ' class="failed"' if r.status == "failed" else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>odontoscan triage</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "tr.failed{color:#a00}</style></head><body><h1>Pre-screening triage</h1>"
        "<p>Studies ranked by urgency score (automated findings from models trained on synthetic phantoms; "
        "for a clinician to verify). Failed studies are listed last with their error.</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table></body></html>\n"
    )


def _write_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as handle:
        handle.write(text)


__all__ = ["Study", "TriageRow", "ScreenSummary", "find_studies", "pacs_studies", "urgency", "screen", "watch_once", "write_triage"]
