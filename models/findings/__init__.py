"""Findings extraction: a label map (DESIGN.md ids) and its image -> the findings.json document.

``extract_findings`` is the entry point; :mod:`.context` holds what the rules share
(masks, the dental arch, coordinates), :mod:`.chart` the 32-tooth chart and the
sites of missing teeth, :mod:`.lesions` the findings painted by the model (caries,
periapical lesions, restorations, root-canal fillings), :mod:`.anatomy` the
measurements a planner uses (canal and sinus distances, bone at missing sites,
impacted third molars). Torch-free (numpy + scipy).
"""

from odontoscan.models.findings.extract import extract_findings

__all__ = ["extract_findings"]
