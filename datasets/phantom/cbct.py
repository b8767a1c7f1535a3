"""Synthetic dental CBCT phantoms with exact labels and ground truth.

``generate_cbct(seed, size)`` builds one phantom: jaws with cortical and cancellous
bone, two arches of anatomically shaped teeth (enamel, dentin, pulp, canals), canals,
sinuses, airway and soft tissue, a per-seed dental history (missing and impacted
teeth, caries, lesions, fillings, crowns, bridges, implants, root-canal fillings,
bone loss) and CBCT image formation (partial volume, blur, noise, metal streaks).

Arrays are canonical RAS ``[x, y, z]`` (x to the patient's Right): the LPS direction
of the axes is ``diag(-1, -1, 1)`` and ``origin`` is the LPS position of voxel
(0, 0, 0). ``write_cbct_phantom`` writes it as a DICOM CT series, NIfTI, or the
ToothFairy2 (nnU-Net raw) layout; :func:`write_toothfairy2_dataset` writes several.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from scipy import ndimage

from odontoscan.datasets.findings_schema import Findings
from odontoscan.datasets.geometry import Geometry, canonical_geometry
from odontoscan.datasets.labels import FINDING_IDS, PULP_OFFSET, TOOTHFAIRY2_IDS, label_names
from odontoscan.datasets.phantom import jaws
from odontoscan.datasets.phantom.canvas import Canvas, Grid
from odontoscan.datasets.phantom.dentition import layout
from odontoscan.datasets.phantom.imaging import AIR, form_image
from odontoscan.datasets.phantom.plan import draw_plan
from odontoscan.datasets.phantom.teeth import paint_dentition
from odontoscan.datasets.phantom.truth import Context, ground_truth
from odontoscan.datasets.writers import DicomIdentity, deterministic_uid, staged_output, write_ct_series, write_volume

RAS_DIRECTION = np.diag([-1.0, -1.0, 1.0])  # LPS direction of the canonical axes
HEAD_CENTRE = np.array([0.0, -30.0, 4.0])  # head-frame point placed at the field's centre
FORMATS = ("dicom", "nifti", "toothfairy2")


@dataclass(frozen=True, eq=False)
class CBCTPhantom:
    """One synthetic CBCT with its label map and ground truth.

    Attributes:
        image: float32 grey values (HU-like), canonical RAS index order [x, y, z].
        labels: uint16 label map, same shape (ToothFairy2 ids, pulp 100 + FDI,
            findings 200-203; see :mod:`odontoscan.datasets.labels`).
        spacing: voxel size (mm), x, y, z.
        origin: LPS position (mm) of canonical voxel (0, 0, 0).
        ground_truth: Findings with model name "phantom-ground-truth".
        seed: the seed it was generated from.
        size: "full" or "small".
    """

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    ground_truth: Findings
    seed: int
    size: str

    @property
    def geometry(self) -> Geometry:
        """Geometry of the canonical arrays as stored by the NIfTI/MHA writers."""
        return canonical_geometry(self.image.shape, self.spacing, self.origin, RAS_DIRECTION)

    @property
    def dicom_geometry(self) -> Geometry:
        """Geometry of the DICOM series (stored LPS: x and y reversed)."""
        far = np.array([self.image.shape[0] - 1, self.image.shape[1] - 1, 0]) * np.asarray(self.spacing)
        source_origin = np.asarray(self.origin) + RAS_DIRECTION @ far
        shape = self.image.shape
        return canonical_geometry(shape, self.spacing, tuple(source_origin), np.eye(3))


def _rotation(angles_deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _grid(plan) -> tuple[Grid, tuple[float, float, float]]:
    spacing = (plan.spacing,) * 3
    shape = tuple(int(round(f / plan.spacing)) for f in plan.fov_mm)
    rotation = _rotation(plan.angles_deg)
    centre = (np.array(shape) - 1) / 2 * plan.spacing
    offset = centre + np.array(plan.shift_mm) - rotation @ HEAD_CENTRE
    origin = tuple(float(v) for v in -(RAS_DIRECTION @ centre))  # field centre at LPS (0, 0, 0)
    return Grid(shape, spacing, rotation, offset), origin


def uids(seed: int, size: str) -> tuple[str, str, str]:
    """Deterministic study, series and frame-of-reference UIDs of a phantom."""
    return tuple(deterministic_uid("odontoscan-phantom-cbct", seed, size, part) for part in ("study", "series", "frame"))


def generate_cbct(seed: int, size: str = "full") -> CBCTPhantom:
    """Generate CBCT phantom ``seed`` ("full": 0.2-0.4 mm, about 400x400x300 voxels;
    "small": 0.8 mm, about 150x150x110 voxels, same anatomy, for fast tests)."""
    plan = draw_plan(seed, size)
    rng = np.random.default_rng([seed, 1])
    grid, origin = _grid(plan)
    dentition = layout(plan)
    crest = jaws.crest_profile(dentition, plan)
    canvas = Canvas.empty(grid, AIR)
    jaws.paint_soft_tissue(canvas, plan)
    jaws.paint_oral_air(canvas, dentition, crest)
    jaws.paint_bone(canvas, dentition, crest, plan, rng)
    jaws.paint_cavities(canvas, dentition, crest, plan)
    jaws.paint_canals(canvas, dentition, crest, plan)
    metals = paint_dentition(canvas, dentition, plan, crest.crest_gap)
    form_image(canvas, metals, plan.noise_hu, rng)
    study, series, _ = uids(seed, size)
    ctx = Context(plan, dentition, crest, canvas, origin, study, series)
    truth = ground_truth(ctx)
    return CBCTPhantom(canvas.image, canvas.labels, grid.spacing, origin, truth, seed, size)


def toothfairy2_labels(labels: np.ndarray) -> np.ndarray:
    """The label map in ToothFairy2's own space (uint8): pulp becomes its tooth, finding
    ids become the tooth (caries, fillings) or bone (lesions) they sit in."""
    out = labels.copy()
    pulp = (out > PULP_OFFSET) & (out < PULP_OFFSET + 50)
    out[pulp] -= PULP_OFFSET
    findings = np.isin(out, FINDING_IDS)
    components, count = ndimage.label(findings)
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        grown = tuple(slice(max(s.start - 4, 0), s.stop + 4) for s in box)
        local = out[grown]
        part = components[grown] == index
        host = np.isin(local, list(TOOTHFAIRY2_IDS[1:]))
        if not host.any():
            local[part] = 0
            continue
        _, nearest = ndimage.distance_transform_edt(~host, return_indices=True)
        local[part] = local[tuple(n[part] for n in nearest)]
    return out.astype(np.uint8)


def _write_json(path: Path, findings: Findings) -> None:
    path.write_text(findings.model_dump_json(indent=2))


def write_phantom_dicom(phantom: CBCTPhantom, folder: Path) -> None:
    study, series, frame = uids(phantom.seed, phantom.size)
    identity = DicomIdentity(
        patient_name=f"Phantom^{phantom.seed}",
        patient_id=f"PHANTOM-{phantom.seed}",
        study_uid=study,
        series_uid=series,
        frame_of_reference_uid=frame,
        manufacturer="odontoscan phantom",
    )
    geometry = phantom.dicom_geometry
    write_ct_series(
        phantom.image[::-1, ::-1, :],
        phantom.spacing,
        folder / "dicom",
        origin=geometry.source_origin,
        direction=np.eye(3),
        identity=identity,
    )
    write_volume(phantom.labels, phantom.spacing, folder / "labels.nii.gz", geometry=geometry)


def _write_nifti(phantom: CBCTPhantom, folder: Path) -> None:
    geometry = phantom.geometry
    write_volume(np.rint(phantom.image).astype(np.int16), phantom.spacing, folder / "image.nii.gz", geometry=geometry)
    write_volume(phantom.labels, phantom.spacing, folder / "labels.nii.gz", geometry=geometry)


def toothfairy2_case_id(index: int) -> str:
    """Case name in the published style: ToothFairy2F_001, ..."""
    return f"ToothFairy2F_{index:03d}"


def toothfairy2_dataset_json(num_training: int) -> str:
    """dataset.json in the published shape, unused ids listed under repeated "NA" keys."""
    names = label_names()
    pairs: list[tuple[str, int]] = [("background", 0)]
    for label in range(1, 49):
        if label in TOOTHFAIRY2_IDS:
            pairs.append((names[label], label))
        elif label > 18:
            pairs.append(("NA", label))
    labels = ",\n".join(f"        {json.dumps(k)}: {v}" for k, v in pairs)
    return (
        "{\n"
        '    "name": "ToothFairy2",\n'
        '    "description": "odontoscan synthetic CBCT phantoms in the ToothFairy2 layout",\n'
        '    "channel_names": {\n        "0": "CBCT"\n    },\n'
        f'    "labels": {{\n{labels}\n    }},\n'
        f'    "numTraining": {num_training},\n'
        '    "file_ending": ".mha"\n'
        "}\n"
    )


def _write_toothfairy2_case(phantom: CBCTPhantom, folder: Path, case_id: str) -> None:
    geometry = phantom.geometry
    image = np.rint(phantom.image).astype(np.int16)
    write_volume(image, phantom.spacing, folder / "imagesTr" / f"{case_id}_0000.mha", geometry=geometry)
    write_volume(toothfairy2_labels(phantom.labels), phantom.spacing, folder / "labelsTr" / f"{case_id}.mha", geometry=geometry)
    (folder / "ground_truth").mkdir(parents=True, exist_ok=True)
    _write_json(folder / "ground_truth" / f"{case_id}.json", phantom.ground_truth)


def write_toothfairy2_dataset(seeds: Iterable[int], out: Path, size: str = "full") -> Path:
    """Write phantoms ``seeds`` as one ToothFairy2 dataset (cases numbered from 1)."""
    out = Path(out)
    seeds = list(seeds)
    with staged_output(out) as folder:
        for index, seed in enumerate(seeds, start=1):
            _write_toothfairy2_case(generate_cbct(seed, size), folder, toothfairy2_case_id(index))
        (folder / "dataset.json").write_text(toothfairy2_dataset_json(len(seeds)))
    return out


def write_cbct_phantom(seed: int, out: Path, fmt: str = "dicom", size: str = "full") -> Path:
    """Generate phantom ``seed`` and write it to ``out`` as ``fmt``; returns ``out``.

    dicom: ``out/dicom/`` CT series, ``out/labels.nii.gz``, ``out/ground_truth.json``;
    nifti: ``out/image.nii.gz``, ``out/labels.nii.gz``, ``out/ground_truth.json``;
    toothfairy2: ``out/imagesTr/ToothFairy2F_001_0000.mha``, ``out/labelsTr/...mha``,
    ``out/dataset.json`` (and ``out/ground_truth/<case>.json``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if fmt == "toothfairy2":
        return write_toothfairy2_dataset([seed], out, size)
    phantom = generate_cbct(seed, size)
    with staged_output(out) as folder:
        (write_phantom_dicom if fmt == "dicom" else _write_nifti)(phantom, folder)
        _write_json(folder / "ground_truth.json", phantom.ground_truth)
    return out


__all__ = [
    "CBCTPhantom",
    "generate_cbct",
    "write_cbct_phantom",
    "write_toothfairy2_dataset",
    "write_phantom_dicom",
    "toothfairy2_labels",
    "toothfairy2_dataset_json",
]
