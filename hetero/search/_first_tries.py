"""A sampler that hands out given parameter sets first, each until a trial has finished with it.

The final phase tries every finalist with its own knobs before it samples any. Enqueuing those
first tries as Optuna ``WAITING`` trials up front loses one on a kill: the killed trial's retry
(see ``hetero.search._storage``) is queued *behind* the first tries still waiting, so with fewer
final trials than that queue the retry never runs, the finalist the kill interrupted is never
fine-tuned, and its epoch checkpoint is abandoned. This sampler keeps the first tries out of
Optuna's queue: a new trial takes the first one that no trial has finished, is running or is
waiting with, so Optuna's queue holds only retries, and a retry always runs first. A first try
whose trial failed (interrupted by Ctrl-C, for instance) is handed out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["FirstTriesSampler", "pending_first_tries"]

#: Trial states that hold a first try: done, being done, or queued to be done (a retry).
_TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def _params_of(trial: FrozenTrial) -> dict[str, Any]:
    """What the trial ran or will run: its parameters, or the fixed ones of an enqueued trial."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def _holds(trial: FrozenTrial, params: dict[str, Any]) -> bool:
    """Whether ``trial`` runs ``params``; a running trial still suggesting matches on what it has drawn."""
    drawn = _params_of(trial)
    if trial.state in (TrialState.RUNNING, TrialState.WAITING):
        return bool(drawn) and all(params.get(k) == v for k, v in drawn.items())
    return all(drawn.get(k) == v for k, v in params.items())


def pending_first_tries(trials: Sequence[FrozenTrial], first: Sequence[dict[str, Any]], exclude: int | None = None) -> list[dict]:
    """The first tries no trial (other than number ``exclude``) holds, in their given order."""
    holders = [t for t in trials if t.state in _TAKEN and t.number != exclude]
    return [p for p in first if not any(_holds(t, p) for t in holders)]


class FirstTriesSampler(optuna.samplers.BaseSampler):
    """Give each new trial the first pending parameter set of ``first``; then defer to ``base``.

    Args:
        base: The sampler of every trial once the first tries are taken.
        first: Complete parameter sets (every parameter the objective suggests), tried in order.
    """

    def __init__(self, base: optuna.samplers.BaseSampler, first: Sequence[dict[str, Any]]) -> None:
        self._base = base
        self._first = [dict(p) for p in first]
        self._assigned: dict[int, dict[str, Any]] = {}

    def reseed_rng(self) -> None:
        self._base.reseed_rng()

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        if _params_of(trial):  # a retry or an enqueued trial: Optuna already knows its parameters
            return
        pending = pending_first_tries(study.get_trials(deepcopy=False), self._first, exclude=trial.number)
        if pending:
            self._assigned[trial.number] = pending[0]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial.number in self._assigned:
            return {}
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial.number in self._assigned:
            return {}
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        assigned = self._assigned.get(trial.number)
        if assigned is not None and param_name in assigned:
            return assigned[param_name]
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._assigned.pop(trial.number, None)
        self._base.after_trial(study, trial, state, values)
