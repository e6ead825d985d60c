"""ONNX: torch.onnx's dynamo exporter, one self-contained file, dynamic batch.

fp16 rewrites the graph's float tensors to float16 (``_onnx_fp16``) and int8 quantizes it
statically (QDQ, per-channel weights) with onnxruntime, calibrated on real images; both keep
float32 inputs and outputs so callers never care about the precision. The exporter's per-node
debugging metadata (stack traces, scopes) is left out of the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hetero.devices._errors import one_line
from hetero.export._base import Backend, register_backend
from hetero.export._base import dynamic_batch as dynamic_batch_spec
from hetero.export._errors import ExportError
from hetero.export._onnx_layers import onnx_layer_outputs, onnx_layer_weight_counts
from hetero.export._onnx_precision import convert_to_fp16, quantization_notes, quantize_int8

__all__ = ["OnnxBackend", "export_onnx"]

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path,
                dynamic_batch: bool = True) -> None:
    """Export ``model`` to a single ONNX file at ``path`` (not atomically: callers wrap it).

    Args:
        model: The model, on the CPU, in eval mode.
        example: An input ``[N, C, H, W]``.
        path: Output file.
        dynamic_batch: Make the batch dimension symbolic (``"batch"``); else fix it to N.
    """
    dynamic_shapes = None
    if dynamic_batch:
        example, dynamic_shapes = dynamic_batch_spec(example)
    try:
        program = torch.onnx.export(
            model, (example,), None, dynamo=True, external_data=False, verbose=False,
            dynamic_shapes=dynamic_shapes, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        )
    except Exception as exc:  # the exporter raises many types; all mean "this model won't export"
        raise ExportError(f"torch.onnx could not export the model ({one_line(exc, 300)}); use layers from "
                          "search_spaces, which export cleanly") from None
    assert program is not None  # with dynamo=True the exporter returns the program (None: TorchScript path)
    # The exporter's per-node debugging metadata (stack traces, FX node names, scopes) is about 40%
    # of a small model's file and records paths of the exporting machine: drop it before saving.
    for node in program.model.graph.all_nodes():
        node.metadata_props.clear()
    program.save(str(path), external_data=False)


@register_backend("onnx")
class OnnxBackend(Backend):
    """ONNX for onnxruntime, in fp32, fp16 or int8 (static QDQ)."""

    artifact_name = "model.onnx"
    requires = ("onnx", "onnxscript", "onnxruntime")
    extra = "onnx"
    tools = ("onnx", "onnxscript", "onnxruntime")
    keeps_layers_float = True

    def _write(self, model: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
               calibration: np.ndarray | None, keep_float: tuple[str, ...] = ()) -> None:
        export_onnx(model, example, path)
        if precision == "fp16":
            convert_to_fp16(path)
        elif precision == "int8":
            quantize_int8(path, calibration, keep_float=keep_float)

    def _quantize_static(self, path: Path, calibration: np.ndarray, keep_float: tuple[str, ...],
                         int8_weights: tuple[str, ...] = ()) -> None:
        quantize_int8(path, calibration, keep_float=keep_float, int8_weights=int8_weights)

    def layer_weight_counts(self, float_artifact: str | Path) -> dict[str, int]:
        return onnx_layer_weight_counts(Path(float_artifact))

    def layer_outputs(self, artifact: Path, inputs: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        return onnx_layer_outputs(Path(artifact), inputs)

    def notes(self, artifact: Path) -> dict[str, object]:
        return dict(quantization_notes(Path(artifact)))
