"""Stages: the pipeline's use cases as library functions, shared by the CLI, the demo and the benchmarks.

Each ``hetero X`` command parses its flags, calls a stage here and prints what it returns; the
demo and ``benchmarks/`` call the same stages. Library code never imports :mod:`hetero.cli`.
"""

from hetero.stages._cache import file_sha, run_stage, stage_checkpoint
from hetero.stages._export import export_for_device
from hetero.stages._train import train_cloud_stage, train_edge_stage

__all__ = [
    "export_for_device",
    "file_sha",
    "run_stage",
    "stage_checkpoint",
    "train_cloud_stage",
    "train_edge_stage",
]
