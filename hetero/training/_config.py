"""Training settings as dataclasses: every field is a CLI flag and a knob the search may tune."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["TrainConfig", "CLOUD_DEFAULTS", "EDGE_DEFAULTS"]


@dataclass
class TrainConfig:
    """Optimiser settings and the weights of the loss terms (DESIGN.md, "Compatibility training").

    A weight of 0 switches its term off. Cloud training uses only ``metric`` (the model's own
    cosine-classifier loss); edge training adds the compatibility terms.
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
