"""Test-wide settings: one torch thread (tiny models on a shared 2-core machine run faster so); benchmarks/ scripts as modules."""

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("HETERO_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def benchmark_script():
    """``load(name)``: benchmarks/NAME.py imported as a module (benchmarks/ is scripts, not a package)."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
