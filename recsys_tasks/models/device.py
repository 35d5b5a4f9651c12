"""Where the language-model models run: CUDA when present (bf16 autocast, large batches), else the CPU.

Precision ("auto" | "bf16" | "fp32", setting lm_precision): "auto" computes in bf16 on a CUDA GPU that supports it
(Ampere and later) and in fp32 elsewhere; "bf16" also on the CPU (worth it on CPUs with AMX or AVX512-BF16, slower
on others; the tests use it to run the GPU's mixed-precision path on the CPU); "fp32" never casts.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import random

import numpy as np
import torch

from recsys_tasks.config import PRECISIONS

log = logging.getLogger(__name__)


def torch_device(name: str | None = None) -> torch.device:
    """Return the torch device for a model's `device` parameter (None or "auto": CUDA when available)."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_precision(precision: str) -> str:
    """Return the precision setting, refusing one that is not in PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision (setting lm_precision) must be one of {PRECISIONS}, not {precision!r}")
    return precision


def uses_bf16(device: torch.device, precision: str = "auto") -> bool:
    """Return True when the models compute in bf16 on this device at this precision setting."""
    if check_precision(precision) == "auto":  # pre-Ampere GPUs (T4, V100) emulate bf16 slowly: fp32 there
        return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        _warn_emulated_cpu_bf16()
    return precision == "bf16"


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Return True when this CPU computes bf16 natively (AVX512-BF16 or AMX, as oneDNN reports it)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.lru_cache(maxsize=1)
def _warn_emulated_cpu_bf16() -> None:
    log.warning("lm_precision=bf16 on a CPU without native bf16 (no AVX512-BF16 / AMX): its matrix products are "
                "emulated, measured 138x to 575x slower than fp32 on a 2-core AVX2 EPYC; use auto or fp32 here")


def autocast(device: torch.device, precision: str = "auto"):
    """Return a bf16 autocast context where uses_bf16 says so, else a no-op."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
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


class DeviceCopies:
    """NumPy arrays copied to a torch device once, and again only when the array or the device asked for changes.

    Keyed on the device asked for, not the tensor's: torch.device("cuda") != torch.device("cuda:0"), so comparing
    with the copy's own device would copy again on every call.
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple] = {}  # name -> (the array, the device asked for, its copy there)

    def get(self, name: str, array: np.ndarray, device: torch.device) -> torch.Tensor:
        """Return array on device, copied only when this very array was not copied there before."""
        held = self._held.get(name)
        if held is None or held[0] is not array or held[1] != device:
            held = self._held[name] = (array, device, torch.as_tensor(array, device=device))
        return held[2]


def add_sparse(out: torch.Tensor, rows, scale: float = 1.0) -> torch.Tensor:
    """Add scale x the SciPy sparse matrix rows (same shape as out) into out, in place, where out lies."""
    coo = rows.tocoo()
    if coo.nnz:
        where = (torch.as_tensor(coo.row, device=out.device), torch.as_tensor(coo.col, device=out.device))
        out.index_put_(where, torch.as_tensor(coo.data * np.float32(scale), device=out.device), accumulate=True)
    return out
