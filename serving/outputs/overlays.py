"""Overlay PNGs of one analysis: the scan with coloured label outlines, tooth numbers
and a marker at each finding, for ``DIR/overlays/`` and the HTML report.

CBCT: ``pano.png``, a panoramic reconstruction along the dental arch
(:mod:`odontoscan.datasets.panoramic`), and per finding one PNG with an axial view and
a cross-section perpendicular to the arch through the finding (a coronal view when no
arch can be fitted). Radiograph: ``radiograph.png`` and per finding a zoomed crop.

Display conventions: patient's right on the image's LEFT, superior (axial: anterior)
at the top. Markers are rings coloured by severity; on the overview images each ring
carries the finding's number (its 1-based position in ``Findings.findings``, as in the
report's table). Label colours are the phantom preview's table, so docs and outputs
agree. Only numpy, scipy and Pillow are used (serving path).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from odontoscan.datasets.findings_schema import Finding, Findings, Severity
from odontoscan.datasets.geometry import Geometry
from odontoscan.datasets.labels import Label
from odontoscan.datasets.panoramic import (
    DentalArch,
    PanoMapping,
    arch_from_image,
    arch_from_labels,
    pano_mapping,
    reformat,
    tooth_number,
)
from odontoscan.datasets.labels import label_colours

log = logging.getLogger(__name__)

PANO_NAME = "pano.png"
RADIOGRAPH_NAME = "radiograph.png"
OVERVIEW_NAMES = (PANO_NAME, RADIOGRAPH_NAME)
MAX_WIDTH = 800  # px, widest image written
PANEL_PX = 360  # px, height of each view in a per-finding image
AXIAL_FOV_MM = 70.0  # square field of the axial view, centred on the finding
SECTION_MM = (50.0, 40.0)  # (height, width) of the cross-section, centred on the finding
CROP_MM = 30.0  # side of a radiograph crop around a finding
LABEL_DEPTH_MM = (-9.0, 9.0)  # (lingual, buccal) depth whose labels the pano shows
PANO_GAMMA = 1.5  # darkens soft tissue so teeth and bone stand out, as on a processed pano
SEVERITY_COLOURS: dict[Severity, tuple[int, int, int]] = {
    # Each has a 0 channel, so neither grey pixels nor tinted labels can match it exactly.
    Severity.INFO: (0, 150, 255),
    Severity.LOW: (255, 220, 0),
    Severity.MODERATE: (255, 120, 0),
    Severity.HIGH: (255, 0, 0),
}
LABEL_COLOURS = label_colours()  # RGB per label id modulo 256
_FILL_ALPHA = 0.25
_UNFILLED = (Label.LOWER_JAWBONE, Label.UPPER_JAWBONE, Label.PHARYNX)  # large: outline only
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True, eq=False)
class PanoView:
    """A panoramic reconstruction ready to draw on.

    Attributes:
        grey: uint8 radiograph-like image [row, col].
        labels: label ids projected with the same mapping, same shape.
        mapping: canonical volume mm <-> (row, col) of ``grey``.
    """

    grey: np.ndarray
    labels: np.ndarray
    mapping: PanoMapping


# --- grey values and colours ---------------------------------------------------------


def grey_window(image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.8)) -> tuple[float, float]:
    """Robust display window (low, high) of an image: two percentiles of a subsample."""
    step = max(1, int(round((image.size / 2_000_000) ** (1 / image.ndim))))
    sample = image[(slice(None, None, step),) * image.ndim]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    return lo, max(hi, lo + 1e-6)


def to_grey(plane: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """uint8 grey of ``plane`` through ``window`` = (low, high)."""
    lo, hi = window
    return (np.clip((np.asarray(plane, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels of a 2D label image that touch a different label (4-neighbours), labels > 0."""
    edge = np.zeros(labels.shape, dtype=bool)
    rows = labels[1:, :] != labels[:-1, :]
    cols = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= rows
    edge[:-1, :] |= rows
    edge[:, 1:] |= cols
    edge[:, :-1] |= cols
    return edge & (labels > 0)


def annotate(grey: np.ndarray, labels: np.ndarray) -> Image.Image:
    """RGB image of ``grey`` (uint8) with semi-transparent label fills and opaque outlines
    in each label's colour (:data:`LABEL_COLOURS`)."""
    colour = LABEL_COLOURS[labels.astype(np.intp) % 256].astype(np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    fill = ((labels > 0) & ~np.isin(labels, _UNFILLED))[..., None]
    rgb = np.where(fill, (1 - _FILL_ALPHA) * rgb + _FILL_ALPHA * colour, rgb)
    rgb = np.where(outline_mask(labels)[..., None], colour, rgb)
    return Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB")


# --- drawing -------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int, *, centred: bool = False) -> None:
    """White text with a black halo at ``xy`` (its top-left corner, or its centre)."""
    font = _font(size)
    x, y = xy
    if centred:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=2)
        x, y = x - (left + right) / 2, y - (top + bottom) / 2
    draw.text((x, y), text, font=font, fill=_WHITE, stroke_width=2, stroke_fill=_BLACK)


def draw_marker(
    draw: ImageDraw.ImageDraw, row: float, col: float, severity: Severity, number: int | None = None, radius: int = 9
) -> None:
    """A ring coloured by ``severity`` centred on pixel (``row``, ``col``), optionally numbered."""
    box = [col - radius, row - radius, col + radius, row + radius]
    draw.ellipse(box, outline=SEVERITY_COLOURS[severity], width=3)
    if number is not None:
        _text(draw, (col + radius + 1, row - radius - 12), str(number), 13)


def draw_tooth_numbers(
    draw: ImageDraw.ImageDraw, labels: np.ndarray, size: int = 13, avoid: tuple[float, float] | None = None
) -> None:
    """The FDI number of each tooth (pulp counted as its tooth) at its centre; a number
    within 20 px of the pixel ``avoid`` = (row, col) (a marker) moves below it."""
    teeth = tooth_number(labels.astype(np.int64))
    present = [int(f) for f in np.unique(teeth) if f]
    if not present:
        return
    for fdi, (row, col) in zip(present, ndimage.center_of_mass(np.ones(teeth.shape), teeth, present)):
        if avoid is not None and np.hypot(row - avoid[0], col - avoid[1]) < 20:
            row = avoid[0] + 22
        _text(draw, (col, row), str(fdi), size, centred=True)


def _caption(image: Image.Image, parts: list[str], line_px: int = 18) -> Image.Image:
    """``image`` under a dark caption bar: ``parts`` joined by " | ", wrapped to fit."""
    font = _font(13)
    measure = ImageDraw.Draw(image)
    lines = [parts[0]]
    for part in parts[1:]:
        joined = f"{lines[-1]} | {part}"
        if measure.textlength(joined, font=font) <= image.width - 12:
            lines[-1] = joined
        else:
            lines.append(part)
    height = line_px * len(lines) + 6
    out = Image.new("RGB", (image.width, image.height + height), (24, 24, 24))
    out.paste(image, (0, height))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((6, 4 + i * line_px), line, font=font, fill=_WHITE)
    return out


def _side_by_side(images: list[Image.Image], gap: int = 6) -> Image.Image:
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (width, max(im.height for im in images)), (24, 24, 24))
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def _file_name(number: int, finding_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", finding_id).strip("-")[:40] or "finding"
    return f"finding_{number:02d}_{slug}.png"


def _title(number: int, finding: Finding) -> list[str]:
    tooth = [f"tooth {finding.fdi}"] if finding.fdi is not None else []
    return [f"#{number} {finding.id}", finding.kind.value, *tooth, finding.severity.value]


def _save(image: Image.Image, path: Path) -> None:
    image.save(path, format="PNG", compress_level=3)  # 2x faster than the default, ~10% larger


# --- volumes -------------------------------------------------------------------------


def canonical_mm(location_mm: list[float], geometry: Geometry | None) -> np.ndarray:
    """Canonical mm (index * spacing) of a finding's LPS ``location_mm``; without a
    geometry, LPS is taken as canonical mm (as ``Geometry.identity`` does the other way)."""
    point = np.asarray(location_mm, dtype=float)
    return point if geometry is None else geometry.lps_to_mm(point)


def fit_arch(image: np.ndarray, labels: np.ndarray, spacing: tuple[float, ...]) -> DentalArch | None:
    """Dental arch from the tooth labels, else from the bright voxels; None if neither fits."""
    for fit, source in ((arch_from_labels, labels), (arch_from_image, image)):
        try:
            return fit(source, spacing)
        except ValueError as err:
            log.info("no dental arch from %s: %s", fit.__name__, err)
    return None


def panoramic_view(
    image: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, ...],
    *,
    arch: DentalArch | None = None,
    max_width: int = MAX_WIDTH,
) -> PanoView | None:
    """Panoramic reconstruction of a canonical volume at most ``max_width`` pixels wide
    (None when no dental arch can be fitted)."""
    spacing = tuple(float(s) for s in spacing)
    arch = arch or fit_arch(image, labels, spacing)
    if arch is None:
        return None
    pixel_mm = max(arch.length_mm / (max_width - 1), 0.05)
    mapping = pano_mapping(arch, image.shape, spacing, pixel_mm)
    xray, _ = reformat(image, spacing, arch, mode="xray", mapping=mapping)
    projected, _ = reformat(labels, spacing, arch, mode="label", mapping=mapping, depth_range_mm=LABEL_DEPTH_MM)
    return PanoView(grey=to_grey(xray**PANO_GAMMA, (0.0, 1.0)), labels=projected, mapping=mapping)


def _sample_plane(
    volume: np.ndarray,
    spacing: tuple[float, ...],
    centre_mm: np.ndarray,
    right: np.ndarray,
    down: np.ndarray,
    size_mm: tuple[float, float],
    pixel_mm: float,
    *,
    labels: bool,
    cval: float = 0.0,
) -> np.ndarray:
    """A plane of ``volume`` centred on ``centre_mm`` (canonical mm): columns run along
    ``right`` and rows along ``down`` (unit vectors), ``size_mm`` = (height, width);
    ``cval`` outside the volume."""
    rows = int(round(size_mm[0] / pixel_mm))
    cols = int(round(size_mm[1] / pixel_mm))
    r = (np.arange(rows) - (rows - 1) / 2) * pixel_mm
    c = (np.arange(cols) - (cols - 1) / 2) * pixel_mm
    points = centre_mm + r[:, None, None] * down + c[None, :, None] * right
    coords = (points / np.asarray(spacing)).reshape(-1, 3).T
    values = ndimage.map_coordinates(volume, coords, order=0 if labels else 1, mode="constant", cval=cval, prefilter=False)
    return values.reshape(rows, cols)


def _view(image, labels, spacing, window, centre, right, down, size_mm, caption, sides=("", "")) -> Image.Image:
    """One annotated view through ``centre`` (which falls on its middle pixel)."""
    pixel_mm = size_mm[0] / PANEL_PX
    plane = _sample_plane(image, spacing, centre, right, down, size_mm, pixel_mm, labels=False, cval=window[0])
    grey = to_grey(plane, window)
    lab = _sample_plane(labels, spacing, centre, right, down, size_mm, pixel_mm, labels=True)
    view = annotate(grey, lab)
    draw = ImageDraw.Draw(view)
    draw_tooth_numbers(draw, lab, 12, avoid=((view.height - 1) / 2, (view.width - 1) / 2))
    _text(draw, (4, view.height - 18), sides[0], 12)
    if sides[1]:
        width = draw.textlength(sides[1], font=_font(12))
        _text(draw, (view.width - width - 8, view.height - 18), sides[1], 12)
    _text(draw, (4, 4), caption, 12)
    return view


def _finding_views(
    image, labels, spacing, window, arch: DentalArch | None, point: np.ndarray, finding: Finding, number: int
) -> Image.Image:
    """Axial view and cross-section (or coronal view) through one finding, marked."""
    right_to_left = np.array([-1.0, 0.0, 0.0])  # display: patient's right on the image's left
    z = int(round(point[2] / spacing[2]))
    axial = _view(
        image, labels, spacing, window, point, right_to_left, np.array([0.0, -1.0, 0.0]),
        (AXIAL_FOV_MM, AXIAL_FOV_MM), f"axial z={z}", ("R", "L"),
    )
    if arch is not None:
        s = arch.project(point)
        section = _view(
            image, labels, spacing, window, point, arch.buccal(s), -arch.normal, SECTION_MM,
            f"cross-section at {s:.0f} mm of arch", ("lingual", "buccal"),
        )
    else:
        section = _view(
            image, labels, spacing, window, point, right_to_left, np.array([0.0, 0.0, -1.0]),
            SECTION_MM, "coronal", ("R", "L"),
        )
    for view in (axial, section):
        draw_marker(ImageDraw.Draw(view), (view.height - 1) / 2, (view.width - 1) / 2, finding.severity)
    return _caption(_side_by_side([axial, section]), _title(number, finding))


def _render_volume(
    image: np.ndarray, labels: np.ndarray, spacing, findings: Findings, out_dir: Path, geometry: Geometry | None
) -> dict[str, str]:
    spacing = tuple(float(s) for s in spacing)
    window = grey_window(image)
    arch = fit_arch(image, labels, spacing)
    view = panoramic_view(image, labels, spacing, arch=arch) if arch is not None else None
    points = {
        f.id: canonical_mm(f.location_mm, geometry)
        for f in findings.findings
        if f.location_mm is not None and len(f.location_mm) == 3
    }
    paths: dict[str, str] = {}
    overview = None
    if view is not None:
        pano = annotate(view.grey, view.labels)
        draw = ImageDraw.Draw(pano)
        draw_tooth_numbers(draw, view.labels)
        if points:
            rowcol = dict(zip(points, view.mapping.to_pano(np.stack(list(points.values())))))
            for number, finding in enumerate(findings.findings, start=1):
                if finding.id in rowcol:
                    row, col = rowcol[finding.id]
                    if 0 <= row < pano.height and 0 <= col < pano.width:
                        draw_marker(draw, row, col, finding.severity, number)
        _save(pano, out_dir / PANO_NAME)
        overview = f"{out_dir.name}/{PANO_NAME}"
    for number, finding in enumerate(findings.findings, start=1):
        if finding.id in points:
            name = _file_name(number, finding.id)
            views = _finding_views(image, labels, spacing, window, arch, points[finding.id], finding, number)
            _save(views, out_dir / name)
            paths[finding.id] = f"{out_dir.name}/{name}"
        elif overview is not None:
            paths[finding.id] = overview
    return paths


# --- radiographs ---------------------------------------------------------------------


def _resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2D label image."""
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(int), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(int), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def _scaled(grey: np.ndarray, labels: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` (bilinear) and ``labels`` (nearest) resized by ``scale``."""
    shape = (max(1, int(round(grey.shape[0] * scale))), max(1, int(round(grey.shape[1] * scale))))
    if shape == grey.shape:
        return grey, labels
    small = np.asarray(Image.fromarray(grey).resize((shape[1], shape[0]), Image.BILINEAR))
    return small, _resize_labels(labels, shape)


def _radiograph_pixel(finding: Finding, spacing: tuple[float, ...], spacing_known: bool) -> tuple[float, float] | None:
    """(row, col) pixel of a radiograph finding (``location_mm`` is mm, or px when the
    pixel spacing is unknown)."""
    if finding.location_mm is None or len(finding.location_mm) != 2:
        return None
    row, col = finding.location_mm
    if spacing_known:
        row, col = row / spacing[0], col / spacing[1]
    return float(row), float(col)


def _render_radiograph(image: np.ndarray, labels: np.ndarray, spacing, findings: Findings, out_dir: Path) -> dict[str, str]:
    spacing = tuple(float(s) for s in spacing)
    known = findings.scan.pixel_spacing_known
    grey = to_grey(image, grey_window(image))
    labels = np.asarray(labels)
    scale = min(MAX_WIDTH / grey.shape[1], 3.0)
    small_grey, small_labels = _scaled(grey, labels, scale)
    overview = annotate(small_grey, small_labels)
    draw = ImageDraw.Draw(overview)
    draw_tooth_numbers(draw, small_labels)
    pixels = {f.id: _radiograph_pixel(f, spacing, known) for f in findings.findings}
    for number, finding in enumerate(findings.findings, start=1):
        if pixels[finding.id] is not None:
            row, col = pixels[finding.id]
            draw_marker(draw, (row + 0.5) * scale - 0.5, (col + 0.5) * scale - 0.5, finding.severity, number)
    _save(overview, out_dir / RADIOGRAPH_NAME)
    paths: dict[str, str] = {}
    half = [int(round(CROP_MM / 2 / s)) if known else grey.shape[0] // 6 for s in spacing]
    for number, finding in enumerate(findings.findings, start=1):
        if pixels[finding.id] is None:
            paths[finding.id] = f"{out_dir.name}/{RADIOGRAPH_NAME}"
            continue
        row, col = (int(round(v)) for v in pixels[finding.id])
        r0, c0 = max(row - half[0], 0), max(col - half[1], 0)
        r1, c1 = min(row + half[0] + 1, grey.shape[0]), min(col + half[1] + 1, grey.shape[1])
        if r1 <= r0 or c1 <= c0:  # outside the image
            paths[finding.id] = f"{out_dir.name}/{RADIOGRAPH_NAME}"
            continue
        zoom = PANEL_PX / max(r1 - r0, c1 - c0)
        crop_grey, crop_labels = _scaled(grey[r0:r1, c0:c1], labels[r0:r1, c0:c1], zoom)
        crop = annotate(crop_grey, crop_labels)
        draw = ImageDraw.Draw(crop)
        centre = ((row - r0 + 0.5) * zoom - 0.5, (col - c0 + 0.5) * zoom - 0.5)
        draw_tooth_numbers(draw, crop_labels, avoid=centre)
        draw_marker(draw, *centre, finding.severity)
        name = _file_name(number, finding.id)
        _save(_caption(crop, _title(number, finding)), out_dir / name)
        paths[finding.id] = f"{out_dir.name}/{name}"
    return paths


# --- entry point ---------------------------------------------------------------------


def render_overlays(
    image: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, ...],
    findings: Findings,
    out_dir: Path | str,
    *,
    geometry: Geometry | None = None,
) -> dict[str, str]:
    """Write the overlay PNGs of one analysis into ``out_dir`` (normally ``DIR/overlays``).

    Args:
        image: canonical grey values, a volume [x, y, z] (RAS) or a radiograph [row, col].
        labels: label map of the same shape (DESIGN.md ids, teeth by FDI number).
        spacing: mm per axis (radiographs with unknown spacing: 1 px = 1 "mm").
        findings: the analysis' findings; volume ``location_mm`` is LPS mm, radiograph
            ``location_mm`` is (row, col) mm, or px when ``scan.pixel_spacing_known`` is false.
        out_dir: folder to write into (created if missing).
        geometry: placement of the volume in the patient frame; None = LPS is canonical mm.

    Returns:
        {finding id: path relative to ``out_dir``'s parent, e.g. "overlays/pano.png"} for
        every finding that has an image: its own view when it has a location, otherwise
        the overview (``pano.png`` / ``radiograph.png``). With no arch to follow a volume
        has no ``pano.png``, and its findings without a location get no entry.
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.shape != labels.shape or image.ndim not in (2, 3):
        raise ValueError(
            f"image {image.shape} and labels {labels.shape} must be one 2D radiograph or 3D volume of the same shape"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        return _render_volume(image, labels, spacing, findings, out_dir, geometry)
    return _render_radiograph(image, labels, spacing, findings, out_dir)


__all__ = [
    "PanoView",
    "render_overlays",
    "panoramic_view",
    "fit_arch",
    "canonical_mm",
    "annotate",
    "outline_mask",
    "draw_marker",
    "draw_tooth_numbers",
    "grey_window",
    "to_grey",
    "SEVERITY_COLOURS",
    "LABEL_COLOURS",
    "PANO_NAME",
    "RADIOGRAPH_NAME",
    "OVERVIEW_NAMES",
]
