"""TFLite (LiteRT): convert with litert-torch, quantize the flatbuffer with ai-edge-quantizer.

Precisions:
    fp32  litert-torch's float model.
    fp16  float16 weights, float32 compute (what "fp16 TFLite" means on CPUs; GPU delegates then
          compute in fp16).
    int8  with calibration images: static full-integer (int8 weights and activations, int8 input);
          without: dynamic-range (int8 weights, activations quantized on the fly).

Both int8 modes keep the final L2 normalisation and the output in float: a unit-norm embedding
quantized to int8 loses about 1% cosine for nothing, as the norm costs a handful of operations.

Activation ranges are the min/max over *all* calibration images. ai-edge-quantizer's own merge of
successive calibration batches is a moving average, which settles on a typical batch's range and
clips the rarer, stronger activations: on an Omniglot edge model that cost cos_min 0.46.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hetero.devices._errors import one_line
from hetero.devices.manifest import atomic_write_bytes
from hetero.export._base import Backend, calibration_key, describe_ops, dynamic_batch, register_backend
from hetero.export._errors import ExportError

__all__ = ["TfliteBackend"]

# Ops left in float by int8: the L2 norm's and the output's.
_FLOAT_OPS = {"ALL_SUPPORTED", "OUTPUT", "SUM", "SQRT", "RSQRT", "DIV", "MAXIMUM"}
_CALIBRATION_BATCH = 32
#: The ops a user recognises as layers: what the drift report lists and the fallback keeps float.
_LAYER_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _to_tflite(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    import litert_torch

    wide, dynamic_shapes = dynamic_batch(example)
    show = litert_torch.config.show_progress
    litert_torch.config.show_progress = False
    try:
        edge_model = litert_torch.convert(model, (wide,), dynamic_shapes=dynamic_shapes)
        edge_model.export(str(path))
    except Exception as exc:  # litert-torch raises many types; all mean "won't convert"
        raise ExportError(f"litert-torch could not convert the model ({one_line(exc, 300)}); use "
                          "layers from search_spaces, which convert cleanly") from None
    finally:
        litert_torch.config.show_progress = show


def _quantize(path: Path, precision: str, calibration: np.ndarray | None,
              keep_float: tuple[str, ...] = (), int8_weights: tuple[str, ...] = ()) -> None:
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    q = quantizer.Quantizer(path.read_bytes())
    calibration_result = None
    if precision == "fp16":
        q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                 num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
    elif calibration is None:
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    else:
        _static_recipe(q)
        groups = _layer_groups(path)
        for kept, tensor in ((layer, t) for layer in keep_float for t in groups.get(layer, [layer])):
            # An op's scope is its output tensor names, each followed by ";"; a later entry wins.
            scope = f"^{re.escape(tensor)};"
            q.update_quantization_recipe(regex=scope, operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                         algorithm_key=AlgorithmName.NO_QUANTIZE)
            for op in _WEIGHTED_OPS if kept in int8_weights else ():
                # Weight-only: the layer computes in float on int8 weights dequantized in front of
                # it, so the file stays near int8's size while activations keep float precision.
                q.add_weight_only_config(regex=scope, operation_name=getattr(qtyping.TFLOperationName, op),
                                         num_bits=8)
        calibration_result = _float_ranges(path, calibration)
    try:
        result = q.quantize(calibration_result, enable_progress_report=False)
    except Exception as exc:
        raise ExportError(f"ai-edge-quantizer could not quantize the model to {precision} "
                          f"({one_line(exc)})") from None
    atomic_write_bytes(path, bytes(result.quantized_model))


#: Ops whose weights the fallback still stores in int8 when it keeps their layer in float.
_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _static_recipe(q: Any) -> None:  # an ai_edge_quantizer.Quantizer (the package has no types)
    """Static int8 (weights and activations) for every op the quantizer has an int8 kernel for."""
    from ai_edge_quantizer import qtyping

    for op in qtyping.TFLOperationName:
        if op.name in _FLOAT_OPS:
            continue
        try:
            q.add_static_config(regex=".*", operation_name=op, activation_num_bits=8, weight_num_bits=8)
        except ValueError:
            pass  # the quantizer has no int8 kernel for this op: it stays float


#: The last float model's calibrated ranges: the fallback quantizes one float model tens of times
#: (once per layer to rank them), and its ranges do not depend on which layers stay float.
_RANGES_CACHE: dict[str, dict[str, dict[str, np.ndarray]]] = {}


def _float_ranges(path: Path, images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Every tensor's min/max on ``images`` under the all-int8 recipe, cached per model and images."""
    from ai_edge_quantizer import quantizer

    model = path.read_bytes()
    key = calibration_key(model, images)
    if key not in _RANGES_CACHE:
        q = quantizer.Quantizer(model)
        _static_recipe(q)
        _RANGES_CACHE.clear()
        _RANGES_CACHE[key] = _calibrate(q, path, images)
    return {tensor: dict(qsv) for tensor, qsv in _RANGES_CACHE[key].items()}  # the quantizer may add keys


def _calibrate(q: Any, path: Path, images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Each tensor's min/max over all ``images``, calibrated a batch at a time (bounded memory).

    Every batch is a calibration run of its own, merged by min/max: within one run the quantizer
    would merge the batches by moving average, which underestimates the ranges (module docstring).
    """
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer.utils.qsv_utils import min_max_update

    signatures = Interpreter(model_path=str(path)).get_signature_list()
    (name, signature), = signatures.items()
    (input_name,) = signature["inputs"]
    ranges: dict[str, dict[str, np.ndarray]] = {}
    for start in range(0, len(images), _CALIBRATION_BATCH):
        batch = {name: [{input_name: images[start:start + _CALIBRATION_BATCH]}]}
        for tensor, qsv in q.calibrate(batch, num_threads=torch.get_num_threads()).items():
            ranges[tensor] = min_max_update(ranges.get(tensor, {}), qsv)
    return ranges


@register_backend("tflite")
class TfliteBackend(Backend):
    """TFLite flatbuffers for LiteRT / tflite-runtime, dynamic batch."""

    artifact_name = "model.tflite"
    requires = ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")
    extra = "tflite"
    tools = ("litert-torch", "ai-edge-quantizer", "ai-edge-litert")
    int8_quantizations = ("static", "dynamic")
    keeps_layers_float = True

    def _write(self, model: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
               calibration: np.ndarray | None, keep_float: tuple[str, ...] = ()) -> None:
        _to_tflite(model, example, path)
        if keep_float and calibration is None:
            raise ExportError("keeping layers in float needs static int8 (calibration images)")
        if precision != "fp32":
            _quantize(path, precision, calibration, keep_float)

    def _quantize_static(self, path: Path, calibration: np.ndarray, keep_float: tuple[str, ...],
                         int8_weights: tuple[str, ...] = ()) -> None:
        _quantize(path, "int8", calibration, keep_float, int8_weights)

    def layer_weight_counts(self, float_artifact: str | Path) -> dict[str, int]:
        return _layer_weight_counts(Path(float_artifact))

    def layer_outputs(self, artifact: Path, inputs: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        return _layer_outputs(Path(artifact), inputs)

    def notes(self, artifact: Path) -> dict[str, object]:
        return dict(_integer_notes(Path(artifact)))


def _layer_groups(path: Path) -> dict[str, list[str]]:
    """``{layer: [output tensor names of its ops]}``: a layer is a convolution or linear op with the
    ops that follow it up to the next one (activation, squeeze-excite product, residual sum), kept
    in float together by the fallback (keeping only the convolution would leave its activations
    quantized around it); ops before the first layer join it."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    graph = model.subgraphs[0]
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for op in graph.operators:
        tensor = graph.tensors[op.outputs[0]].name
        tensor = tensor.decode() if isinstance(tensor, bytes) else tensor
        if fb.opcode_to_name(model, op.opcodeIndex) in _LAYER_OPS:
            current = (current if not groups else []) + [tensor]
            groups[tensor] = current
        else:
            current.append(tensor)
    return groups


def _layer_weight_counts(path: Path) -> dict[str, int]:
    """``{layer: number of weights}`` of a float flatbuffer: the constant inputs of its layer op."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    graph = model.subgraphs[0]
    counts: dict[str, int] = {}
    for op in graph.operators:
        if fb.opcode_to_name(model, op.opcodeIndex) not in _LAYER_OPS:
            continue
        name = graph.tensors[op.outputs[0]].name
        name = name.decode() if isinstance(name, bytes) else name
        weights = [graph.tensors[i] for i in op.inputs[1:2] if i >= 0]
        counts[name] = sum(int(np.prod(t.shape)) for t in weights)
    return counts


def _layer_outputs(path: Path, inputs: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
    """Outputs of the convolutions and linear layers (named by their output tensors, which
    ai-edge-quantizer keeps), int8 values dequantized with each tensor's own scale."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils as fb

    from hetero.devices.runtimes._tflite import _dequantize, _quantize

    model = fb.read_model(str(path))
    graph = model.subgraphs[0]
    layers = [(op.outputs[0], fb.opcode_to_name(model, op.opcodeIndex)) for op in graph.operators
              if fb.opcode_to_name(model, op.opcodeIndex) in _LAYER_OPS]
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": that is the use
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    detail = interpreter.get_input_details()[0]
    # Names and quantization parameters do not change with the batch size: read them once.
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    collected: dict[int, list[np.ndarray]] = {index: [] for index, _ in layers}
    for start in range(0, len(inputs), _CALIBRATION_BATCH):
        x = inputs[start:start + _CALIBRATION_BATCH]
        interpreter.resize_tensor_input(detail["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], _quantize(x, detail))
        interpreter.invoke()
        for index, _ in layers:
            collected[index].append(_dequantize(interpreter.get_tensor(index), tensors[index]))
    return {tensors[index]["name"]: (op, np.concatenate(collected[index])) for index, op in layers}


def _integer_notes(path: Path) -> dict[str, str]:
    """What an int8 flatbuffer computes in integers and what stays float32 (``{}`` if nothing is
    int8), read from the tensor types of the artifact: an op computes in the type of its output."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    graph = model.subgraphs[0]
    types = [fb.type_to_name(t.type) for t in graph.tensors]
    if "INT8" not in types:
        return {}
    int8: collections.Counter[str] = collections.Counter()
    floats: collections.Counter[str] = collections.Counter()
    for op in graph.operators:
        name = fb.opcode_to_name(model, op.opcodeIndex) or "CUSTOM"
        (floats if types[op.outputs[0]] == "FLOAT32" else int8)[name] += 1
    weights = [graph.tensors[op.inputs[1]] for op in graph.operators if len(op.inputs) > 1
               and fb.opcode_to_name(model, op.opcodeIndex) in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    # Layers kept in float by the fallback have float weights without scales: judge the int8 ones.
    weights = [w for w in weights if w.quantization is not None and w.quantization.scale is not None]
    per_channel = all(len(w.quantization.scale) > 1 for w in weights)
    # DEQUANTIZE ops turn stored int8 weights into float for a float op (weight-only layers, which
    # the fallback keeps in float); dynamic range feeds int8 weights to hybrid kernels instead.
    weight_only = floats.get("DEQUANTIZE", 0)
    if int8:
        scheme = (f"full-integer: int8 activations per tensor (min/max over the calibration images), "
                  f"{types[graph.inputs[0]].lower()} input")
        if weight_only:
            scheme += f"; {weight_only} weight tensors of layers kept in float stored int8 (weight-only)"
    elif weight_only:
        scheme = "weight-only: float32 activations and float compute on int8 weights dequantized in front"
    else:
        scheme = "dynamic range: float32 activations"
    return {
        "quantization": f"{scheme}; int8 weights {'per channel' if per_channel else 'per tensor'} (ai-edge-quantizer)",
        "int8_ops": describe_ops(int8),
        "float_ops": describe_ops(floats),
    }
