"""Focal distillation (PCT) as RESEARCH.md writes it, and as `hetero train` flags."""

import numpy as np
import pytest
import torch

from hetero.cli import build_parser
from hetero.cli._common import train_config_from_args
from hetero.training import EDGE_DEFAULTS, TrainConfig, focal_distillation_loss


def _reference(s, t, correct, alpha, beta, temperature):
    """mean_i[(alpha + beta 1[old right on i]) T^2 KL(softmax(t_i/T) || softmax(s_i/T))], in NumPy."""
    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, q = softmax(t / temperature), softmax(s / temperature)
    kl = (p * (np.log(p) - np.log(q))).sum(1) * temperature**2
    return float(((alpha + beta * correct) * kl).mean())


@pytest.mark.parametrize("alpha,beta,temperature", [(1.0, 5.0, 1.0), (1.0, 0.0, 2.0), (0.0, 3.0, 4.0)])
def test_focal_distillation_matches_the_formula(alpha, beta, temperature):
    rng = np.random.default_rng(0)
    s, t = rng.normal(scale=3, size=(2, 12, 7))
    correct = rng.random(12) < 0.5
    got = focal_distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(correct), alpha, beta, temperature)
    assert float(got) == pytest.approx(_reference(s, t, correct.astype(float), alpha, beta, temperature), rel=1e-6)


def test_focal_distillation_weighs_where_the_old_model_is_right():
    rng = np.random.default_rng(1)
    s = torch.tensor(rng.normal(size=(6, 5)), requires_grad=True)
    t = torch.tensor(rng.normal(size=(6, 5)))
    correct = torch.tensor([True, False, True, False, False, False])
    focal_distillation_loss(s, t, correct, alpha=1.0, beta=5.0).backward()
    focal = s.grad.clone()
    s.grad = None
    focal_distillation_loss(s, t, correct, alpha=1.0, beta=0.0).backward()
    # Rows the old model gets right are pulled 6x harder; the others as in plain distillation.
    torch.testing.assert_close(focal[correct], 6 * s.grad[correct])
    torch.testing.assert_close(focal[~correct], s.grad[~correct])
    assert t.grad is None  # the old model is frozen
    # A student that already matches the teacher has nothing to learn.
    assert float(focal_distillation_loss(t, t, correct)) == pytest.approx(0.0, abs=1e-12)


def test_focal_flags_of_hetero_train():
    args = build_parser().parse_args(
        ["train", "--cloud", "c", "--data", "digits", "--out", "o", "--focal", "2.5", "--focal-beta", "8", "--focal-alpha", "0.5", "--focal-temperature", "3"]
    )
    config = train_config_from_args(args, EDGE_DEFAULTS)
    assert (config.focal, config.focal_beta, config.focal_alpha, config.focal_temperature) == (2.5, 8.0, 0.5, 3.0)
    assert TrainConfig().focal == 0.0  # off unless asked


def test_training_with_focal_records_the_term():
    from hetero.data import load_split
    from hetero.pipeline import train_cloud, train_edge
    from hetero.search_spaces import get_space

    split = load_split("digits")
    train = split.train.subset(np.arange(300))
    cfg = TrainConfig(epochs=1, batch_size=64, influence=1.0, alignment=0.0, contrastive=0.0)
    old = train_cloud(train, get_space("mobilenet_v3").smallest_arch(), 16, TrainConfig(epochs=1, batch_size=64, influence=0, alignment=0, contrastive=0))
    arch = get_space("mobilenet_v3").smallest_arch()
    plain = train_edge(old, train, arch, cfg)
    focal = train_edge(old, train, arch, TrainConfig(**{**cfg.to_dict(), "focal": 1.0}))
    head = focal.head
    assert "focal" not in plain.meta["history"][0]
    assert focal.meta["history"][0]["focal"] > 0
    assert head.shape == (train.num_classes, 16)


class _Reference:
    """A frozen reference whose classifier lists its classes in its own (unsorted) order."""

    def __init__(self, embeddings, classifier, classes):
        self.embeddings, self.classifier, self.classes, self.scale = embeddings, classifier, classes, 16.0

    def embed(self, images):
        return self.embeddings


def test_focal_through_the_own_head_matches_classes_across_orders():
    from hetero.training import CloudTargets, loss_terms

    rng = np.random.default_rng(2)
    classes = [30, 10, 20]  # the reference's row order; the own head is in sorted order 10, 20, 30
    w = torch.tensor(rng.normal(size=(3, 8)), dtype=torch.float32)
    w = w / w.norm(dim=1, keepdim=True)
    labels = np.array([10, 20, 30, 10, 20, 30])
    g = torch.nn.functional.normalize(w[[1, 2, 0, 1, 2, 0]] + 0.3 * torch.randn(6, 8), dim=1)
    targets = CloudTargets.from_cloud(_Reference(g.numpy(), w, classes), np.zeros((6, 1, 2, 2)), labels, 0.0625)
    assert targets.columns.tolist() == [1, 2, 0]
    own_head = w[targets.columns]  # the reference's classifier re-ordered as sorted classes
    idx = torch.arange(6)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = TrainConfig(metric=0.0, influence=0.0, alignment=0.0, contrastive=0.0, focal=1.0, focal_head="own")
    # A model that embeds like the reference and whose own head is the reference's: nothing to distil.
    same = loss_terms(g, y, own_head, idx, cfg, targets, torch.device("cpu"))["focal"][1]
    assert float(same) == pytest.approx(0.0, abs=1e-5)
    shuffled = loss_terms(g, y, w, idx, cfg, targets, torch.device("cpu"))["focal"][1]
    assert float(shuffled) > 0.1  # rows in the reference's order would be the wrong classes
    head = own_head.clone().requires_grad_(True)
    loss_terms(g.flip(0), y, head, idx, cfg, targets, torch.device("cpu"))["focal"][1].backward()
    assert head.grad.abs().sum() > 0  # PCT's form trains the model's own classifier too


def test_focal_head_flag_is_checked():
    from hetero.errors import UserError

    with pytest.raises(UserError, match="--focal-head"):
        TrainConfig(focal_head="old")
