"""Cost of a model at an input shape: MACs (torch.utils.flop_counter FLOPs / 2) and parameters."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_cost", "count_macs"]


def count_cost(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Count MACs for one image of ``input_shape`` (``(C, H, W)``) and the parameters.

    Returns:
        ``{"macs": int, "params": int}``.
    """
    return {"macs": count_macs(model, input_shape), "params": int(sum(p.numel() for p in model.parameters()))}


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass of ``model`` on one image of ``input_shape`` (``(C, H, W)``).

    ``model`` may be a supernet with a subnet active: the flop counter sees the sliced
    convolutions the subnet runs, so the count is the standalone network's.
    """
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.zeros((1, *input_shape), device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)
