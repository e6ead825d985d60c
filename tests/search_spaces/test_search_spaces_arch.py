"""Registry, architectures (sample, validate, JSON) and the static networks of every space."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import torch

import hetero.search_spaces as ss
from hetero.search_spaces import ArchError, _registry

SPACES = ["mobilenet_v3", "resnet"]


def test_registry_lists_and_builds_spaces() -> None:
    assert set(SPACES) <= set(ss.list_spaces())
    for name in SPACES:
        space = ss.get_space(name)
        assert isinstance(space, ss.SearchSpace)
        assert space.name == name
    assert ss.get_space("mobilenet_v3", resolutions=(16, 20)).resolutions == (16, 20)


def test_unknown_space_names_the_known_ones() -> None:
    with pytest.raises(ArchError, match="mobilenet_v3.*resnet"):
        ss.get_space("no_such_space")


def test_register_space_adds_a_space(monkeypatch: pytest.MonkeyPatch) -> None:
    # A private copy of the registry, so that the test space does not leak into other tests.
    monkeypatch.setattr(_registry._SPACES, "_items", dict(_registry._SPACES._items))

    @ss.register_space("test_tiny_resnet")
    class Tiny(ss.ResNetSpace):
        pass

    assert "test_tiny_resnet" in ss.list_spaces()
    space = ss.get_space("test_tiny_resnet")
    assert space.default_arch()["space"] == "test_tiny_resnet"
    with pytest.raises(ValueError, match="already registered"):
        ss.register_space("resnet")(Tiny)


@pytest.mark.parametrize("name", SPACES)
def test_archs_are_valid_and_json_round_trip(name: str, tmp_path) -> None:
    space = ss.get_space(name)
    rng = np.random.default_rng(0)
    archs = [space.default_arch(), space.smallest_arch(), space.largest_arch()]
    archs += [space.random_arch(rng) for _ in range(5)]
    for i, arch in enumerate(archs):
        space.validate(arch)
        assert arch["space"] == name and arch["resolution"] in (24, 28, 32)
        assert space.resolution(arch) == arch["resolution"]
        path = ss.save_arch(arch, tmp_path / f"sub/arch{i}.json")
        assert ss.load_arch(path) == arch
        assert json.loads(json.dumps(arch)) == arch
    assert not list(tmp_path.glob("sub/*.tmp"))
    choices = space.choices()
    for key, allowed in choices.items():
        assert space.smallest_arch()[key] == min(allowed)
        assert space.largest_arch()[key] == max(allowed)


@pytest.mark.parametrize("name", SPACES)
def test_sample_from_optuna_uses_stable_names(name: str) -> None:
    space = ss.get_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = space.sample(trial)
    space.validate(arch)
    assert trial.params == {k: v for k, v in arch.items() if k != "space"}
    assert "s0_depth" in trial.params and "resolution" in trial.params


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"s0_depth": 99}, "'s0_depth' = 99 is outside"),
        ({"s0_depth": True}, "'s0_depth' = True is outside"),
        ({"s0_depth": "2"}, "'s0_depth' = '2' is outside"),
        ({"resolution": 64}, "'resolution' = 64 is outside"),
        ({"bogus": 1}, r"unknown keys \['bogus'\]"),
        ({"space": "resnet"}, "is for space 'resnet', not 'mobilenet_v3'"),
    ],
)
def test_validate_rejects_out_of_space_archs(change: dict, message: str) -> None:
    space = ss.get_space("mobilenet_v3")
    with pytest.raises(ArchError, match=message):
        space.validate({**space.default_arch(), **change})
    with pytest.raises(ArchError):
        space.build({**space.default_arch(), **change}, 8, 1)


def test_validate_rejects_missing_keys_and_non_dicts() -> None:
    space = ss.get_space("resnet")
    arch = space.default_arch()
    del arch["s3_width"]
    with pytest.raises(ArchError, match=r"missing keys \['s3_width'\]"):
        space.validate(arch)
    with pytest.raises(ArchError, match="JSON object"):
        space.validate([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ArchError, match="embed_dim"):
        space.build(space.default_arch(), 0, 1)
    with pytest.raises(ArchError, match="resolutions"):
        ss.get_space("resnet", resolutions=())


_BAD_ARCH = {**ss.get_space("resnet").default_arch(), "s0_width": 7}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "missing.json does not exist"),
        ("{not json", "bad.json is not valid JSON"),
        ("[1]", "bad.json.*JSON object"),
        ('{"space": "nope", "resolution": 32}', "bad.json.*unknown search space 'nope'"),
        (json.dumps(_BAD_ARCH), "bad.json.*'s0_width' = 7"),
    ],
)
def test_bad_arch_files_name_the_path(tmp_path, content: str | None, message: str) -> None:
    path = tmp_path / ("missing.json" if content is None else "bad.json")
    if content is not None:
        path.write_text(content)
    with pytest.raises(ArchError, match=message):
        ss.load_arch(path)


def test_failed_save_leaves_the_old_file(tmp_path) -> None:
    path = ss.save_arch(ss.get_space("resnet").default_arch(), tmp_path / "arch.json")
    with pytest.raises(ArchError):
        ss.save_arch(_BAD_ARCH, path)
    assert ss.load_arch(path) == ss.get_space("resnet").default_arch()
    assert [p.name for p in tmp_path.iterdir()] == ["arch.json"]


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_build_outputs_unit_norm_embeddings(name: str, in_channels: int) -> None:
    space = ss.get_space(name)
    torch.manual_seed(0)
    for arch in (space.default_arch(), space.smallest_arch()):
        model = space.build(arch, embed_dim=16, in_channels=in_channels).eval()
        assert model.arch == arch
        for r in (24, 32):
            y = model(torch.randn(3, in_channels, r, r))
            assert y.shape == (3, 16) and y.dtype == torch.float32
            torch.testing.assert_close(y.norm(dim=1), torch.ones(3))


def test_layers_match_their_torch_definitions() -> None:
    x = torch.linspace(-5, 5, 101)
    torch.testing.assert_close(ss.HardSwish()(x), torch.nn.functional.hardswish(x))
    torch.testing.assert_close(ss.HardSigmoid()(x), torch.nn.functional.hardsigmoid(x))
    v = torch.randn(4, 7)
    torch.testing.assert_close(ss.L2Norm()(v), torch.nn.functional.normalize(v, dim=-1))
    assert torch.equal(ss.L2Norm()(torch.zeros(2, 3)), torch.zeros(2, 3))
    img = torch.randn(2, 5, 6, 6)
    torch.testing.assert_close(ss.GlobalAvgPool()(img), img.mean((2, 3)))
    conv = ss.ConvBNAct(5, 5, 5, stride=1, groups=5, act="hswish")
    assert conv(img).shape == img.shape and conv.conv.padding == (2, 2)


def test_op_vocabulary_of_built_networks() -> None:
    """Backends support a fixed op list; a new op in a space must be a deliberate decision."""
    allowed = {
        "conv2d", "_native_batch_norm_legit_no_training", "relu", "add", "mul", "clamp",
        "scalar_tensor", "div", "mean", "linear", "pow", "sum", "sqrt", "clamp_min", "view",
        "reshape", "flatten", "getitem",
    }
    # The largest mobilenet_v3 uses every layer kind (resnet's layers are a subset of its own).
    space = ss.get_space("mobilenet_v3")
    model = space.build(space.largest_arch(), 8, 3).eval()
    ep = torch.export.export(model, (torch.randn(2, 3, 24, 24),)).run_decompositions({})
    ops = {
        getattr(node.target, "_opname", node.target.__name__)
        for node in ep.graph.nodes
        if node.op == "call_function"
    }
    assert {"conv2d", "clamp", "mean", "linear", "sqrt"} <= ops <= allowed, ops - allowed
