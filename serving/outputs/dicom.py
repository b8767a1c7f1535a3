"""DICOM outputs of ``odontoscan analyze --dicom-out``: a Segmentation and a measurement report.

* ``seg.dcm`` (CBCT volumes): a BINARY DICOM Segmentation (highdicom) with one
  segment per label id present in the label map. Its frames are laid out like the
  source series' stored slices (not the canonical RAS array), each frame referencing
  the source instance it segments, so any viewer overlays it on the original series.
* ``sr.dcm`` (volumes and DICOM radiographs): a Comprehensive 3D SR holding a TID 1500
  Measurement Report with one measurement group per finding (tracking identifier =
  finding id, finding type, tooth as finding site, measurements in UCUM units,
  severity).

Both are filed under the source study, so they copy its patient and study modules:
the standard requires it. Nothing here logs or prints those attributes; messages
refer to series by UID only.

Coding: standard codes come from pydicom's SNOMED CT / DCM / UCUM dictionaries (the
32 permanent teeth, mandible, maxilla, maxillary sinus, pharynx, ...). Concepts those
dictionaries lack get a generic standard code (anatomical structure, physical object,
lesion) in the SEG, whose segment label carries the exact name, and a local code of
the coding scheme ``99ODONTO`` in the SR, whose value is odontoscan's own name.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from odontoscan.datasets.errors import (
    ConfigError,
    DimensionError,
    OutputError,
    ScanReadError,
    UnsupportedFormatError,
)
from odontoscan.datasets.findings_schema import Finding, FindingKind, Findings, ModelInfo, Severity, Unit
from odontoscan.datasets.geometry import to_source
from odontoscan.datasets.labels import FDI_TEETH, PULP_OFFSET, Label
from odontoscan.datasets.readers.archive import extract_zip
from odontoscan.datasets.readers.dicom_series import (
    DicomImage,
    choose_series,
    find_images,
    group_series,
    is_dicom_file,
    read_header,
)
from odontoscan.datasets.readers.dicom_volume import order_and_check, slices_of
from odontoscan.datasets.scan import Scan
from odontoscan.datasets.version import odontoscan_version
from odontoscan.datasets.writers import atomic_file, deterministic_uid

try:  # an optional dependency: the "dicom" extra
    import highdicom as hd
except ImportError as exc:
    raise ConfigError(
        "--dicom-out needs the highdicom package; install it with "
        "pip install 'odontoscan[dicom]'."
    ) from exc

log = logging.getLogger(__name__)

MANUFACTURER = "odontoscan"
SEG_SERIES_NUMBER, SR_SERIES_NUMBER = 901, 902  # high numbers keep derived series after the scan's
LOCAL_SCHEME = "99ODONTO"  # private coding scheme ("99" prefix) for odontoscan's own concepts
_DICOM_FORMATS = ("dicom-series", "dicom-enhanced", "dicom-image")
_NOT_DICOM = (
    "--dicom-out needs a DICOM input (a DICOM series folder, zip or file): DICOM SEG "
    "and SR must reference the source images. Run it on the original DICOM series, or "
    "use labels.nii.gz and findings.json instead."
)

# --- codes ------------------------------------------------------------------------------

_ANATOMY = codes.SCT.AnatomicalStructure
_DEVICE = codes.SCT.PhysicalObject
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure
DENTAL_CARIES = Code("80967001", "SCT", "Dental caries")  # not in pydicom's dictionary

# Label id -> (segmented property category, segmented property type, anatomic region).
_STRUCTURE_CODES: dict[int, tuple[Code, Code, Code | None]] = {
    Label.LOWER_JAWBONE: (_ANATOMY, codes.SCT.Mandible, None),
    Label.UPPER_JAWBONE: (_ANATOMY, codes.SCT.Maxilla, None),
    Label.LEFT_IAC: (_ANATOMY, _ANATOMY, codes.SCT.Mandible),
    Label.RIGHT_IAC: (_ANATOMY, _ANATOMY, codes.SCT.Mandible),
    Label.LEFT_SINUS: (_ANATOMY, codes.SCT.MaxillarySinus, None),
    Label.RIGHT_SINUS: (_ANATOMY, codes.SCT.MaxillarySinus, None),
    Label.PHARYNX: (_ANATOMY, codes.SCT.Pharynx, None),
    Label.BRIDGE: (_DEVICE, codes.SCT.DentalProsthesis, None),
    Label.CROWN: (_DEVICE, codes.SCT.DentalProsthesis, None),
    Label.IMPLANT: (_DEVICE, codes.SCT.Implant, None),
    Label.LEFT_INCISIVE_CANAL: (_ANATOMY, _ANATOMY, codes.SCT.Maxilla),
    Label.RIGHT_INCISIVE_CANAL: (_ANATOMY, _ANATOMY, codes.SCT.Maxilla),
    Label.LINGUAL_CANAL: (_ANATOMY, _ANATOMY, codes.SCT.Mandible),
    Label.CARIES: (_ABNORMAL, DENTAL_CARIES, codes.SCT.Tooth),
    Label.PERIAPICAL_LESION: (_ABNORMAL, codes.SCT.Lesion, codes.SCT.Tooth),
    Label.RESTORATION: (_DEVICE, _DEVICE, codes.SCT.Tooth),
    Label.ROOT_CANAL_FILLING: (_DEVICE, _DEVICE, codes.SCT.Tooth),
}

_QUADRANT_WORDS = {1: "PermanentMaxillaryRight", 2: "PermanentMaxillaryLeft", 3: "MandibularLeft", 4: "MandibularRight"}
_POSITION_WORDS = {
    1: "CentralIncisor", 2: "LateralIncisor", 3: "Canine", 4: "FirstPremolar",
    5: "SecondPremolar", 6: "FirstMolar", 7: "SecondMolar", 8: "ThirdMolar",
}

_UNITS: dict[Unit, Code] = {
    Unit.MM: codes.UCUM.Millimeter,
    Unit.MM2: codes.UCUM.SquareMillimeter,
    Unit.MM3: codes.UCUM.CubicMillimeter,
    Unit.PX: Code("{pixel}", "UCUM", "pixel"),
    Unit.PX2: Code("{pixel^2}", "UCUM", "square pixel"),
    Unit.DEGREE: codes.UCUM.Degree,
    Unit.RATIO: codes.UCUM.Ratio,
}
# Measurement names (without their unit suffix) with a standard concept.
_MEASUREMENT_NAMES: dict[str, Code] = {
    "volume": codes.SCT.Volume,
    "area": codes.SCT.Area,
    "diameter": codes.SCT.Diameter,
    "length": codes.SCT.Length,
    "width": codes.SCT.Width,
    "depth": codes.SCT.Depth,
    "height": codes.DCM.Height,
    "angle": codes.SCT.Angle,
    "distance": codes.DCM.Distance,
}
_UNIT_SUFFIX = re.compile(r"_(mm|mm2|mm3|px|px2|deg|ratio)$")
_SEVERITY_VALUES = {Severity.LOW: codes.SCT.Mild, Severity.MODERATE: codes.SCT.Moderate, Severity.HIGH: codes.SCT.Severe}


def local_code(name: str) -> Code:
    """A code of the ``99ODONTO`` scheme for one of odontoscan's own names."""
    return Code(name, LOCAL_SCHEME, name.replace("_", " ").capitalize())


def tooth_code(fdi: int) -> Code:
    """SNOMED CT code of a permanent tooth by FDI number (generic "Tooth" if unknown)."""
    name = f"{_QUADRANT_WORDS.get(fdi // 10, '')}{_POSITION_WORDS.get(fdi % 10, '')}Tooth"
    # pydicom's dictionary spells tooth 32 "Mandibular left lateral tooth".
    for candidate in (name, name.replace("LateralIncisor", "Lateral")):
        code = getattr(codes.SCT, candidate, None)
        if code is not None:
            return code
    return codes.SCT.Tooth


def segment_codes(label: int) -> tuple[Code, Code, Code | None]:
    """(category, type, anatomic region or None) describing one label id in a SEG."""
    if label in FDI_TEETH:
        return _ANATOMY, tooth_code(label), None
    if label - PULP_OFFSET in FDI_TEETH:  # pulp of a tooth: no pulp code in the dictionary
        return _ANATOMY, _ANATOMY, tooth_code(label - PULP_OFFSET)
    return _STRUCTURE_CODES.get(label, (_ANATOMY, _ANATOMY, None))


def finding_type_code(kind: FindingKind) -> Code:
    """Finding type of a measurement group: a standard code where one is known."""
    return DENTAL_CARIES if kind is FindingKind.CARIES else local_code(kind.value)


def measurement_code(name: str) -> Code:
    """Concept name of a measurement such as ``volume_mm3`` or ``distance_to_pulp_mm``."""
    stem = _UNIT_SUFFIX.sub("", name)
    return _MEASUREMENT_NAMES.get(stem) or local_code(stem)


# --- source headers ---------------------------------------------------------------------


def read_source_headers(source: str | Path, series_uid: str) -> list[Dataset]:
    """Headers (no pixel data) of the images of one series in a DICOM folder, zip or file.

    Raises:
        ScanReadError: ``source`` does not exist.
        UnsupportedFormatError: ``source`` holds no DICOM images (e.g. a NIfTI file).
        SeriesNotFoundError: no image of ``series_uid`` is in ``source``.
    """
    source = Path(source)
    if not source.exists():
        raise ScanReadError("The input scan no longer exists; --dicom-out reads its DICOM headers again.")
    if source.is_dir():
        images = _images_in_folder(source)
    elif source.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="odontoscan-zip-") as tmp:
            extract_zip(source, Path(tmp))
            images = _images_in_folder(Path(tmp))
    elif is_dicom_file(source):
        images, _ = find_images([source])
    else:
        images = []
    if not images:
        raise UnsupportedFormatError(_NOT_DICOM)
    _, series, _ = choose_series(group_series(images), series_uid)
    return [image.header for image in series]


def _images_in_folder(folder: Path) -> list[DicomImage]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return find_images(files)[0]


def _require_dicom(scan: Scan) -> str:
    if scan.meta.source_format not in _DICOM_FORMATS or not scan.meta.series_instance_uid:
        raise UnsupportedFormatError(_NOT_DICOM)
    return scan.meta.series_instance_uid


# Type 2 patient/study attributes that highdicom copies and de-identified files often drop.
_TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName",
)


def _complete_type2(headers: list[Dataset]) -> list[Dataset]:
    """The headers, with absent Type 2 patient/study attributes added empty (on copies)."""
    completed = []
    for header in headers:
        missing = [k for k in _TYPE2_COPIED if k not in header]
        if missing:
            header = copy.deepcopy(header)
            for keyword in missing:
                setattr(header, keyword, "")
        completed.append(header)
    return completed


def _require_headers(headers: list[Dataset], series_uid: str | None = None) -> None:
    if not headers:
        raise ScanReadError(
            "No DICOM headers of the source series were given; read them with "
            "read_source_headers from the analysed input."
        )
    found = {str(getattr(h, "SeriesInstanceUID", "")) for h in headers}
    if series_uid is not None and found != {series_uid}:
        raise ScanReadError(
            f"The DICOM headers given are not (only) those of the analysed series "
            f"{series_uid}; read them with read_source_headers for that series."
        )


# --- segmentation -----------------------------------------------------------------------


def present_labels(labels: np.ndarray) -> list[int]:
    """Sorted non-zero ids in an integer label map (counted plane by plane, little memory)."""
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
        raise ValueError(f"labels must hold non-negative integer ids, got dtype {labels.dtype}")
    ids: set[int] = set()
    for plane in labels:
        ids.update(int(i) for i in np.flatnonzero(np.bincount(plane.ravel())))
    ids.discard(0)
    return sorted(ids)


def source_frames(scan: Scan, labels: np.ndarray, headers: list[Dataset]) -> tuple[list[Dataset], np.ndarray]:
    """The source images and the label map as frames ``[frame, row, column]`` matching them.

    Classic series: frame ``n`` lies on the ``n``-th returned header (sorted along the
    slice normal, as the reader stacked them). One multi-frame image: frame ``n`` lies
    on its frame ``n``.
    """
    series_uid = _require_dicom(scan)
    images = [DicomImage(Path(str(getattr(h, "filename", "") or "")), h) for h in headers]
    refs, _ = order_and_check(images, slices_of(images), series_uid)
    stored = to_source(labels, scan.geometry)  # stored index order (i, j, k)
    if len(refs) != stored.shape[2] or set(r.sop_instance_uid for r in refs) != set(scan.meta.sop_instance_uids):
        raise ScanReadError(
            f"The DICOM headers of series {series_uid} do not match the analysed scan "
            f"({len(refs)} slices for {stored.shape[2]}); the input changed after "
            "analysis. Analyse it again."
        )
    frames = np.transpose(stored, (2, 1, 0))  # (k, rows, columns)
    if all(r.frame is None for r in refs):
        return [images[r.image].header for r in refs], frames
    if len({r.image for r in refs}) > 1:
        raise ScanReadError(
            f"Series {series_uid} is split over several multi-frame files; DICOM SEG "
            "output supports one multi-frame image or a classic series."
        )
    by_frame = np.argsort([r.frame for r in refs])  # stored slice of each source frame
    return [images[refs[0].image].header], frames[by_frame]


def write_seg(
    scan: Scan,
    labels: np.ndarray,
    label_names: dict[int, str],
    source_headers: list[Dataset],
    path: str | Path,
    *,
    model: ModelInfo | None = None,
) -> Path:
    """Write ``labels`` (canonical orientation, like ``scan.array``) as a BINARY DICOM SEG.

    One segment per non-zero label id present, labelled from ``label_names`` and coded
    by :func:`segment_codes`; frames follow the source series' slices and empty frames
    are left out. ``model`` (``findings.model``) names the algorithm. The file appears
    at ``path`` complete or not at all.

    Raises:
        UnsupportedFormatError: the scan was not read from DICOM.
        DimensionError: the scan is a 2D radiograph.
        ScanReadError: ``source_headers`` are missing or are not the scan's series.
        OutputError: highdicom could not build the segmentation from the headers.
    """
    if labels.shape != scan.array.shape:
        raise ValueError(f"labels has shape {labels.shape}, the scan {scan.array.shape}")
    series_uid = _require_dicom(scan)
    if not scan.is_volume:
        raise DimensionError(
            "DICOM SEG output is written for CBCT volumes only; for a radiograph use the "
            "overlays and the DICOM SR."
        )
    _require_headers(source_headers, series_uid)
    present = present_labels(labels)
    if not present:
        raise OutputError("The label map is empty: there is nothing to write as a DICOM SEG.")
    # Label ids -> segment numbers 1..N (highdicom wants every number up to the maximum described).
    lookup = np.zeros(present[-1] + 1, dtype=np.uint8 if len(present) < 256 else np.uint16)
    lookup[present] = np.arange(1, len(present) + 1)
    images, frames = source_frames(scan, labels, _complete_type2(source_headers))
    # C order: highdicom slices one frame at a time, and a transposed layout makes every
    # per-segment comparison stride across the whole volume (85x slower per frame).
    frames = np.ascontiguousarray(lookup[frames])

    algorithm = hd.AlgorithmIdentificationSequence(
        name=model.name if model else MANUFACTURER,
        family=codes.cid7162.ArtificialIntelligence,
        version=model.version if model else odontoscan_version(),
        source=MANUFACTURER,
    )
    descriptions = []
    for number, label in enumerate(present, start=1):
        category, kind, region = segment_codes(label)
        name = label_names.get(label, f"Label {label}")
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name[:64],
                segmented_property_category=category,
                segmented_property_type=kind,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=deterministic_uid(series_uid, "segment", label),
                tracking_id=name[:64],
                anatomic_regions=[region] if region is not None else None,
            )
        )
    content_hash = hashlib.sha256(frames.tobytes()).hexdigest()
    try:
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=deterministic_uid(series_uid, "odontoscan-seg"),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=deterministic_uid(series_uid, "seg", content_hash, model),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=model.name if model else MANUFACTURER,
            software_versions=odontoscan_version(),
            device_serial_number="none",
            content_label="ODONTOSCAN",
            content_description="odontoscan automatic segmentation",
            omit_empty_frames=True,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise OutputError(
            f"Could not build a DICOM SEG on series {series_uid} ({type(exc).__name__}); "
            "its headers lack geometry or pixel attributes the standard requires."
        ) from exc
    out = _save_atomic(seg, Path(path))
    log.info("wrote DICOM SEG: %d segments, %d frames", len(present), int(seg.NumberOfFrames))
    return out


# --- structured report ------------------------------------------------------------------


def _group(finding: Finding, series_uid: str, algorithm: hd.sr.AlgorithmIdentification) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    measurements = [
        hd.sr.Measurement(name=measurement_code(name), value=m.value, unit=_UNITS[m.unit])
        for name, m in finding.measurements.items()
    ]
    severity = _SEVERITY_VALUES.get(finding.severity)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=deterministic_uid(series_uid, "finding", finding.id), identifier=finding.id
        ),
        finding_type=finding_type_code(finding.kind),
        finding_sites=[hd.sr.FindingSite(tooth_code(finding.fdi))] if finding.fdi is not None else None,
        algorithm_id=algorithm,
        measurements=measurements or None,
        qualitative_evaluations=(
            [hd.sr.QualitativeEvaluation(codes.SCT.Severity, severity)] if severity is not None else None
        ),
    )


def _no_findings_group(series_uid: str, algorithm: hd.sr.AlgorithmIdentification) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1500 needs one group: with no findings it says "Presence of property: Absent"."""
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=deterministic_uid(series_uid, "finding", "none"), identifier="no-findings"
        ),
        finding_type=codes.DCM.Finding,
        algorithm_id=algorithm,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.DCM.PresenceOfProperty, codes.DCM.Absent)],
    )


def write_sr(
    findings: Findings,
    source_headers: list[Dataset],
    path: str | Path,
    *,
    seg_path: str | Path | None = None,
) -> Path:
    """Write ``findings`` as a Comprehensive 3D SR (TID 1500 Measurement Report).

    One measurement group per finding; the observer is the odontoscan device. The
    source images (and the SEG at ``seg_path``, when given) are recorded as evidence.
    The file appears at ``path`` complete or not at all.

    Raises:
        ScanReadError: ``source_headers`` are missing, or ``seg_path`` does not exist.
        OutputError: highdicom could not build the report from the headers.
    """
    _require_headers(source_headers)
    series_uid = str(source_headers[0].SeriesInstanceUID)
    evidence = _complete_type2(source_headers)
    if seg_path is not None:
        seg_path = Path(seg_path)
        if not seg_path.is_file():
            raise ScanReadError("The DICOM SEG to reference from the SR does not exist; write it first.")
        evidence += _complete_type2([read_header(seg_path)])

    model = findings.model
    algorithm = hd.sr.AlgorithmIdentification(name=model.name, version=model.version)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=deterministic_uid(MANUFACTURER, model.name, model.version),
            name=MANUFACTURER,
            manufacturer_name=MANUFACTURER,
            model_name=f"{model.name} {model.version}",
        ),
    )
    groups = [_group(f, series_uid, algorithm) for f in findings.findings]
    procedure = (
        codes.cid100.CTUnspecifiedBodyRegion
        if findings.scan.modality == "CT"
        else codes.cid100.XRUnspecifiedBodyRegion
    )
    content_hash = hashlib.sha256(
        findings.model_dump_json(exclude={"timings_ms"}).encode()
    ).hexdigest()
    try:
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=observer),
            procedure_reported=procedure,
            imaging_measurements=groups or [_no_findings_group(series_uid, algorithm)],
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=deterministic_uid(series_uid, "odontoscan-sr"),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=deterministic_uid(series_uid, "sr", content_hash),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise OutputError(
            f"Could not build a DICOM SR on series {series_uid} ({type(exc).__name__}); "
            "its headers lack attributes the standard requires."
        ) from exc
    out = _save_atomic(sr, Path(path))
    log.info("wrote DICOM SR: %d measurement groups", len(groups))
    return out


# --- writing ----------------------------------------------------------------------------


def _save_atomic(dataset: Dataset, path: Path) -> Path:
    """Save to a temporary file beside ``path``, then rename it into place."""
    with atomic_file(path, "wb") as handle:
        dataset.save_as(handle, enforce_file_format=True)
    return path


__all__ = [
    "read_source_headers",
    "write_seg",
    "write_sr",
    "source_frames",
    "present_labels",
    "segment_codes",
    "tooth_code",
    "finding_type_code",
    "measurement_code",
    "local_code",
]
