"""The kept epoch: the best validation cross mAP among the epochs compatible on validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hetero.pipeline import keep_score
from hetero.training import TrainConfig, run_epochs


def test_a_compatible_epoch_always_outranks_an_incompatible_one():
    assert keep_score(0.50, 0.40) > keep_score(0.90, 0.91)  # compatible beats a better incompatible
    assert keep_score(0.60, 0.50) > keep_score(0.50, 0.40)  # among compatible: cross decides
    assert keep_score(0.90, 0.95) > keep_score(0.80, 0.85)  # none compatible: the best cross
    assert keep_score(0.50, 0.50) < keep_score(0.10, 0.05)  # a tie is not compatible (cross must beat homogeneous)


@pytest.mark.parametrize(("scores", "kept"), [
    ([(0.50, 0.40), (0.70, 0.80), (0.60, 0.50), (0.65, 0.70)], 3),  # epoch 2 and 4 search better edge -> edge
    ([(0.50, 0.60), (0.70, 0.80), (0.60, 0.65)], 2),  # no epoch compatible: the best cross
])
def test_run_epochs_keeps_the_weights_of_the_best_compatible_epoch(scores, kept):
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    x = torch.randn(8, 3)
    weights_after = []

    def step(idx: torch.Tensor) -> dict[str, float]:
        loss = net(x[idx]).pow(2).mean()
        loss.backward()
        return {"loss": float(loss)}

    def on_epoch(epoch: int, record: dict) -> None:
        cross, homogeneous = scores[epoch]
        record.update(val_cross_map=cross, val_keep_score=keep_score(cross, homogeneous))
        weights_after.append(net.weight.detach().clone())

    config = TrainConfig(epochs=len(scores), batch_size=4, lr=0.1)
    history = run_epochs(net, list(net.parameters()), 8, config, torch.Generator().manual_seed(0), step, "t",
                         on_epoch=on_epoch, keep_best="val_keep_score")
    assert [r["kept"] for r in history] == [e + 1 == kept for e in range(len(scores))]
    assert torch.equal(net.weight, weights_after[kept - 1])
    assert not np.allclose(weights_after[kept - 1].numpy(), weights_after[-1].numpy())
