"""The compatibility losses of DESIGN.md, each a small function of embeddings.

All embeddings are unit vectors. Notation: ``q`` edge (query) embeddings ``[B, D]``, ``g`` the
frozen cloud (gallery) embeddings of the same images ``[B, D]``, ``y`` their classes ``[B]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "influence_loss",
    "alignment_loss",
    "contrastive_loss",
    "cosine_classifier_loss",
    "focal_distillation_loss",
    "structure_loss",
    "decorrelation_loss",
    "class_prototypes",
]


def cosine_classifier_loss(emb: torch.Tensor, weight: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """Cross-entropy of a cosine classifier: ``scale * emb @ normalize(weight).T``."""
    w = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return F.cross_entropy(scale * emb @ w.T, y)


def influence_loss(q: torch.Tensor, classifier: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """BCT's influence loss: the edge embedding through the cloud's frozen classifier.

    ``classifier`` is either the cloud model's own head or class-mean prototypes of the cloud
    embeddings (``class_prototypes``); ``y`` indexes its rows. Gradients reach only ``q``.
    """
    return cosine_classifier_loss(q, classifier.detach(), y, scale)


def alignment_loss(q: torch.Tensor, g: torch.Tensor, l2_weight: float = 0.0) -> torch.Tensor:
    """1 - cos(q, g) for the same image, plus optionally the squared L2 distance."""
    cos = (q * g).sum(1)
    loss = (1 - cos).mean()
    if l2_weight:
        loss = loss + l2_weight * (q - g).pow(2).sum(1).mean()
    return loss


def contrastive_loss(q: torch.Tensor, g: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-model InfoNCE: each edge embedding against the batch's cloud embeddings.

    Positives are the cloud embeddings of the same class (the image's own included), negatives the
    other classes': -log(sum_pos exp(s/T) / sum_all exp(s/T)).
    """
    logits = q @ g.T / temperature
    positive = y[:, None] == y[None, :]
    log_all = torch.logsumexp(logits, dim=1)
    log_pos = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    return (log_all - log_pos).mean()


#: A large finite negative instead of -inf for an image's own similarity: exp underflows to
#: exactly 0 and no 0 * inf arises.
_EXCLUDED = -1e9


def _cloud_neighbourhood(g: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """How the cloud ranks the batch around each image: ``softmax_j(g_i . g_j / T)`` with the image
    itself excluded (weight exactly 0), detached; and the ``[B, B]`` mask of those self pairs."""
    self_mask = torch.eye(g.shape[0], dtype=torch.bool, device=g.device)
    g = g.detach()
    return F.softmax((g @ g.T / temperature).masked_fill(self_mask, _EXCLUDED), dim=1), self_mask


def structure_loss(q: torch.Tensor, g: torch.Tensor, temperature: float) -> torch.Tensor:
    """Distil the cloud's neighbourhoods: KL(p_cloud || p_edge) of each image over the rest of the batch.

    ``p_cloud[i] = softmax_j(g_i . g_j / T)`` is how the cloud model ranks the batch's other images
    around image i; ``p_edge[i] = softmax_j(q_i . g_j / T)`` is how the edge query of the same image
    ranks the same cloud gallery. Matching them teaches the edge model the cloud's *relative*
    similarities (which neighbours come first, and by how much), label-free: alignment only pulls
    q_i towards g_i, which leaves the ranking of near neighbours to chance when it is not exact.
    The image itself is excluded on both sides (its own similarity would dominate both).
    """
    if q.shape[0] < 2:
        return q.sum() * 0.0
    target, self_mask = _cloud_neighbourhood(g, temperature)
    log_student = F.log_softmax((q @ g.detach().T / temperature).masked_fill(self_mask, _EXCLUDED), dim=1)
    kl = (target * (target.clamp_min(1e-12).log() - log_student)).masked_fill(self_mask, 0.0).sum(1)
    return kl.mean()


def decorrelation_loss(q: torch.Tensor, g: torch.Tensor, temperature: float) -> torch.Tensor:
    """Keep the edge's errors on the cloud's near neighbours from pointing the same way.

    ``d_i = q_i - g_i`` is the edge's error on image i. Where neighbouring images share an error
    (``d_i . d_j > 0``: measured on full Omniglot, 0.056 for pairs of one class against 0.010 for
    others), the edge finds them closer to each other than to the cloud's embeddings, and
    searching its own embeddings (homogeneous) beats searching the cloud's gallery (cross): the
    model is not compatible although it is close to the cloud. This term is the shared part of
    the errors, ``sum_j w_ij * max(d_i . d_j, 0)``, over the cloud's neighbourhood of each image
    (``w_i = softmax_j(g_i . g_j / T)``, itself excluded), averaged; label-free. Zero when the
    edge copies the cloud or its errors on neighbours are orthogonal or opposed.
    """
    if q.shape[0] < 2:
        return q.sum() * 0.0
    weights, _ = _cloud_neighbourhood(g, temperature)
    errors = q - g.detach()
    shared = (errors @ errors.T).clamp_min(0.0)
    return (weights * shared).sum(1).mean()


def focal_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    teacher_correct: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 5.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """PCT's focal distillation: KL to the teacher, weighted up where the teacher is right.

    ``mean_i[(alpha + beta * 1[teacher right on i]) * T^2 * KL(softmax(t_i/T) || softmax(s_i/T))]``.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    kl = (p_teacher * (p_teacher.clamp_min(1e-12).log() - log_p_student)).sum(1) * temperature**2
    weights = alpha + beta * teacher_correct.float()
    return (weights * kl).mean()


def class_prototypes(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Unit class means of ``embeddings``: a classifier for classes the cloud head never saw."""
    sums = torch.zeros(num_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, labels, embeddings)
    return sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
