"""Architecture search spaces: sample an architecture, build it, train its weight-sharing supernet.

This package needs torch only; it never imports ``hetero``, ``export`` or ``devices``.

Example:
    >>> space = get_space("mobilenet_v3")
    >>> arch = space.default_arch()
    >>> model = space.build(arch, embed_dim=64, in_channels=1)   # [N, 1, R, R] -> [N, 64]
"""

from hetero.search_spaces._arch_io import load_arch, save_arch
from hetero.search_spaces._cloud_pruned import CloudPrunedSpace, scaled_resolutions
from hetero.search_spaces._errors import ArchError
from hetero.search_spaces._layers import ConvBNAct, GlobalAvgPool, HardSigmoid, HardSwish, L2Norm, SqueezeExcite, Stage
from hetero.search_spaces._mobilenet_v3 import MobileNetV3Space
from hetero.search_spaces._network import EmbeddingNet
from hetero.search_spaces._registry import EDGE_DEFAULT_SPACE, default_edge_arch, get_space, list_spaces, register_space
from hetero.search_spaces._resnet import ResNetSpace
from hetero.search_spaces._space import Arch, SearchSpace
from hetero.search_spaces._supernet import Supernet, recalibrate_bn

__all__ = [
    "EDGE_DEFAULT_SPACE",
    "Arch",
    "ArchError",
    "CloudPrunedSpace",
    "ConvBNAct",
    "EmbeddingNet",
    "GlobalAvgPool",
    "HardSigmoid",
    "HardSwish",
    "L2Norm",
    "MobileNetV3Space",
    "ResNetSpace",
    "SearchSpace",
    "SqueezeExcite",
    "Stage",
    "Supernet",
    "default_edge_arch",
    "get_space",
    "list_spaces",
    "load_arch",
    "recalibrate_bn",
    "register_space",
    "save_arch",
    "scaled_resolutions",
]
