"""The compatibility losses behave as their definitions say."""

import pytest
import torch

from hetero.training import (
    alignment_loss,
    class_prototypes,
    contrastive_loss,
    decorrelation_loss,
    focal_distillation_loss,
    influence_loss,
    structure_loss,
)


def _unit(x):
    return x / x.norm(dim=1, keepdim=True)


def test_alignment_zero_iff_aligned():
    g = _unit(torch.randn(8, 5))
    assert float(alignment_loss(g, g)) == pytest.approx(0, abs=1e-6)
    assert float(alignment_loss(-g, g)) == pytest.approx(2, abs=1e-6)


def test_influence_prefers_embeddings_near_own_class_row():
    w = torch.eye(3)
    y = torch.tensor([0, 1, 2])
    assert influence_loss(torch.eye(3), w, y, 10.0) < influence_loss(torch.eye(3)[[1, 2, 0]], w, y, 10.0)


def test_contrastive_counts_same_class_as_positive():
    y = torch.tensor([0, 0, 1, 1])
    g = _unit(torch.tensor([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]]))
    good = contrastive_loss(g, g, y, 0.1)
    swapped = contrastive_loss(g[[2, 3, 0, 1]], g, y, 0.1)
    assert good < swapped


def test_prototypes_are_unit_class_means():
    emb = torch.tensor([[2.0, 0], [4, 0], [0, 3]])
    p = class_prototypes(emb, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(p, torch.tensor([[1.0, 0], [0, 1]]))


def test_focal_weights_more_where_teacher_right():
    s = torch.randn(4, 3)
    t = torch.randn(4, 3)
    right = torch.tensor([True, True, False, False])
    plain = focal_distillation_loss(s, t, right, alpha=1, beta=0)
    focal = focal_distillation_loss(s, t, right, alpha=1, beta=5)
    assert focal > plain
    assert focal_distillation_loss(t, t, right) < 1e-6


def test_structure_is_zero_when_the_edge_ranks_the_batch_as_the_cloud_does():
    g = _unit(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    assert float(structure_loss(g, g, 0.1)) == pytest.approx(0.0, abs=1e-6)
    q = _unit(torch.randn(16, 8, generator=torch.Generator().manual_seed(1)))
    assert float(structure_loss(q, g, 0.1)) > 0.1


def test_structure_excludes_each_image_itself():
    # With two images, each one's only neighbour is the other: a point mass on both sides, so
    # the loss is 0 whatever q is. Were the image itself counted, q_i . g_i would weigh in.
    g = _unit(torch.randn(2, 4, generator=torch.Generator().manual_seed(2)))
    q = _unit(torch.randn(2, 4, generator=torch.Generator().manual_seed(3)))
    assert float(structure_loss(q, g, 0.1)) == pytest.approx(0.0, abs=1e-6)
    assert float(structure_loss(q[:1], g[:1], 0.1)) == 0.0


def test_structure_pulls_the_edge_towards_the_clouds_neighbours_only():
    g = _unit(torch.randn(12, 6, generator=torch.Generator().manual_seed(4))).requires_grad_()
    q = _unit(torch.randn(12, 6, generator=torch.Generator().manual_seed(5))).requires_grad_()
    loss = structure_loss(q, g, 0.1)
    loss.backward()
    loss = loss.detach()
    assert g.grad is None and q.grad is not None and float(q.grad.abs().sum()) > 0  # the cloud is frozen
    # A gradient step on q lowers the loss; the same batch in another order gives the same loss.
    stepped = structure_loss(_unit(q.detach() - 0.01 * q.grad), g.detach(), 0.1)
    assert float(stepped) < float(loss)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(6))
    assert float(structure_loss(q.detach()[perm], g.detach()[perm], 0.1)) == pytest.approx(float(loss), rel=1e-5)


def test_decorrelation_counts_only_errors_shared_by_the_clouds_neighbours():
    # Two tight pairs of cloud neighbours (images 0, 1 and 2, 3), far from each other.
    g = _unit(torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.05, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.05]]))
    assert float(decorrelation_loss(g, g, 0.1)) == pytest.approx(0.0, abs=1e-7)  # a copy of the cloud: no error
    shift = torch.tensor([0.0, 0.0, 0.0, 0.3])
    # The same error on both members of the first pair: shared, penalised.
    shared = g.clone()
    shared[0] += shift
    shared[1] += shift
    assert float(decorrelation_loss(shared, g, 0.1)) > 0.02
    # The same error on one member of each pair: the neighbours' errors are orthogonal, and the two
    # images that share it are not neighbours (their weight is ~0).
    apart = g.clone()
    apart[0] += shift
    apart[2] += shift
    assert float(decorrelation_loss(apart, g, 0.1)) < 1e-4
    # Opposed errors on neighbours cost nothing (only shared ones are penalised).
    opposed = g.clone()
    opposed[0] += shift
    opposed[1] -= shift
    assert float(decorrelation_loss(opposed, g, 0.1)) == pytest.approx(0.0, abs=1e-7)
    assert float(decorrelation_loss(shared[:1], g[:1], 0.1)) == 0.0


def test_decorrelation_step_lowers_it_and_leaves_the_cloud_alone():
    g = _unit(torch.randn(12, 6, generator=torch.Generator().manual_seed(7))).requires_grad_()
    common = 0.2 * torch.randn(1, 6, generator=torch.Generator().manual_seed(8))
    q = (g.detach() + common).requires_grad_()
    loss = decorrelation_loss(q, g, 0.1)
    loss.backward()
    loss = loss.detach()
    assert g.grad is None and q.grad is not None
    stepped = decorrelation_loss(q.detach() - 0.05 * q.grad, g.detach(), 0.1)
    assert float(stepped) < float(loss)
