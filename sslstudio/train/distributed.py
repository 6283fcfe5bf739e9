"""Multi-process training under torchrun: environment detection and the few collectives used.

One process per device; ``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK. Rank 0
builds the decoded cache, writes checkpoints, metrics and previews; every rank
takes its own slice of the same per-epoch permutation (see loader.BatchPlan).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """The torchrun environment, or a single process when it is absent."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return DistInfo()
    if world <= 1:
        return DistInfo()
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init(info: DistInfo, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo otherwise), once."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and pinned memory use the current device
    # Rank 0 may spend a long time decoding the cache while the others wait.
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(hours=2))


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_object(value, src: int = 0):
    """Rank ``src``'s value on every rank (a no-op without a process group)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce(values: torch.Tensor, op: str = "mean") -> torch.Tensor:
    """Mean / sum / max of a float tensor over ranks (in place; returned for convenience)."""
    if not active():
        return values
    # NCCL reduces only CUDA tensors; the engine's log-point statistics live on the CPU
    work = values
    if dist.get_backend() == "nccl" and values.device.type != "cuda":
        work = values.to(torch.device("cuda", torch.cuda.current_device()))
    if op == "max":
        dist.all_reduce(work, op=dist.ReduceOp.MAX)
    else:
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        if op == "mean":
            work /= dist.get_world_size()
    if work is not values:
        values.copy_(work.cpu())
    return values


def sync_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank.

    DDP keeps parameters identical, but each rank updates BatchNorm statistics
    from its own last batch; this makes the final replicas identical too.
    """
    if not active():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=src)
