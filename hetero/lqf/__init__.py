"""LQF (linear quadratic fine-tuning): fine-tune a trained model as its linearisation around its
weights, with leaky ReLUs, a squared loss and K-FAC preconditioning; saved and exported as plain
layers. Importing this package registers the ``lqf`` architecture space (so ``load_edge`` can
rebuild an LQF model)."""

from hetero.lqf._finetune import LQFConfig, as_edge, lqf_finetune
from hetero.lqf._kfac import KFAC
from hetero.lqf._linearize import LinearizedNet, delta_name, leaky_copy, split_norm, tangent_forward
from hetero.lqf._space import LQF_SPACE, LinearizedSpace, lqf_arch

__all__ = [
    "LQFConfig",
    "lqf_finetune",
    "as_edge",
    "KFAC",
    "LinearizedNet",
    "leaky_copy",
    "split_norm",
    "tangent_forward",
    "delta_name",
    "LQF_SPACE",
    "LinearizedSpace",
    "lqf_arch",
]
