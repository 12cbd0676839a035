"""Several processes through torchrun and DistributedDataParallel (NCCL on GPUs, gloo on CPU)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass
class Distributed:
    """This process's place in the run (rank, world size, device) and the collectives training needs."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def wrap(self, model: nn.Module, find_unused: bool = False) -> nn.Module:
        """``model`` in DDP; ``find_unused``: the ranks may use different parameters per step (a super-network's
        sampled sub-networks: the blocks a shallow one skips get no gradient on that rank).
        """
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)

    def sync_gradients(self, wrapped: nn.Module, sync: bool) -> AbstractContextManager[Any]:
        """Around one backward pass of ``wrapped`` (what :meth:`wrap` returned): ``sync`` False keeps its gradients
        on this rank, to be summed with the next pass's and averaged across ranks with the step's last one.
        """
        no_sync = getattr(wrapped, "no_sync", None)  # DDP's; one process has nothing to sync
        return nullcontext() if sync or no_sync is None else no_sync()

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every rank, in rank order (a collective: every rank must call it)."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        torch_dist.all_gather_object(values, value)
        return values

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (a collective): ranks must agree on when to stop,
        or the next gradient sync would wait forever for the rank that left.
        """
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def finish(self) -> None:
        if self.world > 1 and torch_dist.is_initialized():
            torch_dist.barrier()
            torch_dist.destroy_process_group()


def start_distributed() -> Distributed:
    """The process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    torch_dist.init_process_group("nccl" if cuda else "gloo")
    return Distributed(rank, world, torch.device("cuda", local) if cuda else torch.device("cpu"))
