"""Backward-compatible model updates: does a new model's query search the old model's gallery?"""

from hetero.updates._check import UPDATE_GAP_FORMULA, UpdateCheck, check_update, load_model, model_record
from hetero.updates._report import UPDATE_EMBEDDING_FILES, update_markdown, update_report, write_update_report

__all__ = [
    "UpdateCheck",
    "check_update",
    "load_model",
    "model_record",
    "UPDATE_GAP_FORMULA",
    "UPDATE_EMBEDDING_FILES",
    "update_report",
    "update_markdown",
    "write_update_report",
]
