"""Test-wide settings: one torch thread (tiny models on a shared 2-core machine run faster so)."""

import os

os.environ.setdefault("HETERO_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
