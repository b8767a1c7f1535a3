"""``load_scan``: any supported scan file, folder or zip -> a canonical :class:`Scan`.

Dispatch by what the input is:

* a folder: DICOM images anywhere below it (other files ignored); with no DICOM, a
  single NIfTI/MHA/NRRD volume in it;
* a ``.zip``: extracted safely to a temporary folder, then read as a folder;
* a DICOM file: an Enhanced (multi-frame) CT volume or a 2D radiograph;
* ``.nii``/``.nii.gz``/``.mha``/``.mhd``/``.nrrd``/``.nhdr``: a volume (or a 2D image
  when one axis has a single voxel);
* ``.png``/``.jpg``/``.jpeg``/``.tif``/``.tiff``: a 2D radiograph.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

import numpy as np

from odontoscan.datasets.errors import (
    DimensionError,
    ScanReadError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from odontoscan.datasets.geometry import Geometry, canonicalize, orientation_code
from odontoscan.datasets.readers import image2d, itk_volume
from odontoscan.datasets.readers.archive import ArchiveLimits, extract_zip
from odontoscan.datasets.readers.dicom_radiograph import pixel_spacing, read_radiograph
from odontoscan.datasets.readers.dicom_series import (
    DicomImage,
    choose_series,
    find_images,
    group_series,
    is_dicom_file,
    is_image,
    is_volumetric,
    read_header,
)
from odontoscan.datasets.readers.dicom_volume import stack
from odontoscan.datasets.scan import Modality, Scan, ScanMeta, SeriesSummary

log = logging.getLogger(__name__)

SUPPORTED = (
    "a DICOM series folder or .zip, a DICOM file (Enhanced CT or DX/CR/IO/PX "
    "radiograph), .nii/.nii.gz, .mha/.mhd, .nrrd/.nhdr, or .png/.jpg/.tif"
)


def load_scan(
    path: str | Path,
    *,
    series_uid: str | None = None,
    modality: Modality | str | None = None,
    ndim: int | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    archive_limits: ArchiveLimits | None = None,
) -> Scan:
    """Load a scan in canonical orientation.

    Args:
        path: file, folder or zip archive.
        series_uid: Series Instance UID to read when the input holds several series.
        modality: force the modality instead of taking it from the file.
        ndim: 3 to require a volume, 2 to require a radiograph (DimensionError otherwise).
        pixel_spacing_mm: spacing to assume for 2D files that do not state one.
        archive_limits: size and file-count limits for zip input.

    Raises:
        OdontoscanError subclasses, each with a message saying what to do.
    """
    path = Path(path)
    if not path.exists():
        raise ScanReadError(f"'{path.name}' does not exist; check the path.")
    forced = Modality(modality) if modality is not None else None
    if path.is_dir():
        scan = _load_folder(path, series_uid)
    elif path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="odontoscan-zip-") as tmp:
            extract_zip(path, Path(tmp), archive_limits)
            scan = _load_folder(Path(tmp), series_uid)
    else:
        scan = _load_file(path, series_uid)
    scan = _finish(scan, forced, pixel_spacing_mm)
    if ndim is not None and scan.array.ndim != ndim:
        want = "a 3D volume (CBCT)" if ndim == 3 else "a 2D radiograph"
        got = "a 3D volume" if scan.is_volume else "a 2D image"
        raise DimensionError(f"The input is {got}, but {want} is required here.")
    return scan


def _finish(
    scan: Scan, modality: Modality | None, spacing_mm: float | tuple[float, float] | None
) -> Scan:
    changes: dict = {}
    if modality is not None and modality is not scan.modality:
        if modality.is_volume != scan.is_volume:
            raise DimensionError(
                f"--modality {modality.value} does not fit the input, which is "
                f"{'a 3D volume' if scan.is_volume else 'a 2D image'}."
            )
        changes["modality"] = modality
    if spacing_mm is not None and not scan.is_volume and not scan.pixel_spacing_known:
        pair = (spacing_mm, spacing_mm) if np.isscalar(spacing_mm) else tuple(spacing_mm)
        changes["spacing"] = tuple(float(s) for s in pair)
        changes["pixel_spacing_known"] = True
        changes["meta"] = scan.meta.model_copy(update={"pixel_spacing_source": "given"})
    return dataclasses.replace(scan, **changes) if changes else scan


def _load_folder(folder: Path, series_uid: str | None) -> Scan:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    images, damaged = find_images(files)
    if images:
        return _load_dicom(images, series_uid)
    if damaged:
        raise TruncatedFileError(
            f"The folder holds {damaged} DICOM file(s), none readable (truncated or "
            "corrupt headers); copy or export the series again."
        )
    volumes = [p for p in files if itk_volume.format_of(p)]
    # Phantom and dataset folders keep a label map beside the image: it is not the scan.
    volumes = [p for p in volumes if not p.name.lower().startswith("label")]
    if len(volumes) == 1:
        return _load_file(volumes[0], series_uid)
    if len(volumes) > 1:
        raise ScanReadError(
            f"The folder holds {len(volumes)} volume files and no DICOM series; pass "
            "the one volume file to analyse."
        )
    raise UnsupportedFormatError(f"No scan was found in the folder. odontoscan reads {SUPPORTED}.")


def _load_file(path: Path, series_uid: str | None) -> Scan:
    if path.stat().st_size == 0:
        raise ScanReadError(f"'{path.name}' is empty (0 bytes); check the upload or copy.")
    if is_dicom_file(path):
        header = read_header(path)
        if not is_image(header):
            raise ScanReadError(
                f"'{path.name}' is a DICOM file without an image: a report, segmentation "
                "or other non-image object, or a file truncated before its pixel data. "
                "Pass the image series instead."
            )
        return _load_dicom([DicomImage(path, header)], series_uid)
    if itk_volume.format_of(path):
        return _load_itk(path)
    if image2d.format_of(path):
        return _load_image(path)
    raise UnsupportedFormatError(f"'{path.name}' is not a scan odontoscan reads. It reads {SUPPORTED}.")


def _dicom_meta(
    header, source_format: str, sop_uids: tuple[str, ...], others: tuple[SeriesSummary, ...], **extra
) -> ScanMeta:
    def text(keyword: str) -> str | None:
        value = getattr(header, keyword, None)
        return str(value) if value not in (None, "") else None

    file_meta = getattr(header, "file_meta", None)
    return ScanMeta(
        source_format=source_format,
        study_instance_uid=text("StudyInstanceUID"),
        series_instance_uid=text("SeriesInstanceUID"),
        frame_of_reference_uid=text("FrameOfReferenceUID"),
        sop_class_uid=text("SOPClassUID"),
        sop_instance_uids=sop_uids,
        manufacturer=text("Manufacturer"),
        manufacturer_model=text("ManufacturerModelName"),
        transfer_syntax_uid=str(file_meta.TransferSyntaxUID) if file_meta is not None and "TransferSyntaxUID" in file_meta else None,
        photometric_interpretation=text("PhotometricInterpretation"),
        bits_stored=int(header.BitsStored) if "BitsStored" in header else None,
        other_series=others,
        **extra,
    )


def _load_dicom(images: list[DicomImage], series_uid: str | None) -> Scan:
    uid, series, others = choose_series(group_series(images), series_uid)
    header = series[0].header
    if is_volumetric(series):
        stacked = stack(series, uid)
        geometry = stacked.geometry
        fmt = "dicom-enhanced" if series[0].frames > 1 else "dicom-series"
        if fmt == "dicom-enhanced":
            sop_uids = tuple(dict.fromkeys(stacked.sop_instance_uids))
        else:  # one UID per slice, in canonical slice order
            slice_axis = geometry.axes.index(2)
            uids = stacked.sop_instance_uids
            sop_uids = tuple(reversed(uids)) if geometry.flips[slice_axis] else uids
        meta = _dicom_meta(
            header, fmt, sop_uids, others, source_orientation=geometry.source_orientation
        )
        return Scan(
            array=stacked.array, spacing=stacked.spacing, modality=Modality.CT, meta=meta, geometry=geometry
        )

    modality_text = str(getattr(header, "Modality", "") or "DX").upper()
    if modality_text == "CT" or "ImagePositionPatient" in header:
        raise DimensionError(
            "The input holds a single CT slice, not a volume; pass the folder or zip "
            "with the whole series."
        )
    pixels, ds = read_radiograph(series[0].path)
    spacing, source = pixel_spacing(ds)
    modality = Modality(modality_text) if modality_text in Modality.__members__ else Modality.DX
    meta = _dicom_meta(
        header, "dicom-image", (str(getattr(header, "SOPInstanceUID", "")),), others,
        pixel_spacing_source=source,
    )
    known = spacing is not None
    spacing = spacing or (1.0, 1.0)
    return Scan(
        array=pixels,
        spacing=spacing,
        modality=modality,
        meta=meta,
        geometry=Geometry.identity(pixels.shape, spacing),
        pixel_spacing_known=known,
    )


def _load_itk(path: Path) -> Scan:
    image = itk_volume.read_itk(path)
    fmt = itk_volume.format_of(path) or "itk"
    size = image.GetSize()
    if image.GetDimension() == 3 and 1 in size and sorted(size)[1] > 1:
        # A 2D image stored in a 3D container: drop the single-voxel axis.
        axis = size.index(1)
        image = image[tuple(0 if a == axis else slice(None) for a in range(3))]
    if image.GetDimension() == 2:
        pixels = itk_volume.array_xyz(image).T.astype(np.float32)  # rows, columns
        spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
        meta = ScanMeta(source_format=fmt, pixel_spacing_source="header")
        return Scan(
            array=np.ascontiguousarray(pixels),
            spacing=spacing,
            modality=Modality.DX,
            meta=meta,
            geometry=Geometry.identity(pixels.shape, spacing),
        )
    xyz = itk_volume.array_xyz(image)
    canon, spacing, geometry = canonicalize(
        xyz, image.GetSpacing(), image.GetOrigin(), np.array(image.GetDirection()).reshape(3, 3)
    )
    array = np.ascontiguousarray(canon, dtype=np.float32)
    meta = ScanMeta(source_format=fmt, source_orientation=geometry.source_orientation)
    return Scan(array=array, spacing=spacing, modality=Modality.CT, meta=meta, geometry=geometry)


def _load_image(path: Path) -> Scan:
    pixels = image2d.read_image(path)
    meta = ScanMeta(source_format=image2d.format_of(path) or "image", pixel_spacing_source="unknown")
    return Scan(
        array=pixels,
        spacing=(1.0, 1.0),
        modality=Modality.DX,
        meta=meta,
        geometry=Geometry.identity(pixels.shape, (1.0, 1.0)),
        pixel_spacing_known=False,
    )


__all__ = ["load_scan", "SUPPORTED", "orientation_code"]
