"""The HTML report of one analysis (``DIR/report.html``): one self-contained file a
clinician opens in any browser, offline.

It holds a header (scan, model, a note that the findings are automated and need a
clinician's check), the tooth chart as the dentist sees it (upper 18..11 | 21..28,
lower 48..41 | 31..38: the patient's right on the viewer's left) coloured by status,
the findings table (numbered as the markers on the overview overlay) and the overlay
images. Images are embedded as base64 data URIs and the CSS is inline: no external
resources, no JavaScript. Every piece of text is HTML-escaped; only ``plan_html``, the
planning module's own rendering, is inserted as given.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping
from pathlib import Path

from odontoscan.datasets.findings_schema import Finding, Findings, Severity, ToothStatus, Unit
from odontoscan.datasets.labels import LOWER_ARCH, UPPER_ARCH
from odontoscan.serving.outputs.overlays import OVERVIEW_NAMES, PANO_NAME, SEVERITY_COLOURS
from odontoscan.datasets.writers import atomic_file

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
NOTE = "Automated findings from a model trained on synthetic phantoms; for a clinician to verify."
STATUS_COLOURS: dict[ToothStatus, str] = {
    ToothStatus.PRESENT: "#f4f1ea",
    ToothStatus.MISSING: "#8a8a8a",
    ToothStatus.IMPLANT: "#9c8ade",
    ToothStatus.IMPACTED: "#f2a37b",
    ToothStatus.CROWN: "#f3d46b",
    ToothStatus.BRIDGE_PONTIC: "#7cc6ea",
}
_SEVERITY_ORDER = (Severity.INFO, Severity.LOW, Severity.MODERATE, Severity.HIGH)
_UNIT_TEXT = {Unit.MM: "mm", Unit.MM2: "mm²", Unit.MM3: "mm³", Unit.PX: "px", Unit.PX2: "px²", Unit.DEGREE: "°", Unit.RATIO: ""}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 12px 0; }
table { border-collapse: collapse; }
.facts td { padding: 2px 16px 2px 0; } .facts td:first-child { color: #666; }
.chart td { width: 52px; height: 46px; border: 1px solid #999; text-align: center; vertical-align: top; font-size: 13px; }
.chart td.mid { border-left: 3px solid #333; } .chart tr.lower td { border-top: 3px solid #333; }
.chart .status { display: block; font-size: 10px; } .chart th { font-weight: normal; color: #666; font-size: 12px; }
.badge { display: inline-block; min-width: 16px; padding: 0 4px; border-radius: 8px; font-size: 11px; color: #000; }
.legend span { display: inline-block; margin: 4px 12px 0 0; font-size: 13px; }
.swatch { display: inline-block; width: 14px; height: 14px; border: 1px solid #777; vertical-align: middle; margin-right: 4px; }
.findings th, .findings td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; font-size: 14px; vertical-align: top; }
figure { margin: 16px 0; } figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 13px; color: #444; }
footer { margin-top: 32px; font-size: 12px; color: #777; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- images --------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _collect_images(
    findings: Findings, source: Path | str | Mapping[str, Path | str]
) -> tuple[list[Path], dict[str, Path]]:
    """(images to show in order, {finding id: its image}) from an output folder (each
    finding's ``evidence.overlay`` plus the overview PNGs in ``overlays/``) or from a
    mapping {finding id or other name: PNG path}."""
    ids = {f.id for f in findings.findings}
    extra: list[Path] = []
    per_finding: dict[str, Path] = {}
    if isinstance(source, Mapping):
        for key, value in source.items():
            if key in ids:
                per_finding[key] = Path(value)
            else:
                extra.append(Path(value))
    else:
        folder = Path(source)
        extra = [folder / "overlays" / name for name in OVERVIEW_NAMES]
        for finding in findings.findings:
            if finding.evidence.overlay:
                path = folder / finding.evidence.overlay
                if _inside(path, folder):
                    per_finding[finding.id] = path
                else:
                    log.warning("overlay of finding %r lies outside the output folder; not embedded", finding.id)
    ordered: list[Path] = []
    for path in [*extra, *(per_finding[f.id] for f in findings.findings if f.id in per_finding)]:
        if path not in ordered and path.is_file():
            ordered.append(path)
    return ordered, {k: v for k, v in per_finding.items() if v in ordered}


def _data_uri(path: Path) -> str | None:
    data = path.read_bytes()
    if not data.startswith(_PNG_SIGNATURE):
        log.warning("%s is not a PNG file; not embedded in the report", path.name)
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# --- sections ------------------------------------------------------------------------


def _header(findings: Findings, title: str, note: str) -> str:
    scan, model = findings.scan, findings.model
    unit = "mm" if scan.pixel_spacing_known else "px (pixel spacing unknown)"
    facts = [
        ("Modality", scan.modality),
        ("Shape", " × ".join(str(n) for n in scan.shape)),
        ("Spacing", " × ".join(f"{s:g}" for s in scan.spacing_mm) + f" {unit}"),
        ("Model", f"{model.name}@{model.version}"),
        ("Findings", str(len(findings.findings))),
    ]
    if findings.timings_ms:
        facts.append(("Analysis time", f"{sum(findings.timings_ms.values()):.0f} ms"))
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in facts)
    return f'<h1>{_e(title)}</h1>\n<p class="note">{_e(note)}</p>\n<table class="facts">{rows}</table>'


def _worst(items: list[Finding]) -> Severity:
    return max((f.severity for f in items), key=_SEVERITY_ORDER.index)


def _badge(severity: Severity, text: str) -> str:
    r, g, b = SEVERITY_COLOURS[severity]
    return f'<span class="badge" style="background:rgb({r},{g},{b})" title="{_e(severity.value)}">{_e(text)}</span>'


def _chart(findings: Findings) -> str:
    by_tooth: dict[int, list[Finding]] = {}
    for finding in findings.findings:
        if finding.fdi is not None:
            by_tooth.setdefault(finding.fdi, []).append(finding)

    def cell(fdi: int) -> str:
        tooth = findings.tooth(fdi)
        status = tooth.status
        label = "" if status is ToothStatus.PRESENT else status.value.replace("bridge_", "")
        items = by_tooth.get(fdi, [])
        badge = _badge(_worst(items), str(len(items))) if items else ""
        mid = ' class="mid"' if fdi in (21, 31) else ""
        tip = f"tooth {fdi}: {status.value}, {len(items)} finding(s)"
        return (
            f'<td{mid} style="background:{STATUS_COLOURS[status]}" title="{_e(tip)}">'
            f'<b>{fdi}</b><span class="status">{_e(label)}</span>{badge}</td>'
        )

    sides = "<tr><th colspan=8>patient's right</th><th colspan=8>patient's left</th></tr>"
    upper = "<tr>" + "".join(cell(f) for f in UPPER_ARCH) + "</tr>"
    lower = '<tr class="lower">' + "".join(cell(f) for f in LOWER_ARCH) + "</tr>"
    legend = "".join(
        f'<span><i class="swatch" style="background:{colour}"></i>{_e(status.value.replace("_", " "))}</span>'
        for status, colour in STATUS_COLOURS.items()
    )
    severities = "".join(f"<span>{_badge(s, s.value)}</span>" for s in _SEVERITY_ORDER)
    return (
        f'<h2>Tooth chart</h2>\n<table class="chart">{sides}{upper}{lower}</table>\n'
        f'<div class="legend">{legend}</div>\n<div class="legend">Findings per tooth, worst severity: {severities}</div>'
    )


def _value(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _measurements(finding: Finding) -> str:
    parts = []
    for name, m in finding.measurements.items():
        label = name.removesuffix(f"_{m.unit.value}").replace("_", " ")
        unit = _UNIT_TEXT[m.unit]
        parts.append(f"{label} {_value(m.value)}{'' if unit in ('', '°') else ' '}{unit}")
    return "<br>".join(_e(p) for p in parts)


def _findings_table(findings: Findings, anchors: dict[str, str]) -> str:
    if not findings.findings:
        return "<h2>Findings</h2>\n<p>No findings.</p>"
    columns = ("#", "Finding", "Tooth", "Kind", "Severity", "Confidence", "Measurements", "Overlay")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    rows = []
    for number, f in enumerate(findings.findings, start=1):
        kind = f.kind.value.replace("_", " ") + (f" ({f.grade.replace('_', ' ')})" if f.grade else "")
        link = f'<a href="#{anchors[f.id]}">view</a>' if f.id in anchors else "—"
        rows.append(
            f"<tr><td>{number}</td><td>{_e(f.id)}</td><td>{_e(f.fdi if f.fdi is not None else '—')}</td>"
            f"<td>{_e(kind)}</td><td>{_badge(f.severity, f.severity.value)}</td><td>{f.confidence:.0%}</td>"
            f"<td>{_measurements(f)}</td><td>{link}</td></tr>"
        )
    return f'<h2>Findings</h2>\n<table class="findings">{head}{"".join(rows)}</table>'


def _overlays(findings: Findings, images: list[Path], per_finding: dict[str, Path]) -> tuple[str, dict[str, str]]:
    """The overlays section and {finding id: anchor of its image}."""
    figures, anchors = [], {}
    for k, path in enumerate(images, start=1):
        uri = _data_uri(path)
        if uri is None:
            continue
        anchor = f"overlay-{k}"
        numbered = [(n, f) for n, f in enumerate(findings.findings, start=1) if per_finding.get(f.id) == path]
        anchors.update((f.id, anchor) for _, f in numbered)
        if path.name in OVERVIEW_NAMES:
            what = "Panoramic reconstruction along the dental arch" if path.name == PANO_NAME else "Radiograph"
            caption = f"{what}: label outlines, tooth numbers, findings marked by their # in the table, by severity colour."
        else:
            caption = "; ".join(f"#{n} {f.id}" for n, f in numbered) or path.name
        figures.append(
            f'<figure id="{anchor}"><img src="{uri}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'
        )
    if not figures:
        return "", anchors
    return "<h2>Overlays</h2>\n" + "\n".join(figures), anchors


# --- entry points --------------------------------------------------------------------


def render_report(
    findings: Findings,
    out_dir_or_overlay_paths: Path | str | Mapping[str, Path | str],
    *,
    title: str = "odontoscan findings",
    plan_html: str | None = None,
    note: str = NOTE,
) -> str:
    """The report as one self-contained HTML string.

    Args:
        findings: the analysis' findings.
        out_dir_or_overlay_paths: the output folder (each finding's ``evidence.overlay``
            is read relative to it, plus ``overlays/pano.png`` or ``overlays/radiograph.png``),
            or a mapping {finding id: PNG path}; keys that are not finding ids add
            overview images. Missing or non-PNG files are left out.
        title: the page title (escaped).
        plan_html: the draft treatment plan as HTML from the planning module, inserted
            as given (it must be escaped already); None leaves the section out.
        note: the caution shown under the title (escaped).
    """
    images, per_finding = _collect_images(findings, out_dir_or_overlay_paths)
    overlays, anchors = _overlays(findings, images, per_finding)
    plan = f"<h2>Draft treatment plan</h2>\n{plan_html}" if plan_html else ""
    body = "\n".join(
        part
        for part in (
            _header(findings, title, note),
            _chart(findings),
            _findings_table(findings, anchors),
            plan,
            overlays,
            f"<footer>odontoscan findings schema {_e(findings.schema_version)}. {_e(note)}</footer>",
        )
        if part
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(
    findings: Findings,
    out_dir: Path | str,
    *,
    title: str = "odontoscan findings",
    plan_html: str | None = None,
    note: str = NOTE,
) -> Path:
    """Write ``out_dir/report.html`` (images from ``out_dir``, see :func:`render_report`)
    atomically: a temp file in the same folder, then renamed over the old report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = render_report(findings, out_dir, title=title, plan_html=plan_html, note=note)
    target = out_dir / REPORT_NAME
    with atomic_file(target) as handle:
        handle.write(text)
    return target


__all__ = ["render_report", "write_report", "NOTE", "REPORT_NAME", "STATUS_COLOURS"]
