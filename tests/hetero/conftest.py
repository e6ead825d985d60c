"""Fixtures shared by the search tests."""

from __future__ import annotations

import numpy as np
import pytest

from hetero.cli import main


@pytest.fixture(scope="session")
def search_setup(tmp_path_factory):
    """A tiny cloud model and a 300-image digits subset (as ``npz:FILE``)."""
    from hetero.data import load_data
    from search_spaces import get_space, save_arch

    root = tmp_path_factory.mktemp("search")
    digits = load_data("digits")
    idx = np.random.default_rng(0).permutation(len(digits.labels))[:300]
    np.savez(root / "digits300.npz", images=digits.images[idx], labels=digits.labels[idx])
    save_arch({**get_space("mobilenet_v3").smallest_arch(), "resolution": 24}, root / "cloud_arch.json")
    data = f"npz:{root / 'digits300.npz'}"
    assert main(["cloud", "train", "--data", data, "--arch", str(root / "cloud_arch.json"), "--embed-dim", "32",
                 "--epochs", "1", "--out", str(root / "cloud"), "--quiet"]) == 0
    return root, data
