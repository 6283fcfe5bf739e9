"""Batches of uint8 images straight from the decoded cache's memmap.

The order is a pure function of (seed, step): epoch ``e`` uses the permutation
drawn from ``default_rng([seed, e])`` and step ``s`` is batch ``s % steps_per_epoch``
of epoch ``s // steps_per_epoch``. A resumed run therefore needs only its step
to see exactly the batches it would have seen, and every DDP rank derives the
same permutation and takes its own slice of each global batch.

A background thread gathers the next batches (a fancy-indexed memmap copy,
optionally pinned) while the device works on the current one. Memory stays
bounded by the queue depth × batch: no per-image Python objects.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BatchPlan:
    num_images: int
    batch_size: int          # per rank
    seed: int
    world_size: int = 1
    rank: int = 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.num_images // self.global_batch)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_images)

    def indices(self, step: int, perm: np.ndarray | None = None) -> np.ndarray:
        """Sorted cache rows of this rank's batch at ``step`` (sorted: memmap locality)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        perm = self.permutation(epoch) if perm is None else perm
        start = position * self.global_batch + self.rank * self.batch_size
        return np.sort(perm[start:start + self.batch_size])


def fit_batch_size(requested: int, num_images: int, world_size: int = 1) -> int:
    """The largest batch ≤ requested that still gives every rank one full batch per epoch."""
    return max(1, min(requested, num_images // max(1, world_size)))


_DONE = object()


class PrefetchLoader:
    """Yields ``(step, uint8 tensor N×S×S×3)`` from ``start_step`` on, one batch ahead or more."""

    def __init__(self, images: np.ndarray, plan: BatchPlan, start_step: int = 0, *,
                 depth: int = 3, pin_memory: bool = False) -> None:
        self.images = images
        self.plan = plan
        self.pin_memory = pin_memory
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(start_step,),
                                        name="sslstudio-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, step: int) -> None:
        perm_epoch, perm = -1, None
        try:
            while not self._closed.is_set():
                epoch = self.plan.epoch_of(step)
                if epoch != perm_epoch:
                    perm_epoch, perm = epoch, self.plan.permutation(epoch)
                batch = torch.from_numpy(np.ascontiguousarray(self.images[self.plan.indices(step, perm)]))
                if self.pin_memory:
                    batch = batch.pin_memory()
                if not self._put((step, batch)):
                    return
                step += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)

    def next(self) -> tuple[int, torch.Tensor]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._closed.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)

    def __enter__(self) -> "PrefetchLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def to_device_float(batch: torch.Tensor, device: torch.device, *,
                    channels_last: bool = False) -> torch.Tensor:
    """uint8 N×H×W×3 → float N×3×H×W in [0, 1] on ``device`` (conversion on the device)."""
    x = batch.to(device, non_blocking=device.type == "cuda")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if channels_last:
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()
