"""Kronecker-factored preconditioning of the linearised model's least-squares problem.

For a model linear in ``delta`` and a squared loss, the Hessian is the Gauss-Newton matrix
``J(w0)^T J(w0)``: it does not change while training, so its K-FAC approximation is computed once,
at ``w0``, from the base network, and every step is preconditioned with the same exact inverse of
the damped factors (eigendecomposed once).

Blocks (Grosse & Martens 2016, "A Kronecker-factored approximate Fisher matrix for convolution
layers"): a dense convolution or linear layer has ``A (x) G`` with ``A`` the second moment of its
input patches (plus a constant 1 for a bias) and ``G`` that of the back-propagated output
gradients; a depthwise convolution has one such block per channel (``k^2 x k^2`` by ``1 x 1``);
every other parameter (batch-norm scales and shifts) a diagonal. Output gradients are sampled
(``v ~ N(0, I)`` on the output, so that ``E[g g^T]`` is the Gauss-Newton factor).

Written here rather than taken from a library: ``kfac-pytorch`` is not on this index;
``curvlinops-for-pytorch`` 3.0.1 installs beside torch 2.13 but brings six packages (BackPACK,
torchvision, unfoldNd, einconv, linear_operator, einops) into a shared environment for one
computation done once, and it has no per-channel block for depthwise convolutions, which are
most of a MobileNet's layers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KFAC"]


class _Block:
    """One layer's factors and their eigendecompositions."""

    def __init__(self, module: nn.Module, name: str) -> None:
        self.module = module
        self.name = name
        self.a_sum: torch.Tensor | None = None
        self.g_sum: torch.Tensor | None = None
        self.count = 0
        self.input: torch.Tensor | None = None

    @property
    def depthwise(self) -> bool:
        m = self.module
        return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """Input rows ``[rows, features]`` (``[C, rows, k^2]`` for depthwise), bias column appended."""
        m = self.module
        if isinstance(m, nn.Linear):
            rows = x.reshape(-1, x.shape[-1])
        else:
            conv = cast(nn.Conv2d, m)  # blocks are made of Linear and Conv2d layers only
            padding = cast(tuple[int, ...], conv.padding)  # hetero's convolutions pad by numbers, not "same"
            cols = F.unfold(x, conv.kernel_size, conv.dilation, padding, conv.stride)  # [N, C*k*k, L]
            if self.depthwise:
                n, _, length = cols.shape
                k2 = cols.shape[1] // conv.in_channels
                per = cols.reshape(n, conv.in_channels, k2, length).permute(1, 0, 3, 2).reshape(conv.in_channels, -1, k2)
                if m.bias is not None:
                    per = torch.cat([per, per.new_ones(per.shape[:2] + (1,))], dim=2)
                return per
            rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        if m.bias is not None:
            rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
        return rows

    def accumulate(self, grad_out: torch.Tensor, batch: int) -> None:
        x = self.input
        assert x is not None, "the forward hook keeps the layer's input before its backward hook runs"
        p = self.patches(x)
        if self.depthwise:
            a = torch.einsum("crk,crj->ckj", p, p) / p.shape[1]
            g = grad_out.pow(2).sum((2, 3)).sum(0)  # [C]: per image, summed over positions
        else:
            a = p.T @ p / p.shape[0]
            go = grad_out.reshape(grad_out.shape[0], grad_out.shape[1], -1) if grad_out.ndim == 4 else grad_out[..., None]
            go = go.permute(0, 2, 1).reshape(-1, go.shape[1])
            g = go.T @ go
        self.a_sum = a * batch if self.a_sum is None else self.a_sum + a * batch
        self.g_sum = g if self.g_sum is None else self.g_sum + g
        self.count += batch

    def finish(self, damping: float) -> None:
        assert self.a_sum is not None and self.g_sum is not None, "finish() after accumulate()"
        a = self.a_sum / self.count
        g = self.g_sum / self.count
        self.la, self.qa = torch.linalg.eigh(a.double())
        if self.depthwise:
            self.g = g.double()
        else:
            self.lg, self.qg = torch.linalg.eigh(g.double())
        self.damping = damping

    def precondition(self, weight_grad: torch.Tensor, bias_grad: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(A (x) G + damping I)^-1`` applied to the layer's gradient, in the eigenbases."""
        shape = weight_grad.shape
        if self.depthwise:
            v = weight_grad.reshape(shape[0], -1).double()  # [C, k2]
            if bias_grad is not None:
                v = torch.cat([v, bias_grad.double()[:, None]], dim=1)
            vt = torch.einsum("ckj,ck->cj", self.qa, v)
            vt = vt / (self.g[:, None] * self.la.clamp_min(0) + self.damping)
            v = torch.einsum("ckj,cj->ck", self.qa, vt)
        else:
            v = weight_grad.reshape(shape[0], -1).double()  # [out, in*k*k]
            if bias_grad is not None:
                v = torch.cat([v, bias_grad.double()[:, None]], dim=1)
            vt = self.qg.T @ v @ self.qa
            vt = vt / (self.lg.clamp_min(0)[:, None] * self.la.clamp_min(0)[None, :] + self.damping)
            v = self.qg @ vt @ self.qa.T
        v = v.float()
        if bias_grad is not None:
            return v[:, :-1].reshape(shape), v[:, -1].clone()
        return v.reshape(shape), None


class KFAC:
    """K-FAC curvature of a network's output at its current weights, and its damped inverse.

    Args:
        body: the network (its outputs are what the squared loss compares); eval mode.
        damping: added to the curvature's eigenvalues (Tikhonov), relative to its mean eigenvalue.
    """

    def __init__(self, body: nn.Module, damping: float = 1e-3) -> None:
        self.body = body
        self.relative_damping = damping
        self.blocks: dict[str, _Block] = {}
        for name, m in body.named_modules():
            dense = isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)
            if dense or (isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels):
                self.blocks[name] = _Block(m, name)
        covered = {f"{n}.{p}" if n else p for n, b in self.blocks.items() for p in ("weight", "bias")}
        self.diagonal_names = [n for n, _ in body.named_parameters() if n not in covered]
        self.diagonal: dict[str, torch.Tensor] = {}

    @torch.enable_grad()
    def fit(self, batches: Iterable[torch.Tensor], per_unit_norm: bool = False,
            sample: Callable[[torch.Size, torch.Generator], torch.Tensor] | None = None, seed: int = 0) -> KFAC:
        """Accumulate the factors over ``batches`` of inputs.

        Args:
            batches: preprocessed input batches.
            per_unit_norm: the loss compares ``f(x) / |f(x; w0)|`` (each output divided by its norm at
                ``w0``, a constant): scale the outputs so.
            sample: draws output vectors ``v`` with ``E[v v^T]`` equal to the loss's Hessian in the
                (scaled) output; default ``N(0, I)`` (a plain squared error).
            seed: the output samples' generator seed.
        """
        gen = torch.Generator().manual_seed(seed)
        params = dict(self.body.named_parameters())
        saved = {n: p.requires_grad for n, p in params.items()}
        for p in params.values():
            p.requires_grad_(True)
        handles = []
        for block in self.blocks.values():
            handles.append(block.module.register_forward_hook(_keep_input(block)))
            handles.append(block.module.register_full_backward_hook(_accumulate(block)))
        count = 0
        try:
            for x in batches:
                out = self.body(x)
                if per_unit_norm:
                    out = out / out.detach().norm(dim=1, keepdim=True).clamp_min(1e-12)
                v = torch.randn(out.shape, generator=gen) if sample is None else sample(out.shape, gen)
                with warnings.catch_warnings():  # the first layer's input needs no gradient: expected
                    warnings.filterwarnings("ignore", message="Full backward hook is firing")
                    (out * v).sum().backward()
                # The sampled batch gradient squared estimates the sum of per-image Gauss-Newton diagonals.
                for n in self.diagonal_names:
                    g = params[n].grad
                    if g is not None:
                        self.diagonal[n] = self.diagonal.get(n, 0) + g.pow(2)
                for p in params.values():
                    p.grad = None
                count += x.shape[0]
        finally:
            for h in handles:
                h.remove()
            for n, p in params.items():
                p.requires_grad_(saved[n])
                p.grad = None
        self.diagonal = {n: d / count for n, d in self.diagonal.items()}
        mean_eig = self._mean_eigenvalue()
        for block in self.blocks.values():
            block.finish(self.relative_damping * mean_eig)
        self.damping = self.relative_damping * mean_eig
        return self

    def _mean_eigenvalue(self) -> float:
        total, count = 0.0, 0
        for b in self.blocks.values():
            assert b.a_sum is not None and b.g_sum is not None, "after the statistics pass"
            a, g = b.a_sum / b.count, b.g_sum / b.count
            if b.depthwise:
                total += float((torch.diagonal(a, dim1=1, dim2=2).sum(1) * g).sum())
                count += a.shape[0] * a.shape[1]
            else:
                total += float(torch.trace(a) * torch.trace(g))
                count += a.shape[0] * g.shape[0]
        for d in self.diagonal.values():
            total += float(d.sum())
            count += d.numel()
        return total / max(count, 1)

    def precondition(self, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The preconditioned gradients (same names and shapes as ``grads``, the body's parameter names)."""
        out: dict[str, torch.Tensor] = {}
        for name, block in self.blocks.items():
            prefix = f"{name}." if name else ""
            w, b = block.precondition(grads[prefix + "weight"], grads.get(prefix + "bias") if block.module.bias is not None else None)
            out[prefix + "weight"] = w
            if b is not None:
                out[prefix + "bias"] = b
        for n in self.diagonal_names:
            out[n] = grads[n] / (self.diagonal.get(n, torch.zeros_like(grads[n])) + self.damping)
        return out


def _keep_input(block: _Block) -> Callable[..., None]:
    """A forward hook keeping ``block``'s layer input for its backward hook."""
    def hook(_module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
        block.input = inputs[0].detach()
    return hook


def _accumulate(block: _Block) -> Callable[..., None]:
    """A full backward hook adding the layer's output gradient to ``block``'s statistics."""
    def hook(_module: nn.Module, _grad_in: tuple, grad_out: tuple) -> None:
        block.accumulate(grad_out[0].detach(), grad_out[0].shape[0])
    return hook
