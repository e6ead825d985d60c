"""What a search is asked to do: the strategy, its budgets and its training lengths."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hetero.errors import UserError

__all__ = ["SearchConfig", "STRATEGIES", "OBJECTIVES", "SAMPLERS", "PRUNERS", "DEFAULT_TRIALS", "DEFAULT_MACS"]

#: Trials of a search that neither --trials nor --time-budget sizes.
DEFAULT_TRIALS = 50
#: ``--max-macs`` that sets the budget to the default architecture's MACs (``hetero.search._nets.reference_arch``).
DEFAULT_MACS = "default"

STRATEGIES = ("standalone", "oneshot")
OBJECTIVES = ("macs", "latency")
SAMPLERS = ("auto", "nsga2", "tpe", "random")
PRUNERS = ("median", "hyperband", "none")


@dataclass
class SearchConfig:
    """Settings of one ``hetero search`` run; recorded in the study so a resume must match them.

    Attributes:
        strategy: ``standalone`` (each trial trains its architecture) or ``oneshot`` (trials
            evaluate subnets of one supernet trained once).
        trials: Finished (complete or pruned) trials the study must reach; ``None``:
            :data:`DEFAULT_TRIALS`, or what ``time_budget`` allows.
        space: Name of the search space (``hetero.search_spaces.list_spaces()``).
        resolutions: Input resolutions the space may choose; empty for the space's own.
        objective: The cost to minimise beside maximising cross mAP: ``macs`` or measured
            ``latency`` on the device's runtime.
        max_macs: Overrides the device profile's MACs budget; :data:`DEFAULT_MACS` (``"default"``):
            the MACs of the default architecture the pick competes with, for a pick no costlier than it.
        sampler: ``auto`` (NSGA-II for two objectives, TPE when pruning makes the study
            single-objective), ``nsga2``, ``tpe`` or ``random``.
        pruner: Optuna pruner of standalone trials on intermediate validation cross mAP;
            ``none`` keeps standalone multi-objective (Optuna prunes single-objective studies only).
        epochs: Training epochs of a standalone trial. This and the other lengths, left ``None``,
            come from a number of optimizer steps for the data at hand, or from ``time_budget``
            (``hetero.search._budget``).
        supernet_epochs: Epochs of the oneshot supernet training.
        sandwich_random: Random subnets per supernet step, besides the largest and the smallest.
        bn_images: Training images that re-estimate a subnet's batch-norm statistics, in one
            forward pass. 128 ranks subnets as recalibration on all 1,008 digits training images
            does (Spearman 0.997 over 41 subnets; 256 in four batches of 64: 0.996) in 70% of the time.
        finalists: Best architectures under the budget that the final phase fine-tunes (the
            default architecture joins them when it is under the budget).
        rerank_candidates: Best architectures under the budget (by inherited-weight score) that a
            oneshot search fine-tunes briefly to choose the finalists among (``hetero.search._rerank``);
            0 chooses the finalists by the inherited-weight scores.
        rerank_epochs: Epochs of that short fine-tuning; ``None``: a third of ``final_epochs``.
        final_trials: Trials of the final phase (finalist x training knobs); 0 skips it.
        final_epochs: Training epochs of a final-phase trial and of the reference architecture.
        confidence: How sure a paired bootstrap over the validation queries must be that a
            fine-tuned model beats the default architecture (trained with the default knobs)
            before it replaces the default as the pick; 0 picks the best on validation.
        val_fraction: Share of the training split held out for search decisions.
        batch_size: Training batch size.
        seed: Fixes the split, initialisation and batch order.
        time_budget: Seconds the whole search should take; sets the lengths left ``None``.
    """

    strategy: str = "oneshot"
    trials: int | None = None
    space: str = "mobilenet_v3"
    resolutions: tuple[int, ...] = ()
    objective: str = "macs"
    max_macs: int | str | None = None
    sampler: str = "auto"
    pruner: str = "median"
    epochs: int | None = None
    supernet_epochs: int | None = None
    sandwich_random: int = 2
    bn_images: int = 128
    finalists: int = 3
    rerank_candidates: int = 6
    rerank_epochs: int | None = None
    final_trials: int = 5
    final_epochs: int | None = None
    confidence: float = 0.95
    val_fraction: float = 0.2
    batch_size: int = 64
    seed: int = 0
    time_budget: float | None = None

    def __post_init__(self) -> None:
        self.resolutions = tuple(int(r) for r in self.resolutions)
        for name, allowed in (("strategy", STRATEGIES), ("objective", OBJECTIVES), ("sampler", SAMPLERS), ("pruner", PRUNERS)):
            if getattr(self, name) not in allowed:
                raise UserError(f"--{name} {getattr(self, name)!r} is unknown; use one of {', '.join(allowed)}")
        positive = ("trials", "epochs", "supernet_epochs", "bn_images", "finalists", "final_epochs", "batch_size")
        for name in positive:
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if min(self.final_trials, self.sandwich_random, self.rerank_candidates, self.rerank_epochs or 0) < 0:
            raise UserError("--final-trials, --sandwich-random, --rerank-candidates and --rerank-epochs must be 0 or more")
        if self.time_budget is not None and not self.time_budget > 0:
            raise UserError(f"--time-budget must be a positive duration, got {self.time_budget} s")
        if self.max_macs is not None and self.max_macs != DEFAULT_MACS and not (isinstance(self.max_macs, int) and self.max_macs >= 1):
            raise UserError(f"--max-macs must be a positive number of MACs or {DEFAULT_MACS!r} (the default architecture's), "
                            f"got {self.max_macs!r}")
        if not 0 <= self.confidence < 1:
            raise UserError(f"--confidence must be at least 0 and below 1, got {self.confidence}")
        if not 0.05 <= self.val_fraction <= 0.5:
            raise UserError(f"--val-fraction must be between 0.05 and 0.5, got {self.val_fraction}")

    @property
    def prunes(self) -> bool:
        """Whether trials are pruned on intermediate values (standalone with a pruner)."""
        return self.strategy == "standalone" and self.pruner != "none"

    @property
    def directions(self) -> list[str]:
        """The study's directions: cross mAP, and the cost unless pruning needs one objective."""
        return ["maximize"] if self.prunes else ["maximize", "minimize"]

    def study_key(self) -> dict:
        """The settings a resumed study must share (trial lengths may change between runs)."""
        keys = ("strategy", "space", "resolutions", "objective", "max_macs", "pruner", "epochs", "supernet_epochs",
                "sandwich_random", "val_fraction", "batch_size", "seed")
        d = asdict(self)
        return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in keys}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["resolutions"] = list(self.resolutions)
        return d
