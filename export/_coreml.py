"""Core ML: an ML Program (``.mlpackage``) converted by coremltools from a traced model.

Precisions:
    fp32  float32 compute.
    fp16  float16 compute, except the final L2 normalisation (a sum of squares overflows fp16
          easily; RESEARCH.md "Export pitfalls"), which stays float32.
    int8  int8 per-channel weights (coremltools.optimize linear quantization), fp16 compute as
          above; activations stay float (Core ML has no int8 activations on most devices).

Inputs and outputs are float32 with a dynamic batch (1..65536).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hetero.devices._errors import one_line
from hetero.export._base import Backend, register_backend
from hetero.export._errors import ExportError
from hetero.export._onnx import INPUT_NAME, OUTPUT_NAME

__all__ = ["CoremlBackend"]

_FP32_OPS = {"pow", "reduce_sum", "sqrt", "maximum", "real_div", "l2_norm"}
_MAX_BATCH = 1 << 16


def _keep_norm_fp32(op: Any) -> bool:
    return op.op_type not in _FP32_OPS


@register_backend("coreml")
class CoremlBackend(Backend):
    """Core ML ML Programs for iOS 16+ / macOS 13+."""

    artifact_name = "model.mlpackage"
    requires = ("coremltools",)
    extra = "coreml"
    tools = ("coremltools",)
    int8_quantizations = ("dynamic",)  # int8 weights; activations stay float

    def _write(self, model: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
               calibration: np.ndarray | None, keep_float: tuple[str, ...] = ()) -> None:
        import coremltools as ct

        example = example[:1]
        try:
            traced = torch.jit.trace(model, example)
            shape = ct.Shape((ct.RangeDim(1, _MAX_BATCH, default=1), *example.shape[1:]))
            mlmodel = ct.convert(
                traced,
                inputs=[ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)],
                outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                convert_to="mlprogram",
                compute_precision=(ct.precision.FLOAT32 if precision == "fp32" else
                                   ct.transform.FP16ComputePrecision(op_selector=_keep_norm_fp32)),
                minimum_deployment_target=ct.target.iOS16,
            )
            if precision == "int8":
                mlmodel = _quantize_weights(mlmodel)
        except Exception as exc:  # coremltools raises many types; all mean "won't convert"
            raise ExportError(f"coremltools could not convert the model ({one_line(exc, 300)}); "
                              "use layers from search_spaces, which convert cleanly") from None
        mlmodel.save(str(path))


def _quantize_weights(mlmodel: Any) -> Any:
    import coremltools.optimize as cto

    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel",
        # Edge models are small: quantize every weight, not only tensors over 2048 elements.
        weight_threshold=0,
    ))
    return cto.coreml.linear_quantize_weights(mlmodel, config)
