"""One process or many under torchrun: the same training code either way.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them this is a single
process. Backend: nccl on CUDA, gloo on CPU. CPU processes share the cores, so each gets its share of
threads (two processes each spinning two threads on two cores is several times slower than one).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun set up (if any); on CUDA each process takes its local GPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(0, 1, device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    log.info("process %d of %d on %s", rank, world_size, device)
    return Distributed(rank, world_size, device)


def wrap_model(model: torch.nn.Module, d: Distributed) -> torch.nn.Module:
    """DDP around the model when there are several processes (gradients averaged), the model itself otherwise."""
    if not d.active:
        return model
    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


@torch.no_grad()
def replicas_in_sync(model: torch.nn.Module, d: Distributed) -> bool:
    """Whether every process holds the same weights (DDP's promise; checked once at the end of a run)."""
    if not d.active:
        return True
    local = torch.stack([p.detach().double().sum() for p in model.parameters()])
    ref = local.clone()
    dist.broadcast(ref, src=0)
    same = torch.tensor([float(torch.allclose(local, ref, rtol=1e-6, atol=1e-8))], device=local.device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())


def log_finish(model: torch.nn.Module, d: Distributed, step: int) -> None:
    """The last log line of a run: where it stopped, and whether all processes ended with the same weights."""
    in_sync = replicas_in_sync(model, d)
    if d.is_main:
        log.info("finished at step %d on %d process(es); replicas %s", step, d.world_size,
                 "in sync" if in_sync else "OUT OF SYNC")


def all_mean(value: float, d: Distributed) -> float:
    """The mean of a number over all processes (so the logged loss is the whole batch's)."""
    if not d.active:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(tensor)
    return float(tensor) / d.world_size


def shutdown(d: Distributed) -> None:
    if d.active:
        dist.barrier()
        dist.destroy_process_group()
