"""The one error hierarchy of odontoscan.

Every bad input raises a subclass of :class:`OdontoscanError`. Each class knows the
CLI exit status and the HTTP status it maps to, and a short machine-readable
``code`` used in API error bodies (``{"error": {"code", "message"}}``).

Messages say what was wrong with which input and what to do about it. They never
contain patient data: readers refer to series by UID and slices by position or
instance number, not by patient attributes.

This module lives in ``datasets`` because that is the bottom layer that every other
part (models, planning, serving, training) may import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class OdontoscanError(Exception):
    """Base class of every error odontoscan raises on purpose."""

    code: str = "odontoscan_error"
    exit_code: int = 2
    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- input / ingest -------------------------------------------------------------------


class ScanReadError(OdontoscanError):
    """The input could not be read as a scan (missing, empty, not an image, corrupt)."""

    code = "unreadable_scan"


class UnsupportedFormatError(ScanReadError):
    """The file is of a kind odontoscan does not read."""

    code = "unsupported_format"
    http_status = 415


class TruncatedFileError(ScanReadError):
    """A file ends before its declared content does."""

    code = "truncated_file"


class UnsupportedTransferSyntaxError(ScanReadError):
    """DICOM pixel data is compressed with a codec that no installed plugin decodes."""

    code = "unsupported_transfer_syntax"
    http_status = 415


class SeriesGeometryError(ScanReadError):
    """Slices of a series cannot be stacked into a correct volume.

    Raised for missing or duplicate slices, uneven spacing, gantry tilt and slices
    without position or orientation: stacking them anyway would put anatomy and
    measurements in the wrong place.
    """

    code = "invalid_series_geometry"


class MixedSeriesError(ScanReadError):
    """Images that claim to be one series disagree (size, orientation, modality)."""

    code = "mixed_series"


class SeriesNotFoundError(ScanReadError):
    """The series asked for with ``--series`` is not in the input."""

    code = "series_not_found"


class DimensionError(ScanReadError):
    """A 2D image was given where a 3D volume is required, or the reverse."""

    code = "wrong_dimension"
    http_status = 422


class ArchiveError(ScanReadError):
    """A zip archive is unsafe (paths outside its folder) or over the size limits."""

    code = "unsafe_archive"


class ArchiveTooLargeError(ArchiveError):
    """A zip archive holds more bytes or files than the configured limit."""

    code = "archive_too_large"
    http_status = 413


# --- configuration / usage ------------------------------------------------------------


class ConfigError(OdontoscanError):
    """A configuration file or option is invalid."""

    code = "invalid_config"
    http_status = 422


# --- models ---------------------------------------------------------------------------


class ModelError(OdontoscanError):
    """A model directory, ONNX file or registry entry is missing, corrupt or inconsistent."""

    code = "invalid_model"
    http_status = 422


class ModelFitError(ModelError):
    """A model was asked to read a scan it was not trained for (modality, dimensions)."""

    code = "model_does_not_fit"


class ExportError(ModelError):
    """An ONNX export failed its checks (parity with PyTorch); nothing was written."""

    code = "export_failed"
    http_status = 500


# --- outputs ---------------------------------------------------------------------------


class OutputError(OdontoscanError):
    """An output (DICOM SEG/SR, report) could not be built from what the analysis found."""

    code = "output_failed"
    http_status = 500


# --- PACS (DICOMweb) -------------------------------------------------------------------


class PacsError(OdontoscanError):
    """A PACS answered with an error or something that is not valid DICOMweb.

    Messages name the PACS by its URL without credentials and never repeat them.
    """

    code = "pacs_error"
    http_status = 502


class PacsUnreachableError(PacsError):
    """The PACS did not answer (connection refused, timeout, repeated 5xx) after the retries."""

    code = "pacs_unreachable"
    http_status = 503


class PacsAuthError(PacsError):
    """The PACS refused the credentials (HTTP 401/403)."""

    code = "pacs_unauthorized"


class StudyNotFoundError(PacsError):
    """The study (or its image series) is not, or no longer, in the PACS."""

    code = "study_not_found"
    http_status = 404


class PartialRetrieveError(PacsError):
    """A WADO-RS retrieve returned fewer (or more) instances than the PACS announced."""

    code = "partial_retrieve"


class PacsStoreError(PacsError):
    """The PACS refused a STOW-RS store, or stored only part of it."""

    code = "pacs_store_refused"


# --- helpers --------------------------------------------------------------------------


def describe_validation_error(error: ValidationError, what: str, source: str) -> str:
    """A pydantic ValidationError as one line per problem, each with its dotted key path,
    under a header naming the file (``what`` is the kind of file, ``source`` its name).
    Input values are never repeated (they may be patient data)."""
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key (check the spelling)")
        elif item["type"] == "missing":
            lines.append(f"{where}: required key is missing")
        else:
            lines.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return f"Invalid {what} {source}:\n  " + "\n  ".join(lines)


__all__ = [
    "describe_validation_error",
    "OdontoscanError",
    "ScanReadError",
    "UnsupportedFormatError",
    "TruncatedFileError",
    "UnsupportedTransferSyntaxError",
    "SeriesGeometryError",
    "MixedSeriesError",
    "SeriesNotFoundError",
    "DimensionError",
    "ArchiveError",
    "ArchiveTooLargeError",
    "ConfigError",
    "ModelError",
    "ModelFitError",
    "ExportError",
    "OutputError",
    "PacsError",
    "PacsUnreachableError",
    "PacsAuthError",
    "StudyNotFoundError",
    "PartialRetrieveError",
    "PacsStoreError",
]
