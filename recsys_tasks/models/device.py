"""Where the language-model models run: CUDA when present (bf16 autocast, large batches), else the CPU."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def torch_device(name: str | None = None) -> torch.device:
    """Return the torch device for a model's `device` parameter (None or "auto": CUDA when available)."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device):
    """Return a bf16 autocast context on CUDA and a no-op on the CPU (CPU bf16 matmuls are slower than fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for the model's own sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def batch_size_for(device: torch.device, cpu: int, cuda: int) -> int:
    """Return the batch size for the device: GPUs want large batches, CPUs cache-sized ones."""
    return cuda if device.type == "cuda" else cpu


class TimeBudget:
    """Wall-clock allowance of a training loop; None or 0 means unlimited."""

    def __init__(self, seconds: float | None) -> None:
        import time

        self._clock = time.perf_counter
        self.seconds = seconds or None
        self.started = self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def spent(self) -> bool:
        """Return True once the allowance is used up."""
        return self.seconds is not None and self.elapsed() >= self.seconds
