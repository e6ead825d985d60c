"""Quantization-aware fine-tuning: make an edge model's int8 artifact compute what it computes.

The edge model is fine-tuned with torch's fake quantization in the places the exporters quantize:
every convolution's and linear layer's weights per output channel, symmetric (7 bits, [-64, 64],
as the CPU-safe ONNX recipe stores them; 8 bits for depthwise convolutions), and the activations
after every batch norm, linear layer and activation, uint8 per tensor over the min/max seen (as the
calibration measures them), with torch.ao's ``FakeQuantize`` and ``MinMaxObserver``. The loss has
two parts:

- *compatibility*: the fake-quantized embedding stays aligned with the frozen cloud model's
  embedding of the same image (cosine alignment plus cross-model InfoNCE, hetero's own terms);
- *consistency*: the fake-quantized embedding matches the same weights' float embedding, which
  is what export's parity compares the int8 artifact with.

The result is a float model with the same architecture, exported by the ordinary int8 path of
every backend (ONNX QDQ through onnxruntime, LiteRT through ai-edge-quantizer, calibrated on real
images as always). That is why this is eager-mode fake quantization rather than PT2E's
``prepare_qat_pt2e``/``convert_pt2e`` or NNCF: a converted PT2E graph exports to one backend's
format at a time (and a PT2E reference agreed with its own LiteRT artifact on 0.80 of the first
images here, README "What limits int8"), while float weights trained under the deployed
quantization grid go through both exporters unchanged.
"""

from __future__ import annotations

import copy
import time
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MinMaxObserver
from torch.nn.utils import parametrize

from hetero.runtime import progress
from hetero.training._losses import alignment_loss, contrastive_loss

__all__ = ["QAT_WEIGHT_BITS", "quantization_aware_finetune"]

#: Largest |weight| on the int8 grid: 64 for convolutions and linear layers (the CPU-safe ONNX
#: recipe's 7-bit range, also inside TFLite's 8-bit one), 127 for depthwise convolutions.
QAT_WEIGHT_BITS = {"dense": 64, "depthwise": 127}
_ACTIVATION_MODULES = (nn.BatchNorm2d, nn.Linear, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU)


class _WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric fake quantization of a weight (straight-through gradient)."""

    def __init__(self, qmax: int) -> None:
        super().__init__()
        self.qmax = qmax
        self.enabled = True

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return weight
        scale = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / self.qmax
        zero = torch.zeros(len(weight), dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -self.qmax, self.qmax)


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


class _FakeQuantized:
    """Attaches fake quantization to a network and removes it again, keeping the trained weights."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.weighted = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.quantizers: dict[nn.Module, FakeQuantize] = {}
        self.hooks = []
        self.enabled = True
        for module in self.weighted:
            qmax = QAT_WEIGHT_BITS["depthwise" if _is_depthwise(module) else "dense"]
            parametrize.register_parametrization(module, "weight", _WeightFakeQuant(qmax))
        for activation in net.modules():
            if isinstance(activation, _ACTIVATION_MODULES):
                fq = FakeQuantize(observer=MinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                                  qscheme=torch.per_tensor_affine)
                self.quantizers[activation] = fq
                self.hooks.append(activation.register_forward_hook(self._hook))

    def _hook(self, module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
        return self.quantizers[module](output) if self.enabled else output

    def float_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same weights without any quantization (what export's parity compares with)."""
        self._switch(False)
        try:
            return self.net(x)
        finally:
            self._switch(True)

    def _switch(self, enabled: bool) -> None:
        self.enabled = enabled
        for module in self.weighted:
            # register_parametrization put a ParametrizationList of our one _WeightFakeQuant here.
            weight = cast(nn.ModuleDict, module.parametrizations)["weight"]
            quantizer = cast(_WeightFakeQuant, cast(nn.ModuleList, weight)[0])
            quantizer.enabled = enabled

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        for module in self.weighted:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)


def quantization_aware_finetune(edge, cloud, data, steps: int = 300, lr: float = 1e-4, batch_size: int = 64,
                                consistency: float = 1.0, contrastive: float = 0.5,
                                contrastive_temperature: float = 0.05, seed: int = 0,
                                max_images: int = 4096):
    """Fine-tune a copy of ``edge`` under fake quantization (see the module doc).

    Args:
        edge: The trained :class:`hetero.models.EdgeModel` (left unchanged).
        cloud: The frozen :class:`hetero.models.CloudModel` it is compatible with.
        data: Training images and labels (:class:`hetero.data.Dataset`).
        steps: Optimizer steps.
        lr: AdamW learning rate, cosine-decayed (fine-tuning: small).
        batch_size: Images per step.
        consistency: Weight of the fake-quantized vs float embedding term.
        contrastive: Weight of the cross-model InfoNCE term (0: off).
        contrastive_temperature: Its temperature.
        seed: Fixes the images and batches.
        max_images: Training images used at most (the cloud embeds them once).

    Returns:
        A new edge model, its ``meta["qat"]`` saying how it was made.
    """
    started = time.time()
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(data.images), min(len(data.images), max_images), replace=False))
    images, labels = data.images[index], data.labels[index]
    targets = torch.from_numpy(cloud.embed(images))
    inputs = edge.preprocess(images)
    y = torch.from_numpy(np.unique(labels, return_inverse=True)[1].astype(np.int64))

    model = copy.deepcopy(edge)
    net = model.net.cpu()
    net.eval()  # batch norm keeps its statistics: the exported graph folds them as they are
    quantized = _FakeQuantized(net)
    with torch.no_grad():  # observers see the whole set once, as calibration does
        for start in range(0, len(inputs), 256):
            net(inputs[start:start + 256])
    for fq in quantized.quantizers.values():
        fq.disable_observer()  # ranges fixed from here on, as the deployed ones are
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for _ in progress(range(steps), desc="qat", unit="step"):
        batch = torch.randint(0, len(inputs), (min(batch_size, len(inputs)),), generator=generator)
        x, g, yb = inputs[batch], targets[batch], y[batch]
        q = net(x)
        f = quantized.float_forward(x)
        loss = alignment_loss(q, g) + consistency * alignment_loss(q, f)
        if contrastive:
            loss = loss + contrastive * contrastive_loss(q, g, yb, contrastive_temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
    quantized.remove()
    net.eval()
    model.meta = {**edge.meta, "qat": {"steps": steps, "lr": lr, "images": int(len(images)),
                                      "loss_first": history[0] if history else None,
                                      "loss_last": float(np.mean(history[-20:])) if history else None,
                                      "weights": "per channel symmetric, 7-bit dense / 8-bit depthwise",
                                      "activations": "uint8 per tensor, min/max over the images",
                                      "seconds": round(time.time() - started, 1)}}
    return model
