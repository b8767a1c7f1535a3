"""Multi-process training under ``torchrun``: process group, device, rank-0 duties.

``torchrun --nproc_per_node N ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`setup` joins the process group (nccl on GPUs, gloo on CPU) when they are
present and otherwise describes a single process. Only rank 0 logs to MLflow and
writes checkpoints (:attr:`Distributed.is_main`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: rank, world size and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup() -> Distributed:
    """Join the torchrun process group if launched by torchrun; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Distributed(rank, world_size, device)


def teardown(context: Distributed) -> None:
    """Leave the process group (after every rank has finished)."""
    if context.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(context: Distributed) -> None:
    if context.enabled:
        dist.barrier()


def mean_over_ranks(value: float, context: Distributed) -> float:
    """Average a scalar over all ranks (itself on one process)."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size

