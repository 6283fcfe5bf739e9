"""Which device to train on, and a description of what this machine offers (for the GUI)."""

from __future__ import annotations

import os
import platform
import sys

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailable(ValueError):
    """The requested device does not exist on this machine."""


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(choice: str = "auto", local_rank: int | None = None) -> torch.device:
    """CUDA, then Apple MPS, then CPU for "auto"; a named device must exist."""
    choice = (choice or "auto").lower()
    if choice not in DEVICE_CHOICES and not choice.startswith("cuda:"):
        raise DeviceUnavailable(f"unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        if torch.cuda.is_available():
            choice = "cuda"
        elif mps_available():
            choice = "mps"
        else:
            choice = "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable("CUDA was requested but no CUDA GPU is available "
                                    "(use --device cpu or auto)")
        if choice == "cuda":
            index = local_rank if local_rank is not None else torch.cuda.current_device()
            return torch.device("cuda", index)
        return torch.device(choice)
    if choice == "mps" and not mps_available():
        raise DeviceUnavailable("Apple MPS was requested but is not available on this machine")
    return torch.device(choice)


def native_bf16(device: torch.device | int | None = None) -> bool:
    """True when the GPU computes bfloat16 in hardware (Ampere / compute capability 8 and up,
    or ROCm). ``torch.cuda.is_bf16_supported()`` also says yes for older GPUs (T4, V100) that
    only emulate it, slowly; those should train in float16 with a GradScaler instead."""
    if not torch.cuda.is_available():
        return False
    if torch.version.hip:
        return True
    if isinstance(device, torch.device):
        device = device.index if device.index is not None else torch.cuda.current_device()
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def native_cpu_bf16() -> bool:
    """True when the CPU has bfloat16 instructions (AVX512-BF16 or AMX: recent Xeon, Zen 4 and
    up), where oneDNN runs bf16 convolutions about twice as fast as float32. Elsewhere bf16 is
    emulated and slower, so training stays in float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name)()) for name in probes
                   if hasattr(torch.cpu, name))
    except Exception:  # noqa: BLE001 - a private probe that changed: assume no
        return False


def mixed_precision(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """bfloat16 when `precision` is "auto" and `device` computes it natively (Ampere-class
    GPUs, CPUs with AVX512-BF16 / AMX), else None: float32 throughout."""
    device = torch.device(device)
    if precision != "auto":
        return None
    if device.type == "cuda" and native_bf16(device):
        return torch.bfloat16
    if device.type == "cpu" and native_cpu_bf16():
        return torch.bfloat16
    return None


def flush_denormals() -> None:
    """Treat denormal floats (below 1.2e-38) as zero on the CPU, in the calling thread and the
    threads it starts afterwards.

    A very confident classifier gives gradients that small; x86 CPUs compute with them up to
    ~100x slower. Self-training on a tiny, easy folder spent 216 ms per backward pass with
    them and 27 ms without (the whole fit 34 s -> 11 s); on the sample the predictions are
    bit-identical either way. GPUs flush by default, so CPU and GPU runs now agree on this.
    Call it at the start of training, in the thread that trains.
    """
    torch.set_flush_denormal(True)


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def device_summary() -> dict:
    """``{"best": name, "devices": [{"device", "name", ...}]}``, best device first."""
    devices: list[dict] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append({
                "device": "cuda" if index == 0 else f"cuda:{index}",
                "name": props.name,
                "memory_gb": round(props.total_memory / 2**30, 1),
                "bf16": native_bf16(index),
            })
    if mps_available():
        devices.append({"device": "mps", "name": "Apple GPU (MPS)"})
    devices.append({
        "device": "cpu",
        "name": platform.processor() or platform.machine() or "CPU",
        "cores": cpu_cores(),
        "threads": torch.get_num_threads(),
    })
    return {"best": devices[0]["device"], "devices": devices,
            "torch": torch.__version__, "python": sys.version.split()[0]}


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.0f} GB)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
