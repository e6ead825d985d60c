"""LQF: the plain-layer linear model equals forward-mode AD, K-FAC's inverse, training, files, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hetero.data import Dataset
from hetero.lqf import KFAC, LinearizedNet, LQFConfig, leaky_copy, lqf_finetune, split_norm, tangent_forward
from hetero.models import CloudModel, build_edge, load_edge, save_edge
from hetero.pipeline import default_preprocess


def _edge(seed: int = 0, embed_dim: int = 16, space: str = "mobilenet_v3"):
    from hetero.search_spaces import get_space

    torch.manual_seed(seed)
    arch = get_space(space).smallest_arch()
    return build_edge(arch, embed_dim, default_preprocess(24, 1), "sha256:test")


def _random_deltas(net: LinearizedNet, scale: float = 1e-2) -> None:
    g = torch.Generator().manual_seed(1)
    for d in net.deltas().values():
        d.data.copy_(torch.randn(d.shape, generator=g) * scale)


def test_plain_layers_equal_forward_mode_ad_and_zero_delta_is_the_base():
    edge = _edge()
    edge.net.eval()
    base = leaky_copy(edge.net, 0.1)
    net = LinearizedNet(split_norm(leaky_copy(edge.net, 0.1)))
    x = torch.randn(6, 1, 24, 24)
    with torch.no_grad():
        assert torch.allclose(net(x), base(x), atol=1e-6)  # delta 0: the (leaky) base network
        assert torch.allclose(LinearizedNet(split_norm(leaky_copy(edge.net, 0.0)))(x), edge.net(x), atol=1e-6)  # slope 0: ReLU
    _random_deltas(net)
    primal, tangent = net.dual(x)
    p_ad, t_ad = tangent_forward(net.body, net.deltas(), x)
    assert torch.allclose(primal, p_ad, atol=1e-6)
    assert tangent.abs().max() > 1e-3
    assert torch.allclose(tangent, t_ad, atol=1e-5 * float(t_ad.abs().max()))
    # The linear model is linear in delta: doubling delta doubles the tangent.
    for d in net.deltas().values():
        d.data.mul_(2)
    assert torch.allclose(net.dual(x)[1], 2 * tangent, atol=1e-5 * float(tangent.abs().max()))


def test_int8_unsuited_measures_how_far_primal_and_tangent_cancel():
    net = LinearizedNet(split_norm(_edge().net.eval()))
    _random_deltas(net, scale=0.5)
    x = torch.randn(8, 1, 24, 24)
    reason = net.int8_unsuited(x)
    primal, tangent = net.dual(x)
    ratio = float(((primal.norm(dim=-1)) / (primal + tangent).norm(dim=-1)).median())
    assert "LQF" in reason and f"{ratio:.2f}x" in reason and "layer-by-layer search is not run" in reason


def test_leaky_copy_leaves_the_original_relus():
    edge = _edge()
    copy = leaky_copy(edge.net, 0.2)
    assert any(isinstance(m, nn.ReLU) for m in edge.net.modules())
    assert not any(isinstance(m, nn.ReLU) for m in copy.modules())
    assert all(m.negative_slope == 0.2 for m in copy.modules() if isinstance(m, nn.LeakyReLU))


def test_kfac_is_exact_for_one_linear_layer():
    # y = W a + b: the Gauss-Newton matrix of a squared loss is E[a a^T] (x) I exactly, and the
    # sampled G factor tends to I; K-FAC's damped inverse must then match the exact solve.
    torch.manual_seed(0)
    layer = nn.Linear(5, 3)
    a = torch.randn(20000, 5) @ torch.randn(5, 5)
    kfac = KFAC(layer, damping=1e-3).fit(a.split(2000))
    grad_w, grad_b = torch.randn(3, 5), torch.randn(3)
    pre = kfac.precondition({"weight": grad_w, "bias": grad_b})
    aug = torch.cat([a, torch.ones(len(a), 1)], 1).double()
    curvature = torch.kron(torch.eye(3, dtype=torch.float64), aug.T @ aug / len(a))
    curvature += kfac.damping * torch.eye(18, dtype=torch.float64)
    exact = torch.linalg.solve(curvature, torch.cat([grad_w, grad_b[:, None]], 1).double().reshape(-1)).reshape(3, 6)
    got = torch.cat([pre["weight"], pre["bias"][:, None]], 1).double()
    assert torch.allclose(got, exact, rtol=0.05, atol=0.05 * float(exact.abs().max()))


def _cloud_and_data(embed_dim: int = 16):
    from hetero.search_spaces import get_space

    torch.manual_seed(3)
    arch = {**get_space("resnet").default_arch(), "resolution": 24, "s0_depth": 1, "s1_depth": 1, "s2_depth": 1, "s3_depth": 1}
    source = {"type": "space", "arch": arch, "in_channels": 1}
    from hetero.models import build_net

    cloud = CloudModel(build_net(source, embed_dim).eval().requires_grad_(False), default_preprocess(24, 1), embed_dim,
                       source=source)
    cloud.refresh_fingerprint()
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    images = (rng.random((40, 1, 24, 24)) * 0.3 + labels[:, None, None, None] / 5).astype(np.float32)
    return cloud, Dataset(images, labels, "synthetic")


def test_lqf_fits_the_cloud_and_its_file_and_exported_graph_give_the_same_embeddings(tmp_path):
    import hetero.lqf  # noqa: F401  (registers the lqf space that load_edge rebuilds)

    cloud, data = _cloud_and_data()
    init = _edge()
    model = lqf_finetune(init, cloud, data, LQFConfig(epochs=3, batch_size=40, kfac_images=40, augment="none"), progress=False)
    history = model.meta["history"]
    assert history[-1]["compat"] < 0.7 * history[0]["compat"]
    target = cloud.embed(data.images)
    before = float(np.mean((init.embed(data.images) * target).sum(1)))
    after = float(np.mean((model.embed(data.images) * target).sum(1)))
    assert after > before + 0.05, (before, after)
    assert model.arch["space"] == "lqf" and model.arch["base"] == init.arch

    loaded = load_edge(save_edge(model, tmp_path / "m"))
    assert np.allclose(loaded.embed(data.images), model.embed(data.images), atol=1e-6)

    # What every backend converts from: torch.export's graph of plain aten ops (no dual tensors,
    # no jvp), giving the same embeddings. (Each layer kind through the TFLite and ONNX backends:
    # test_linearized_layers_export_with_parity; whole models on every profile: benchmarks/README.md.)
    inputs = torch.cat(list(model.preprocess.batches(data.images[:8], 8)))
    program = torch.export.export(loaded.net.eval(), (inputs,))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not [op for op in ops if "dual" in op or "jvp" in op], ops
    assert any("conv2d" in op for op in ops) and any("ceil" in op for op in ops)
    # Derivative masks as float steps: no bool tensors, which litert-torch's layout pass cannot
    # keep NHWC (it then pinned the batch and XNNPack refused the artifact).
    bool_ops = {"where", "gt", "ge", "lt", "le", "eq", "logical_and", "logical_or", "ones_like"}
    assert not bool_ops & {op.split(".")[1] for op in ops if op.startswith("aten.")}, ops
    with torch.no_grad():
        out = program.module()(inputs).numpy()
    assert np.allclose(out, model.embed(data.images[:8]), atol=1e-5)


def test_lqf_refuses_a_model_it_cannot_linearise():
    from hetero.errors import UserError

    cloud, data = _cloud_and_data()
    init = _edge(embed_dim=8)
    with pytest.raises(UserError, match="embedding dim"):
        lqf_finetune(init, cloud, data, LQFConfig(epochs=1), progress=False)
    with pytest.raises(UserError, match="slope"):
        LQFConfig(slope=1.5)


def test_cli_train_method_lqf(tmp_path, capsys):
    import json

    from hetero.cli import main
    from hetero.models import save_cloud

    cloud, data = _cloud_and_data()
    save_cloud(cloud, tmp_path / "cloud")
    # The smallest resnet (14 layers to the smallest mobilenet_v3's 45): the command's plumbing is
    # what is tested here, each layer kind's linearization by the tests above, and the fresh
    # process below converts the linearized network to ONNX in a third of the time.
    init = _edge(space="resnet")
    init.cloud_fingerprint = cloud.fingerprint
    save_edge(init, tmp_path / "edge")
    np.savez(tmp_path / "d.npz", images=data.images, labels=data.labels)
    common = ["train", "--cloud", str(tmp_path / "cloud"), "--data", f"npz:{tmp_path / 'd.npz'}", "--quiet"]
    assert main([*common, "--method", "lqf", "--out", str(tmp_path / "x")]) == 2
    assert "--init" in capsys.readouterr().err
    assert main([*common, "--init", str(tmp_path / "edge"), "--out", str(tmp_path / "y")]) == 2
    assert main([*common, "--method", "lqf", "--init", str(tmp_path), "--out", str(tmp_path / "z")]) == 2
    assert "no edge.pt or cloud.pt" in capsys.readouterr().err
    assert main([*common, "--method", "lqf", "--init", str(tmp_path / "edge"), "--epochs", "1",
                 "--out", str(tmp_path / "lqf")]) == 0
    assert "NFR of the cross top-1 decisions" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "lqf" / "metrics.json").read_text())
    assert 0 <= metrics["nfr_vs_init"] <= 1 and metrics["lqf"]["epochs"] == 1
    assert load_edge(tmp_path / "lqf").arch["space"] == "lqf"
    # A fresh process that never imported hetero.lqf exports the saved model (its space is found by name).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "hetero", "export", "--model", str(tmp_path / "lqf"), "--device", "x86-server",
                           "--out", str(tmp_path / "onnx"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-1000:]
    assert json.loads((tmp_path / "onnx" / "manifest.json").read_text())["parity_passed"]


def test_derivative_masks_are_exact_float_steps():
    # The export form's masks (no comparison, no where) equal the comparisons they replace,
    # including at 0, -0, subnormals, infinities and the clamp bounds themselves.
    from hetero.lqf._linearize import _step

    tiny = torch.finfo(torch.float32).tiny
    z = torch.tensor([0.0, -0.0, tiny / 4, -tiny / 4, tiny, 1e-30, -1e-30, 0.5, 1.0, 3.0, 6.0, -3.0, float("inf"),
                      float("-inf"), 1e30, -1e30])
    assert torch.equal(_step(z), (z > 0).float())
    x = torch.cat([z, torch.randn(1000) * 4])
    for act in (nn.LeakyReLU(0.1), nn.ReLU()):
        dx = torch.randn_like(x)
        got = LinearizedNet(nn.Sequential(act))._module("0", x, dx, {})[1]
        assert torch.equal(got, torch.where(x > 0, dx, dx * getattr(act, "negative_slope", 0.0)))
    net = LinearizedNet(nn.Sequential())
    clamp = next(n for n in torch.fx.symbolic_trace(lambda v: torch.clamp(v, 0, 1)).graph.nodes if n.op == "call_function")
    for lo, hi in ((0, 6), (-3.0, None), (None, 1.0)):
        dx = torch.randn_like(x)
        inside = torch.ones_like(x, dtype=torch.bool)
        inside &= x > lo if lo is not None else inside
        inside &= x < hi if hi is not None else inside
        got = net._function(clamp, [(x, dx), (lo, None), (hi, None)], {})[1]
        assert torch.equal(got, torch.where(inside, dx, torch.zeros_like(dx))), (lo, hi)


def _every_layer_kind() -> nn.Module:
    """A tiny body with each layer kind an LQF model linearises: conv, batch norm, hard swish
    (clamp), squeeze-excite (mean keepdim, ReLU, hard sigmoid, a broadcast mul), leaky ReLU, mean, linear."""
    from hetero.search_spaces._layers import GlobalAvgPool, HardSwish, SqueezeExcite

    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), HardSwish(), SqueezeExcite(8, 4),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU(),
                         GlobalAvgPool(), nn.Linear(8, 16))
    for bn in (body[1], body[5]):
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2)
    return leaky_copy(body, 0.1)


@pytest.mark.parametrize("backend_name, precision, runtime_module", [
    ("tflite", "fp16", "ai_edge_litert.interpreter"),
    ("onnx", "fp32", "onnxruntime"),
])
def test_linearized_layers_export_with_parity(tmp_path, backend_name, precision, runtime_module):
    # The linearised network's export form converts and runs on a batch other than the example's
    # (litert-torch once pinned the batch of reshapes around bool masks, which XNNPack then
    # refused), within the precision's parity thresholds. Whole LQF models through `hetero
    # export` on every profile: benchmarks/README.md, "LQF vs plain fine-tuning".
    from hetero.devices import PARITY_THRESHOLDS, parity
    from hetero.export import get_backend

    pytest.importorskip(runtime_module, reason=f"{runtime_module} (the {backend_name} runtime) is not importable")
    backend = get_backend(backend_name)
    ok, why = backend.available()
    if not ok:
        pytest.skip(reason=f"the {backend_name} backend cannot convert here: {why}")
    net = LinearizedNet(_every_layer_kind())
    _random_deltas(net, 0.05)
    x = torch.randn(5, 1, 24, 24)
    with torch.no_grad():
        reference = net(x).numpy()
        assert float(net.dual(x)[1].abs().max()) > 1e-2  # the tangent matters
    artifact = backend.convert(net, x[:2], tmp_path, precision=precision)
    got = backend.load(artifact, threads=1).run(x.numpy())
    figures = parity(reference, got)
    assert figures["cos_min"] >= PARITY_THRESHOLDS[precision]["cos_min"], figures
