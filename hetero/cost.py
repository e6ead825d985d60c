"""Cost of a model at an input shape: MACs (torch.utils.flop_counter FLOPs / 2) and parameters."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_cost"]


def count_cost(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Count MACs for one image of ``input_shape`` (``(C, H, W)``) and the parameters.

    Returns:
        ``{"macs": int, "params": int}``.
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
    return {"macs": int(counter.get_total_flops() // 2), "params": int(sum(p.numel() for p in model.parameters()))}
