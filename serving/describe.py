"""Plain description of a loaded scan for ``odontoscan info`` and the API (no identifiers)."""

from __future__ import annotations

import numpy as np

from odontoscan.datasets.scan import Scan


def describe_scan(scan: Scan) -> dict:
    """Technical facts about ``scan`` as JSON-ready values; never patient data."""
    finite = scan.array[np.isfinite(scan.array)] if scan.array.size < 5_000_000 else scan.array[::4]
    unit = "mm" if scan.pixel_spacing_known else "px (spacing unknown)"
    return {
        "modality": scan.modality.value,
        "dimensions": scan.array.ndim,
        "shape": list(scan.shape),
        "spacing": [round(s, 5) for s in scan.spacing],
        "spacing_unit": unit,
        "orientation": scan.orientation,
        "source_orientation": scan.meta.source_orientation or "",
        "source_format": scan.meta.source_format,
        "series_instance_uid": scan.meta.series_instance_uid or "",
        "study_instance_uid": scan.meta.study_instance_uid or "",
        "transfer_syntax_uid": scan.meta.transfer_syntax_uid or "",
        "pixel_spacing_source": scan.meta.pixel_spacing_source or "",
        "value_range": [float(np.min(finite)), float(np.max(finite))],
        "other_series": [s.model_dump() for s in scan.meta.other_series],
    }
