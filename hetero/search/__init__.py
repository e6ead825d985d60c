"""Architecture search for compatible edge models (``hetero search``, ``hetero report``).

Optuna drives it: a trial samples an architecture of a search space (and, for ``standalone``,
the training knobs), is scored by its cross mAP on a validation part of the training split and
costed in MACs or measured latency; the device's budgets are Optuna constraints. ``oneshot``
scores subnets of one supernet trained once with the sandwich rule; ``standalone`` trains each
architecture for a few epochs, pruned on intermediate cross mAP. The best architectures under the
budget, and the space's hand-picked default architecture when it is under the budget, are then
fine-tuned (a small second study that also tunes the training knobs); the pick, the best of them
on validation cross mAP that surely beats the default (else the default), is written as
``RUN/best/edge.pt``, ready for ``hetero export``.

Example:
    >>> summary = run_search(cloud, split, load_profile("x86-server"), SearchConfig(trials=50), "runs/s1")
"""

from hetero.search._choice import choose_pick, describe_choice
from hetero.search._config import OBJECTIVES, PRUNERS, SAMPLERS, STRATEGIES, SearchConfig
from hetero.search._cost import BYTES_PER_PARAM, CostModel
from hetero.search._data import SearchData, cloud_training_part, describe_validation, search_parts
from hetero.search._knobs import KNOBS, knobs_of, sample_knobs
from hetero.search._oneshot import evaluate_subnet, load_or_train_supernet, train_supernet
from hetero.search._ranking import describe_ranking, finalist_ranking, kendall_tau
from hetero.search._report import write_report
from hetero.search._results import best_feasible, pareto_front, rates, trial_rows
from hetero.search._run import BEST_DIR, PARETO_FILE, SEARCH_FILE, run_search
from hetero.search._storage import DEFAULT_STUDY, JOURNAL_FILE, fail_dead_trials, open_storage, open_study, run_trials

__all__ = [
    "BEST_DIR",
    "BYTES_PER_PARAM",
    "CostModel",
    "DEFAULT_STUDY",
    "JOURNAL_FILE",
    "KNOBS",
    "OBJECTIVES",
    "PARETO_FILE",
    "PRUNERS",
    "SAMPLERS",
    "SEARCH_FILE",
    "STRATEGIES",
    "SearchConfig",
    "SearchData",
    "best_feasible",
    "choose_pick",
    "cloud_training_part",
    "describe_choice",
    "describe_ranking",
    "describe_validation",
    "evaluate_subnet",
    "fail_dead_trials",
    "finalist_ranking",
    "kendall_tau",
    "knobs_of",
    "load_or_train_supernet",
    "open_storage",
    "open_study",
    "pareto_front",
    "rates",
    "run_search",
    "run_trials",
    "sample_knobs",
    "search_parts",
    "train_supernet",
    "trial_rows",
    "write_report",
]
