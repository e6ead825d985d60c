"""numpy implementations of the Core ML MIL ops that hetero's models convert to.

Each op takes the MIL input names as keyword arguments. Float16 inputs arrive as float32 and the
interpreter rounds each op's output to the dtype the program declares, which reproduces fp16
storage between ops (the dominant fp16 error) while computing in fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hetero.devices._errors import ArtifactError
from hetero.devices._registry import Registry

__all__ = ["CONSTEXPR_OPS", "OPS"]

#: The MIL ops this interpreter evaluates, by their MIL name (unknown ones are refused at load).
OPS: Registry[Callable[..., Any]] = Registry("Core ML op", ArtifactError)
_op = OPS.register
#: Compile-time ops: evaluated once when the model is loaded.
CONSTEXPR_OPS: Registry[Callable[..., Any]] = Registry("Core ML compile-time op", ArtifactError)


# Annotated as plain callables: numpy ufuncs and lambdas share the loops below.
_BINARY: dict[str, Callable[..., Any]] = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide,
           "floor_div": np.floor_divide, "pow": np.power, "maximum": np.maximum,
           "minimum": np.minimum}
_UNARY: dict[str, Callable[..., Any]] = {"identity": lambda x: x, "relu": lambda x: np.maximum(x, 0),
          "relu6": lambda x: np.clip(x, 0, 6), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
          "silu": lambda x: x / (1 + np.exp(-x)), "tanh": np.tanh, "sqrt": np.sqrt,
          "square": np.square, "abs": np.abs, "exp": np.exp, "ceil": np.ceil}
_REDUCE: dict[str, Callable[..., Any]] = {"reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max,
           "reduce_min": np.min}
for _name, _fn in _BINARY.items():
    OPS.add(_name, lambda x, y, _fn=_fn: _fn(x, y))
for _name, _fn in _UNARY.items():
    OPS.add(_name, lambda x, _fn=_fn: _fn(x))
for _name, _fn in _REDUCE.items():
    OPS.add(_name, lambda x, axes=None, keep_dims=False, _fn=_fn: _fn(
        x, axis=None if axes is None else tuple(int(a) for a in np.atleast_1d(axes)),
        keepdims=bool(keep_dims)))


@_op("rsqrt")
def _rsqrt(x: np.ndarray, epsilon: float = 1e-12) -> np.ndarray:
    return 1 / np.sqrt(x + epsilon)


@_op("inverse")
def _inverse(x: np.ndarray, epsilon: float = 1e-4) -> np.ndarray:
    return 1 / (x + epsilon)


@_op("clip")
def _clip(x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    return np.minimum(np.maximum(x, alpha), beta)


@_op("sigmoid_hard")
def _sigmoid_hard(x: np.ndarray, alpha: float = 0.2, beta: float = 0.5) -> np.ndarray:
    return np.clip(alpha * x + beta, 0, 1)


@_op("cast")
def _cast(x: np.ndarray, dtype: str) -> np.ndarray:
    return x  # the interpreter casts every output to the dtype the program declares


@_op("linear")
def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    y = x @ weight.T
    return y if bias is None else y + bias


@_op("matmul")
def _matmul(x: np.ndarray, y: np.ndarray, transpose_x: bool = False,
            transpose_y: bool = False) -> np.ndarray:
    if transpose_x:
        x = np.swapaxes(x, -1, -2)
    if transpose_y:
        y = np.swapaxes(y, -1, -2)
    return x @ y


@_op("batch_norm")
def _batch_norm(x: np.ndarray, mean: np.ndarray, variance: np.ndarray, gamma: Any = None,
                beta: Any = None, epsilon: float = 1e-5) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)  # statistics are per channel, axis 1
    y = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + epsilon)
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    return y


@_op("l2_norm")
def _l2_norm(x: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    # MIL normalises over the last three dimensions.
    axes = tuple(range(x.ndim - 3, x.ndim))
    return x / np.sqrt(np.sum(x * x, axis=axes, keepdims=True) + epsilon)


def _padding(size: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
             dilations: tuple[int, ...], pad_type: str, pad: Any) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dimension, as MIL's pad_type defines it."""
    if pad_type == "custom":
        pad = [int(p) for p in np.ravel(pad)]
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(len(size))]
    if pad_type == "valid":
        return [(0, 0)] * len(size)
    if pad_type not in ("same", "same_lower"):
        raise ValueError(f"pad_type {pad_type!r} is not supported")
    pads = []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, large = total // 2, total - total // 2
        pads.append((large, small) if pad_type == "same_lower" else (small, large))
    return pads


def _windows(x: np.ndarray, kernel: tuple[int, int], strides: Any, dilations: Any, pad_type: str,
             pad: Any, value: float = 0.0) -> np.ndarray:
    """Sliding windows ``[N, C, OH, OW, KH, KW]`` of a padded ``[N, C, H, W]`` input."""
    if x.ndim != 4:
        raise ValueError(f"only 2-D convolution and pooling are supported, got rank {x.ndim}")
    strides = tuple(int(s) for s in np.ravel(strides if strides is not None else (1, 1)))
    dilations = tuple(int(d) for d in np.ravel(dilations if dilations is not None else (1, 1)))
    pads = _padding(x.shape[2:], kernel, strides, dilations, pad_type, pad)
    x = np.pad(x, [(0, 0), (0, 0)] + pads, constant_values=value)
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    win = sliding_window_view(x, span, axis=(2, 3))
    return win[:, :, ::strides[0], ::strides[1], ::dilations[0], ::dilations[1]]


@_op("conv")
def _conv(x: np.ndarray, weight: np.ndarray, bias: Any = None, strides: Any = None,
          pad_type: str = "valid", pad: Any = None, dilations: Any = None,
          groups: int = 1) -> np.ndarray:
    groups = int(groups)
    out_ch, in_per_group, kh, kw = weight.shape
    win = _windows(x, (kh, kw), strides, dilations, pad_type, pad)
    n, _, oh, ow = win.shape[:4]
    win = win.reshape(n, groups, in_per_group, oh, ow, kh, kw)
    w = weight.reshape(groups, out_ch // groups, in_per_group, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", win, w, optimize=True).reshape(n, out_ch, oh, ow)
    return y if bias is None else y + np.reshape(bias, (1, -1, 1, 1))


@_op("avg_pool")
def _avg_pool(x: np.ndarray, kernel_sizes: Any, strides: Any = None, pad_type: str = "valid",
              pad: Any = None, exclude_padding_from_average: bool = False,
              ceil_mode: bool = False) -> np.ndarray:
    if ceil_mode:
        raise ValueError("avg_pool with ceil_mode is not supported")
    kh, kw = (int(k) for k in np.ravel(kernel_sizes))
    kernel = (kh, kw)
    sums = _windows(x, kernel, strides, None, pad_type, pad).sum(axis=(-1, -2))
    if not exclude_padding_from_average:
        return sums / (kernel[0] * kernel[1])
    counts = _windows(np.ones_like(x[:1, :1]), kernel, strides, None, pad_type, pad).sum(axis=(-1, -2))
    return sums / counts


@_op("reshape")
def _reshape(x: np.ndarray, shape: Any) -> np.ndarray:
    shape = [x.shape[i] if int(d) == 0 else int(d) for i, d in enumerate(np.ravel(shape))]
    return x.reshape(shape)


@_op("squeeze")
def _squeeze(x: np.ndarray, axes: Any = None) -> np.ndarray:
    return np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in np.ravel(axes)))


@_op("expand_dims")
def _expand_dims(x: np.ndarray, axes: Any) -> np.ndarray:
    return np.expand_dims(x, tuple(int(a) for a in np.ravel(axes)))


@_op("transpose")
def _transpose(x: np.ndarray, perm: Any) -> np.ndarray:
    return np.transpose(x, [int(p) for p in np.ravel(perm)])


@_op("flatten2d")
def _flatten2d(x: np.ndarray, axis: int = 1) -> np.ndarray:
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@_op("concat")
def _concat(values: list[np.ndarray], axis: int, interleave: bool = False) -> np.ndarray:
    if interleave:
        raise ValueError("concat with interleave is not supported")
    return np.concatenate([np.atleast_1d(v) for v in values], axis=int(axis))


@_op("shape")
def _shape(x: np.ndarray) -> np.ndarray:
    return np.array(x.shape, dtype=np.int32)


@_op("gather")
def _gather(x: np.ndarray, indices: Any, axis: int = 0, batch_dims: int = 0,
            validate_indices: bool = False) -> np.ndarray:
    if batch_dims:
        raise ValueError("gather with batch_dims is not supported")
    return np.take(x, np.asarray(indices).astype(np.int64), axis=int(axis))


@_op("slice_by_index")
def _slice_by_index(x: np.ndarray, begin: Any, end: Any, stride: Any = None,
                    begin_mask: Any = None, end_mask: Any = None,
                    squeeze_mask: Any = None) -> np.ndarray:
    rank = x.ndim
    stride = np.ones(rank, int) if stride is None else np.ravel(stride)
    begin_mask = np.zeros(rank, bool) if begin_mask is None else np.ravel(begin_mask)
    end_mask = np.zeros(rank, bool) if end_mask is None else np.ravel(end_mask)
    index = tuple(slice(None if bm else int(b), None if em else int(e), int(s))
                  for b, e, s, bm, em in zip(np.ravel(begin), np.ravel(end), stride, begin_mask,
                                             end_mask))
    y = x[index]
    if squeeze_mask is not None and np.any(squeeze_mask):
        y = np.squeeze(y, axis=tuple(int(i) for i in np.flatnonzero(np.ravel(squeeze_mask))))
    return y


def _along(values: Any, axis: int, rank: int) -> Any:
    # Per-channel parameters are 1-D along `axis`; scalars broadcast as they are.
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 1:
        return values
    shape = [1] * rank
    shape[axis] = -1
    return values.reshape(shape)


@CONSTEXPR_OPS.register("constexpr_affine_dequantize")
def _affine_dequantize(quantized_data: np.ndarray, zero_point: Any, scale: Any,
                       axis: int) -> np.ndarray:
    rank = quantized_data.ndim
    q = quantized_data.astype(np.float32)
    return (q - _along(zero_point, int(axis), rank)) * _along(scale, int(axis), rank)


@CONSTEXPR_OPS.register("constexpr_blockwise_shift_scale")
def _blockwise_shift_scale(data: np.ndarray, scale: np.ndarray, offset: Any = None) -> np.ndarray:
    # Each scale entry covers a block of data; repeat it up to the data's shape.
    def expand(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        for axis, (n, m) in enumerate(zip(data.shape, values.shape)):
            values = np.repeat(values, n // m, axis=axis)
        return values

    q = data.astype(np.float32)
    if offset is not None:
        q = q - expand(offset)
    return q * expand(scale)


@CONSTEXPR_OPS.register("constexpr_cast")
def _constexpr_cast(source_val: np.ndarray, output_dtype: str) -> np.ndarray:
    return source_val  # cast to the declared output dtype by the interpreter

