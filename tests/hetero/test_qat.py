"""Quantization-aware fine-tuning: fake quantization on the deployed grid, removed afterwards."""

from __future__ import annotations

import json

import torch
from torch.nn.utils import parametrize

from export.testing import TinyEmbedder, smooth_images
from hetero.cli import main
from hetero.training._qat import QAT_WEIGHT_BITS, _FakeQuantized


def test_fake_quantization_uses_the_deployed_grid_and_leaves_no_trace() -> None:
    net = TinyEmbedder(in_channels=3, dim=16, width=8).eval()
    x = torch.from_numpy(smooth_images(8, channels=3, size=16, seed=0))
    with torch.no_grad():
        before = net(x)
        quantized = _FakeQuantized(net)
        fake = net(x)
        plain = quantized.float_forward(x)
        conv = quantized.weighted[0]
        levels = conv.weight / (conv.parametrizations.weight.original.abs().flatten(1).amax(1)
                                / QAT_WEIGHT_BITS["dense"]).view(-1, 1, 1, 1)
    assert torch.allclose(plain, before, atol=1e-6)  # float_forward is the same weights unquantized
    assert not torch.allclose(fake, before, atol=1e-4)  # the fake-quantized forward is not
    assert torch.allclose(levels, levels.round(), atol=1e-3) and levels.abs().max() <= QAT_WEIGHT_BITS["dense"] + 1e-3
    quantized.remove()
    assert not any(parametrize.is_parametrized(m) for m in net.modules())
    with torch.no_grad():
        assert torch.allclose(net(x), before, atol=1e-6)


def test_export_qat_fine_tunes_then_exports_int8(tmp_path) -> None:
    from search_spaces import get_space, save_arch

    save_arch(get_space("resnet").smallest_arch(), tmp_path / "cloud_arch.json")
    save_arch(get_space("mobilenet_v3").smallest_arch(), tmp_path / "edge_arch.json")
    fast = ["--epochs", "1", "--quiet"]
    assert main(["cloud", "train", "--data", "digits", "--out", str(tmp_path / "cloud"), "--arch",
                 str(tmp_path / "cloud_arch.json"), "--embed-dim", "32", *fast]) == 0
    assert main(["train", "--cloud", str(tmp_path / "cloud"), "--data", "digits", "--arch", str(tmp_path / "edge_arch.json"),
                 "--out", str(tmp_path / "edge"), *fast]) == 0
    assert main(["export", "--model", str(tmp_path / "edge"), "--device", "x86-server-int8", "--cloud", str(tmp_path / "cloud"),
                 "--qat", "20", "--allow-drift", "--out", str(tmp_path / "int8"), "--quiet"]) in (0, 3)
    manifest = json.loads((tmp_path / "int8" / "manifest.json").read_text())
    edge = torch.load(tmp_path / "int8" / "edge.pt", weights_only=True)
    assert edge["meta"]["qat"]["steps"] == 20 and manifest["precision"] == "int8"
    assert main(["export", "--model", str(tmp_path / "edge"), "--device", "x86-server", "--cloud", str(tmp_path / "cloud"),
                 "--qat", "20", "--out", str(tmp_path / "fp32"), "--quiet"]) == 2
