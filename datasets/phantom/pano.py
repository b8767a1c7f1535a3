"""Synthetic panoramic radiographs (and periapical/bitewing crops) from CBCT phantoms.

``generate_pano(seed, size)`` projects CBCT phantom ``seed`` along its dental arch
(:mod:`odontoscan.datasets.panoramic`): a sharp focal trough, heavily blurred layers in
front of and behind it (the tomographic blur of a rotating pano), Beer-Lambert
transmission, quantum noise, detector blur and the edge-enhancing processing of a
clinical unit, with a slight "smile" of the occlusal plane. The label map is projected
with the same mapping, so labels, annotations and ground truth line up with the image
pixel for pixel.

Ground truth uses the findings schema: the tooth chart of the CBCT (a tooth present in
the CBCT is present in the pano) and the findings a radiograph shows (caries, periapical
lesion, restoration, root-canal filling, impacted tooth, bone loss), ``location_mm`` =
(row, col) in pano millimetres. Crops are cut from the pano itself (no separate
intraoral projection geometry).

Formats of :func:`write_pano_phantom` (``DIR`` = out):

* ``png``: ``DIR/pano.png`` (16-bit), ``DIR/labels.png`` (16-bit label ids),
  ``DIR/annotations.json`` (DENTEX-style COCO), ``DIR/ground_truth.json``,
  ``DIR/crops/<name>.png`` and their label masks ``DIR/crops/labels/<name>.png``;
* ``dicom``: the same with ``DIR/pano.dcm`` (modality PX, PixelSpacing) instead of
  ``pano.png``;
* ``dentex``: the published DENTEX layout, see :mod:`odontoscan.datasets.phantom.dentex`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from odontoscan.datasets.findings_schema import Evidence, Finding, FindingKind, Findings, ScanInfo
from odontoscan.datasets.panoramic import PanoMapping, arch_from_labels, pano_mapping, reformat, tooth_number
from odontoscan.datasets.phantom.cbct import CBCTPhantom, generate_cbct
from odontoscan.datasets.phantom.coco import annotation_json, tooth_annotations
from odontoscan.datasets.writers import DicomIdentity, deterministic_uid, staged_output, write_radiograph_dicom

FORMATS = ("png", "dicom", "dentex")
PIXEL_MM = {"full": 0.1, "small": 0.4}
SHARP_TROUGH_MM = (-5.0, 5.0)  # (lingual, buccal) depth imaged sharply
LABEL_TROUGH_MM = (-9.0, 9.0)  # depth whose labels are projected (every tooth falls inside)
BLUR_RANGE_MM = (-45.0, 30.0)  # depth of the blurred layers (tongue, palate, cheeks)
VISIBLE_KINDS = (
    FindingKind.CARIES,
    FindingKind.PERIAPICAL_LESION,
    FindingKind.RESTORATION,
    FindingKind.ROOT_CANAL_FILLING,
    FindingKind.IMPACTED_TOOTH,
    FindingKind.BONE_LOSS,
)
PERIAPICAL_MM = (41.0, 31.0)  # (height, width) of a size-2 periapical film
BITEWING_MM = (31.0, 41.0)  # (height, width) of a size-2 bitewing film


@dataclass(frozen=True, eq=False)
class PanoPhantom:
    """One synthetic panoramic radiograph with labels, annotations and ground truth.

    Attributes:
        image: float32 grey values [row, col] in 0..65535 (a 16-bit radiograph), dense = bright.
        labels: uint16 label map [row, col] (the CBCT label ids, projected).
        spacing: mm per pixel (row, col).
        annotations: one DENTEX-style dict per visible tooth (see :mod:`.coco`).
        ground_truth: Findings; 2D ``location_mm`` = (row_mm, col_mm).
        seed: the seed of the projected CBCT phantom.
        mapping: canonical CBCT mm <-> pano (row, col) of this image.
    """

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float]
    annotations: list[dict]
    ground_truth: Findings
    seed: int
    mapping: PanoMapping | None = None


def uids(seed: int, size: str) -> tuple[str, str]:
    """Deterministic study and series UIDs of a pano phantom."""
    return tuple(deterministic_uid("odontoscan-phantom-pano", seed, size, part) for part in ("study", "series"))


def _form_image(cbct: CBCTPhantom, mapping: PanoMapping, rng: np.random.Generator) -> np.ndarray:
    """Image formation: sharp trough + blurred layers -> transmission -> noise -> processing."""
    pix = mapping.pixel_mm
    common = dict(mapping=mapping, mode="integral")
    sharp, _ = reformat(cbct.image, cbct.spacing, mapping.arch, depth_range_mm=SHARP_TROUGH_MM, **common)
    lo, hi = BLUR_RANGE_MM
    coarse = dict(depth_step_mm=1.0, sample_mm=max(1.0, pix), **common)
    lingual, _ = reformat(cbct.image, cbct.spacing, mapping.arch, depth_range_mm=(lo, SHARP_TROUGH_MM[0]), **coarse)
    buccal, _ = reformat(cbct.image, cbct.spacing, mapping.arch, depth_range_mm=(SHARP_TROUGH_MM[1], hi), **coarse)
    # Layers off the trough are smeared along the beam's sweep (horizontal) and a little vertically.
    blurred = ndimage.gaussian_filter(lingual + buccal, sigma=(2.0 / pix, 9.0 / pix), mode="nearest")
    transmission = np.exp(-(sharp + 0.85 * blurred))
    photons = 4000.0 * (pix / 0.1) ** 2  # detected quanta per pixel with no object
    noisy = rng.poisson(photons * transmission).astype(np.float32) / photons
    noisy = ndimage.gaussian_filter(noisy, sigma=0.09 / pix)  # detector blur
    signal = -np.log(np.maximum(noisy, 1.0 / photons))  # log-processed: dense = bright
    # Clinical processing: unsharp masking (edge enhancement) and a display window.
    signal = signal + 1.3 * (signal - ndimage.gaussian_filter(signal, sigma=2.5 / pix))
    lo_v, hi_v = np.percentile(signal, [3.0, 99.8])
    grey = np.clip((signal - lo_v) / (hi_v - lo_v), 0.0, 1.0) ** 1.7
    return (grey * 65535.0).astype(np.float32)


def _ground_truth(cbct: CBCTPhantom, mapping: PanoMapping, shape: tuple[int, int]) -> Findings:
    findings = []
    for finding in cbct.ground_truth.findings:
        if finding.kind not in VISIBLE_KINDS or finding.location_mm is None:
            continue
        row, col = mapping.to_pano(cbct.geometry.lps_to_mm(finding.location_mm)[None])[0]
        if not (0 <= row < shape[0] and 0 <= col < shape[1]):
            continue
        measurements = {k: v for k, v in finding.measurements.items() if v.unit.value != "mm3"}
        findings.append(
            Finding(
                id=finding.id,
                kind=finding.kind,
                fdi=finding.fdi,
                confidence=finding.confidence,
                severity=finding.severity,
                grade=finding.grade,
                location_mm=[round(row * mapping.pixel_mm, 3), round(col * mapping.pixel_mm, 3)],
                measurements=measurements,
                evidence=Evidence(),
            )
        )
    study, series = uids(cbct.seed, cbct.size)
    scan = ScanInfo(
        modality="PX",
        shape=list(shape),
        spacing_mm=list(mapping.spacing),
        study_instance_uid=study,
        series_instance_uid=series,
    )
    teeth = [t.model_copy() for t in cbct.ground_truth.teeth]
    return Findings(scan=scan, model=cbct.ground_truth.model, teeth=teeth, findings=findings)


def pano_from_cbct(cbct: CBCTPhantom) -> PanoPhantom:
    """Project a CBCT phantom into a panoramic phantom (deterministic per seed)."""
    rng = np.random.default_rng([cbct.seed, 2])
    arch = arch_from_labels(cbct.labels, cbct.spacing)
    pix = PIXEL_MM[cbct.size]
    mapping = pano_mapping(arch, cbct.image.shape, cbct.spacing, pix, smile_mm=float(rng.uniform(1.5, 3.5)))
    image = _form_image(cbct, mapping, rng)
    labels, _ = reformat(cbct.labels, cbct.spacing, arch, mode="label", mapping=mapping, depth_range_mm=LABEL_TROUGH_MM)
    truth = _ground_truth(cbct, mapping, labels.shape)
    annotations = tooth_annotations(labels, truth)
    return PanoPhantom(image, labels, mapping.spacing, annotations, truth, cbct.seed, mapping)


def generate_pano(seed: int, size: str = "full") -> PanoPhantom:
    """Generate pano phantom ``seed`` ("full": 0.1 mm pixels; "small": 0.4 mm, for tests)."""
    if size not in PIXEL_MM:
        raise ValueError(f"size must be one of {', '.join(PIXEL_MM)}, got {size!r}")
    return pano_from_cbct(generate_cbct(seed, size))


def _window(image: np.ndarray, labels: np.ndarray, centre: tuple[float, float], size_mm: tuple[float, float], pix: float):
    half = np.asarray(size_mm) / pix / 2
    r0, c0 = (np.round(np.asarray(centre) - half)).astype(int)
    r1, c1 = (np.round(np.asarray(centre) + half)).astype(int)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, image.shape[0]), min(c1, image.shape[1])
    return image[r0:r1, c0:c1].copy(), labels[r0:r1, c0:c1].copy()


def crops(pano: PanoPhantom) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Periapical crops (first molar of each quadrant, else the nearest present tooth) and
    right/left bitewing crops, each as (image, labels) cut from the pano."""
    pix = pano.spacing[0]
    teeth = tooth_number(pano.labels.astype(np.int64))
    present = [int(f) for f in np.unique(teeth) if f]
    centres = dict(zip(present, ndimage.center_of_mass(np.ones_like(teeth), teeth, present)))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for quadrant in (1, 2, 3, 4):
        choice = next((quadrant * 10 + p for p in (6, 7, 5, 4, 3, 2, 1, 8) if quadrant * 10 + p in centres), None)
        if choice is not None:
            out[f"periapical_{choice}"] = _window(pano.image, pano.labels, centres[choice], PERIAPICAL_MM, pix)
    for side, quadrants in (("right", (1, 4)), ("left", (2, 3))):
        picked = [centres[q * 10 + p] for q in quadrants for p in (4, 5, 6, 7) if q * 10 + p in centres]
        if picked:
            out[f"bitewing_{side}"] = _window(pano.image, pano.labels, tuple(np.mean(picked, axis=0)), BITEWING_MM, pix)
    return out


def save_png16(array: np.ndarray, path: Path) -> Path:
    """A 16-bit greyscale PNG of ``array`` (rounded, clipped to 0..65535)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(array), 0, 65535).astype(np.uint16)).save(path)
    return path


def _write_common(pano: PanoPhantom, folder: Path, image_name: str) -> None:
    save_png16(pano.labels, folder / "labels.png")
    height, width = pano.labels.shape
    payload = annotation_json([(1, image_name, height, width, pano.annotations)], per_diagnosis=False)
    (folder / "annotations.json").write_text(json.dumps(payload, indent=1))
    (folder / "ground_truth.json").write_text(pano.ground_truth.model_dump_json(indent=2))
    for name, (image, labels) in crops(pano).items():
        save_png16(image, folder / "crops" / f"{name}.png")
        save_png16(labels, folder / "crops" / "labels" / f"{name}.png")


def write_pano_phantom(seed: int, out: Path, fmt: str = "png", size: str = "full") -> Path:
    """Generate pano phantom ``seed`` and write it to ``out`` as ``fmt``; returns ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if fmt == "dentex":
        from odontoscan.datasets.phantom.dentex import write_dentex_dataset

        return write_dentex_dataset([seed], out, size)
    pano = generate_pano(seed, size)
    with staged_output(out) as folder:
        if fmt == "png":
            save_png16(pano.image, folder / "pano.png")
            _write_common(pano, folder, "pano.png")
        else:
            study, series = uids(seed, size)
            identity = DicomIdentity(
                patient_name=f"Phantom^{seed}",
                patient_id=f"PHANTOM-{seed}",
                study_description="odontoscan synthetic panoramic",
                study_uid=study,
                series_uid=series,
            )
            write_radiograph_dicom(pano.image, folder / "pano.dcm", modality="PX", pixel_spacing=pano.spacing, identity=identity)
            _write_common(pano, folder, "pano.dcm")
    return out


__all__ = ["PanoPhantom", "generate_pano", "pano_from_cbct", "crops", "write_pano_phantom", "save_png16", "uids"]
