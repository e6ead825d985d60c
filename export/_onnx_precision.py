"""Lower the precision of an exported float32 ONNX file in place: float16, or static int8 (QDQ).

Both keep float32 inputs and outputs, and both leave the final L2 normalisation (the nodes from
the first Pow/ReduceSum/Sqrt on) in float32: a sum of squares overflows float16 easily, a unit
vector quantized to int8 loses accuracy for nothing, and the norm costs a handful of operations
(RESEARCH.md, "Export pitfalls").
"""

from __future__ import annotations

import collections
import inspect
import json
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from hetero.export._base import calibration_key, describe_ops
from hetero.export._errors import ExportError
from hetero.export._onnx_layers import layer_nodes

if TYPE_CHECKING:  # onnx is an optional extra: imported where it is used
    import onnx

__all__ = ["convert_to_fp16", "name_nodes", "quantization_notes", "quantize_int8", "u8s8_pair_bound"]

_FP32_FROM = {"Pow", "ReduceSum", "ReduceSumSquare", "Sqrt", "ReduceL2", "LpNormalization"}
_CALIBRATION_BATCH = 8
_RECIPE_KEY = "hetero.quantization"  # metadata_props entry: the recipe travels with the ONNX
_QDQ = ("QuantizeLinear", "DequantizeLinear")

#: Calibrated ranges of the float models quantized in this process, one JSON file per model and
#: calibration set (onnxruntime's own ``calibration_cache_path`` format). The fallback quantizes one
#: float model tens of times (once per layer to rank them, once per candidate); the ranges of every
#: tensor do not depend on which layers stay float, and calibrating was half of each re-quantization.
_RANGES_DIR: tempfile.TemporaryDirectory | None = None


def convert_to_fp16(path: Path) -> None:
    """Convert the ONNX file at ``path`` to float16 compute (onnxconverter-common not needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    float_tensors = {v.name for v in list(graph.input) + list(graph.value_info) + list(graph.output)
                     if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    initializers = {t.name: t for t in graph.initializer}
    float_tensors |= {name for name, t in initializers.items() if t.data_type == TensorProto.FLOAT}
    keep32 = _downstream(graph, _FP32_FROM)

    is16: set[str] = set()  # float tensors that hold float16 after the rewrite
    converted: dict[tuple[str, int], str] = {}
    nodes = []

    def convert(name: str, to: int) -> str:
        key = (name, to)
        if key not in converted:
            suffix = "__fp16" if to == TensorProto.FLOAT16 else "__fp32"
            if name in initializers and to == TensorProto.FLOAT16:
                array = numpy_helper.to_array(initializers[name]).astype(np.float16)
                graph.initializer.append(numpy_helper.from_array(array, name + suffix))
            else:
                nodes.append(helper.make_node("Cast", [name], [name + suffix], to=to,
                                              name=name + suffix + "_cast"))
            converted[key] = name + suffix
        return converted[key]

    for index, node in enumerate(graph.node):
        half = index not in keep32
        for i, name in enumerate(node.input):
            if name in float_tensors and half != (name in is16):
                node.input[i] = convert(name, TensorProto.FLOAT16 if half else TensorProto.FLOAT)
        if half:
            _node_to_fp16(node, numpy_helper)
            is16.update(o for o in node.output if o in float_tensors)
        nodes.append(node)

    for output in graph.output:
        if output.name in is16:  # rename the fp16 producer and cast back under the output's name
            half_name = output.name + "__fp16_out"
            for node in nodes:
                node.output[:] = [half_name if o == output.name else o for o in node.output]
                node.input[:] = [half_name if o == output.name else o for o in node.input]
            nodes.append(helper.make_node("Cast", [half_name], [output.name], to=TensorProto.FLOAT,
                                          name=output.name + "_cast"))
    used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # the types changed; runtimes re-infer them
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _downstream(graph: onnx.GraphProto, op_types: set[str]) -> set[int]:
    """Indices of the nodes of ``op_types`` and of every node that consumes their results."""
    tainted: set[str] = set()
    result: set[int] = set()
    for index, node in enumerate(graph.node):  # ONNX nodes are topologically sorted
        if node.op_type in op_types or any(name in tainted for name in node.input):
            result.add(index)
            tainted.update(node.output)
    return result


def _node_to_fp16(node: onnx.NodeProto, numpy_helper: ModuleType) -> None:
    from onnx import TensorProto

    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
            attr.i = TensorProto.FLOAT16
        elif attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
            attr.t.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))


def quantize_int8(path: Path, calibration: np.ndarray | None, symmetric: bool = False,
                  keep_float: tuple[str, ...] = (), int8_weights: tuple[str, ...] = ()) -> None:
    """Quantize the ONNX file at ``path`` statically: QDQ, per-channel int8 weights, activations
    calibrated (min/max) on ``calibration``, real preprocessed images.

    For onnxruntime on CPUs (``symmetric`` off) the recipe is chosen so that no x86 CPU can
    saturate: onnxruntime multiplies uint8 activations by int8 weights (U8S8), and on x86 without
    AVX-512 VNNI its kernels add each pair of products into a *saturating* 16-bit lane
    (``vpmaddubsw``): 255 x 127 x 2 = 64770 > 32767, which cost the demo's int8 artifact cos_min
    0.58 on an AVX2-only EPYC. Weights of regular convolutions and of linear layers are therefore
    quantized to 7 bits ([-64, 64]: 255 x 64 x 2 = 32640, onnxruntime's documented
    ``reduce_range``), and depthwise convolutions, whose MLAS kernels widen to 16 bits before
    multiplying and cannot saturate, get the full 8 bits back (they hold a few weights per channel
    and are the layers that need them most). U8U8 avoids the saturation too, at 5x the latency on
    a VNNI CPU. The choice is recorded in the file (see :func:`quantization_notes`) and
    :func:`u8s8_pair_bound` checks it on any CPU.

    Args:
        path: ONNX file, rewritten.
        calibration: Images ``[M, C, H, W]``.
        symmetric: int8 activations with zero point 0 and full 8-bit weights, as TensorRT
            requires (TensorRT runs on GPUs, which do not saturate); otherwise the CPU recipe above.
        keep_float: layers whose activations stay in float (the accuracy-controlled fallback),
            named by their output tensors as :func:`hetero.export._onnx_layers.onnx_layer_outputs` names
            them.
        int8_weights: layers of ``keep_float`` whose weights are still stored in int8
            (weight-only: full 8 bits per output channel, dequantized in front of a float
            convolution; a float kernel cannot saturate), so the file stays near int8's size.

    Raises:
        ExportError: No calibration images were given.
    """
    import onnx
    from onnxruntime import quantization as q

    if calibration is None or len(calibration) == 0:
        raise ExportError("int8 ONNX export needs calibration images: pass real images, "
                          "preprocessed like the queries (a few hundred are plenty)")
    images: np.ndarray = calibration  # named again: the reader below closes over the checked array
    cache = _ranges_cache(q, path, images)
    model = onnx.load(str(path))
    name_nodes(model)
    from onnx import numpy_helper

    # Copied now: quantize_static moves the model's initializers out to a temporary file.
    float_weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keep = [model.graph.node[i].name for i in sorted(_downstream(model.graph, _FP32_FROM))]
    layers = layer_nodes(model)
    keep += [node for layer, _, nodes in layers if layer in keep_float for node in nodes]
    weight_only = {node for layer, _, nodes in layers if layer in keep_float and layer in int8_weights
                   for node in nodes}
    input_name = model.graph.input[0].name

    class _Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(range(0, len(images), _CALIBRATION_BATCH))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._batches, None)
            if start is None:
                return None
            return {input_name: images[start:start + _CALIBRATION_BATCH]}

    q.quantize_static(
        model, str(path), _Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
        activation_type=q.QuantType.QInt8 if symmetric else q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8, nodes_to_exclude=keep,
        calibrate_method=q.CalibrationMethod.MinMax, reduce_range=not symmetric,
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True}, **cache,
    )
    quantized = onnx.load(str(path))
    widened = 0 if symmetric else _full_range_depthwise(quantized, float_weights)
    stored = _weight_only_int8(quantized, weight_only)
    recipe = {
        "scheme": "static QDQ (onnxruntime.quantization)",
        "weights": ("int8, per channel, symmetric" if symmetric else
                    f"int8 per channel, symmetric: 7-bit range [-64, 64] for convolutions and linear layers, "
                    f"full 8 bits for {widened} depthwise convolutions"),
        "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
        "calibration": f"min/max over {len(calibration)} real images",
        "cpu_safety": ("for TensorRT (GPU): not checked for x86 saturation" if symmetric else
                       "u8 x s8 pair sums <= 2 x 255 x 64 = 32640: no saturation on x86 without VNNI "
                       "(AVX2, AVX-512), exact on VNNI, AMX and ARM"),
    }
    if keep_float:
        recipe["kept_float"] = (f"{len(keep_float)} layers compute in float (the manifest's int8_fallback names "
                                f"them); {stored} of their weight tensors stored int8 (weight-only, 8 bits "
                                "per output channel)")
    entry = quantized.metadata_props.add()
    entry.key, entry.value = _RECIPE_KEY, json.dumps(recipe)
    onnx.save(quantized, str(path))


def _ranges_cache(q: ModuleType, path: Path, images: np.ndarray) -> dict[str, str]:
    """``quantize_static``'s keyword for the ranges of this float model on these images, or ``{}``.

    The first quantization of a model calibrates and writes the file; the next ones read it.
    onnxruntime before ``calibration_cache_path`` existed calibrates every time (same result).
    """
    global _RANGES_DIR
    if "calibration_cache_path" not in inspect.signature(q.quantize_static).parameters:
        return {}
    if _RANGES_DIR is None:
        _RANGES_DIR = tempfile.TemporaryDirectory(prefix="hetero-onnx-ranges-")  # removed at exit
    key = calibration_key(path.read_bytes(), images)
    return {"calibration_cache_path": str(Path(_RANGES_DIR.name) / f"{key}.json")}


def _weight_only_int8(model: onnx.ModelProto, nodes: set[str]) -> int:
    """Store the float weights of the convolutions and linear layers named in ``nodes`` as int8
    with a per-output-channel scale and a DequantizeLinear in front: the layer still computes in
    float (no integer kernel, so the full 8 bits are safe on every CPU), and the file shrinks to
    about what all-int8 weighs. Returns how many weight tensors were stored int8."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    uses = collections.Counter(name for n in model.graph.node for name in n.input)
    stored, new_nodes = 0, []
    for node in model.graph.node:
        if node.name in nodes and node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1:
            name = node.input[1]
            init = inits.get(name)
            if init is not None and init.data_type == TensorProto.FLOAT and uses[name] == 1:
                weight = numpy_helper.to_array(init).astype(np.float64)
                axis = _output_axis(node, weight.ndim)
                if axis is not None:
                    q_weight, scale = _int8_per_channel(weight, axis)
                    init.CopyFrom(numpy_helper.from_array(q_weight, name + "_int8"))
                    model.graph.initializer.extend([
                        numpy_helper.from_array(scale.astype(np.float32), name + "_int8_scale"),
                        numpy_helper.from_array(np.zeros(len(scale), np.int8), name + "_int8_zero_point"),
                    ])
                    new_nodes.append(helper.make_node(
                        "DequantizeLinear", [name + "_int8", name + "_int8_scale", name + "_int8_zero_point"],
                        [name], name=name + "_DequantizeLinear", axis=axis))
                    stored += 1
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return stored


def _int8_per_channel(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric full-range int8 ([-127, 127]) with one scale per index of ``axis``."""
    moved = np.moveaxis(weight, axis, 0)
    scale = np.abs(moved).reshape(len(moved), -1).max(1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    shape = [1] * weight.ndim
    shape[axis] = -1
    return np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8), scale


def _output_axis(node: onnx.NodeProto, ndim: int) -> int | None:
    """The axis of a weight that indexes the layer's outputs (its per-channel axis)."""
    if node.op_type == "Conv":
        return 0
    if ndim != 2:
        return None
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 1  # MatMul: x @ W, W is [in, out]


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every node a name (exclusion and drift reports go by name, and names may be empty)."""
    for index, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{index}"


def _is_depthwise(node: onnx.NodeProto, weight_shape: tuple[int, ...]) -> bool:
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return node.op_type == "Conv" and group > 1 and len(weight_shape) == 4 and weight_shape[1] == 1


def _full_range_depthwise(model: onnx.ModelProto, float_weights: dict[str, np.ndarray]) -> int:
    """Requantize the weights (and int32 biases) of depthwise convolutions to the full int8 range
    [-127, 127] from the float weights; returns how many were widened."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    producer = {out: n for n in model.graph.node for out in n.output}
    widened = 0
    for node in model.graph.node:
        w_dq = producer.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if w_dq is None or w_dq.op_type != "DequantizeLinear" or w_dq.input[0] not in inits:
            continue
        original = float_weights.get(w_dq.input[0].removesuffix("_quantized"))
        quantized = numpy_helper.to_array(inits[w_dq.input[0]])
        if original is None or not _is_depthwise(node, quantized.shape):
            continue
        weight = original.astype(np.float64)
        q_weight, scale = _int8_per_channel(weight, 0)
        inits[w_dq.input[0]].CopyFrom(numpy_helper.from_array(q_weight, w_dq.input[0]))
        inits[w_dq.input[1]].CopyFrom(numpy_helper.from_array(scale.astype(np.float32), w_dq.input[1]))
        b_dq = producer.get(node.input[2]) if len(node.input) > 2 else None
        if b_dq is not None and b_dq.op_type == "DequantizeLinear":
            # A QDQ bias is int32 at scale (input scale x weight scale): it follows the new scale.
            x_scale = numpy_helper.to_array(inits[producer[node.input[0]].input[1]]).astype(np.float64)
            bias = float_weights[b_dq.input[0].removesuffix("_quantized")].astype(np.float64)
            b_scale = x_scale * scale
            inits[b_dq.input[0]].CopyFrom(numpy_helper.from_array(
                np.round(bias / b_scale).astype(np.int32), b_dq.input[0]))
            inits[b_dq.input[1]].CopyFrom(numpy_helper.from_array(b_scale.astype(np.float32), b_dq.input[1]))
        widened += 1
    return widened


def u8s8_pair_bound(path: Path) -> int:
    """The largest sum of two uint8 x int8 products any integer Conv, Gemm or MatMul of the QDQ
    ONNX at ``path`` can form in onnxruntime's non-VNNI x86 kernels (2 x 255 x max|weight|);
    depthwise convolutions, whose kernels widen to 16 bits first, are left out. Above 32767 the
    artifact can saturate on an AVX2-only CPU. 0 for a model without int8 weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    producer = {out: n for n in model.graph.node for out in n.output}
    bound = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        w_dq = producer.get(node.input[1])
        if w_dq is None or w_dq.op_type != "DequantizeLinear" or w_dq.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[w_dq.input[0]])
        if weight.dtype != np.int8 or _is_depthwise(node, weight.shape):
            continue
        bound = max(bound, 2 * 255 * int(np.abs(weight.astype(np.int32)).max()))
    return bound


def quantization_notes(path: Path) -> dict[str, str]:
    """What a QDQ ONNX computes in int8 and what stays float32, read from the graph itself.

    A node runs in int8 when its inputs come from DequantizeLinear and its results all go to
    QuantizeLinear (onnxruntime fuses that group into an integer kernel); every other node computes
    in float. Returns ``{}`` for a model without quantization.
    """
    import onnx

    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.op_type not in _QDQ]
    if len(nodes) == len(model.graph.node):
        return {}
    producer = {out: n.op_type for n in model.graph.node for out in n.output}
    consumers: dict[str, list[str]] = collections.defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node.op_type)
    int8: collections.Counter[str] = collections.Counter()
    floats: collections.Counter[str] = collections.Counter()
    for node in nodes:
        fed = any(producer.get(name) == "DequantizeLinear" for name in node.input)
        requantized = all(consumers[out] and set(consumers[out]) == {"QuantizeLinear"} for out in node.output)
        (int8 if fed and requantized else floats)[node.op_type] += 1
    props = {p.key: p.value for p in model.metadata_props}
    notes = {"int8_ops": describe_ops(int8), "float_ops": describe_ops(floats)}
    if _RECIPE_KEY in props:
        notes["quantization"] = "; ".join(f"{k} {v}" for k, v in json.loads(props[_RECIPE_KEY]).items())
    return notes
