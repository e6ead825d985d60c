"""Training settings as dataclasses: every field is a CLI flag and a knob the search may tune."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from hetero.data import AUGMENTS
from hetero.errors import UserError

__all__ = [
    "TrainConfig",
    "CLOUD_DEFAULTS",
    "EDGE_DEFAULTS",
    "CLOUD_COMMAND_DEFAULTS",
    "EDGE_COMMAND_DEFAULTS",
    "MIN_STEPS",
    "LABEL_FREE_TERMS",
    "training_length",
]

#: The commands' floor on optimizer steps: issue 14's 280-image face set got 20 steps from
#: "10 epochs" and every embedding collapsed to one vector; with ~300+ steps it learned.
MIN_STEPS = 600

#: The terms that need no labels, only the cloud's embedding of the same view: the ones
#: ``--unlabeled`` images feed (the trainer joins those images to their batches).
LABEL_FREE_TERMS = ("alignment", "structure", "decorrelation")

#: Where focal distillation reads the trained model's class posterior (see :class:`TrainConfig`).
_FOCAL_HEADS = ("reference", "own")


@dataclass
class TrainConfig:
    """Optimiser settings and the weights of the loss terms (DESIGN.md, "Compatibility training").

    A weight of 0 switches its term off. Cloud training uses only ``metric`` (the model's own
    cosine-classifier loss); edge training adds the compatibility terms. Focal distillation
    compares the class posteriors of the trained model and the reference: either both through the
    reference's classifier (``focal_head="reference"``, which pulls the new embedding towards the
    reference's where the reference is right) or the model's own head against the reference's
    classifier (``"own"``, PCT's form with two classifiers over the same classes).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    min_steps: int = 0
    augment: str = "auto"
    cloud_views: int = 4
    val_fraction: float = 0.0
    metric: float = 1.0
    metric_scale: float = 16.0
    influence: float = 1.0
    alignment: float = 1.0
    alignment_l2: float = 0.0
    contrastive: float = 0.5
    contrastive_temperature: float = 0.05
    prototype_temperature: float = 0.0625
    focal: float = 0.0
    focal_alpha: float = 1.0
    focal_beta: float = 5.0
    focal_temperature: float = 1.0
    focal_head: str = "reference"
    structure: float = 0.0
    structure_temperature: float = 0.1
    decorrelation: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs is None or self.min_steps is None:
            # Flags left unset (see training_length): the floor holds unless epochs were given.
            self.epochs, self.min_steps = training_length(self.epochs, self.min_steps, replace(self, epochs=10, min_steps=MIN_STEPS))
        # Configurations saved before augment named its kind held a bool (random shifts or none).
        if isinstance(self.augment, bool):
            self.augment = "auto" if self.augment else "none"
        if self.augment not in AUGMENTS:
            raise UserError(f"--augment {self.augment!r} is unknown: use one of {', '.join(AUGMENTS)}")
        if self.min_steps < 0 or self.cloud_views < 1:
            raise UserError("--min-steps must be >= 0 and --cloud-views >= 1")
        if not 0.0 <= self.val_fraction < 0.5:
            raise UserError(f"--val-fraction must lie in [0, 0.5), got {self.val_fraction}")
        if self.structure_temperature <= 0:
            raise UserError(f"--structure-temperature must be > 0, got {self.structure_temperature}")
        if self.focal_head not in _FOCAL_HEADS:
            raise UserError(f"--focal-head {self.focal_head!r} is unknown: use {' or '.join(_FOCAL_HEADS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def uses_cloud(self) -> bool:
        return any((self.influence, self.alignment, self.contrastive, self.focal, self.structure, self.decorrelation))

    @property
    def uses_label_free(self) -> bool:
        """Whether a label-free term is on (see :data:`LABEL_FREE_TERMS`): unlabeled images have a use."""
        return any(getattr(self, term) for term in LABEL_FREE_TERMS)

    def steps_per_epoch(self, n: int) -> int:
        """Optimizer steps in one pass over ``n`` training items (a last partial batch is dropped)."""
        return max(1, n // self.batch_size)

    def epochs_for(self, n: int) -> int:
        """Epochs to train on ``n`` items: ``epochs``, or more where that is under ``min_steps`` steps."""
        return max(self.epochs, math.ceil(self.min_steps / self.steps_per_epoch(n)))


# The library's bases (the search's trials and the benchmarks set their own epochs on them)...
CLOUD_DEFAULTS = TrainConfig(epochs=12, lr=3e-3, influence=0.0, alignment=0.0, contrastive=0.0)
EDGE_DEFAULTS = TrainConfig(structure=1.0)
# ...and what `hetero cloud train` and `hetero train` run by default: a floor on steps, and (edge)
# a validation hold-out that keeps the best epoch.
CLOUD_COMMAND_DEFAULTS = replace(CLOUD_DEFAULTS, min_steps=MIN_STEPS)
EDGE_COMMAND_DEFAULTS = replace(EDGE_DEFAULTS, min_steps=MIN_STEPS, val_fraction=0.1)


def training_length(epochs: int | None, min_steps: int | None, defaults: TrainConfig) -> tuple[int, int]:
    """``(epochs, min_steps)`` from a command's ``--epochs`` and ``--min-steps`` (``None``: not given).

    By default the floor holds: ``defaults.epochs``, raised to reach ``defaults.min_steps`` steps.
    An explicit ``--epochs`` is taken as asked (the floor applies then only if ``--min-steps`` is
    given too), so that ``--epochs 1`` is one epoch.
    """
    if min_steps is None:
        min_steps = defaults.min_steps if epochs is None else 0
    return (defaults.epochs if epochs is None else epochs), min_steps

