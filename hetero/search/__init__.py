"""Architecture search for compatible edge models (``hetero search``, ``hetero report``).

Optuna drives it: a trial samples an architecture of a search space (and, for ``standalone``,
the training knobs), is scored by its cross mAP on a validation part of the training split and
costed in MACs or measured latency; the device's budgets are Optuna constraints. ``oneshot``
scores subnets of one supernet trained once with the sandwich rule; ``standalone`` trains each
architecture for a few epochs, pruned on intermediate cross mAP. The best architectures under the
budget, and the space's hand-picked default architecture when it is under the budget, are then
fine-tuned (a small second study that also tunes the training knobs; a ``cloud_pruned`` search
competes with mobilenet_v3's default, what ``hetero train`` builds); the pick, the best of them
on validation cross mAP that surely beats the default (else the default), is written as
``RUN/best/edge.pt``, ready for ``hetero export``.

Example:
    >>> summary = run_search(cloud, split, load_profile("x86-server"), SearchConfig(trials=50), "runs/s1")
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as mypy sees them; at run time __getattr__ imports each on first use
    from hetero.search._choice import choose_pick, describe_choice, describe_test_gain, reference_label, test_gain  # noqa: F401
    from hetero.search._config import OBJECTIVES, PRUNERS, SAMPLERS, STRATEGIES, SearchConfig  # noqa: F401
    from hetero.search._cost import BYTES_PER_PARAM, CostModel  # noqa: F401
    from hetero.search._data import SearchData, cloud_training_part, describe_validation, search_parts  # noqa: F401
    from hetero.search._knobs import KNOBS, knobs_of, sample_knobs  # noqa: F401
    from hetero.search._oneshot import evaluate_subnet, load_or_train_supernet, train_supernet  # noqa: F401
    from hetero.search._ranking import describe_ranking, finalist_ranking, kendall_tau, kendall_tau_interval  # noqa: F401
    from hetero.search._report import write_report  # noqa: F401
    from hetero.search._rerank import describe_rerank, rerank_line  # noqa: F401
    from hetero.search._results import best_feasible, pareto_front, rates, trial_rows  # noqa: F401
    from hetero.search._run import BEST_DIR, PARETO_FILE, SEARCH_FILE, run_search  # noqa: F401
    from hetero.search._storage import DEFAULT_STUDY, JOURNAL_FILE, fail_dead_trials, open_storage, open_study, run_trials  # noqa: F401

#: Where each public name lives. The package imports a module only when one of its names is first
#: used: optuna (the [search] extra) is then needed for the search itself, not for the CLI's flags or
#: SearchConfig, so `hetero demo` runs where only the demo's extras are installed.
_WHERE: dict[str, str] = {
    "choose_pick": "_choice",
    "describe_choice": "_choice",
    "describe_test_gain": "_choice",
    "test_gain": "_choice",
    "reference_label": "_choice",
    "OBJECTIVES": "_config",
    "PRUNERS": "_config",
    "SAMPLERS": "_config",
    "STRATEGIES": "_config",
    "SearchConfig": "_config",
    "BYTES_PER_PARAM": "_cost",
    "CostModel": "_cost",
    "SearchData": "_data",
    "cloud_training_part": "_data",
    "describe_validation": "_data",
    "search_parts": "_data",
    "KNOBS": "_knobs",
    "knobs_of": "_knobs",
    "sample_knobs": "_knobs",
    "evaluate_subnet": "_oneshot",
    "load_or_train_supernet": "_oneshot",
    "train_supernet": "_oneshot",
    "describe_ranking": "_ranking",
    "finalist_ranking": "_ranking",
    "kendall_tau": "_ranking",
    "kendall_tau_interval": "_ranking",
    "write_report": "_report",
    "describe_rerank": "_rerank",
    "rerank_line": "_rerank",
    "best_feasible": "_results",
    "pareto_front": "_results",
    "rates": "_results",
    "trial_rows": "_results",
    "BEST_DIR": "_run",
    "PARETO_FILE": "_run",
    "SEARCH_FILE": "_run",
    "run_search": "_run",
    "DEFAULT_STUDY": "_storage",
    "JOURNAL_FILE": "_storage",
    "fail_dead_trials": "_storage",
    "open_storage": "_storage",
    "open_study": "_storage",
    "run_trials": "_storage",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
