"""Process-wide run settings shared by every command: seed, accelerator, threads, quietness."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from hetero.errors import UserError

__all__ = ["seed_everything", "resolve_device", "progress", "cpu_description"]

_QUIET = False


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run with the same seed gives the same result."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # One thread unless HETERO_THREADS says otherwise: hetero's models are small, and on a busy
    # 2-core machine two OpenMP threads per process made training ~10x slower (584 s vs 50 s for
    # the demo). A fixed count also keeps results reproducible (reductions split across threads
    # differ in the last bits).
    torch.set_num_threads(int(os.environ.get("HETERO_THREADS", "1")))


def resolve_device(accelerator: str = "auto") -> torch.device:
    """``auto`` takes CUDA where present, else the CPU; ``cuda`` without a GPU is a user error."""
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--accelerator cuda: no CUDA device is available here; use --accelerator cpu")
        return torch.device("cuda")
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise UserError(f"unknown accelerator {accelerator!r}: use auto, cpu or cuda")


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def progress(iterable=None, **kwargs):
    """A tqdm progress bar that ``--quiet`` silences."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=_QUIET, dynamic_ncols=True, leave=False, **kwargs)


def cpu_description() -> str:
    """The CPU model and its int8-relevant instruction sets, e.g. ``AMD EPYC (avx2, avx512f, avx512_vnni)``:
    what an int8 or speed figure depends on (onnxruntime's U8S8 kernels saturate without VNNI)."""
    try:
        info = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:  # not Linux
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model} ({', '.join(isa) or 'no AVX2'})"
