"""What an exported model is and how it wants its input: ``model.json`` beside ``model.onnx``.

A model directory holds ``model.onnx`` (fp32), ``model.json`` (:class:`ModelMetadata`),
``MODEL_CARD.md`` and, when int8 quantisation kept its accuracy, ``model.int8.onnx``.

The metadata also travels inside each ONNX file (``metadata_props`` key
``"odontoscan"``), so an ONNX file alone is enough to run it. The SHA-256 of
``model.onnx`` cannot be inside the file it hashes, so the embedded copy has
``sha256 = None`` and only ``model.json`` carries it; :func:`read_model_dir` checks it.

Torch-free: the inference path imports this module. Writing (:func:`write_model_dir`)
needs the ``onnx`` package ([train] extra) and is only called by export.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from odontoscan.datasets.errors import ModelError, ModelFitError
from odontoscan.datasets.labels import PULP_OFFSET, TOOTH_CONTACT
from odontoscan.models.preprocess import PreprocessConfig
from odontoscan.models.teeth import LEFT_SIDE_TEETH, RIGHT_SIDE_TEETH, left_twin

if TYPE_CHECKING:
    from odontoscan.datasets.scan import Scan

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
METADATA_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"
REFINER_FILE = "refiner.onnx"
ONNX_METADATA_KEY = "odontoscan"
VOLUME_MODALITIES = ("CT",)
RADIOGRAPH_MODALITIES = ("PX", "DX", "IO", "CR")


class Int8Variant(BaseModel):
    """The int8 (static QDQ) copy of a model, kept beside the fp32 one when accurate enough."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = INT8_FILE
    sha256: str | None = None  # filled in by write_model_dir
    dice_agreement: float = Field(ge=0, le=1)  # argmax agreement with the fp32 model on phantoms
    calibration: str  # what the calibration data were


class RefinerRef(BaseModel):
    """The fine model of a coarse-to-fine pair, stored beside the coarse one (see
    :mod:`odontoscan.models.refine`): an ONNX file carrying its own metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(REFINER_FILE, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$")  # a file in the same directory
    sha256: str | None = None  # filled in by write_model_dir


REFINED_CLASSES = (0, 3, 8, 9, 10, 11, 200, 201, 202, 203, TOOTH_CONTACT)  # what a refining model may predict


class ModelMetadata(BaseModel):
    """Everything needed to run, trust and reproduce one exported model.

    ``classes[c]`` is the DESIGN.md label id predicted by output channel ``c``
    (``classes[0] == 0`` background); ``merge`` maps further source ids onto one of
    ``classes`` (pulp 111 -> tooth 11), which evaluation applies to ground truth.
    Spatial sizes fed to the network must be multiples of ``size_multiple``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=1)
    task: Literal["cbct", "radiograph"]
    spatial_dims: Literal[2, 3]
    modalities: list[str] = Field(min_length=1)
    classes: list[int]
    merge: dict[int, int] = Field(default_factory=dict)
    tooth_sides: Literal["fdi", "midline"] = "fdi"  # "midline": see odontoscan.models.teeth
    refines: bool = False  # the fine model of a coarse-to-fine pair; never run alone
    refiner: RefinerRef | None = None  # this model's fine model (odontoscan.models.refine)
    label_names: dict[int, str]
    preprocess: PreprocessConfig
    patch_size: list[int]
    size_multiple: int = Field(1, ge=1)
    input_name: str = "image"
    output_name: str = "logits"
    sha256: str | None = None  # of model.onnx; only in model.json (see module docstring)
    training_run_id: str | None = None
    training_data: str
    metrics: dict[str, float] = Field(default_factory=dict)  # held-out metrics
    opset: int
    precision: Literal["fp32", "int8"] = "fp32"
    int8: Int8Variant | None = None
    created: date
    odontoscan_version: str

    @model_validator(mode="after")
    def _consistent(self) -> ModelMetadata:
        expected = 3 if self.task == "cbct" else 2
        if self.spatial_dims != expected:
            raise ValueError(f"task {self.task} needs spatial_dims {expected}, got {self.spatial_dims}")
        if len(self.patch_size) != self.spatial_dims:
            raise ValueError(f"patch_size needs {self.spatial_dims} values, got {self.patch_size}")
        if any(n % self.size_multiple for n in self.patch_size):
            raise ValueError(f"patch_size {self.patch_size} entries must be multiples of size_multiple {self.size_multiple}")
        if not self.classes or self.classes[0] != 0 or len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must start with 0 (background) and not repeat an id")
        if self.tooth_sides == "midline" and any(k in LEFT_SIDE_TEETH for k in self.classes):
            raise ValueError("a tooth_sides 'midline' model predicts right-side tooth ids only")
        if self.refines and (self.refiner is not None or self.task != "cbct" or set(self.classes) - set(REFINED_CLASSES)):
            raise ValueError(f"a refining model is a CBCT model predicting only ids {list(REFINED_CLASSES)}, without a refiner of its own")
        if self.refiner is not None and self.task != "cbct":
            raise ValueError("only CBCT models carry a refiner")
        missing = sorted(set(self.output_classes) - set(self.label_names))
        if missing:
            raise ValueError(f"label_names lacks ids {missing}")
        return self

    @property
    def output_classes(self) -> list[int]:
        """Ids of the label maps inference returns: ``classes``, plus the left teeth a
        ``tooth_sides="midline"`` model numbers after the network."""
        if self.tooth_sides == "fdi":
            return list(self.classes)
        return list(self.classes) + [left_twin(k) for k in self.classes if k in RIGHT_SIDE_TEETH]

    @property
    def output_merge(self) -> dict[int, int]:
        """``merge`` for ground truth compared with inference output: without the folds of
        left teeth onto right ones, and left pulp onto its own tooth (121 -> 21)."""
        if self.tooth_sides == "fdi":
            return dict(self.merge)
        outputs = set(self.output_classes)
        merge = {}
        for source, target in self.merge.items():
            if source in outputs:
                continue
            tooth = source - PULP_OFFSET if source > PULP_OFFSET else source
            merge[source] = left_twin(target) if target in RIGHT_SIDE_TEETH and tooth // 10 in (2, 3) else target
        return merge

    @property
    def model_key(self) -> str:
        """``name@version``, as shown in reports and findings."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelDir:
    """A validated model directory: the ONNX file to run and its metadata."""

    path: Path
    onnx_path: Path
    metadata: ModelMetadata


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_metadata(text: str, source: str) -> ModelMetadata:
    """Validate metadata JSON; ModelError names the source and the first problems."""
    try:
        return ModelMetadata.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}" for item in exc.errors()[:5]
        )
        raise ModelError(
            f"{source} is not valid odontoscan model metadata ({problems}); re-export the model with `odontoscan export`."
        ) from None


def embed_metadata(onnx_bytes: bytes, metadata: ModelMetadata) -> bytes:
    """The ONNX model with ``metadata`` (sha256 left out) in ``metadata_props['odontoscan']``."""
    import onnx  # [train] extra: only export writes models

    model = onnx.load_model_from_string(onnx_bytes)
    kept = [p for p in model.metadata_props if p.key != ONNX_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = ONNX_METADATA_KEY
    entry.value = metadata.model_copy(update={"sha256": None}).model_dump_json()
    return model.SerializeToString()


def embedded_metadata(onnx_path: str | Path) -> ModelMetadata:
    """Read the metadata embedded in an ONNX file (onnxruntime only, no ``onnx`` package)."""
    import onnxruntime as ort

    onnx_path = Path(onnx_path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"'{onnx_path.name}' is not a readable ONNX model ({type(exc).__name__}).") from None
    props = session.get_modelmeta().custom_metadata_map
    if ONNX_METADATA_KEY not in props:
        raise ModelError(
            f"'{onnx_path.name}' carries no odontoscan metadata; export it with `odontoscan export` "
            "or put its model.json beside it."
        )
    return parse_metadata(props[ONNX_METADATA_KEY], f"metadata embedded in '{onnx_path.name}'")


def write_model_dir(
    onnx_model: bytes | str | Path,
    metadata: ModelMetadata,
    out_dir: str | Path,
    *,
    int8_model: bytes | str | Path | None = None,
    refiner_model: bytes | str | Path | None = None,
) -> ModelMetadata:
    """Write ``model.onnx`` (+ ``model.int8.onnx``, + the refiner ONNX file of a
    coarse-to-fine pair, copied as it is) with embedded metadata and ``model.json``.

    Returns the metadata as written (with the SHA-256 of the final ``model.onnx``, and
    of the int8 and refiner files in ``metadata.int8`` / ``metadata.refiner``). ``out_dir`` is created; the caller makes
    the whole write atomic (export writes into a temp dir and moves it into place).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if refiner_model is not None:
        if metadata.refiner is None:
            raise ValueError("metadata.refiner must describe the refiner that is written")
        refiner_path = out_dir / metadata.refiner.file
        refiner_path.write_bytes(_as_bytes(refiner_model))
        metadata = metadata.model_copy(update={"refiner": metadata.refiner.model_copy(update={"sha256": sha256_file(refiner_path)})})
    model_path = out_dir / MODEL_FILE
    model_path.write_bytes(embed_metadata(_as_bytes(onnx_model), metadata))
    if int8_model is not None:
        if metadata.int8 is None:
            raise ValueError("metadata.int8 must describe the int8 model that is written")
        int8_meta = metadata.model_copy(update={"precision": "int8", "int8": None})
        int8_path = out_dir / metadata.int8.file
        int8_path.write_bytes(embed_metadata(_as_bytes(int8_model), int8_meta))
        metadata = metadata.model_copy(update={"int8": metadata.int8.model_copy(update={"sha256": sha256_file(int8_path)})})
    final = metadata.model_copy(update={"sha256": sha256_file(model_path)})
    (out_dir / METADATA_FILE).write_text(final.model_dump_json(indent=2) + "\n")
    return final


def _as_bytes(onnx_model: bytes | str | Path) -> bytes:
    return onnx_model if isinstance(onnx_model, bytes) else Path(onnx_model).read_bytes()


def read_model_dir(path: str | Path, *, precision: Literal["fp32", "int8"] = "fp32") -> ModelDir:
    """Validate a model directory (or a bare ``.onnx`` file) and return what to run.

    With ``model.json`` the SHA-256 of ``model.onnx`` (and of the int8 file) is checked;
    an ONNX file alone falls back to its embedded metadata. ``precision="int8"`` picks
    ``model.int8.onnx``, which must have been kept by export.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        metadata = embedded_metadata(path)
        return ModelDir(path.parent, path, metadata.model_copy(update={"sha256": sha256_file(path)}))
    if not path.is_dir():
        raise ModelError(f"Model '{path}' does not exist; give a model directory, a shipped model name or models:/NAME@alias.")
    model_path, json_path = path / MODEL_FILE, path / METADATA_FILE
    if not model_path.is_file():
        raise ModelError(f"Model directory '{path.name}' has no {MODEL_FILE}; re-export it with `odontoscan export`.")
    if not json_path.is_file():
        log.info("model directory %s has no %s; using the metadata embedded in %s", path.name, METADATA_FILE, MODEL_FILE)
        return read_model_dir(model_path)
    try:
        json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{METADATA_FILE} in '{path.name}' is not valid JSON ({exc}); re-export the model.") from None
    metadata = parse_metadata(json_path.read_text(), f"{METADATA_FILE} in '{path.name}'")
    _check_hash(model_path, metadata.sha256, path.name)
    if precision == "fp32":
        return ModelDir(path, model_path, metadata)
    if metadata.int8 is None:
        raise ModelError(f"Model '{metadata.name}' has no int8 variant (export dropped it or was run without --quantize); use fp32.")
    int8_path = path / metadata.int8.file
    if not int8_path.is_file():
        raise ModelError(f"Model directory '{path.name}' lacks {metadata.int8.file} named in {METADATA_FILE}; re-export it.")
    _check_hash(int8_path, metadata.int8.sha256, path.name)
    return ModelDir(path, int8_path, metadata.model_copy(update={"precision": "int8", "sha256": metadata.int8.sha256}))


def read_refiner(model_dir: ModelDir) -> ModelDir | None:
    """The fine model named by ``model_dir.metadata.refiner`` (hash checked), or None."""
    ref = model_dir.metadata.refiner
    if ref is None:
        return None
    path = model_dir.path / ref.file
    if not path.is_file():
        raise ModelError(f"Model directory '{model_dir.path.name}' lacks its refiner {ref.file} named in {METADATA_FILE}; re-export it.")
    _check_hash(path, ref.sha256, model_dir.path.name)
    metadata = embedded_metadata(path)
    if not metadata.refines:
        raise ModelError(f"{ref.file} in '{model_dir.path.name}' is not a refining model (labels.refines); re-export the pair.")
    return ModelDir(model_dir.path, path, metadata.model_copy(update={"sha256": ref.sha256}))


def _check_hash(file: Path, expected: str | None, folder: str) -> None:
    if expected is None:
        raise ModelError(f"{METADATA_FILE} in '{folder}' has no sha256 for {file.name}; re-export the model.")
    actual = sha256_file(file)
    if actual != expected:
        raise ModelError(
            f"sha256 mismatch for {file.name} in '{folder}': {METADATA_FILE} says {expected[:12]}..., the file is "
            f"{actual[:12]}...; the file was changed or damaged, re-export or re-download the model."
        )


def check_fits(metadata: ModelMetadata, scan: Scan) -> None:
    """Raise ModelFitError unless ``scan`` is a modality and dimensionality the model reads."""
    modality = getattr(scan.modality, "value", str(scan.modality))
    if scan.array.ndim != metadata.spatial_dims:
        kind = "3D volume" if metadata.spatial_dims == 3 else "2D radiograph"
        raise ModelFitError(
            f"Model '{metadata.name}' reads a {kind} ({metadata.spatial_dims}D) but the scan is "
            f"{scan.array.ndim}D ({modality}); choose a {'CBCT' if scan.array.ndim == 3 else 'radiograph'} model."
        )
    if modality not in metadata.modalities:
        raise ModelFitError(
            f"Model '{metadata.name}' was trained on {', '.join(metadata.modalities)} images, not {modality}; "
            "choose a model for this modality."
        )
