"""The outputs of an ONNX model's compute layers, as onnxruntime computes them.

A float model gets every layer output added as a graph output and runs once. An int8 (QDQ) model
cannot: a layer output that is also a graph output stops onnxruntime from fusing the layer into
its integer kernel, and the figure would describe a float emulation instead of the arithmetic the
artifact really runs (on an AVX2-only CPU the two differ by the very saturation this report must
show). So each layer's requantized output (the DequantizeLinear after its QuantizeLinear) is read
from the model cut just after that layer, every layer before it fused as deployed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # onnx is an optional extra: imported where it is used
    import onnx

__all__ = ["LAYER_OPS", "layer_nodes", "onnx_layer_outputs"]

#: The ops a user recognises as layers: what the drift report lists and the fallback keeps float.
LAYER_OPS = ("Conv", "Gemm", "MatMul")
_BATCH = 64
#: Activations onnxruntime's quantizer fuses into the convolution before it (ReLU, ReLU6 as Clip).
_FUSED = ("Relu", "Clip")


def layer_nodes(model: onnx.ModelProto) -> list[tuple[str, str, list[str]]]:
    """``[(layer name, op, [node names])]`` in graph order.

    A layer is a compute node (convolution, linear) with the elementwise nodes that follow it up
    to the next compute node (activation, squeeze-excite product, residual sum), as a person
    reads "a layer": the fallback keeps them in float together, since keeping only the
    convolution would leave its activations quantized around it. A layer is named by the tensor
    it hands on: a convolution followed only by a ReLU by the ReLU's output, as onnxruntime's
    quantizer fuses the two (so the float and the int8 model name the layer alike).
    """
    consumers = _consumers(model)
    layers: list[tuple[str, str, list[str]]] = []
    leading: list[str] = []  # nodes before the first compute node join the first layer
    for node in model.graph.node:
        if node.op_type not in LAYER_OPS:
            (layers[-1][2] if layers else leading).append(node.name)
            continue
        following = consumers.get(node.output[0], [])
        name = following[0].output[0] if len(following) == 1 and following[0].op_type in _FUSED else node.output[0]
        layers.append((name, node.op_type, leading + [node.name]))
        leading = []
    return layers


def onnx_layer_weight_counts(path: Path) -> dict[str, int]:
    """``{layer: number of weights in its initializers}`` for the float ONNX at ``path``."""
    import onnx

    model = onnx.load(str(path))
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    nodes = {node.name: node for node in model.graph.node}
    return {layer: sum(sizes.get(name, 0) for node in names if node in nodes and nodes[node].op_type in LAYER_OPS
                       for name in nodes[node].input[1:2])
            for layer, _, names in layer_nodes(model)}


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def onnx_layer_outputs(path: Path, inputs: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
    """``{layer output tensor: (op, [N, ...] float32)}`` in graph order (see the module doc)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    consumers = _consumers(model)
    layers = [(name, op) for name, op, _ in layer_nodes(model)]
    quantized = any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    if not quantized:
        del model.graph.output[:]
        model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name, _ in layers)
        values = _run(model, inputs)
        return {name: (op, value) for (name, op), value in zip(layers, values)}
    out: dict[str, tuple[str, np.ndarray]] = {}
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model))
    input_name = model.graph.input[0].name
    for name, op in layers:
        target = _requantized(name, consumers)
        cut = extractor.extract_model([input_name], [target])
        cut.metadata_props.clear()
        (value,) = _run(cut, inputs)
        out[name] = (op, value)
    return out


def _requantized(name: str, consumers: dict[str, list]) -> str:
    """The tensor that carries ``name``'s value into the next layer: its DequantizeLinear output
    when the layer's output is requantized, else the float output itself."""
    for q in consumers.get(name, []):
        if q.op_type == "QuantizeLinear":
            for dq in consumers.get(q.output[0], []):
                if dq.op_type == "DequantizeLinear":
                    return dq.output[0]
    return name


def _run(model: onnx.ModelProto, inputs: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batches = [session.run(None, {name: inputs[i:i + _BATCH]}) for i in range(0, len(inputs), _BATCH)]
    return [np.concatenate([b[k] for b in batches]).astype(np.float32) for k in range(len(batches[0]))]
