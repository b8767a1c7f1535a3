"""Export a trained checkpoint to an ONNX model directory, check it, register it in MLflow.

``export_model`` rebuilds the network from the checkpoint's config, exports ONNX with
dynamic batch and spatial axes (the TorchScript exporter, ``dynamo=False``, which
still works in torch 2.13 and handles MONAI's networks with ``dynamic_axes``), and
checks parity with PyTorch on a preprocessed phantom patch: max |logit difference|
<= 1e-3 + 1e-4 x max |logit| (float32 rounding grows with the logits, which a
well-trained network drives to ~100) and argmax Dice agreement >= 0.99, else
:class:`ExportError` and nothing is written. Optionally an int8 QDQ copy is kept when its argmax agrees with fp32
(Dice >= 0.95). The directory (model.onnx, model.json, MODEL_CARD.md) is written to
a temp dir and moved into place, then logged to MLflow and registered under ``name``.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from odontoscan.datasets.errors import ConfigError, ExportError, ModelError
from odontoscan.datasets.version import odontoscan_version
from odontoscan.datasets.labels import FDI_TEETH, TOOTH_CONTACT
from odontoscan.datasets.labels import label_names as all_label_names
from odontoscan.models.metadata import (
    CARD_FILE,
    INT8_FILE,
    METADATA_FILE,
    MODEL_FILE,
    RADIOGRAPH_MODALITIES,
    VOLUME_MODALITIES,
    Int8Variant,
    ModelMetadata,
    RefinerRef,
    embed_metadata,
    read_model_dir,
    write_model_dir,
)
from odontoscan.models.networks import build_network, downsampling_factor
from odontoscan.models.preprocess import preprocess
from odontoscan.training.checkpoint import Checkpoint, load_checkpoint
from odontoscan.training.config import PhantomData, TrainConfig, side_folds
from odontoscan.training.evaluate import mean_dice_agreement
from odontoscan.training.mlflow_models import download_checkpoint, log_and_register, promote

log = logging.getLogger(__name__)

OPSET = 17
MAX_ABS_DIFF = 1e-3
MAX_REL_DIFF = 1e-4  # of the largest |logit|, as numpy.allclose's rtol
MIN_DICE_AGREEMENT = 0.99
MIN_INT8_AGREEMENT = 0.95
DEFAULT_PARITY_SEED = 1000


class Parity(BaseModel):
    """How closely one model reproduces another on the same input."""

    model_config = ConfigDict(extra="forbid")

    max_abs_diff: float
    limit: float  # the largest max_abs_diff that passes: MAX_ABS_DIFF + MAX_REL_DIFF x max |reference logit|
    dice_agreement: float  # mean Dice of the two argmax maps over the labels present
    input_shape: list[int]


class Int8Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kept: bool
    dice_agreement: float | None
    reason: str


class ExportResult(BaseModel):
    """What one export produced."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    out_dir: Path
    metadata: ModelMetadata
    parity: Parity | None = None  # None when no graph was exported (pairing keeps the coarse one)
    int8: Int8Outcome | None = None
    mlflow_run_id: str | None = None
    registered_version: int | None = None


# --- network and ONNX -------------------------------------------------------------------


def network_from_checkpoint(checkpoint: Checkpoint) -> torch.nn.Module:
    """The checkpoint's network with its weights, in eval mode (1 input channel)."""
    cfg = checkpoint.config
    net = build_network(
        cfg.network.name, cfg.network.kwargs, spatial_dims=cfg.spatial_dims, in_channels=1, out_channels=len(cfg.labels.classes)
    )
    try:
        net.load_state_dict(checkpoint.model_state)
    except RuntimeError as exc:
        raise ConfigError(f"Checkpoint weights do not fit network {cfg.network.name} of its config: {str(exc)[:300]}") from None
    return net.eval()


def _export_onnx(net: torch.nn.Module, patch_size: list[int]) -> bytes:
    """ONNX bytes with dynamic batch and spatial axes (input "image", output "logits")."""
    spatial = ["x", "y", "z"][: len(patch_size)] if len(patch_size) == 3 else ["rows", "columns"]
    axes = {0: "batch", **{i + 2: name for i, name in enumerate(spatial)}}
    dummy = torch.zeros(1, 1, *patch_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.onnx.export(
            net, (dummy,), buffer, dynamo=False, opset_version=OPSET,
            input_names=["image"], output_names=["logits"], dynamic_axes={"image": axes, "logits": axes},
        )
    for item in caught:
        log.debug("torch.onnx: %s", str(item.message).splitlines()[0])
    return buffer.getvalue()


def _session(onnx_bytes: bytes, threads: int | None = None):
    import onnxruntime as ort

    from odontoscan.models.runtime import ort_threads

    options = ort.SessionOptions()
    options.intra_op_num_threads = ort_threads(threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def compare(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Max |difference| of two logit arrays [B, C, ...] and the Dice agreement of their argmax."""
    return Parity(
        max_abs_diff=float(np.max(np.abs(reference - candidate))),
        limit=MAX_ABS_DIFF + MAX_REL_DIFF * float(np.max(np.abs(reference))),
        dice_agreement=mean_dice_agreement(np.argmax(reference, axis=1), np.argmax(candidate, axis=1)),
        input_shape=list(reference.shape[:1]) + [1] + list(reference.shape[2:]),
    )


# --- phantom samples ----------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _phantom(task: str, seed: int, size: str) -> tuple[np.ndarray, tuple[float, ...]]:
    if task == "cbct":
        from odontoscan.datasets.phantom.cbct import generate_cbct

        phantom = generate_cbct(seed, size)
    else:
        from odontoscan.datasets.phantom.pano import generate_pano

        phantom = generate_pano(seed, size)
    return phantom.image, tuple(phantom.spacing)


def phantom_patches(config: TrainConfig, seed: int, count: int = 1, size: str = "small") -> list[np.ndarray]:
    """``count`` preprocessed ``[1, 1, *patch]`` patches of phantom ``seed``: the centre
    first, then patches shifted around it (zero-padded where the image is smaller)."""
    image, spacing = _phantom(config.task, seed, size)
    volume = preprocess(image, spacing, config.preprocess)
    patch = np.asarray(config.patch_size)
    shape = np.asarray(volume.shape)
    if np.any(shape < patch):
        volume = np.pad(volume, [(0, int(max(p - n, 0))) for n, p in zip(shape, patch)])
        shape = np.asarray(volume.shape)
    rng = np.random.default_rng(seed)
    patches = []
    for index in range(count):
        centre = shape // 2 if index == 0 else shape // 2 + rng.integers(-patch // 2, patch // 2 + 1)
        start = np.clip(centre - patch // 2, 0, shape - patch)
        box = tuple(slice(int(s), int(s + p)) for s, p in zip(start, patch))
        patches.append(np.ascontiguousarray(volume[box], dtype=np.float32)[None, None])
    return patches


# --- metadata and card --------------------------------------------------------------------


def describe_training_data(config: TrainConfig) -> str:
    """One line on what the model was trained on (says so plainly for phantoms)."""
    data = config.data
    if isinstance(data, PhantomData):
        first, last = data.train_seeds.start, data.train_seeds.stop - 1
        extra = ""
        if data.full_size_seeds is not None:
            extra = f" and seeds {data.full_size_seeds.start}-{data.full_size_seeds.stop - 1}, size full"
        return f"odontoscan phantoms seeds {first}-{last}, size {data.size}{extra} — never a real scan"
    return f"{data.source} dataset ({1 - data.val_fraction:.0%} of cases, split seed {data.split_seed})"


def build_metadata(checkpoint: Checkpoint, *, name: str, version: str) -> ModelMetadata:
    """Metadata of the model exported from ``checkpoint`` (sha256 filled in when written)."""
    cfg = checkpoint.config
    names = all_label_names(include_pulp=True)
    output_ids = list(cfg.labels.classes)  # + the left teeth a "midline" model numbers after the network
    if cfg.labels.tooth_sides == "midline":
        output_ids += [k for k in side_folds(cfg.labels.classes) if k in FDI_TEETH]
    if cfg.labels.refines:  # one class for every tooth and one for both canals
        names = {**names, 11: "Tooth (any)", 3: "Inferior Alveolar Canal (either side)", TOOTH_CONTACT: "Tooth Contact"}
    metrics = dict(checkpoint.metrics)
    if checkpoint.best_metric >= 0:
        metrics.setdefault("val_mean_dice", float(checkpoint.best_metric))
    return ModelMetadata(
        name=name,
        version=version,
        task=cfg.task,
        spatial_dims=cfg.spatial_dims,
        modalities=list(VOLUME_MODALITIES if cfg.task == "cbct" else RADIOGRAPH_MODALITIES),
        classes=list(cfg.labels.classes),
        merge=dict(cfg.labels.merge),
        tooth_sides=cfg.labels.tooth_sides,
        refines=cfg.labels.refines,
        label_names={k: names.get(k, f"label {k}") for k in output_ids},
        preprocess=cfg.preprocess,
        patch_size=list(cfg.patch_size),
        size_multiple=downsampling_factor(cfg.network.name, cfg.network.kwargs),
        training_run_id=checkpoint.run_id,
        training_data=describe_training_data(cfg),
        metrics=metrics,
        opset=OPSET,
        created=date.today(),
        odontoscan_version=odontoscan_version(),
    )


def render_model_card(metadata: ModelMetadata, parity: Parity, int8: Int8Outcome | None, checkpoint: Checkpoint) -> str:
    """MODEL_CARD.md: intended use, training data, held-out metrics, limits, reproduction."""
    cfg = checkpoint.config
    phantom = isinstance(cfg.data, PhantomData)
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metadata.metrics.items())) or "| (none recorded) | |"
    lines = [
        f"# {metadata.name} {metadata.version}",
        "",
        "## Intended use",
        f"Segmentation of dental {'CBCT volumes' if metadata.task == 'cbct' else 'radiographs'} "
        f"({', '.join(metadata.modalities)}) into {len(metadata.output_classes) - 1} structures (DESIGN.md label ids), "
        "as input to odontoscan's findings extraction. Research and engineering use; not a medical device, "
        "and not a substitute for a clinician reading the scan.",
        "",
        "## Training data",
        metadata.training_data + ".",
    ]
    if phantom:
        lines.append(
            "**This model has never seen a real scan.** It was trained only on odontoscan's synthetic phantoms; "
            "expect it to fail on patient data until it is retrained on a public dataset such as ToothFairy2."
        )
    lines += [
        "",
        "## Validation metrics at the best epoch",
        "(Model selection used these cases; held-out figures come from `odontoscan evaluate`, step 3 below.)",
        "",
        "| Metric | Value |",
        "|---|---|",
        metrics,
        "",
        "## Export checks",
        f"- ONNX opset {metadata.opset}, dynamic batch and spatial axes (sizes multiples of {metadata.size_multiple}).",
        f"- Parity with PyTorch on a phantom patch {parity.input_shape}: max |logit diff| {parity.max_abs_diff:.2e} (limit {parity.limit:.2e}), "
        f"argmax Dice agreement {parity.dice_agreement:.4f}.",
    ]
    if int8 is not None:
        lines.append(f"- int8 (static QDQ): {'kept as ' + INT8_FILE if int8.kept else 'dropped'} — {int8.reason}.")
    if metadata.refiner is not None:
        lines.append(
            f"- Coarse-to-fine: `{metadata.refiner.file}` (sha256 {(metadata.refiner.sha256 or '')[:12]}...) re-segments the "
            "dental region this model finds at its own finer spacing; teeth keep this model's numbers and canals their sides "
            "(odontoscan.models.refine)."
        )
    if metadata.refines:
        lines.append("- Fine half of a coarse-to-fine pair: never run alone; export the coarse model with `--refiner` pointing here.")
    lines += [
        "",
        "## Limits",
        f"- Input: {metadata.spatial_dims}D, resampled to {metadata.preprocess.spacing_mm or 'its own'} mm spacing; "
        f"windows of {metadata.patch_size} voxels.",
        "- Classes outside the label list are never predicted; rare structures (canals, third molars) are the least reliable.",
        "- Metrics above come from held-out phantoms or the validation split, not from a clinical study.",
        "",
        "## How to reproduce",
        f"1. Train with the config `{cfg.name}` (saved in the MLflow run {metadata.training_run_id or '(no run recorded)'}; seed {cfg.seed}).",
    ]
    if metadata.refiner is not None:
        lines.append(
            "   Train its fine model with its own config (`labels.refines: true`) and export that checkpoint "
            "first (`odontoscan export --checkpoint FINE_CHECKPOINT ... --no-register --out FINE_MODEL_DIR`)."
        )
    lines += [
        f"2. `odontoscan export --checkpoint CHECKPOINT --name {metadata.name} --version {metadata.version} --out DIR"
        + (" --refiner FINE_MODEL_DIR" if metadata.refiner is not None else "") + "`",
        f"3. `odontoscan evaluate --model DIR --phantom-seeds 2000-2019 --size small --out REPORT_DIR` "
        "(phantom seeds 2000 and up are never used for training or validation)",
        "",
    ]
    return "\n".join(lines)


# --- export ---------------------------------------------------------------------------------


def export_model(
    checkpoint: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    name: str,
    version: str,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    quantize: bool = False,
    register: bool = True,
    parity_seed: int = DEFAULT_PARITY_SEED,
    refiner: str | Path | None = None,
) -> ExportResult:
    """Export ``checkpoint`` (a file, or the best checkpoint of MLflow run ``run_id``) to ``out_dir``.

    Raises ExportError (nothing written) when parity with PyTorch fails. With
    ``register`` the model is logged to MLflow (in the checkpoint's run when the
    tracking server has it, else a new run) and registered as ``name``. ``refiner`` (an
    exported fine model directory, trained with ``labels.refines``) is stored beside the
    model as the fine half of a coarse-to-fine pair (:mod:`odontoscan.models.refine`).
    """
    if out_dir is None:
        raise ConfigError("export needs an output directory (--out DIR).")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    with tempfile.TemporaryDirectory(prefix="odontoscan-ckpt-") as download:
        if checkpoint is None:
            if run_id is None:
                raise ConfigError("export needs --checkpoint FILE or --run RUN_ID.")
            checkpoint = download_checkpoint(run_id, tracking_uri, Path(download))
        ckpt = load_checkpoint(checkpoint)
    if run_id is not None and ckpt.run_id is None:
        ckpt.run_id = run_id
    cfg = ckpt.config
    net = network_from_checkpoint(ckpt)
    metadata = build_metadata(ckpt, name=name, version=version)
    refiner_onnx = _check_refiner(refiner, metadata) if refiner is not None else None
    if refiner_onnx is not None:
        metadata = metadata.model_copy(update={"refiner": RefinerRef()})
    onnx_bytes = _export_onnx(net, cfg.patch_size)

    sample = phantom_patches(cfg, parity_seed)[0]
    with torch.no_grad():
        reference = net(torch.from_numpy(sample)).numpy()
    session = _session(onnx_bytes)
    parity = compare(reference, session.run(None, {"image": sample})[0])
    log.info("parity with PyTorch: max |diff| %.2e, argmax Dice agreement %.4f", parity.max_abs_diff, parity.dice_agreement)
    if not (parity.max_abs_diff <= parity.limit and parity.dice_agreement >= MIN_DICE_AGREEMENT):
        raise ExportError(
            f"ONNX export of '{name}' does not reproduce PyTorch on phantom {parity_seed}: max |logit diff| "
            f"{parity.max_abs_diff:.2e} (limit {parity.limit:.2e}), argmax Dice agreement {parity.dice_agreement:.4f} "
            f"(limit {MIN_DICE_AGREEMENT}); nothing was written. Report this with the network config."
        )

    int8_bytes, int8 = (None, None)
    if quantize:
        int8_bytes, int8 = _try_int8(onnx_bytes, cfg, parity_seed)
        if int8_bytes is not None:
            variant = Int8Variant(
                dice_agreement=int8.dice_agreement or 0.0,
                calibration=f"{_CALIBRATION_PATCHES} patches of phantoms {parity_seed + 1}-{parity_seed + 2}",
            )
            metadata = metadata.model_copy(update={"int8": variant})

    def write(staging: Path) -> ModelMetadata:
        written = write_model_dir(onnx_bytes, metadata, staging, int8_model=int8_bytes, refiner_model=refiner_onnx)
        (staging / CARD_FILE).write_text(render_model_card(written, parity, int8, ckpt))
        return written

    metadata = _write_atomically(out_dir, write)
    result = ExportResult(out_dir=out_dir, metadata=metadata, parity=parity, int8=int8)
    if register:
        result.mlflow_run_id, result.registered_version = log_and_register(out_dir, metadata, run_id=ckpt.run_id, tracking_uri=tracking_uri)
    return result


def pair_model(
    model: str | Path,
    refiner: str | Path,
    out_dir: str | Path,
    *,
    second_refiner: str | Path | None = None,
    name: str | None = None,
    version: str | None = None,
    register: bool = True,
    tracking_uri: str | None = None,
) -> ExportResult:
    """Write exported coarse CBCT model ``model`` with exported fine model ``refiner`` as
    its coarse-to-fine pair into ``out_dir``: a retrained fine model joins a shipped
    coarse one without the coarse model's checkpoint. The coarse ONNX graph is kept as
    it is (its parity was checked when it was exported); ``name`` and ``version``
    default to the coarse model's. The model card is the coarse model's with a section
    naming the new refiner; its held-out figures were measured with the previous pair,
    so re-run ``odontoscan evaluate``. ``model`` may be ``out_dir`` (re-pair in place).
    ``second_refiner``: another fine model that gives a second opinion on the classes
    of ``EITHER_PASS`` (see :func:`second_opinion`).
    """
    out_dir = Path(out_dir)
    coarse = read_model_dir(model)
    if coarse.metadata.refines:
        raise ConfigError(f"--model '{model}' is itself a refining model; give the coarse model of the pair.")
    refiner_onnx: Path | bytes = _check_refiner(refiner, coarse.metadata)
    if second_refiner is not None:
        refiner_onnx, fine = second_opinion(refiner, second_refiner)
    else:
        fine = read_model_dir(refiner).metadata
    _check_out_dir(out_dir)
    metadata = coarse.metadata.model_copy(
        update={"name": name or coarse.metadata.name, "version": version or coarse.metadata.version, "refiner": RefinerRef()}
    )
    int8_path = coarse.path / coarse.metadata.int8.file if coarse.metadata.int8 is not None else None
    onnx_bytes = coarse.onnx_path.read_bytes()
    int8_bytes = int8_path.read_bytes() if int8_path is not None else None
    source_card = coarse.path / CARD_FILE
    card = source_card.read_text() if source_card.is_file() else f"# {metadata.model_key}\n"

    def write(staging: Path) -> ModelMetadata:
        written = write_model_dir(onnx_bytes, metadata, staging, int8_model=int8_bytes, refiner_model=refiner_onnx)
        (staging / CARD_FILE).write_text(_paired_card(card, coarse.metadata, written, fine))
        return written

    metadata = _write_atomically(out_dir, write)
    result = ExportResult(out_dir=out_dir, metadata=metadata)
    if register:
        result.mlflow_run_id, result.registered_version = log_and_register(out_dir, metadata, run_id=None, tracking_uri=tracking_uri)
    return result


def _paired_card(card: str, coarse: ModelMetadata, paired: ModelMetadata, fine: ModelMetadata) -> str:
    """The coarse model's card, retitled, with a section naming the new refiner."""
    lines = card.splitlines()
    title = f"# {paired.model_key}"
    body = lines[1:] if lines and lines[0].startswith("# ") else lines
    if "## Pairing" in body:  # a pair paired again: its previous pairing section is stale
        start = body.index("## Pairing")
        end = next((i for i in range(start + 1, len(body)) if body[i].startswith("## ")), len(body))
        body = body[: start - 1 if start and not body[start - 1].strip() else start] + body[end:]
    refiner = paired.refiner
    section = [
        "",
        "## Pairing",
        f"Coarse model unchanged from {coarse.model_key} (`model.onnx` graph as exported, sha256 of that file "
        f"{(coarse.sha256 or '')[:12]}...); refiner `{refiner.file if refiner else ''}` is now {fine.model_key} "
        f"(sha256 {((refiner.sha256 if refiner else '') or '')[:12]}..., training run {fine.training_run_id or 'unknown'}), "
        f"trained on {fine.training_data or 'unknown data'}. Paired on {date.today().isoformat()} with `odontoscan export --model`.",
        "**The held-out and validation figures below were measured with the previous refiner**: re-run "
        f"`odontoscan evaluate --model <this directory>` and replace them before shipping this pair.",
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join([title, *section, "", *body])).rstrip("\n") + "\n"


def _write_atomically(out_dir: Path, write: Callable[[Path], ModelMetadata]) -> ModelMetadata:
    """Run ``write(staging)`` in a fresh folder beside ``out_dir``, then swap it into place:
    ``out_dir`` ends up complete or as it was."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    staging.chmod(0o755)  # mkdtemp makes it private; the model directory is not
    try:
        metadata = write(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metadata


_CALIBRATION_PATCHES = 8


def _try_int8(onnx_bytes: bytes, cfg: TrainConfig, parity_seed: int) -> tuple[bytes | None, Int8Outcome]:
    """Quantise; keep only if the argmax agrees with fp32 on held-out patches."""
    from odontoscan.training.quantize import quantize_int8

    half = _CALIBRATION_PATCHES // 2
    calibration = phantom_patches(cfg, parity_seed + 1, half) + phantom_patches(cfg, parity_seed + 2, half)
    try:
        int8_bytes = quantize_int8(onnx_bytes, "image", calibration)
    except Exception as exc:  # onnxruntime.quantization raises many types
        outcome = Int8Outcome(kept=False, dice_agreement=None, reason=f"quantisation failed ({type(exc).__name__}: {str(exc)[:200]})")
        log.warning("int8 model dropped: %s", outcome.reason)
        return None, outcome
    held_out = np.concatenate(phantom_patches(cfg, parity_seed, 2))
    fp32 = _session(onnx_bytes).run(None, {"image": held_out})[0]
    quant = _session(int8_bytes).run(None, {"image": held_out})[0]
    agreement = compare(fp32, quant).dice_agreement
    if agreement >= MIN_INT8_AGREEMENT:
        return int8_bytes, Int8Outcome(kept=True, dice_agreement=agreement, reason=f"argmax Dice agreement with fp32 {agreement:.4f} >= {MIN_INT8_AGREEMENT}")
    outcome = Int8Outcome(kept=False, dice_agreement=agreement, reason=f"argmax Dice agreement with fp32 {agreement:.4f} < {MIN_INT8_AGREEMENT}")
    log.warning("int8 model dropped: %s", outcome.reason)
    return None, outcome


def second_opinion(first: str | Path, second: str | Path) -> tuple[bytes, ModelMetadata]:
    """One refiner ONNX model (and its metadata) made of two exported fine models: the
    first model's logits, except that where the second model's largest logit is that of
    a class of :data:`~odontoscan.models.runtime.EITHER_PASS` (periapical lesions) and
    the first model's is background, that class's logit becomes one above the first
    model's largest: the union of the two models' lesions, laid on background only (a
    tooth, canal or restoration stays the first model's). Two refiners trained alike on
    different phantoms miss different small lesions (on 96 small tuning phantoms each
    missed 4-5 of 70, mostly different ones). Taking the larger of the two lesion
    logits instead let in twelve times as many false lesions: the second model's
    lesion logit often tops the first's background where the second model itself calls
    the voxel something else. The other classes stay the first model's, as the findings
    rules were tuned on it. The two must predict the same classes from the same
    preprocessing and patch size; the result runs as one network (twice the refiner's
    inference time) and carries the first model's metadata, its training data naming
    both."""
    import onnx
    from onnx import TensorProto, compose, helper

    from odontoscan.models.runtime import EITHER_PASS

    a_dir, b_dir = read_model_dir(first), read_model_dir(second)
    a, b = a_dir.metadata, b_dir.metadata
    for fine, given in ((a, first), (b, second)):
        if not fine.refines:
            raise ConfigError(f"'{given}' is not a refining model; train it with labels.refines: true.")
    for what in ("classes", "preprocess", "patch_size", "input_name", "output_name"):
        if getattr(a, what) != getattr(b, what):
            raise ConfigError(f"The two refiners differ in {what}; a second opinion needs refiners trained alike.")
    if not set(a.classes) & set(EITHER_PASS):
        raise ConfigError(f"The refiners predict none of the classes a second opinion is for ({list(EITHER_PASS)}).")
    first_model, second_model = onnx.load(str(a_dir.onnx_path)), onnx.load(str(b_dir.onnx_path))
    first_out = compose.add_prefix(first_model, "first/", rename_inputs=False)
    second_out = compose.add_prefix(second_model, "second/", rename_inputs=False)
    graph = helper.make_graph([], "refiner_with_second_opinion", list(first_model.graph.input), list(first_model.graph.output))
    for part in (first_out, second_out):
        graph.node.extend(part.graph.node)
        graph.initializer.extend(part.graph.initializer)
    logits = {"first": first_out.graph.output[0].name, "second": second_out.graph.output[0].name}  # [B, C, *spatial]

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        graph.node.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    @functools.cache
    def channel(model: str, c: int) -> str:  # [B, 1, *spatial]
        return node("Gather", [logits[model], f"index{c}"], f"{model}/channel{c}", axis=1)

    graph.initializer.extend(helper.make_tensor(f"index{c}", TensorProto.INT64, [1], [c]) for c in range(len(a.classes)))
    graph.initializer.append(helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]))
    opset = max(o.version for o in first_model.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= 18:  # ReduceMax takes its axes as an input from opset 18, as an attribute before
        graph.initializer.append(helper.make_tensor("channel_axis", TensorProto.INT64, [1], [1]))
        top = {m: node("ReduceMax", [logits[m], "channel_axis"], f"{m}/top", keepdims=1) for m in logits}
    else:
        top = {m: node("ReduceMax", [logits[m]], f"{m}/top", axes=[1], keepdims=1) for m in logits}
    background = node("GreaterOrEqual", [channel("first", 0), top["first"]], "first/is_background")
    channels = [channel("first", c) for c in range(len(a.classes))]
    for c, label in enumerate(a.classes):
        if label in EITHER_PASS:
            seen = node("GreaterOrEqual", [channel("second", c), top["second"]], f"second/is{c}")
            laid = node("And", [seen, background], f"either/lay{c}")
            above = node("Add", [top["first"], "one"], f"either/above{c}")
            channels[c] = node("Where", [laid, above, channels[c]], f"either/channel{c}")
    node("Concat", channels, first_model.graph.output[0].name, axis=1)
    combined = helper.make_model(graph, opset_imports=first_model.opset_import)
    combined.ir_version = first_model.ir_version
    onnx.checker.check_model(combined)
    metadata = a.model_copy(update={"training_data": f"{a.training_data}; second opinion on periapical lesions: {b.model_key}, {b.training_data}"})
    return embed_metadata(combined.SerializeToString(), metadata), metadata


def _check_refiner(refiner: str | Path, metadata: ModelMetadata) -> Path:
    """The ONNX file of exported fine model ``refiner``, checked to fit as ``metadata``'s refiner."""
    fine = read_model_dir(refiner)
    if not fine.metadata.refines:
        raise ConfigError(f"--refiner '{refiner}' is not a refining model; train it with labels.refines: true.")
    if metadata.refines or metadata.task != "cbct":
        raise ConfigError("only a coarse CBCT model takes a refiner.")
    return fine.onnx_path


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a non-empty directory that is not a model directory."""
    if out_dir.is_file() or (out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / METADATA_FILE).is_file()):
        raise ModelError(f"Output '{out_dir}' exists and is not a model directory; choose a new or empty --out.")


__all__ = ["ExportResult", "Int8Outcome", "Parity", "export_model", "pair_model", "second_opinion", "promote", "network_from_checkpoint", "phantom_patches"]
