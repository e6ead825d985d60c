"""The linearised network f(x; w0) + J(x; w0) delta, in two equal forms.

``tangent_forward`` runs the first-order Taylor model with forward-mode AD (``torch.func.jvp``
over ``functional_call``): this is what LQF trains. :class:`LinearizedNet` computes the same
numbers with plain layers only (conv, batch norm, linear, mul, add, clamp, ceil, mean), walking
the base network's ``torch.fx`` graph with one primal and one tangent value per node: this is
what is saved and exported, so an exported LQF model is exactly the model that was trained (the
trained linear model is *not* the network at ``w0 + delta``, which would be a different,
non-linear function of ``delta``).
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.func import functional_call, jvp

from hetero.errors import UserError

__all__ = ["LinearizedNet", "leaky_copy", "split_norm", "tangent_forward", "delta_name"]


def leaky_copy(net: nn.Module, slope: float) -> nn.Module:
    """A copy of ``net`` with every ReLU replaced by a leaky ReLU of negative ``slope``.

    LQF's first change: a ReLU's derivative is 0 on its negative side, so the Jacobian (the
    linear model's features) ignores every unit that is off for an image; a small slope keeps
    them, at a small change of the base function.
    """
    out = copy.deepcopy(net)
    for module in list(out.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.LeakyReLU(slope))
    return out.eval()


class _Identity(nn.Module):
    """Stands where the final L2 norm was (the linear model is normalised after the sum)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def split_norm(net: nn.Module) -> nn.Module:
    """``net`` with its final :class:`search_spaces.L2Norm` replaced by an identity (in place).

    LQF linearises the embedding before normalisation; the normalisation is applied to the linear
    model's output.

    Raises:
        UserError: the network has no L2Norm module (a wrapped user network normalises in code).
    """
    from hetero.search_spaces import L2Norm

    found = False
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, L2Norm):
                setattr(module, child_name, _Identity())
                found = True
    if not found:
        raise UserError("LQF needs a network from hetero's search spaces (its L2 norm is a layer); "
                        "this model's network normalises in code (an imported model): fine-tune it with --method compat")
    return net


def delta_name(param_name: str) -> str:
    """The attribute name of a parameter's delta (module attributes cannot contain dots)."""
    return param_name.replace(".", "__")


def tangent_forward(body: nn.Module, deltas: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f(x; w0), J(x; w0) delta)`` of the pre-normalisation ``body`` with forward-mode AD.

    ``body`` runs in eval mode (batch norms use their running statistics, part of ``w0``).
    The tangent is differentiable with respect to ``deltas``.
    """
    names = list(deltas)
    params = dict(body.named_parameters())
    buffers = dict(body.named_buffers())
    primals = tuple(params[n].detach() for n in names)

    def f(*ws: torch.Tensor) -> torch.Tensor:
        return functional_call(body, {**buffers, **dict(zip(names, ws))}, (x,))

    # Without has_aux jvp returns (output, tangent); its annotation also allows the has_aux triple.
    return cast(tuple[torch.Tensor, torch.Tensor], jvp(f, primals, tuple(deltas[n] for n in names)))


def _step(z: torch.Tensor) -> torch.Tensor:
    """``1.0`` where ``z > 0``, else ``0.0``, as a float computation: ``ceil(clamp(z, 0, 1))``.

    The derivative masks of ReLU, leaky ReLU and clamp are written with this instead of a
    comparison and ``where``: bool tensors (and the ``ones_like`` / ``zeros_like`` beside them) have
    no NHWC rewrite in litert-torch, whose layout pass then pins the batch of the reshapes around
    them to the example's (XNNPack refuses the artifact at any other batch), and int8 quantizers
    and Core ML handle float ops better than bool ones. Exact: ``clamp`` keeps every positive
    float (subnormals included) in ``(0, 1]``, which ``ceil`` sends to 1, and every other to 0.
    """
    return torch.ceil(torch.clamp(z, 0.0, 1.0))


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _is_zero(v) -> bool:
    return isinstance(v, int | float) and v == 0


def _is_tensor(v) -> bool:
    return isinstance(v, torch.Tensor)


class LinearizedNet(nn.Module):
    """``normalise(f(x; w0) + J(x; w0) delta)`` written with plain layers.

    Args:
        body: the base network without its final normalisation (:func:`split_norm`), eval mode;
            its weights are ``w0`` and stay frozen.
        slope: the leaky ReLUs' negative slope (recorded for the file).

    Attributes:
        delta: one tensor per parameter of ``body`` (same shape), named by :func:`delta_name`.
        arch: the ``lqf`` architecture it was built from (set by the search space).
    """

    arch: dict[str, Any]

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body.eval().requires_grad_(False)
        self.delta = nn.Module()
        for name, p in body.named_parameters():
            self.delta.register_parameter(delta_name(name), nn.Parameter(torch.zeros_like(p)))
        self._graph = fx.symbolic_trace(self.body).graph  # plain data: not a submodule, not saved

    def deltas(self) -> dict[str, torch.Tensor]:
        """Parameter name of ``body`` -> its delta."""
        return {name: getattr(self.delta, delta_name(name)) for name, _ in self.body.named_parameters()}

    def train(self, mode: bool = True) -> LinearizedNet:
        # The linear model is defined at w0's batch-norm statistics: the body never leaves eval mode.
        super().train(mode)
        self.body.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primal, tangent = self.dual(x)
        y = primal if tangent is None else primal + tangent
        return y / y.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(1e-12)

    @torch.no_grad()
    def int8_unsuited(self, x: torch.Tensor) -> str:
        """Why the exporter skips int8's layer-by-layer fallback for this network, measured on ``x``.

        Two causes, measured on an Omniglot LQF model (benchmarks/README.md): the tangent masks
        ``step(z)`` flip wherever rounding moves a pre-activation across 0, each flip moving the
        output by that unit's whole tangent; and the output is the sum of a primal and a tangent
        path that can cancel (there each was 2-3x the output's norm), so a 1% error in either is
        a few percent of the output. There no choice held parity (the whole primal path in float,
        masks exact: cos min 0.71; only the tangent's convolutions in int8: 0.87), and the search
        quantizes the model once per layer, twice as many as its base network has. The two norms
        are measured here so the manifest says how far this model's paths cancel.
        """
        primal, tangent = self.dual(x)
        size = (primal if tangent is None else primal + tangent).norm(dim=-1).clamp_min(1e-12)
        p = float((primal.norm(dim=-1) / size).median())
        t = 0.0 if tangent is None else float((tangent.norm(dim=-1) / size).median())
        return (f"an LQF (linearised) network: rounding flips its tangent masks wherever it moves a pre-activation "
                f"across 0, and its output is the sum of a primal and a tangent path of median norms {p:.2f}x and "
                f"{t:.2f}x the output's on these images; the layer-by-layer search is not run for it (on an Omniglot "
                f"LQF model no choice of float layers held parity, and it quantizes once per layer)")

    def dual(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(f(x; w0), J(x; w0) delta)`` before normalisation, from plain layers."""
        values: dict[str, tuple] = {}
        deltas = self.deltas()

        def get(arg):
            if isinstance(arg, fx.Node):
                return values[arg.name]
            if isinstance(arg, (tuple, list)) and any(isinstance(a, fx.Node) for a in arg):
                raise UserError("LQF cannot linearise an operation on a list of tensors")
            return (arg, None)

        for node in self._graph.nodes:
            if node.op == "placeholder":
                values[node.name] = (x, None)
            elif node.op == "output":
                return values[node.args[0].name]
            elif node.op == "get_attr":
                raise UserError(f"LQF cannot linearise a network reading attribute {node.target!r} in its forward")
            elif node.op == "call_module":
                (a, da), = [get(v) for v in node.args]
                values[node.name] = self._module(node.target, a, da, deltas)
            else:
                values[node.name] = self._function(node, [get(v) for v in node.args],
                                                   {k: get(v)[0] for k, v in node.kwargs.items()})
        raise AssertionError("graph without output")

    def _module(self, target: str, a: torch.Tensor, da: torch.Tensor | None, deltas: dict) -> tuple:
        m = self.body.get_submodule(target)
        prefix = f"{target}." if target else ""
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            dw = deltas[prefix + "weight"]
            db = deltas.get(prefix + "bias") if m.bias is not None else None
            if isinstance(m, nn.Conv2d):
                def op(inp, w, b):
                    return F.conv2d(inp, w, b, m.stride, m.padding, m.dilation, m.groups)
            else:
                def op(inp, w, b):
                    return F.linear(inp, w, b)
            tangent = op(a, dw, db)
            if da is not None:
                tangent = tangent + op(da, m.weight, None)
            return m(a), tangent
        if isinstance(m, nn.BatchNorm2d):
            # Eval-mode batch norm is affine in its input and in (gamma, beta): two batch norms.
            tangent = F.batch_norm(a, m.running_mean, m.running_var, deltas[prefix + "weight"],
                                   deltas[prefix + "bias"], False, 0.0, m.eps)
            if da is not None:
                # hetero's networks keep running statistics (the primal batch norm above uses them too).
                running_mean = cast(torch.Tensor, m.running_mean)
                tangent = tangent + F.batch_norm(da, torch.zeros_like(running_mean), m.running_var, m.weight,
                                                 None, False, 0.0, m.eps)
            return m(a), tangent
        if isinstance(m, (nn.LeakyReLU, nn.ReLU)):
            slope = m.negative_slope if isinstance(m, nn.LeakyReLU) else 0.0
            # Slope 0 (LQF's default keeps ReLU) as relu: a leaky ReLU of slope 0 lowers to a
            # comparison and a select in TFLite, where relu is one RELU like the base network's.
            out = F.relu(a) if slope == 0 else F.leaky_relu(a, slope)
            if da is None:
                return out, None
            on = da * _step(a)
            # Exactly da where a > 0 and slope * da elsewhere, as where(a > 0, da, slope * da) gives.
            return out, on if slope == 0 else on + slope * (da - on)
        if isinstance(m, (nn.Identity, _Identity)):
            return a, da
        raise UserError(f"LQF cannot linearise layer {target!r} ({type(m).__name__})")

    def _function(self, node: fx.Node, args: list, kwargs: dict) -> tuple:
        fn = node.target
        prim = [a for a, _ in args]
        tan = [t for _, t in args]
        if node.op == "call_method":
            name = cast(str, fn)
            out = getattr(prim[0], name)(*prim[1:], **kwargs)
            if name in ("mean", "sum", "flatten", "view", "reshape", "squeeze", "unsqueeze", "contiguous"):
                return out, None if tan[0] is None else getattr(tan[0], name)(*prim[1:], **kwargs)
            if name == "size":
                return out, None
            raise UserError(f"LQF cannot linearise method {name!r}")
        fn = cast(Callable[..., Any], fn)
        out = fn(*prim, **kwargs)
        if fn in (operator.add, torch.add):
            return out, _add(tan[0], tan[1] if len(tan) > 1 else None)
        if fn in (operator.sub, torch.sub):
            return out, _add(tan[0], None if tan[1] is None else -tan[1])
        if fn in (operator.mul, torch.mul):
            a, b = prim
            ta, tb = tan
            return out, _add(None if ta is None else ta * b, None if tb is None else a * tb)
        if fn in (operator.truediv, torch.div):
            a, b = prim
            ta, tb = tan
            t = None if ta is None else ta / b
            if tb is not None:
                t = _add(t, -a * tb / (b * b))
            return out, t
        if fn in (torch.clamp, torch.clip):
            lo = kwargs.get("min", prim[1] if len(prim) > 1 else None)
            hi = kwargs.get("max", prim[2] if len(prim) > 2 else None)
            if tan[0] is None:
                return out, None
            # The derivative is 1 strictly inside (lo, hi): z - lo > 0 exactly when z > lo in IEEE
            # arithmetic (a difference of two floats is 0 only when they are equal).
            t = tan[0]
            if lo is not None:
                t = t * _step(prim[0] if _is_zero(lo) else prim[0] - lo)
            if hi is not None:
                t = t * _step(hi - prim[0])
            return out, t
        if fn in (torch.flatten,):
            return out, None if tan[0] is None else fn(tan[0], *prim[1:], **kwargs)
        if fn is getattr:
            return out, None
        raise UserError(f"LQF cannot linearise operation {getattr(fn, '__name__', fn)!r}")
