"""Quantization-aware fine-tuning: fake quantization on the deployed grid, removed afterwards."""

from __future__ import annotations

import json

import torch
from torch.nn.utils import parametrize

from hetero.cli import main
from hetero.export.testing import TinyEmbedder, smooth_images
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


def test_export_qat_fine_tunes_then_exports_int8(digits_models, tmp_path) -> None:
    models = digits_models
    # (--no-fallback: what is tested is the fine-tuning and the int8 export, not the float fallback
    # that a missed parity starts, which test_cli_pipeline tests.)
    assert main(["export", "--model", str(models / "edge"), "--device", "x86-server-int8", "--cloud", str(models / "cloud"),
                 "--qat", "20", "--allow-drift", "--no-fallback", "--out", str(tmp_path / "int8"), "--quiet"]) in (0, 3)
    manifest = json.loads((tmp_path / "int8" / "manifest.json").read_text())
    edge = torch.load(tmp_path / "int8" / "edge.pt", weights_only=True)
    assert edge["meta"]["qat"]["steps"] == 20 and manifest["precision"] == "int8"
    assert main(["export", "--model", str(models / "edge"), "--device", "x86-server", "--cloud", str(models / "cloud"),
                 "--qat", "20", "--out", str(tmp_path / "fp32"), "--quiet"]) == 2
