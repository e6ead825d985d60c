"""Cloud and edge embedding models and their files."""

from hetero.models._cloud import CLOUD_FORMAT, CloudModel, ImportedEmbedder, build_net, import_cloud, load_cloud, save_cloud
from hetero.models._edge import EDGE_FORMAT, EdgeModel, build_edge, load_edge, save_edge
from hetero.models._embedding import EmbeddingModel, l2_normalize_tensor
from hetero.models._files import fingerprint

__all__ = [
    "EmbeddingModel",
    "CloudModel",
    "EdgeModel",
    "ImportedEmbedder",
    "build_net",
    "build_edge",
    "save_cloud",
    "load_cloud",
    "import_cloud",
    "save_edge",
    "load_edge",
    "fingerprint",
    "l2_normalize_tensor",
    "CLOUD_FORMAT",
    "EDGE_FORMAT",
]
