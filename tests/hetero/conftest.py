"""Fixtures shared across files: the search tests' tiny cloud model and data, digits cloud and edge
models, and ``kill_9_at`` (a hetero command SIGKILLed at an exact point, see ``_stop_at.py``).

Session fixtures are read-only: each test writes what it makes into a folder of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from hetero.cli import main


@pytest.fixture(scope="session")
def search_setup(tmp_path_factory):
    """A tiny cloud model and a 300-image digits subset (as ``npz:FILE``)."""
    from hetero.data import load_data
    from hetero.search_spaces import get_space, save_arch

    root = tmp_path_factory.mktemp("search")
    digits = load_data("digits")
    idx = np.random.default_rng(0).permutation(len(digits.labels))[:300]
    np.savez(root / "digits300.npz", images=digits.images[idx], labels=digits.labels[idx])
    save_arch({**get_space("mobilenet_v3").smallest_arch(), "resolution": 24}, root / "cloud_arch.json")
    data = f"npz:{root / 'digits300.npz'}"
    assert main(["cloud", "train", "--data", data, "--arch", str(root / "cloud_arch.json"), "--embed-dim", "32",
                 "--epochs", "1", "--out", str(root / "cloud"), "--quiet"]) == 0
    return root, data



@pytest.fixture(scope="session")
def digits_models(tmp_path_factory):
    """A smallest-resnet cloud model and a smallest-mobilenet_v3 edge model, 1 epoch each on digits.

    Read-only for the tests that share it: each writes what it makes into a folder of its own.
    """
    from hetero.search_spaces import get_space, save_arch

    root = tmp_path_factory.mktemp("digits-models")
    save_arch(get_space("resnet").smallest_arch(), root / "cloud_arch.json")
    save_arch(get_space("mobilenet_v3").smallest_arch(), root / "edge_arch.json")
    fast = ["--epochs", "1", "--quiet"]
    assert main(["cloud", "train", "--data", "digits", "--out", str(root / "cloud"), "--arch", str(root / "cloud_arch.json"),
                 "--embed-dim", "32", *fast]) == 0
    assert main(["train", "--cloud", str(root / "cloud"), "--data", "digits", "--arch", str(root / "edge_arch.json"),
                 "--out", str(root / "edge"), *fast]) == 0
    return root

ENV = {**os.environ, "HETERO_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture
def kill_9_at():
    """``kill_9_at(args, **stop)``: run ``hetero ARGS`` until it freezes where ``stop`` says, then SIGKILL it.

    ``stop`` is one environment variable of ``_stop_at.py`` (``HETERO_STOP_CHECKPOINT="GLOB:EPOCHS"``
    or ``HETERO_STOP_TRIAL="N"``): the point is exact, so the training killed need not be long.
    """

    def run(args: list[str], **stop: str) -> None:
        log = tempfile.TemporaryFile()  # what a command that ended early said, for the assertion
        worker = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_stop_at.py")), *args], env={**ENV, **stop},
                                  stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 300
        pid, status = 0, 0
        while pid == 0 and time.monotonic() < deadline:
            pid, status = os.waitpid(worker.pid, os.WNOHANG | os.WUNTRACED)
            time.sleep(0.05)
        if pid == 0 or not os.WIFSTOPPED(status):
            if pid == 0:
                worker.kill()
                worker.wait(timeout=30)
            log.seek(0)
            said = log.read().decode(errors="replace").strip().splitlines()[-3:]
            raise AssertionError(f"the command did not stop at {stop} (wait status {status}): {said}")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL

    return run
