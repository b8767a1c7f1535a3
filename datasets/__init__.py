"""odontoscan.datasets: scan readers, the Scan type, label maps, phantoms and dataset adapters."""

from odontoscan.datasets.errors import OdontoscanError
from odontoscan.datasets.load import load_scan
from odontoscan.datasets.scan import Modality, Scan, ScanMeta

__all__ = ["load_scan", "Scan", "ScanMeta", "Modality", "OdontoscanError"]
