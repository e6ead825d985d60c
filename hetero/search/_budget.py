"""How long each phase of a search trains: lengths in optimizer steps, and ``--time-budget``.

Epoch counts cost in proportion to the data: 20 supernet epochs take minutes on the 1,008 digits
images and hours on a 15,000-image folder. So a length left unset is a number of optimizer steps
(:data:`DEFAULT_STEPS`, what the former epoch defaults gave on digits), turned into epochs for the
data at hand (:func:`resolve_lengths`).

With ``--time-budget`` the lengths left unset are derived from measured costs instead
(:func:`plan_budget`): a few supernet steps, a subnet's evaluation and a training step of the
default architecture are timed on this machine first, then the budget is shared between the
supernet (or the standalone trials), the oneshot trials and the final phase. The plan is kept in
``RUN/plan.json`` so that a resumed run uses the same lengths (the study records them) whatever a
new measurement would say.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from dataclasses import dataclass, replace

from hetero.errors import UserError
from hetero.search._config import SearchConfig

__all__ = ["DEFAULT_STEPS", "SHARES", "PhaseCosts", "TrialPace", "adapted_trials", "adapted_final_epochs", "fine_tunings", "parse_duration", "plan_budget",
           "resolve_lengths", "steps_per_epoch"]

#: Optimizer steps of a phase whose length is not given: the former epoch defaults on digits
#: (about 13 steps per epoch: 20 supernet epochs, 3 per standalone trial, 20 per fine-tuning).
DEFAULT_STEPS = {"supernet_epochs": 260, "epochs": 40, "final_epochs": 260}
#: Shares of a time budget: the supernet or the standalone trials, the oneshot trials, the final phase.
SHARES = {"supernet": 0.45, "trials": 0.10, "final": 0.45}
#: The part of the budget planned; the rest absorbs what is not measured (loading data, timing the costs).
PLANNED = 0.85
#: The fewest trials a budget leaves a oneshot search.
MIN_TRIALS = 10
#: The fewest a budget leaves a standalone search, whose trials each train a network.
MIN_STANDALONE_TRIALS = 4
#: Fewer fine-tuning epochs than this and the final phase runs fewer trials instead.
MIN_FINAL_EPOCHS = 3
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``2h``, ``1h30m``, ``90s`` or a bare number of minutes.

    Raises:
        UserError: The text is no positive duration.
    """
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        seconds = float(s) * 60
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", s)
        if not parts or "".join(n + u for n, u in parts) != s:
            raise UserError(f"--time-budget {text!r} is not a duration; write e.g. 30m, 2h, 1h30m or 90s")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 60:
        raise UserError(f"--time-budget {text!r} is under a minute; give at least 1m")
    return seconds


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over ``n`` items (the trainer drops a last partial batch)."""
    return max(1, n // batch_size)


def resolve_lengths(config, n_fit: int):
    """``config`` with each length left ``None`` set from :data:`DEFAULT_STEPS` for ``n_fit`` images."""
    per_epoch = steps_per_epoch(n_fit, config.batch_size)
    unset = {k: max(1, round(steps / per_epoch)) for k, steps in DEFAULT_STEPS.items() if getattr(config, k) is None}
    return replace(config, **unset)


@dataclass(frozen=True)
class PhaseCosts:
    """Seconds measured on this machine, the inputs of a plan.

    Attributes:
        supernet_step: One sandwich step (every subnet of it forward and backward).
        trial: One oneshot trial (batch-norm recalibration and validation scoring of a subnet).
        train_step: One training step of the default architecture.
        val_pass: Scoring a network on the validation images (after every training epoch).
        steps_per_epoch: Optimizer steps per epoch on the training part.
        test_figures: The test figures of the pick and of the default architecture, written once
            the fine-tuning ends (the whole test split embedded and ranked: 141 s on full
            Omniglot, 30 s on tiny-imagenet-100, one core of the Intel Xeon).
        reference_epoch: One epoch of the reference's training where it is not also a final trial
            (its architecture from another space, as a cloud_pruned search's is, or over the
            budget); 0 where the default architecture's first final trial reuses it.
    """

    supernet_step: float
    trial: float
    train_step: float
    val_pass: float
    steps_per_epoch: int
    test_figures: float = 0.0
    reference_epoch: float = 0.0

    @property
    def train_epoch(self) -> float:
        return self.train_step * self.steps_per_epoch + self.val_pass


def plan_budget(config: SearchConfig, seconds: float, costs: PhaseCosts) -> tuple[SearchConfig, dict]:
    """The lengths left ``None`` in ``config`` that make the search take about ``seconds``.

    Returns:
        The config with every length set, and the plan: each phase's planned seconds and lengths.
    """
    # The test figures come last and cannot be shortened: the phases share what they leave.
    budget = max(seconds * PLANNED - costs.test_figures, seconds * PLANNED / 2)
    plan: dict = {"test_s": costs.test_figures, "budget_s": seconds, "costs": costs.__dict__ | {"train_epoch": costs.train_epoch}}
    given = {k: getattr(config, k) for k in ("trials", "supernet_epochs", "epochs", "final_epochs", "final_trials")}
    out = dict(given)
    final_share = SHARES["final"] if config.final_trials else 0.0
    if config.strategy == "oneshot":
        search_share = 1.0 - final_share
        supernet_s = budget * search_share * SHARES["supernet"] / (SHARES["supernet"] + SHARES["trials"])
        if out["supernet_epochs"] is None:
            out["supernet_epochs"] = max(1, int(supernet_s / (costs.supernet_step * costs.steps_per_epoch)))
        spent = out["supernet_epochs"] * costs.supernet_step * costs.steps_per_epoch
        if out["trials"] is None:
            out["trials"] = max(MIN_TRIALS, int((budget * search_share - spent) / costs.trial))
            plan["adapt_trials"] = True  # the trials' bookkeeping is not in the measurement: counted again once they run
        plan["supernet_s"] = spent
        plan["trials_s"] = out["trials"] * costs.trial
        out["epochs"] = out["epochs"] or max(1, round(DEFAULT_STEPS["epochs"] / costs.steps_per_epoch))
    else:
        out["epochs"] = out["epochs"] or max(1, round(DEFAULT_STEPS["epochs"] / costs.steps_per_epoch))
        if out["trials"] is None:
            out["trials"] = max(MIN_STANDALONE_TRIALS, int(budget * (1.0 - final_share) / (out["epochs"] * costs.train_epoch)))
            plan["adapt_trials"] = True  # timed on the default architecture: the trials' own pace sets the count
        plan["trials_s"] = out["trials"] * out["epochs"] * costs.train_epoch
        out["supernet_epochs"] = out["supernet_epochs"] or 1
    if config.final_trials:
        final_s = max(budget - plan.get("supernet_s", 0.0) - plan["trials_s"], budget * final_share * 0.5)
        # The default's first final trial reuses the reference (final_trials trainings in all), unless
        # the reference is trained apart (reference_epoch): one training more.
        def epoch_s(final_trials: int) -> float:
            return final_epoch_seconds(fine_tunings(config, final_trials), costs.train_epoch, costs.reference_epoch)

        if out["final_epochs"] is None:
            plan["adapt_final"] = True  # set again from the time left when the final phase starts
            epochs = int(final_s / epoch_s(config.final_trials))
            if epochs < MIN_FINAL_EPOCHS and given["final_trials"] > config.finalists + 1:
                out["final_trials"] = config.finalists + 1  # fewer trials, each long enough to mean something
                epochs = int(final_s / epoch_s(out["final_trials"]))
            out["final_epochs"] = max(1, epochs)
        plan["final_s"] = epoch_s(out["final_trials"]) * out["final_epochs"]
    else:
        out["final_epochs"] = out["final_epochs"] or 1
    plan["lengths"] = out
    plan["planned_s"] = plan.get("supernet_s", 0.0) + plan["trials_s"] + plan.get("final_s", 0.0) + plan["test_s"]
    return replace(config, **out), plan


def fine_tunings(config: SearchConfig, final_trials: int) -> float:
    """The final phase's training in whole fine-tunings: its trials, plus a oneshot search's short
    fine-tunings of the rerank candidates (each a third of one, or ``rerank_epochs`` of its epochs
    where set: counted here as a third too, the fine-tuning's length being what is planned)."""
    rerank = config.rerank_candidates / 3 if config.strategy == "oneshot" and config.rerank_epochs != 0 else 0.0
    return final_trials + rerank


def adapted_trials(finished: int, seconds_per_trial: float, seconds_left: float, final_s: float,
                   fewest: int = MIN_TRIALS) -> int:
    """Trials the study should reach: what is left of the budget, the final phase's part aside, at the rate measured."""
    return max(finished, fewest, finished + int((seconds_left - final_s) / max(seconds_per_trial, 1e-3)))


class TrialPace:
    """Seconds per trial over the last ``window`` trials, the plan's estimate standing in for trials not yet timed.

    The plan times one architecture (the default) before the search; the trials then differ: a
    oneshot trial's bookkeeping is not in that measurement, and a standalone search's trials over
    the device budget end at once while the sampler, as it learns, proposes fewer of them (so
    the first trials' pace is too fast for the later ones). A recent window follows that drift;
    the plan's figure fills the window at first, so that one quick trial does not set the count.

    Args:
        planned_s: The plan's seconds per trial.
        window: How many recent trials the pace is the mean of.
    """

    def __init__(self, planned_s: float, window: int = MIN_TRIALS) -> None:
        self._seconds: deque[float] = deque([planned_s] * window, maxlen=window)
        self._last = time.perf_counter()

    def tick(self) -> None:
        """Record that a trial ended now (its seconds are those since the last tick or the pace's start)."""
        now = time.perf_counter()
        self._seconds.append(now - self._last)
        self._last = now

    @property
    def seconds_per_trial(self) -> float:
        return sum(self._seconds) / len(self._seconds)


def adapted_final_epochs(seconds_left: float, fine_tunings: float, train_epoch: float, slowdown: float,
                         reference_epoch: float = 0.0) -> int:
    """Fine-tuning epochs that fit in ``seconds_left``: ``fine_tunings`` trainings of ``train_epoch`` seconds each epoch
    and the reference's of ``reference_epoch`` (0 where it is a final trial), times ``slowdown`` (how much slower than
    measured the search's training ran)."""
    return max(1, int(seconds_left / (final_epoch_seconds(fine_tunings, train_epoch, reference_epoch) * max(slowdown, 1.0))))


def final_epoch_seconds(fine_tunings: float, train_epoch: float, reference_epoch: float) -> float:
    """Seconds of one epoch of the final phase: its fine-tunings, and the reference where it is trained apart."""
    return fine_tunings * train_epoch + reference_epoch
