"""Hardware facts the trainer needs: whether to autocast to bf16, and the matmul peak MFU is measured against."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from rlvr.config import ConfigError


def has_bf16(device: torch.device) -> bool:
    """Native bf16 matmuls: CUDA with bf16 support, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` ("auto" | "bf16" | "fp32"); None means plain fp32."""
    if precision == "fp32" or (precision == "auto" and not has_bf16(device)):
        return None
    if precision == "bf16" and not has_bf16(device):
        raise ConfigError(
            f"train.precision bf16 asked for, but {device} has no native bf16: set --train.precision=auto "
            "(bf16 where the hardware has it) or fp32"
        )
    return torch.bfloat16


def autocast(dtype: torch.dtype | None, device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast on `device` when `dtype` is set (`autocast_dtype`), else nothing: fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def measure_matmul_peak(
    device: torch.device,
    dtype: torch.dtype = torch.bfloat16,
    seconds: float = 1.0,
    sizes: tuple[int, ...] = (1024, 2048),
) -> float:
    """Dense matmul FLOP/s on this device right now: the best of square matmuls of a few sizes.

    Measured rather than looked up so MFU is against what this machine (and its current load)
    can do; on a shared CPU it moves with contention, so report load beside it.
    """
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(2):  # warm-up: kernel selection, caches
            a @ b
        _sync(device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / len(sizes):
            a @ b
            count += 1
        _sync(device)
        best = max(best, 2.0 * n**3 * count / (time.perf_counter() - start))
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
