"""Consistent distillation and training length: the cloud's targets are those of the view the
edge sees, the step floor holds, and the best validation epoch is the one kept."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from hetero.data import Preprocess, draw_params, identity_params, render, resolve_augment
from hetero.errors import UserError
from hetero.models import EmbeddingModel
from hetero.training import EDGE_DEFAULTS, EpochCheckpoint, TrainConfig, TrainViews, run_epochs, training_length


class _Unit(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _cloud(size: int) -> EmbeddingModel:
    """A frozen 'cloud' whose embedding depends on where the ink is (so moves change it)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(size * size, 16), _Unit()).eval().requires_grad_(False)
    return EmbeddingModel(net, Preprocess(size, 1), 16)


def _glyphs(n: int = 24, side: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = np.zeros((n, 1, side, side), np.float32)
    images[:, :, 3:9, 3:9] = rng.random((n, 1, 6, 6))
    return images


@pytest.mark.parametrize("samples, mode", [(10_000, "cached"), (0, "online")])
def test_the_clouds_targets_are_those_of_the_view_the_edge_sees(samples, mode):
    images, cloud = _glyphs(), _cloud(12)
    views = TrainViews(images, cloud.preprocess, "glyph", cloud=cloud, views=4, samples=samples, seed=0)
    assert views.mode == mode
    generator = torch.Generator().manual_seed(1)
    idx = torch.arange(len(images))
    batch = views.batch(idx, generator)
    # The edge's preprocessing is the cloud's here, so the cloud run on the edge's very inputs
    # must give the targets back.
    with torch.no_grad():
        torch.testing.assert_close(cloud.net(batch.inputs), batch.cloud, atol=1e-5, rtol=1e-4)
    # And the views are moved: their targets are not the unaugmented images' (issue 14's bug).
    clean = torch.from_numpy(cloud.embed(images))
    moved = (batch.cloud * clean).sum(1) < 0.9999
    assert moved.sum() >= len(images) // 2


def test_cached_views_include_the_image_itself_and_are_reproducible():
    images, cloud = _glyphs(), _cloud(12)
    a = TrainViews(images, cloud.preprocess, "glyph", cloud=cloud, views=3, samples=10_000, seed=5)
    b = TrainViews(images, cloud.preprocess, "glyph", cloud=cloud, views=3, samples=10_000, seed=5)
    assert torch.equal(a.embeddings, b.embeddings) and a.embeddings.shape == (3, len(images), 16)
    torch.testing.assert_close(a.embeddings[0], torch.from_numpy(cloud.embed(images)))


def test_no_augmentation_and_precomputed_targets_keep_the_images_as_they_are():
    images, cloud = _glyphs(), _cloud(12)
    clean = torch.from_numpy(cloud.embed(images))
    for views in (TrainViews(images, cloud.preprocess, "none", cloud=cloud),
                  TrainViews(images, cloud.preprocess, "glyph", clean=clean)):  # the search's targets
        batch = views.batch(torch.arange(5), torch.Generator().manual_seed(0))
        assert views.mode == "clean"
        torch.testing.assert_close(batch.inputs, cloud.preprocess(images[:5]))
        torch.testing.assert_close(batch.cloud, clean[:5])


def test_augmentations_fit_the_data():
    grey, colour = np.zeros((4, 1, 8, 8), np.float32), np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    assert resolve_augment("auto", grey) == "glyph" and resolve_augment("auto", colour) == "photo"
    assert resolve_augment("auto", np.repeat(colour[:, :1], 3, axis=1)) == "glyph"  # greyscale saved as RGB
    with pytest.raises(UserError, match="--augment"):
        resolve_augment("mixup", grey)
    generator = torch.Generator().manual_seed(0)
    glyph, photo = draw_params("glyph", 500, generator), draw_params("photo", 500, generator)
    assert (glyph[:, 0] > 0).all()  # glyphs are never mirrored
    assert (photo[:, 0] < 0).float().mean().item() == pytest.approx(0.5, abs=0.1)  # photos are, half the time
    assert torch.equal(glyph[:, 6:], torch.ones(500, 3))  # and keep their grey levels
    x = torch.from_numpy(colour)
    assert torch.equal(render(x, identity_params(4)), x)
    assert render(x, photo[:4], min_size=16).shape == (4, 3, 16, 16)


def test_the_step_floor_raises_epochs_for_small_data():
    config = TrainConfig(epochs=10, batch_size=128, min_steps=600)
    assert config.steps_per_epoch(280) == 2 and config.epochs_for(280) == 300  # issue 14's faces: not 20 steps
    assert config.epochs_for(100_000) == 10  # large data: the epochs as asked
    assert training_length(None, None, config) == (10, 600)
    assert training_length(1, None, config) == (1, 0)  # --epochs given: exactly that
    assert training_length(1, 50, config) == (1, 50)
    steps = []
    run_epochs(nn.Linear(2, 2), list(nn.Linear(2, 2).parameters()), 20,
               dataclasses.replace(EDGE_DEFAULTS, epochs=1, batch_size=8, min_steps=10), torch.Generator().manual_seed(0),
               lambda idx: steps.append(len(idx)) or {}, "test")
    assert len(steps) == 10


def test_commands_default_to_the_floor_unless_epochs_are_given():
    from hetero.cli import build_parser
    from hetero.cli._schedule import config_with_length
    from hetero.training import EDGE_COMMAND_DEFAULTS

    parser = build_parser()
    default = config_with_length(parser.parse_args(["train", "--cloud", "c", "--data", "digits", "--out", "o"]), EDGE_COMMAND_DEFAULTS)
    assert (default.epochs, default.min_steps, default.val_fraction) == (10, 600, 0.1)
    asked = config_with_length(parser.parse_args(["train", "--cloud", "c", "--data", "digits", "--out", "o", "--epochs", "2"]),
                               EDGE_COMMAND_DEFAULTS)
    assert (asked.epochs, asked.min_steps) == (2, 0)


def _scored_training(scores: list[float], checkpoint=None, stop_after=None):
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
    snapshots = []

    def step(idx):
        net(x[idx]).pow(2).mean().backward()
        return {}

    def on_epoch(epoch, record):
        record["val"] = scores[epoch]
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        if stop_after is not None and epoch + 1 == stop_after:
            raise KeyboardInterrupt

    config = dataclasses.replace(EDGE_DEFAULTS, epochs=len(scores), batch_size=8, lr=0.1)
    history = run_epochs(net, list(net.parameters()), len(x), config, torch.Generator().manual_seed(2), step, "t",
                         on_epoch, checkpoint, keep_best="val")
    return net, history, snapshots


def test_the_best_validation_epoch_is_kept_also_through_a_resume(tmp_path):
    scores = [0.2, 0.9, 0.4, 0.5]
    net, history, snapshots = _scored_training(scores)
    assert [r["kept"] for r in history] == [False, True, False, False]
    assert all(torch.equal(v, snapshots[1][k]) for k, v in net.state_dict().items())
    # Killed after epoch 3 (the best, epoch 2, only in the checkpoint), then resumed.
    checkpoint = EpochCheckpoint(tmp_path / "p.pt", {"k": 1})
    with pytest.raises(KeyboardInterrupt):
        _scored_training(scores, checkpoint, stop_after=4)
    resumed, history, _ = _scored_training(scores, EpochCheckpoint(tmp_path / "p.pt", {"k": 1}))
    assert all(torch.equal(v, snapshots[1][k]) for k, v in resumed.state_dict().items())


def test_unlabeled_images_feed_the_label_free_terms():
    from hetero.data import Dataset, load_data
    from hetero.pipeline import train_cloud, train_edge
    from hetero.search_spaces import get_space

    digits = load_data("digits")
    train = digits.subset(np.arange(200))
    unlabeled = Dataset(digits.images[1000:1300], np.zeros(300, np.int64), "npz:gallery")  # labels ignored
    arch = get_space("mobilenet_v3").smallest_arch()
    cloud = train_cloud(train, arch, 16, TrainConfig(epochs=1, batch_size=64, influence=0, alignment=0, contrastive=0))
    config = TrainConfig(epochs=1, batch_size=64, structure=1.0)
    plain = train_edge(cloud, train, arch, config)
    more = train_edge(cloud, train, arch, config, unlabeled=unlabeled)
    assert more.meta["schedule"]["unlabeled_images"] == 300 and "unlabeled_images" not in plain.meta["schedule"]
    assert more.meta["schedule"]["unlabeled_targets"] in ("cached", "online")  # with the cloud's view targets
    assert more.meta["history"][0]["alignment"] != plain.meta["history"][0]["alignment"]
    with pytest.raises(UserError, match="--unlabeled"):
        train_edge(cloud, train, arch, dataclasses.replace(config, alignment=0.0, structure=0.0), unlabeled=unlabeled)
