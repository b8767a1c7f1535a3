"""``odontoscan train``: train a MONAI segmentation network from a YAML config.

One call of :func:`train` runs (or resumes) one MLflow run: it builds the preprocessed
data (:mod:`.data`), the network (:func:`odontoscan.models.networks.build_network`),
DiceCE loss, optimiser and schedule, trains on random patches with augmentation
(:mod:`.augment`), validates on whole cases with sliding windows (:mod:`.validate`),
and writes ``best.pt`` / ``last.pt`` (:mod:`.checkpoint`) to the output folder and to
MLflow. Under ``torchrun`` every process trains its share of the cases
(DistributedDataParallel); only rank 0 validates, logs and saves.

Same seed, same config, same device -> same losses (on CPU). AMP and channels-last
memory are used only on CUDA.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from monai.data import Dataset, list_data_collate
from monai.losses import DiceCELoss
from monai.utils import set_determinism
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, DistributedSampler

from odontoscan.datasets.errors import ConfigError
from odontoscan.models.networks import build_network, downsampling_factor
from odontoscan.training import distributed
from odontoscan.training.augment import sampling_indices, train_transforms
from odontoscan.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from odontoscan.training.config import TrainConfig, load_config
from odontoscan.training.data import load_training_data
from odontoscan.training.run_log import CHECKPOINTS, OUTPUT_DIR_TAG, RunLog, checkpoint_of_run, flatten, log_summary
from odontoscan.models.tracking import tracking_uri as resolve_tracking_uri
from odontoscan.training.validate import validate

log = logging.getLogger(__name__)

# Settings a resumed run must share with its checkpoint (the rest, e.g. epochs, may change).
FIXED_ON_RESUME = ("task", "labels", "preprocess", "network")


@dataclass(frozen=True)
class TrainResult:
    """What one :func:`train` call produced (``run_id`` is None on ranks other than 0)."""

    run_id: str | None
    output_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_metric: float
    best_epoch: int
    epochs_run: int  # epochs trained by this call
    last_epoch: int  # last completed epoch, 0-based


def lr_factor(schedule: str, warmup: int, epochs: int):
    """Epoch -> learning-rate multiplier: linear warm-up, then cosine / constant / poly(0.9)."""

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        progress = (epoch - warmup) / max(1, epochs - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if schedule == "poly":
            return max(0.0, 1 - progress) ** 0.9
        return 1.0

    return factor


def _optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    opt = config.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(parameters, lr=opt.lr, momentum=0.99, nesterov=True, weight_decay=opt.weight_decay)
    return torch.optim.AdamW(parameters, lr=opt.lr, weight_decay=opt.weight_decay)


def _check_patch(config: TrainConfig) -> None:
    factor = downsampling_factor(config.network.name, config.network.kwargs)
    if any(n % factor for n in config.patch_size):
        raise ConfigError(
            f"patch_size {config.patch_size} must be a multiple of {factor}, the network's total downsampling; "
            "change patch_size or the network strides."
        )


def _resolve_resume(resume: str | Path, uri: str) -> Path:
    path = Path(resume)
    if path.suffix == ".pt" or path.exists():
        if not path.is_file():
            raise ConfigError(f"Checkpoint '{path}' does not exist; pass last.pt of the run to resume, or its MLflow run id.")
        return path
    return checkpoint_of_run(str(resume), uri)


def _merge_resume(config: TrainConfig | None, checkpoint: Checkpoint) -> TrainConfig:
    if config is None:
        config = checkpoint.config
    for key in FIXED_ON_RESUME:
        if getattr(config, key) != getattr(checkpoint.config, key):
            raise ConfigError(
                f"'{key}' differs from the checkpoint's; a resumed run must keep task, labels, preprocess "
                "and network (change epochs, optimiser or augmentation only), or start a new run."
            )
    if checkpoint.epoch + 1 >= config.epochs:
        raise ConfigError(
            f"The checkpoint has already trained {checkpoint.epoch + 1} of {config.epochs} epochs; "
            "raise epochs in the config to continue training."
        )
    return config


def _progress(enabled: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    return Progress(*columns, disable=not enabled, transient=False)


def train(
    config: TrainConfig | str | Path | None = None,
    *,
    data_path: str | Path | None = None,
    tracking_uri: str | None = None,
    resume: str | Path | None = None,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) one model; returns where its checkpoints are and how good it got.

    Args:
        config: a TrainConfig or the path of its YAML; may be omitted with ``resume``
            (the checkpoint's config is used).
        data_path: dataset folder, overriding ``data.path`` of the config.
        tracking_uri: MLflow store (default: ``sqlite:///mlflow.db`` in the working folder).
        resume: ``last.pt`` of an earlier run, or that run's MLflow id; training continues
            with the next epoch, in the same MLflow run.
        out: output folder for checkpoints (default: ``runs/<name>-<time>``, or the
            resumed checkpoint's folder).
        cache_dir: where preprocessed phantoms are cached.
        progress: show rich progress bars (rank 0 only).
    """
    if isinstance(config, (str, Path)):
        config = load_config(config)
    uri = resolve_tracking_uri(tracking_uri)
    resume_path = _resolve_resume(resume, uri) if resume is not None else None
    previous = load_checkpoint(resume_path) if resume_path is not None else None
    if previous is not None:
        config = _merge_resume(config, previous)
    if config is None:
        raise ConfigError("Give a training config (--config configs/<task>.yaml) or a run to --resume.")
    _check_patch(config)
    output_dir = Path(out) if out is not None else (
        resume_path.parent if resume_path is not None else Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    context = distributed.setup()
    try:
        return _train(config, context, uri, previous, output_dir, data_path, cache_dir, progress)
    finally:
        distributed.teardown(context)


def _train(config, context, uri, previous, output_dir, data_path, cache_dir, progress) -> TrainResult:
    device = context.device
    cuda = device.type == "cuda"
    amp = cuda and config.amp != "off"
    set_determinism(seed=config.seed)
    torch.manual_seed(config.seed)

    if context.is_main:  # rank 0 fills the phantom cache; the others then read it
        data = load_training_data(config, data_path, cache_dir)
    distributed.barrier(context)
    if not context.is_main:
        data = load_training_data(config, data_path, cache_dir)

    model = build_network(
        config.network.name, config.network.kwargs, spatial_dims=config.spatial_dims, in_channels=1,
        out_channels=len(config.labels.classes),
    ).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last_3d if config.spatial_dims == 3 else torch.channels_last)
    optimizer = _optimizer(config, model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config.schedule.name, config.schedule.warmup_epochs, config.epochs)
    )
    start_epoch, best_metric, best_epoch, best_metrics = 0, -1.0, -1, {}
    run_id = None
    if previous is not None:
        model.load_state_dict(previous.model_state)
        if previous.optimizer_state:
            optimizer.load_state_dict(previous.optimizer_state)
        if previous.scheduler_state:
            scheduler.load_state_dict(previous.scheduler_state)
        start_epoch, best_metric, best_epoch = previous.epoch + 1, previous.best_metric, previous.best_epoch
        best_metrics, run_id = dict(previous.metrics), previous.run_id
    network = torch.nn.parallel.DistributedDataParallel(model) if context.enabled else model

    prepare = sampling_indices(config)
    transforms = train_transforms(config)
    dataset = Dataset([prepare(item) for item in data.train], transform=transforms)
    sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=0, collate_fn=list_data_collate)
    loss_weight = torch.tensor(config.loss.weights(config.labels.classes), device=device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, weight=loss_weight)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    runlog = None
    if context.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        tags = {OUTPUT_DIR_TAG: str(output_dir.resolve()), "odontoscan.task": config.task, "dataset_sha256": data.manifest_sha256}
        runlog = RunLog(uri, run_id, run_name=config.name, tags=tags)
        run_id = runlog.run_id
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        (output_dir / "manifest.json").write_text(json.dumps(data.manifest, indent=1))
        if previous is None:
            runlog.log_params({**flatten(config.model_dump(mode="json")), "dataset_sha256": data.manifest_sha256})
        runlog.log_artifact(output_dir / "config.yaml")
        runlog.log_artifact(output_dir / "manifest.json")
        log.info("MLflow run %s; checkpoints in %s", run_id, output_dir)

    last_path, best_path = output_dir / "last.pt", output_dir / "best.pt"
    status = "FAILED"
    epoch = start_epoch - 1
    try:
        with _progress(progress and context.is_main) as bars:
            epochs_bar = bars.add_task("epochs", total=config.epochs, completed=start_epoch, info="")
            steps_bar = bars.add_task("iterations", total=len(loader), info="")
            for epoch in range(start_epoch, config.epochs):
                sampler.set_epoch(epoch)
                transforms.set_random_state(seed=config.seed * 100_003 + epoch * context.world_size + context.rank)
                network.train()
                bars.reset(steps_bar, total=len(loader), info="")
                total, count = 0.0, 0
                for batch in loader:
                    image, label = batch["image"].to(device), batch["label"].to(device)
                    if cuda:
                        image = image.contiguous(memory_format=torch.channels_last_3d if image.ndim == 5 else torch.channels_last)
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast(device_type=device.type, enabled=amp):
                        loss = loss_fn(network(image), label)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    total, count = total + float(loss.detach()), count + 1
                    bars.update(steps_bar, advance=1, info=f"loss {total / count:.4f}")
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
                metrics = {"train_loss": distributed.mean_over_ranks(total / max(count, 1), context), "lr": lr}
                if context.is_main:
                    if (epoch + 1) % config.val_interval == 0 or epoch + 1 == config.epochs:
                        metrics.update(validate(model, data.val, config, device, amp))
                        if metrics["val_dice"] > best_metric:
                            best_metric, best_epoch = metrics["val_dice"], epoch
                            best_metrics = {k: v for k, v in metrics.items() if k.startswith("val_")}
                    checkpoint = Checkpoint(
                        config=config, model_state=model.state_dict(), epoch=epoch, best_metric=best_metric,
                        best_epoch=best_epoch, optimizer_state=optimizer.state_dict(),
                        scheduler_state=scheduler.state_dict(), run_id=run_id,
                        manifest_sha256=data.manifest_sha256, metrics=best_metrics,
                    )
                    save_checkpoint(checkpoint, last_path)
                    runlog.log_metrics(metrics, step=epoch)
                    if best_epoch == epoch:
                        save_checkpoint(checkpoint, best_path)
                        runlog.log_artifact(best_path, CHECKPOINTS)
                    runlog.log_artifact(last_path, CHECKPOINTS)
                    log.info("epoch %d/%d %s", epoch + 1, config.epochs, log_summary(metrics))
                bars.update(epochs_bar, completed=epoch + 1, info=f"val Dice {best_metric:.3f}" if best_metric >= 0 else "")
                distributed.barrier(context)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if runlog is not None:
            runlog.finish(status)
    return TrainResult(
        run_id=run_id if context.is_main else None,
        output_dir=output_dir,
        best_checkpoint=best_path,
        last_checkpoint=last_path,
        best_metric=best_metric,
        best_epoch=best_epoch,
        epochs_run=epoch + 1 - start_epoch,
        last_epoch=epoch,
    )
