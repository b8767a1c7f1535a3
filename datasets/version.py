"""The installed odontoscan version, written into models, DICOM outputs and ``--version``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def odontoscan_version() -> str:
    """The installed package version, or "0+unknown" when running from a bare source tree."""
    try:
        return version("odontoscan")
    except PackageNotFoundError:
        return "0+unknown"


__all__ = ["odontoscan_version"]
