"""Where tensors live: one rule for every module that takes a ``device`` argument."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

__all__ = ["describe_device", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when there is a GPU, else the CPU; an explicit GPU must exist."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r} was asked for, but no CUDA GPU is available; use 'auto' or 'cpu'.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RuntimeError(f"device={str(device)!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s).")
    return device


def describe_device(device: torch.device) -> str:
    """What a result was computed on, for provenance: the GPU's name, or the CPU's model and the
    number of threads torch used (CPU results change in rounding with the thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")] if cpuinfo.is_file() else []
    return f"CPU: {names[0] if names else platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"
