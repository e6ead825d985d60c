"""Training settings as dataclasses: every field is a CLI flag and a knob the search may tune."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from hetero.errors import UserError

__all__ = ["TrainConfig", "CLOUD_DEFAULTS", "EDGE_DEFAULTS"]

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
    augment: bool = True
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

    def __post_init__(self) -> None:
        if self.focal_head not in _FOCAL_HEADS:
            raise UserError(f"--focal-head {self.focal_head!r} is unknown: use {' or '.join(_FOCAL_HEADS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def uses_cloud(self) -> bool:
        return any((self.influence, self.alignment, self.contrastive, self.focal))


CLOUD_DEFAULTS = TrainConfig(epochs=12, lr=3e-3, influence=0.0, alignment=0.0, contrastive=0.0)
EDGE_DEFAULTS = TrainConfig()
