"""An fp16 artifact that misses parity is exported in fp32 instead, and the manifest says so;
with ``fallback_float=False`` (``--no-fallback``) it is refused. The same for int8 once its layer
fallback cannot help."""

import copy
import json

import pytest
import torch
from torch import nn

from hetero.errors import UserError


class _Cancelling(nn.Module):
    """``net`` of ``(10 + D) x - 10 x`` (the pixels flattened): exactly ``net(D x)``, which fp16 spoils.

    fp16 holds 10 + D to within 0.004 (D is about 0.05) and ``10 * sum(x)`` (thousands) to within a
    few units, the size of ``D x`` itself: cos min 0.96 on digits. fp32 keeps it: 0.999994. It sits in front of the network because the
    exporter keeps everything from the final L2 normalisation on in fp32. A stand-in for a model
    whose output moves far under fp16 (as LQF's linearised networks do where tangent masks flip).
    """

    def __init__(self, net: nn.Module, dim: int) -> None:
        super().__init__()
        self.net = net
        d = torch.randn(dim, dim, generator=torch.Generator().manual_seed(0)) * 0.05
        self.shifted = nn.Linear(dim, dim, bias=False)
        self.offset = nn.Linear(dim, dim, bias=False)
        with torch.no_grad():
            self.shifted.weight.copy_(10.0 + d)
            self.offset.weight.fill_(10.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return self.net((self.shifted(flat) - self.offset(flat)).view_as(x))


@pytest.fixture(scope="module")
def fragile(digits_models):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[onnx]'")
    from hetero.data import load_split
    from hetero.models import load_edge

    edge = load_edge(digits_models / "edge")
    pixels = edge.preprocess.channels * edge.preprocess.size**2
    edge.net = _Cancelling(edge.net, pixels).eval()
    return edge, load_split("digits", seed=0)


def _profile(tmp_path, precision: str = "fp16"):
    from hetero.devices import load_profile

    path = tmp_path / "board.toml"
    path.write_text(f'name = "board"\nbackend = "onnx"\nprecision = "{precision}"\n')
    return load_profile(path)


def test_fp16_that_misses_parity_is_exported_in_fp32(fragile, tmp_path) -> None:
    from hetero.exporting import export_edge

    edge, split = fragile
    manifest = export_edge(edge, _profile(tmp_path), tmp_path / "out", split.train, split.test, parity_images=200)
    fallback = manifest["fp16_fallback"]
    assert fallback["used"] and fallback["requested"] == "fp16"
    assert fallback["fp16_parity"]["cos_min"] < 0.9995 and fallback["fp16_missed"]
    assert fallback["fp32_bytes"] > fallback["fp16_bytes"]
    assert manifest["precision"] == "fp32" and manifest["parity_passed"] and manifest["status"] == "ok"
    assert manifest["parity"]["cos_min"] >= 0.9995
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["fp16_fallback"] == fallback


def test_without_the_fallback_the_fp16_miss_is_refused(fragile, tmp_path) -> None:
    from hetero.exporting import export_edge

    edge, split = fragile
    with pytest.raises(UserError, match="onnx fp16 artifact misses its parity thresholds"):
        export_edge(edge, _profile(tmp_path), tmp_path / "out", split.train, split.test, fallback_float=False,
                    parity_images=200)
    assert not (tmp_path / "out" / "manifest.json").exists()


class _Unsuited(nn.Module):
    """The cancelling network, saying (as LQF's networks do) that no int8 layer choice can help."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def int8_unsuited(self, x: torch.Tensor) -> str:
        return f"a stand-in that cancels ({len(x)} images asked)"


def test_int8_that_misses_parity_is_exported_in_fp32_without_the_layer_search(fragile, tmp_path, capsys) -> None:
    from hetero.cli._export import print_precision_report
    from hetero.exporting import DRIFT_IMAGES, export_edge

    edge, split = fragile
    edge = copy.copy(edge)  # the fixture's edge is shared by the module's tests
    edge.net = _Unsuited(edge.net).eval()
    manifest = export_edge(edge, _profile(tmp_path, "int8"), tmp_path / "out", split.train, split.test, parity_images=200)
    fallback = manifest["int8_fp32_fallback"]
    assert fallback["used"] and fallback["requested"] == "int8" and fallback["int8_missed"]
    assert fallback["int8_parity"]["cos_min"] < 0.99 <= fallback["fp32_parity"]["cos_min"]
    assert fallback["layer_fallback_skipped"] == f"a stand-in that cancels ({DRIFT_IMAGES} images asked)"
    assert "int8_fallback" not in manifest and "int8_fallback_failed" not in manifest  # the search never ran
    assert manifest["precision"] == "fp32" and manifest["parity_passed"] and manifest["status"] == "ok"
    assert manifest["int8_drift"]["layers"]  # what int8 did is still reported layer by layer
    print_precision_report(manifest)
    out = capsys.readouterr().out
    assert "int8 layer fallback not tried: a stand-in that cancels" in out and "exported in fp32 instead" in out


def test_without_the_fallback_the_int8_miss_is_refused(fragile, tmp_path) -> None:
    from hetero.exporting import export_edge

    edge, split = fragile
    edge = copy.copy(edge)  # the fixture's edge is shared by the module's tests
    edge.net = _Unsuited(edge.net).eval()
    with pytest.raises(UserError, match="onnx int8 artifact misses its parity thresholds"):
        export_edge(edge, _profile(tmp_path, "int8"), tmp_path / "out", split.train, split.test, fallback_float=False,
                    parity_images=200)
    assert not (tmp_path / "out" / "manifest.json").exists()
