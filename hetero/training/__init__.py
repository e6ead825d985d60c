"""Training: the compatibility losses, their configuration and the training loop."""

from hetero.training._checkpoint import TRAINING_CHECKPOINT, EpochCheckpoint
from hetero.training._config import (
    CLOUD_COMMAND_DEFAULTS,
    CLOUD_DEFAULTS,
    EDGE_COMMAND_DEFAULTS,
    EDGE_DEFAULTS,
    LABEL_FREE_TERMS,
    MIN_STEPS,
    TrainConfig,
    training_length,
)
from hetero.training._losses import (
    alignment_loss,
    class_prototypes,
    contrastive_loss,
    cosine_classifier_loss,
    decorrelation_loss,
    focal_distillation_loss,
    influence_loss,
    structure_loss,
)
from hetero.training._qat import quantization_aware_finetune
from hetero.training._trainer import (
    CloudTargets,
    dense_labels,
    loss_terms,
    one_cycle,
    random_shift,
    run_epochs,
    train_embedding,
)
from hetero.training._views import TrainViews, ViewBatch

__all__ = [
    "quantization_aware_finetune",
    "TrainConfig",
    "CLOUD_DEFAULTS",
    "EDGE_DEFAULTS",
    "CLOUD_COMMAND_DEFAULTS",
    "EDGE_COMMAND_DEFAULTS",
    "MIN_STEPS",
    "LABEL_FREE_TERMS",
    "training_length",
    "TrainViews",
    "ViewBatch",
    "structure_loss",
    "decorrelation_loss",
    "CloudTargets",
    "EpochCheckpoint",
    "TRAINING_CHECKPOINT",
    "train_embedding",
    "run_epochs",
    "dense_labels",
    "loss_terms",
    "one_cycle",
    "random_shift",
    "influence_loss",
    "alignment_loss",
    "contrastive_loss",
    "cosine_classifier_loss",
    "focal_distillation_loss",
    "class_prototypes",
]
