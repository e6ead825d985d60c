"""Architectures of every space export with every backend of export/ and compute the same embeddings.

The ONNX file is covered architecture by architecture in ``test_search_spaces_onnx.py`` (the largest
at its full depth included); here the largest architecture of each space with two blocks a stage
(kernel 7, expansion 6, full width: every layer kind at its largest, the second block of a stage
its residual one; the third and fourth blocks only repeat it, and double the conversion time) and
a sampled one of mixed stages go through TFLite, Core ML and TensorRT's ONNX, each run on its
runtime (Core ML through hetero's interpreter off macOS) against the torch network.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch

import hetero.search_spaces as ss
from hetero.devices import parity
from hetero.export import get_backend
from hetero.export.testing import smooth_images

BACKENDS = ("tflite", "coreml", "tensorrt")


def _sampled(name: str) -> dict:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    return ss.get_space(name).sample(study.ask())


ARCHS = [
    pytest.param((name, which), id=f"{name}-{which}")
    for name in ("mobilenet_v3", "resnet")
    for which in ("largest-depth2", "sampled")
    if not (name == "resnet" and which == "sampled")  # resnet's layers are all in its largest
]


def _largest_at_depth_2(name: str) -> dict:
    arch = ss.get_space(name).largest_arch()
    return {k: 2 if k.endswith("_depth") else v for k, v in arch.items()}


@pytest.fixture(scope="module", params=ARCHS)
def network(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module, np.ndarray]:
    name, which = request.param
    space = ss.get_space(name)
    arch = _largest_at_depth_2(name) if which == "largest-depth2" else _sampled(name)
    space.validate(arch)
    torch.manual_seed(0)
    model = space.build(arch, embed_dim=16, in_channels=1).eval()
    size = space.resolution(arch)
    return request.param, model, smooth_images(6, channels=1, size=size, seed=0)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_architecture_exports_and_matches_torch(network, backend_name: str, tmp_path) -> None:
    _, model, images = network
    backend = get_backend(backend_name)
    ok, reason = backend.available()
    if not ok:
        pytest.skip(reason=reason)
    artifact = backend.convert(model, torch.from_numpy(images[:1]), tmp_path, "fp32", None)
    assert artifact.exists()
    if backend_name == "tensorrt":
        # The TensorRT-ready ONNX is run by polygraphy against the torch network at conversion.
        check = backend.notes(artifact)["onnx_check"]
        assert check["tool"] == "polygraphy+onnxruntime" and check["cos_min"] >= 0.99999
        if artifact.suffix == ".onnx":  # no TensorRT here: the engine is built on the device
            return
    with torch.no_grad():
        want = model(torch.from_numpy(images)).numpy()
    got = backend.load(artifact, threads=1).run(images)
    assert got.shape == want.shape
    assert parity(want, got)["cos_min"] >= 0.99999
