"""Which layers of an int8 model cost the most accuracy: each layer quantized alone, on real images.

The per-layer drift (:mod:`hetero.export._drift`) shows where int8 and float activations part, but the
drift a layer *adds* in the fully quantized model is a poor guide to what to keep in float: on a
MobileNetV2 pruned from ImageNet, keeping layers in float by added drift needed 52 of 53 layers,
while one pointwise convolution quantized alone already cost cos min 0.44. So, as NNCF's
accuracy control does, each layer is quantized alone (every other layer float) and the model's
embeddings are compared with PyTorch's; the layers that lose most are kept float first. It
needs one quantization per layer, which backends with a float intermediate do in seconds
(:meth:`export.Backend.quantize_float_artifact`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["layer_sensitivity", "most_sensitive_alone"]


def layer_sensitivity(backend, float_artifact: Path, layers: Sequence[str], calibration: np.ndarray,
                      inputs: np.ndarray, reference: np.ndarray, work: Path,
                      progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Cosine to ``reference`` of the embeddings when only one layer is int8, for each layer.

    Args:
        backend: An :class:`export.Backend` that keeps layers float.
        float_artifact: The fp32 artifact the int8 ones are quantized from.
        layers: Layer names (as :meth:`export.Backend.layer_outputs` gives them).
        calibration: The calibration images.
        inputs: Preprocessed images to compare on.
        reference: PyTorch's L2-normalised embeddings of ``inputs``.
        work: A scratch folder.
        progress: Called with (layers done, layers) after each layer.

    Returns:
        ``[{"layer", "cos_min", "cos_mean"}]`` in the order of ``layers``.
    """
    rows = []
    for done, layer in enumerate(layers, 1):
        others = tuple(name for name in layers if name != layer)
        artifact = backend.quantize_float_artifact(float_artifact, work, calibration, keep_float=others)
        got = np.asarray(backend.load(artifact, threads=1).run(inputs), dtype=np.float64)
        got /= np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
        cos = (got * reference.astype(np.float64)).sum(1)
        rows.append({"layer": layer, "cos_min": float(cos.min()), "cos_mean": float(cos.mean())})
        if progress is not None:
            progress(done, len(layers))
    return rows


def most_sensitive_alone(rows: Sequence[dict]) -> list[str]:
    """Layer names, the one whose quantization alone loses most first (worst image, then mean)."""
    return [row["layer"] for row in sorted(rows, key=lambda row: (row["cos_min"], row["cos_mean"]))]
