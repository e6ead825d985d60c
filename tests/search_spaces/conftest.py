"""Shared fixtures of the search_spaces tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # These networks are tiny; on a shared, busy CPU OpenMP threads spin against each other and
    # make a forward pass ~100x slower than with one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
