"""Supernets: weight sharing, extraction, channel sorting and batch-norm recalibration."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import hetero.search_spaces as ss
from hetero.search_spaces import ArchError

SPACES = ["mobilenet_v3", "resnet"]


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters, so that wrong slicing shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module


@pytest.fixture(scope="module", params=SPACES)
def supernet(request: pytest.FixtureRequest) -> ss.Supernet:
    torch.manual_seed(0)
    return _randomise(ss.get_space(request.param).supernet(embed_dim=16, in_channels=3)).eval()


def _archs(space: ss.SearchSpace, n_random: int = 4) -> list[dict]:
    rng = np.random.default_rng(1)
    return [space.smallest_arch(), space.largest_arch(), space.default_arch()] + [
        space.random_arch(rng) for _ in range(n_random)
    ]


def test_extract_equals_supernet(supernet: ss.Supernet) -> None:
    space = supernet.space
    x = torch.randn(2, 3, 28, 28)
    outputs = []
    for arch in _archs(space):
        supernet.set_active(arch)
        sub = supernet.extract()
        assert type(sub) is type(space.build(arch, 16, 3))
        assert sub.arch == arch and not sub.training
        expected = supernet(x)
        assert (sub(x) - expected).abs().max().item() < 1e-5
        # Same parameter count as a freshly built network: nothing of the supernet is left over.
        assert sum(p.numel() for p in sub.parameters()) == sum(
            p.numel() for p in space.build(arch, 16, 3).parameters()
        )
        outputs.append(expected)
    # Different subnets compute different functions (the active arch really changes).
    assert (outputs[0] - outputs[1]).abs().max().item() > 1e-3


def test_extract_of_another_arch_keeps_the_active_one(supernet: ss.Supernet) -> None:
    space = supernet.space
    supernet.set_active(space.largest_arch())
    sub = supernet.extract(space.smallest_arch())
    assert sub.arch == space.smallest_arch()
    assert supernet.active_arch == space.largest_arch()
    x = torch.randn(2, 3, 24, 24)
    supernet.set_active(space.smallest_arch())
    assert (sub(x) - supernet(x)).abs().max().item() < 1e-5


def test_subnets_share_leading_channels_and_kernel_centre() -> None:
    space = ss.get_space("mobilenet_v3")
    supernet = space.supernet(8, 1)
    arch = {**space.largest_arch(), "width": 0.5, "s0_kernel": 3, "s1_kernel": 5}
    sub = supernet.extract(arch)
    big, small = supernet.net.stem.conv.weight, sub.stem.conv.weight
    assert torch.equal(small, big[: small.shape[0]])
    big = supernet.net.stages[0].blocks[0].depthwise.conv.weight  # [C, 1, 7, 7]
    small = sub.stages[0].blocks[0].depthwise.conv.weight
    assert small.shape[-1] == 3 and torch.equal(small, big[: small.shape[0], :, 2:5, 2:5])
    big = supernet.net.stages[1].blocks[1].depthwise.conv.weight
    small = sub.stages[1].blocks[1].depthwise.conv.weight
    assert small.shape[-1] == 5 and torch.equal(small, big[: small.shape[0], :, 1:6, 1:6])
    big = supernet.net.stages[2].blocks[0].expand.conv.weight
    small = sub.stages[2].blocks[0].expand.conv.weight
    assert torch.equal(small, big[: small.shape[0], : small.shape[1]])


def test_depth_uses_the_first_blocks() -> None:
    space = ss.get_space("resnet")
    supernet = space.supernet(8, 1)
    arch = {**space.largest_arch(), "s1_depth": 1}
    supernet.set_active(arch)
    assert supernet.net.stages[1].active_depth == 1
    sub = supernet.extract()
    assert len(sub.stages[1].blocks) == 1 and len(sub.stages[2].blocks) == 3


def test_set_active_rejects_other_spaces(supernet: ss.Supernet) -> None:
    other = "resnet" if supernet.space.name == "mobilenet_v3" else "mobilenet_v3"
    with pytest.raises(ArchError):
        supernet.set_active(ss.get_space(other).default_arch())


def test_training_step_reaches_shared_weights(supernet: ss.Supernet) -> None:
    net = copy.deepcopy(supernet).train()
    space = net.space
    x = torch.randn(4, 3, 24, 24)
    for arch in (space.largest_arch(), space.smallest_arch()):  # a sandwich step
        net.set_active(arch)
        net(x).sum().backward()
    stem_grad = net.net.stem.conv.weight.grad
    assert stem_grad is not None and stem_grad.abs().sum() > 0


def test_sort_channels_preserves_the_largest_subnet_and_orders_by_importance(
    supernet: ss.Supernet,
) -> None:
    net = copy.deepcopy(supernet)
    space = net.space
    net.set_active(space.largest_arch())
    x = torch.randn(3, 3, 32, 32)
    before = net(x)
    weights_before = net.net.stem.conv.weight.clone()
    net.sort_channels()
    assert (net(x) - before).abs().max().item() < 1e-5
    assert not torch.equal(net.net.stem.conv.weight, weights_before)
    groups = net.net.channel_groups()
    assert len(groups) > 5
    for group in groups:
        weights = [(c.conv if isinstance(c, ss.ConvBNAct) else c).weight for c in group.consumers]
        importance = sum(w.abs().transpose(0, 1).flatten(1).sum(1) for w in weights)
        assert torch.all(importance[:-1] >= importance[1:] - 1e-6)


def test_recalibrate_bn_computes_the_exact_average() -> None:
    layer = ss.ConvBNAct(2, 4, 3)
    layer.bn.momentum = 0.3
    batches = [torch.randn(5, 2, 6, 6) * (i + 1) for i in range(4)]
    consumed = []

    def stream():
        for b in batches:
            consumed.append(b)
            yield (b, torch.zeros(5))

    out = ss.recalibrate_bn(layer, stream(), n_batches=2)
    assert out is layer and not layer.training and layer.bn.momentum == 0.3
    assert len(consumed) <= 3
    with torch.no_grad():
        feats = [layer.conv(b) for b in batches[:2]]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.transpose(0, 1).flatten(1).var(1) for f in feats]).mean(0)
    torch.testing.assert_close(layer.bn.running_mean, mean)
    torch.testing.assert_close(layer.bn.running_var, var)
    with pytest.raises(ArchError, match="no batches"):
        ss.recalibrate_bn(layer, [])


def test_recalibrating_the_supernet_equals_recalibrating_the_subnet(supernet: ss.Supernet) -> None:
    net = copy.deepcopy(supernet)
    space = net.space
    arch = space.random_arch(np.random.default_rng(5))
    net.set_active(arch)
    batches = [torch.randn(8, 3, 24, 24) for _ in range(3)]
    sub = ss.recalibrate_bn(net.extract(), batches)
    ss.recalibrate_bn(net, batches)
    x = torch.randn(2, 3, 24, 24)
    assert (net(x) - sub(x)).abs().max().item() < 1e-5
    assert (net.extract()(x) - sub(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ss.list_spaces())
def test_every_space_searches_the_input_resolution(name: str) -> None:
    import optuna

    space = ss.get_space(name)
    assert len(space.choices()["resolution"]) > 1
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {space.sample(study.ask())["resolution"] for _ in range(40)}
    assert len(seen) > 1 and seen <= set(space.resolutions)
