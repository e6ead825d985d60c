"""The search's latency objective: candidates exported with the device's backend and timed on its
runtime, the device's latency budget as an Optuna constraint, and a clear refusal where the
device's runtime is not installed. One tiny architecture keeps the export to seconds."""

from __future__ import annotations

import importlib.util

import numpy as np
import optuna
import pytest

from hetero.devices import load_profile
from hetero.errors import UserError
from hetero.search._cost import CostModel
from hetero.search_spaces import get_space


@pytest.fixture(scope="module")
def tiny_arch():
    return {**get_space("mobilenet_v3").smallest_arch(), "resolution": 24}


def test_latency_objective_times_the_exported_candidate_and_constrains_it(tiny_arch):
    profile = load_profile("x86-server")
    costs = CostModel(get_space("mobilenet_v3"), profile, "latency", None, embed_dim=16, channels=1)
    assert costs.unit == "latency_ms" and "latency_ms" in costs.budgets

    cost = costs.measure(tiny_arch)
    assert cost["latency_ms"] > 0 and "Onnx" in cost["latency_runner"]
    assert costs.value(cost) == cost["latency_ms"]
    assert costs.measure(tiny_arch) == cost  # measured once per architecture, then cached

    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    costs.record(trial, tiny_arch)
    constraints = trial.user_attrs["constraints"]
    assert constraints["latency_ms"] == pytest.approx(cost["latency_ms"] / profile.budgets.latency_ms - 1)
    assert trial.user_attrs["feasible"] == all(v <= 0 for v in constraints.values())


def test_macs_objective_leaves_latency_unmeasured(tiny_arch):
    costs = CostModel(get_space("mobilenet_v3"), load_profile("x86-server"), "macs", 10, embed_dim=16, channels=1)
    cost = costs.measure(tiny_arch)
    assert "latency_ms" not in cost and "latency_ms" not in costs.budgets
    assert costs.constraints(cost)["macs"] == pytest.approx(cost["macs"] / 10 - 1)


def test_latency_objective_on_a_device_whose_runtime_is_missing_is_refused():
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip(reason="TensorRT is installed here, so the refusal of a missing runtime cannot be seen")
    with pytest.raises(UserError, match="--objective latency.*not available here"):
        CostModel(get_space("mobilenet_v3"), load_profile("jetson-orin-nano"), "latency", None, embed_dim=16, channels=1)


@pytest.mark.parametrize("space_name", ["mobilenet_v3", "resnet"])
def test_cost_counted_on_the_active_subnet_equals_the_standalone_network(space_name):
    space = get_space(space_name)
    supernet = space.supernet(16, 1)
    for arch in [space.smallest_arch(), space.default_arch(), *(space.random_arch(np.random.default_rng(s)) for s in range(3))]:
        supernet.set_active(arch)
        on_supernet = CostModel(space, load_profile("x86-server"), "macs", None, 16, 1).measure(arch, supernet)
        standalone = CostModel(space, load_profile("x86-server"), "macs", None, 16, 1).measure(arch)
        assert on_supernet == standalone
        assert standalone["params"] == sum(p.numel() for p in space.build(arch, 16, 1).parameters())
    other = space.largest_arch()
    # The supernet is only used for the architecture it has active.
    assert CostModel(space, load_profile("x86-server"), "macs", None, 16, 1).measure(other, supernet) == \
        CostModel(space, load_profile("x86-server"), "macs", None, 16, 1).measure(other)
