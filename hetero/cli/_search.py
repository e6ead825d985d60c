"""`hetero search`: Optuna architecture search for edge models compatible with the cloud model."""

from __future__ import annotations

import argparse
import textwrap

from hetero.cli._common import COMMANDS, Outcome, add_data_options, add_result_options, print_table, split_from_args

__all__ = ["register", "print_summary"]

_EPILOG = """\
The study lives in RUN/study.journal unless --storage names an Optuna storage URL. Re-running the
same command resumes it: finished trials are kept, trials of a killed run are failed and retried,
a supernet killed while training continues after its last finished epoch (RUN/supernet.partial.pt),
and the command returns once the study holds --trials finished (complete or pruned) trials. Start
the same command on several machines with one --storage postgresql://... to share the trials
(oneshot workers must also share RUN, or a copy of RUN/supernet.pt). Watch it live with
`optuna-dashboard RUN/study.journal` (or the --storage URL).

examples:
  hetero search --cloud runs/cloud --data digits --device x86-server --trials 200 --out runs/s1
  hetero search --cloud runs/cloud --data digits --device pixel-8 --strategy standalone --trials 30 \\
      --max-macs 3000000 --out runs/s2
  hetero report runs/s1
"""


def _max_macs(text: str) -> int | str:
    """``--max-macs``: a number, or a word SearchConfig checks (``default``; anything else is refused there in one line)."""
    text = text.strip()
    return int(text) if text.isdigit() else text.lower()


@COMMANDS.register("search")
def register(sub, common: argparse.ArgumentParser) -> None:
    from hetero.search import OBJECTIVES, PRUNERS, SAMPLERS, STRATEGIES, SearchConfig
    from hetero.search._budget import DEFAULT_STEPS
    from hetero.search._config import DEFAULT_TRIALS

    d = SearchConfig()
    p = sub.add_parser(
        "search",
        parents=[common],
        help="search edge architectures (Optuna) under a device's budgets",
        description=textwrap.fill(
            "Search architectures of a space for an edge model whose embeddings search the cloud model's gallery: "
            "maximise cross mAP (on a held-out part of the training split) and minimise MACs or measured latency, "
            "under the device's budgets. oneshot trains one supernet against the cloud model and scores subnets "
            "with inherited weights; standalone trains each architecture for a few epochs, pruned on intermediate "
            "cross mAP. The best architectures under the budget are fine-tuned (also tuning learning rate, loss "
            "weights and temperature) and the pick is written to RUN/best/edge.pt (ready for hetero export) with "
            "RUN/best/arch.json; RUN/pareto.json lists the Pareto front and RUN/search.json everything else.",
            width=100,
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cloud", required=True, metavar="DIR", help="folder with cloud.pt")
    add_data_options(p)
    p.add_argument("--device", required=True, metavar="NAME", help="device profile (see `hetero devices`) or a .toml path: its budgets constrain the search")
    p.add_argument("--trials", type=int, metavar="N",
                   help=f"finished trials the study must reach (default {DEFAULT_TRIALS}, or what --time-budget allows)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder: study journal, supernet, results, best/")
    g = p.add_argument_group("search")
    g.add_argument("--strategy", choices=STRATEGIES, default=d.strategy,
                   help="oneshot: train one supernet, score subnets with inherited weights (fast); standalone: "
                        f"train every trial's architecture for --epochs (default {d.strategy})")
    g.add_argument("--space", default=d.space, help=f"search space (default {d.space})")
    g.add_argument("--resolutions", type=int, nargs="+", metavar="PX", help="input resolutions the space may choose (default: the space's; cloud_pruned: 5/8 to 8/8 of the cloud's input size)")
    g.add_argument("--objective", choices=OBJECTIVES, default=d.objective,
                   help="cost to minimise: MACs, or p50 latency measured on the device's runtime (default macs)")
    g.add_argument("--max-macs", type=_max_macs, metavar="MACS",
                   help="MACs budget, overriding the device profile's; 'default': the MACs of the default architecture "
                        "the pick competes with (a pick no costlier than what hetero train builds)")
    g.add_argument("--sampler", choices=SAMPLERS, default=d.sampler,
                   help="auto: NSGA-II for two objectives, TPE when pruning makes standalone single-objective (default auto)")
    g.add_argument("--pruner", choices=PRUNERS, default=d.pruner,
                   help="pruner of standalone trials; with a pruner the study maximises cross mAP under the budget "
                        "(Optuna prunes single-objective studies only), none keeps it two-objective (default median)")
    g.add_argument("--storage", metavar="URL", help="Optuna storage: sqlite:///FILE, postgresql://USER@HOST/DB, or a journal file path (default RUN/study.journal)")
    g.add_argument("--study", default="hetero-search", metavar="NAME", help="study name in the storage (default hetero-search)")
    t = p.add_argument_group("training lengths", "a length not given is a number of optimizer steps (epochs scaled to the data), "
                             "or what --time-budget allows")
    t.add_argument("--time-budget", metavar="DURATION",
                   help="how long the whole search should take (30m, 2h, 1h30m, 90s): times a supernet step, a trial and a "
                        "training step here first, then sets the supernet epochs, trials and fine-tuning epochs not given")
    t.add_argument("--epochs", type=int, help=f"epochs of a standalone trial (default: {DEFAULT_STEPS['epochs']} optimizer steps)")
    t.add_argument("--supernet-epochs", type=int,
                   help=f"epochs of the oneshot supernet (default: {DEFAULT_STEPS['supernet_epochs']} optimizer steps)")
    t.add_argument("--sandwich-random", type=int, default=d.sandwich_random,
                   help=f"random subnets per supernet step besides the largest and smallest (default {d.sandwich_random})")
    t.add_argument("--bn-images", type=int, default=d.bn_images, help=f"images re-estimating a subnet's batch norm (default {d.bn_images})")
    t.add_argument("--finalists", type=int, default=d.finalists, help=f"best architectures under budget to fine-tune, plus the default architecture when it is under "
                   f"budget (default {d.finalists})")
    t.add_argument("--rerank-candidates", type=int, default=d.rerank_candidates, metavar="N",
                   help="oneshot: best architectures under budget (by inherited-weight score) fine-tuned briefly to choose the "
                        f"finalists among; 0 chooses by inherited weights alone (default {d.rerank_candidates})")
    t.add_argument("--rerank-epochs", type=int, metavar="N", help="epochs of that short fine-tuning (default: a third of --final-epochs)")
    t.add_argument("--final-trials", type=int, default=d.final_trials,
                   help=f"fine-tuning trials (finalist x knobs); 0 stops after the search (default {d.final_trials})")
    t.add_argument("--final-epochs", type=int,
                   help=f"epochs of fine-tuning and of the reference (default: {DEFAULT_STEPS['final_epochs']} optimizer steps)")
    t.add_argument("--confidence", type=float, default=d.confidence,
                   help="how sure (a paired bootstrap over the validation queries) the search must be that a fine-tuned model beats the "
                        "default architecture trained with the default knobs before it picks that model instead of the default; "
                        f"0 picks the best on validation (default {d.confidence})")
    t.add_argument("--val-fraction", type=float, default=d.val_fraction, help=f"share of the training split held out to score trials (default {d.val_fraction})")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size of all training (default {d.batch_size})")
    add_result_options(p, strict=False)
    p.set_defaults(run=_run, command="search")


#: The summary's sections --json prints: what the text reports (the trial list stays in RUN/search.json).
_JSON_KEYS = ("config", "device", "search", "supernet", "speed", "paragon", "reference", "pick", "no_pick", "pareto")


def _run(args: argparse.Namespace) -> Outcome:
    import warnings

    import optuna

    from hetero.devices import load_profile
    from hetero.models import load_cloud
    from hetero.runtime import resolve_device
    from hetero.search import SearchConfig, run_search
    from hetero.search._budget import parse_duration
    from hetero.search._storage import check_storage

    check_storage(args.storage)  # a typo is refused before the search writes anything

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    config = SearchConfig(
        strategy=args.strategy, trials=args.trials, space=args.space, resolutions=tuple(args.resolutions or ()),
        objective=args.objective, max_macs=args.max_macs, sampler=args.sampler, pruner=args.pruner, epochs=args.epochs,
        supernet_epochs=args.supernet_epochs, sandwich_random=args.sandwich_random, bn_images=args.bn_images,
        finalists=args.finalists, rerank_candidates=args.rerank_candidates, rerank_epochs=args.rerank_epochs,
        final_trials=args.final_trials, final_epochs=args.final_epochs, confidence=args.confidence,
        val_fraction=args.val_fraction, batch_size=args.batch_size, seed=args.seed,
        time_budget=parse_duration(args.time_budget) if args.time_budget is not None else None,
    )
    profile = load_profile(args.device)
    cloud = load_cloud(args.cloud)
    summary = run_search(cloud, split_from_args(args), profile, config, args.out, args.storage, args.study,
                         resolve_device(args.accelerator))
    print_summary(summary, args.out)
    return Outcome({**{k: summary[k] for k in _JSON_KEYS if k in summary}, "folder": args.out})


def print_summary(summary: dict, out: str) -> None:
    """The search's outcome: trial counts, speed, and the test figures of pick, default and paragon."""
    from hetero.search import (
        describe_choice,
        describe_ranking,
        describe_test_gain,
        describe_validation,
        reference_label,
        rerank_line,
    )

    cfg, rates, speed = summary["config"], summary["search"]["rates"], summary.get("speed", {})
    print(f"{cfg['strategy']} search: {rates.get('finished', 0)} finished trials ({rates.get('complete', 0)} complete), "
          f"{summary['search']['trials_here']} run by this process in {summary['search']['seconds_here']:.0f} s; "
          f"Pareto front: {len(summary['pareto'])} architectures")
    if summary.get("validation"):
        print(describe_validation(summary["validation"]))
    if summary.get("plan", {}).get("budget_s"):
        plan = summary["plan"]
        print(f"time budget {plan['budget_s'] / 60:.0f} min: planned {plan['planned_s'] / 60:.1f} min "
              f"({', '.join(f'{k} {v}' for k, v in plan['lengths'].items())}; test figures {plan.get('test_s', 0.0) / 60:.1f} min)")
    if summary.get("supernet", {}).get("seconds"):
        reused = "" if summary["supernet"].get("trained_now") else ", reused from a previous run"
        print(f"supernet: trained in {summary['supernet']['seconds']:.0f} s ({summary['supernet']['epochs']} epochs{reused})")
    if speed.get("oneshot_seconds_per_arch"):
        print(f"oneshot: {speed['oneshot_seconds_per_arch']:.3f} s per architecture evaluated "
              f"({60 / speed['oneshot_seconds_per_arch']:.1f} per minute)")
    if speed.get("standalone_seconds_per_arch"):
        print(f"standalone: {speed['standalone_seconds_per_arch']:.1f} s to train one architecture ({speed['standalone_how']})")
    if speed.get("speedup"):
        print(f"speed-up: oneshot evaluates an architecture {speed['speedup']:.0f}x faster than standalone trains one")
    rows = []
    reference = summary.get("reference")
    for name, entry in (("pick", summary.get("pick")), (reference_label(reference, cfg["space"]), reference)):
        if entry and entry.get("test"):
            t = entry["test"]
            rows.append([name, entry["macs"], entry["params"], entry["val"]["cross_map"], t["cross_torch"]["map"],
                         t["homogeneous_edge"]["map"], t["cross_torch"]["top1"]])
    if rows:
        paragon = summary["paragon"].get("test", {}).get("map")
        print_table(["model", "MACs", "params", "val cross mAP", "test cross mAP", "test homog. mAP", "test cross top-1"], rows)
        if paragon is not None:
            print(f"paragon (cloud -> cloud) test mAP {paragon:.4f}")
    if summary.get("pick"):
        if summary["pick"].get("rerank", {}).get("candidates"):
            print(rerank_line(summary["pick"]["rerank"]))
        if summary["pick"].get("ranking"):
            print(describe_ranking(summary["pick"]["ranking"], cfg["strategy"]))
        print(f"pick: {describe_choice(summary['pick'])}")
        if summary["pick"].get("test_vs_reference"):
            print(describe_test_gain(summary["pick"]["test_vs_reference"], reference_label(reference, cfg["space"])))
        budget = summary["device"]["budgets"]
        print(f"pick under budget {budget}: {summary['pick']['under_budget']}; written to {out}/best/edge.pt and {out}/best/arch.json")
    elif summary.get("no_pick"):
        print(summary["no_pick"])
    print(f"Pareto front in {out}/pareto.json; `hetero report {out}` draws it")
