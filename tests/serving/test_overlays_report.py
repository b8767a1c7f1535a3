"""Overlay PNGs and the HTML report of an analysis, on a small CBCT phantom and the
panoramic radiograph projected from it, with the phantom's ground truth as findings."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from PIL import Image

from odontoscan.datasets.findings_schema import Findings
from odontoscan.datasets.geometry import canonical_geometry
from odontoscan.datasets.labels import FDI_TEETH, Label
from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.phantom.pano import pano_from_cbct
from odontoscan.serving.outputs.overlays import (
    LABEL_COLOURS,
    MAX_WIDTH,
    PANO_NAME,
    RADIOGRAPH_NAME,
    SEVERITY_COLOURS,
    annotate,
    canonical_mm,
    panoramic_view,
    render_overlays,
)
from odontoscan.serving.outputs.report import NOTE, STATUS_COLOURS, render_report, write_report

EVIL_ID = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def cbct():
    return generate_cbct(0, "small")


@pytest.fixture(scope="module")
def cbct_out(cbct, tmp_path_factory):
    """The CBCT's overlays rendered into DIR/overlays: (DIR, {finding id: path}, seconds)."""
    out = tmp_path_factory.mktemp("cbct")
    start = time.perf_counter()
    paths = render_overlays(cbct.image, cbct.labels, cbct.spacing, cbct.ground_truth, out / "overlays", geometry=cbct.geometry)
    return out, paths, time.perf_counter() - start


@pytest.fixture(scope="module")
def view(cbct):
    """The panoramic view pano.png is drawn on (same inputs, same mapping)."""
    return panoramic_view(cbct.image, cbct.labels, cbct.spacing)


@pytest.fixture(scope="module")
def pano(cbct):
    return pano_from_cbct(cbct)


def rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def pixels_of(image: np.ndarray, colour) -> np.ndarray:
    """(row, col) of the pixels exactly of ``colour``."""
    return np.argwhere(np.all(image == np.asarray(colour, dtype=np.uint8), axis=-1))


def with_findings(findings: Findings, keep) -> Findings:
    copy = findings.model_copy(deep=True)
    copy.findings = [f for f in copy.findings if keep(f)]
    return copy


# --- CBCT ------------------------------------------------------------------------------


def test_every_finding_gets_an_existing_png(cbct, cbct_out):
    out, paths, seconds = cbct_out
    assert set(paths) == {f.id for f in cbct.ground_truth.findings}
    for finding_id, relative in paths.items():
        assert re.fullmatch(r"overlays/[A-Za-z0-9_.-]+\.png", relative), relative
        image = rgb(out / relative)
        assert image.shape[1] <= MAX_WIDTH and image.shape[0] >= 300
    assert len(set(paths.values())) == len(paths)  # every finding has a location, so its own view
    print(f"cbct overlays: {len(paths)} findings + pano in {seconds:.2f} s")


def test_pano_png_has_the_mapping_size_and_tooth_outline_colours(cbct_out, view):
    out, _, _ = cbct_out
    pano = rgb(out / "overlays" / PANO_NAME)
    assert pano.shape[:2] == view.mapping.shape
    assert pano.shape[1] == MAX_WIDTH
    teeth = [f for f in FDI_TEETH if np.any(view.labels == f)]
    assert len(teeth) >= 20
    for fdi in teeth:
        assert len(pixels_of(pano, LABEL_COLOURS[fdi])) > 20, f"no outline of tooth {fdi}"


def test_pano_writes_each_tooth_number_at_the_tooth(cbct_out, view):
    """The numbers' black halo appears at each tooth's centre; the same window of the
    overlay without text has no black pixel."""
    out, _, _ = cbct_out
    pano = rgb(out / "overlays" / PANO_NAME)
    plain = np.asarray(annotate(view.grey, view.labels))
    for fdi in (16, 11, 21, 26, 36, 31, 41, 47):
        rows, cols = np.nonzero(view.labels == fdi)
        r, c = int(rows.mean()), int(cols.mean())
        box = (slice(r - 6, r + 7), slice(c - 6, c + 7))
        assert len(pixels_of(pano[box], (0, 0, 0))) >= 5, f"no number at tooth {fdi}"
        assert len(pixels_of(plain[box], (0, 0, 0))) == 0


def test_pano_marker_sits_on_the_finding(cbct, view, tmp_path):
    """One finding alone: its ring is centred where the mapping puts it, which is on the
    lesion's own label in the projected label map."""
    lesion = next(f for f in cbct.ground_truth.findings if f.kind.value == "periapical_lesion")
    only = with_findings(cbct.ground_truth, lambda f: f.id == lesion.id)
    render_overlays(cbct.image, cbct.labels, cbct.spacing, only, tmp_path / "overlays", geometry=cbct.geometry)
    pano = rgb(tmp_path / "overlays" / PANO_NAME)
    expected = view.mapping.to_pano(canonical_mm(lesion.location_mm, cbct.geometry)[None])[0]
    ring = pixels_of(pano, SEVERITY_COLOURS[lesion.severity])
    assert len(ring) > 20
    np.testing.assert_allclose(ring.mean(axis=0), expected, atol=1.5)
    assert np.linalg.norm(ring - expected, axis=1).max() < 12
    r, c = np.rint(expected).astype(int)
    assert Label.PERIAPICAL_LESION in view.labels[r - 2 : r + 3, c - 2 : c + 3]


def test_finding_view_is_centred_on_the_finding(cbct, cbct_out):
    """Both views of a finding's PNG carry its severity ring, around the lesion's outline."""
    out, paths, _ = cbct_out
    lesion = next(f for f in cbct.ground_truth.findings if f.kind.value == "periapical_lesion")
    image = rgb(out / paths[lesion.id])
    ring = pixels_of(image, SEVERITY_COLOURS[lesion.severity])
    left, right = ring[ring[:, 1] < image.shape[1] / 2], ring[ring[:, 1] >= image.shape[1] / 2]
    assert len(left) > 20 and len(right) > 20  # axial view and cross-section
    lesion_outline = pixels_of(image, LABEL_COLOURS[Label.PERIAPICAL_LESION])
    for side in (left, right):
        centre = side.mean(axis=0)
        assert np.linalg.norm(lesion_outline - centre, axis=1).min() < 25


def test_lps_locations_map_back_to_canonical_mm():
    geometry = canonical_geometry((20, 30, 40), (0.5, 0.4, 0.3), (10.0, -5.0, 3.0), np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1.0]]))
    index = np.array([3.0, 7.0, 11.0])
    lps = geometry.index_to_lps(index, (0.4, 0.5, 0.3))  # canonical spacing: axes swapped
    np.testing.assert_allclose(canonical_mm(lps.tolist(), geometry), index * (0.4, 0.5, 0.3), atol=1e-9)
    np.testing.assert_allclose(canonical_mm([1.0, 2.0, 3.0], None), [1.0, 2.0, 3.0])


def test_shape_mismatch_is_refused(cbct, tmp_path):
    with pytest.raises(ValueError, match="same shape"):
        render_overlays(cbct.image, cbct.labels[:-1], cbct.spacing, cbct.ground_truth, tmp_path)


# --- radiograph ----------------------------------------------------------------------


def test_radiograph_overlay_marks_teeth_and_findings(pano, tmp_path):
    paths = render_overlays(pano.image, pano.labels, pano.spacing, pano.ground_truth, tmp_path / "overlays")
    assert set(paths) == {f.id for f in pano.ground_truth.findings}
    for relative in paths.values():
        assert (tmp_path / relative).is_file()
    overview = rgb(tmp_path / "overlays" / RADIOGRAPH_NAME)
    scale = overview.shape[1] / pano.image.shape[1]
    assert overview.shape[1] == MAX_WIDTH and abs(overview.shape[0] - pano.image.shape[0] * scale) <= 1
    for fdi in (11, 21, 31, 41):
        assert len(pixels_of(overview, LABEL_COLOURS[fdi])) > 20
    for finding in pano.ground_truth.findings:
        expected = (np.asarray(finding.location_mm) / pano.spacing + 0.5) * scale - 0.5
        ring = pixels_of(overview, SEVERITY_COLOURS[finding.severity])
        assert np.linalg.norm(ring - expected, axis=1).min() < 12, finding.id
        crop = rgb(tmp_path / paths[finding.id])
        assert crop.shape[1] <= MAX_WIDTH and len(pixels_of(crop, SEVERITY_COLOURS[finding.severity])) > 20


# --- report --------------------------------------------------------------------------


def test_report_of_a_cbct_analysis(cbct, cbct_out):
    out, paths, _ = cbct_out
    findings = cbct.ground_truth.model_copy(deep=True)
    for finding in findings.findings:
        finding.evidence.overlay = paths[finding.id]
    (out / "report.html").write_text("old")
    path = write_report(findings, out, plan_html="<ol><li>Plan step</li></ol>")
    assert path == out / "report.html"
    assert sorted(p.name for p in out.iterdir()) == ["overlays", "report.html"]  # no temp file left
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and NOTE in text
    assert "CT" in text and "152 × 152 × 114" in text and "phantom-ground-truth@1" in text
    for finding in findings.findings:
        assert finding.id in text
    chart = text[text.index('<table class="chart">') : text.index("</table>", text.index('<table class="chart">'))]
    numbers = [int(n) for n in re.findall(r"<b>(\d+)</b>", chart)]
    assert numbers == [18, 17, 16, 15, 14, 13, 12, 11, 21, 22, 23, 24, 25, 26, 27, 28,
                       48, 47, 46, 45, 44, 43, 42, 41, 31, 32, 33, 34, 35, 36, 37, 38]  # fmt: skip
    missing = [t.fdi for t in findings.teeth if t.status.value == "missing"]
    for fdi in missing:
        assert re.search(rf'background:{STATUS_COLOURS[findings.tooth(fdi).status]}" title="tooth {fdi}:', chart)
    assert text.count('src="data:image/png;base64,') == len(paths) + 1  # each finding's view + the pano
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "<ol><li>Plan step</li></ol>" in text
    assert "volume" in text and "mm³" in text


def test_report_escapes_text_and_takes_a_mapping_of_images(pano, tmp_path):
    findings = pano.ground_truth.model_copy(deep=True)
    findings.findings[0].id = EVIL_ID
    paths = render_overlays(pano.image, pano.labels, pano.spacing, findings, tmp_path / "overlays")
    assert "<" not in paths[EVIL_ID]  # file names are sanitised
    images = {key: tmp_path / value for key, value in paths.items()}
    images["overview"] = tmp_path / "overlays" / RADIOGRAPH_NAME
    text = render_report(findings, images, title="Scan <b>1</b>")
    assert "<script" not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "<title>Scan &lt;b&gt;1&lt;/b&gt;</title>" in text
    assert text.count("data:image/png;base64,") == len(set(images.values()))
    assert "px (pixel spacing unknown)" not in text and "PX" in text


def test_report_leaves_out_missing_and_outside_images(pano, tmp_path):
    findings = pano.ground_truth.model_copy(deep=True)
    findings.findings[0].evidence.overlay = "overlays/gone.png"
    findings.findings[1].evidence.overlay = "../outside.png"
    (tmp_path.parent / "outside.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text = render_report(findings, tmp_path)
    assert "data:image" not in text
    assert text.count("<td>—</td>") >= len(findings.findings)
    Image.new("RGB", (4, 4)).save(tmp_path / "picture.png")
    assert "data:image/png" in render_report(findings, {"overview": tmp_path / "picture.png"})
