"""``extract_findings``: label map (+ image) -> :class:`Findings` (findings.json)."""

from __future__ import annotations

import numpy as np

from odontoscan.datasets.findings_schema import Findings, ModelInfo, ScanInfo, Tooth
from odontoscan.datasets.geometry import Geometry
from odontoscan.models.findings.anatomy import anatomy_findings
from odontoscan.models.findings.chart import tooth_chart
from odontoscan.models.findings.context import Context
from odontoscan.models.findings.lesions import labelled_findings


def extract_findings(
    labels: np.ndarray,
    spacing: tuple[float, ...],
    *,
    scan: ScanInfo,
    model: ModelInfo,
    image: np.ndarray | None = None,
    geometry: Geometry | None = None,
) -> Findings:
    """The tooth chart and every finding of one label map.

    Args:
        labels: canonical label map of DESIGN.md ids (teeth by FDI number).
        spacing: mm per axis of ``labels`` (radiographs without a known pixel spacing:
            pass 1.0 and ``scan.pixel_spacing_known=False``; measurements are then in px).
        scan, model: what ``findings.json`` says about the scan and the model.
        image: the grey values on the same grid (caries depth needs it), or None.
        geometry: the volume's placement in the patient frame, so locations are LPS mm.
    """
    if image is not None and image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and label map {labels.shape} differ in shape")
    ctx = Context(labels, tuple(float(s) for s in spacing), image, geometry, scan.pixel_spacing_known)
    chart = tooth_chart(ctx)
    findings = labelled_findings(ctx, chart) + anatomy_findings(ctx, chart)
    findings = _unique_ids(sorted(findings, key=lambda f: (f.fdi or 0, f.kind.value)))
    teeth = [Tooth(fdi=fdi, status=chart.status[fdi], confidence=chart.confidence[fdi]) for fdi in sorted(chart.status)]
    return Findings(scan=scan, model=model, teeth=teeth, findings=findings)


def _unique_ids(findings: list) -> list:
    """Number findings that share kind and tooth: caries-36-1, caries-36-2, ..."""
    seen: dict[str, int] = {}
    out = []
    for finding in findings:
        stem = finding.id.rsplit("-", 1)[0]
        seen[stem] = seen.get(stem, 0) + 1
        out.append(finding.model_copy(update={"id": f"{stem}-{seen[stem]}"}))
    return out


__all__ = ["extract_findings"]
