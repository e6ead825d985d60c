"""Where an int8 artifact drifts from its float artifact: per layer, on real images.

Both artifacts come from the same float graph, so their layers share names (ONNX tensor names;
TFLite op output tensor names, which ai-edge-quantizer keeps). Each backend returns the outputs
of its compute layers (convolutions and linear layers) as its own runtime computes them, int8
values dequantized; this module compares them image by image (cosine of the flattened
activation) and ranks the layers by how much error each *adds* to the layer before it, which
is what the accuracy-controlled fallback keeps in float first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["DIVERGENCE_COS", "first_divergence", "layer_drift", "most_sensitive"]

#: A layer whose int8 output has a mean cosine below this has diverged from its float output.
DIVERGENCE_COS = 0.99


def layer_drift(reference: Mapping[str, tuple[str, np.ndarray]],
                quantized: Mapping[str, tuple[str, np.ndarray]]) -> list[dict]:
    """Per-layer cosine between float and int8 activations, in graph order.

    Args:
        reference: ``{layer: (op, activations [N, ...])}`` of the float artifact, in graph order.
        quantized: the same of the int8 artifact (missing layers are left out).

    Returns:
        ``[{"layer", "op", "cos_mean", "cos_min", "added"}]``; ``added`` is the drop in mean
        cosine against the layer before it (its own contribution, floored at 0).
    """
    rows: list[dict] = []
    previous = 1.0
    for name, (op, ref) in reference.items():
        if name not in quantized:
            continue
        got = quantized[name][1]
        a = ref.reshape(len(ref), -1).astype(np.float64)
        b = got.reshape(len(got), -1).astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        # A layer whose float output is all zeros for an image (a dead ReLU map) agrees if the
        # int8 one is too; counting it as cos 0 would blame a layer that did nothing wrong.
        both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
        cos = np.where(both_zero, 1.0, (a * b).sum(1) / np.maximum(norms, 1e-30))
        mean = float(cos.mean())
        rows.append({"layer": name, "op": op, "cos_mean": mean, "cos_min": float(cos.min()),
                     "added": max(0.0, previous - mean)})
        previous = mean
    return rows


def first_divergence(rows: Sequence[dict], threshold: float = DIVERGENCE_COS) -> dict | None:
    """The first layer (graph order) whose mean cosine falls below ``threshold``, or ``None``."""
    return next((row for row in rows if row["cos_mean"] < threshold), None)


def most_sensitive(rows: Sequence[dict]) -> list[str]:
    """Layer names, the one that adds the most drift first (ties: earlier layers first, whose
    error every later layer inherits)."""
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["added"], i))
    return [rows[i]["layer"] for i in order]
