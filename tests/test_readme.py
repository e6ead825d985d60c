"""The README's Python API example runs as written (it is the first code a library user copies),
but for its training length: 1 epoch where it says 4 (what runs is the same calls; the figures it
prints are not checked, and 4 epochs of the cloud and the edge model were most of the test's time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_python_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the example exports for the x86-server profile (ONNX Runtime)")
    text = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 1, "the README has one Python example"
    assert blocks[0].count("epochs=4,") == 2, "the example trains the cloud and the edge model 4 epochs each"
    script = tmp_path / "example.py"
    script.write_text(blocks[0].replace("epochs=4,", "epochs=1,"))
    env = {**os.environ, "HETERO_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert "'paragon'" in lines[0] and "'cross_torch'" in lines[0]
    assert lines[1].startswith("ok ")
    assert (tmp_path / "runs" / "api-onnx" / "manifest.json").exists()  # written where the example says
