"""How much architecture search does a wall-clock budget buy? (Omniglot, open-set)

Three strategies get the same search budget (--minutes each) on the same cloud model and data:
- random: Optuna's RandomSampler, every trial trained standalone (no pruning);
- standalone: TPE with a median pruner on intermediate validation cross mAP;
- oneshot: the supernet trained with the sandwich rule (its epochs sized to --supernet-share of
  the budget, from two timed steps), then NSGA-II over subnets scored with inherited weights.
Every strategy's pick (best validation cross mAP under --max-macs) is then trained the same way
(--final-epochs; oneshot from its inherited weights), as is the space's hand-picked default
architecture, and all are scored on the test classes. Prints, per strategy: architectures evaluated
and per minute, the pick's MACs, its test cross mAP and how sure a paired bootstrap over the test
queries is that it beats the default; the default's; and the Kendall tau between inherited-weight
and fine-tuned scores of --tau-subnets random subnets of the oneshot supernet.

    python benchmarks/search_efficiency.py [--data omniglot:../shared/data/omniglot] [--minutes 3]

``--space cloud_pruned`` searches pruned copies of the cloud instead (keep ratio x resolution, every
trial starting from the cloud's weights; random and standalone only, as that space has no
supernet), against the same default (mobilenet_v3's) under the same MACs budget.

Run with HETERO_THREADS=1 on a shared CPU: tiny networks on two busy cores run far slower with
two threads each.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: Share of the training classes held out to judge the search (and left out of the cloud's training).
VAL_FRACTION = 0.2
CLOUD_ARCH = {"space": "resnet", "resolution": 28, **{f"s{i}_depth": 1 for i in range(4)},
              **{f"s{i}_width": w for i, w in enumerate((32, 64, 128, 256))}}


def _subset(split, train_classes: int, test_classes: int, seed: int):
    """The first classes of each side (Omniglot keeps its background/evaluation halves apart)."""
    from hetero.data import Split

    rng = np.random.default_rng(seed)
    parts = []
    for part, k in ((split.train, train_classes), (split.test, test_classes)):
        keep = rng.permutation(np.unique(part.labels))[:k]
        parts.append(part.subset(np.isin(part.labels, keep)))
    return Split(parts[0], parts[1], split.protocol, split.seed)


def _cloud(args, split, work: Path):
    """The cloud: ``--cloud``, or one trained (once, cached in --work) on the training classes less the search's validation part."""
    from hetero.models import load_cloud, save_cloud
    from hetero.pipeline import evaluate_cloud, train_cloud
    from hetero.search import cloud_training_part
    from hetero.training import CLOUD_DEFAULTS

    if args.cloud:
        return load_cloud(args.cloud)
    if not (work / "cloud" / "cloud.pt").exists():
        start = time.perf_counter()
        train, holdout, note = cloud_training_part(split, VAL_FRACTION, args.seed)
        print(note, flush=True)
        cloud = train_cloud(train, CLOUD_ARCH, 64, replace(CLOUD_DEFAULTS, epochs=args.cloud_epochs), seed=args.seed)
        cloud.meta.update(split=split.describe(), holdout=holdout, paragon=evaluate_cloud(cloud, split.test))
        save_cloud(cloud, work / "cloud")
        print(f"cloud trained in {time.perf_counter() - start:.0f} s", flush=True)
    return load_cloud(work / "cloud")


def _run_strategy(name: str, args, space, data, costs, base, device) -> dict:
    """One strategy for ``args.minutes`` of wall clock; returns its study, pick and timing."""
    import optuna

    from hetero.search import SearchConfig, best_feasible, trial_rows
    from hetero.search._oneshot import oneshot_objective, train_supernet
    from hetero.search._standalone import standalone_objective

    budget = args.minutes * 60.0
    start = time.perf_counter()
    supernet, epochs = None, None
    if name == "oneshot":
        config = SearchConfig(strategy="oneshot", trials=1, bn_images=args.bn_images, seed=args.seed)
        supernet = space.supernet(data.cloud.embed_dim, data.channels)
        # Size the supernet's epochs from measured steps to use about --supernet-share of the budget.
        if args.supernet_epochs:
            epochs = args.supernet_epochs
        else:
            per_epoch = _epoch_seconds(space, data, base, args, device)
            epochs = max(1, round((budget * args.supernet_share - (time.perf_counter() - start)) / per_epoch))
        cached = Path(args.work) / f"supernet-{args.space}-{epochs}ep-sandwich{args.sandwich_random}-seed{args.supernet_seed}.pt"
        if args.reuse_supernet and cached.exists():
            import torch

            saved = torch.load(cached, weights_only=True)
            supernet.load_state_dict(saved["state"])
            start -= float(saved["seconds"])  # the budget is spent as if it had been trained now
            print(f"  oneshot: supernet {epochs} epochs read from {cached} (trained in {float(saved['seconds']):.0f} s)", flush=True)
        else:
            train_supernet(supernet, data, replace(base, epochs=epochs, batch_size=args.batch_size), args.sandwich_random, device,
                           args.supernet_seed)
            print(f"  oneshot: supernet {epochs} epochs in {time.perf_counter() - start:.0f} s", flush=True)
            if args.reuse_supernet:
                import torch

                from hetero._io import atomic_path

                with atomic_path(cached) as tmp:
                    torch.save({"state": supernet.state_dict(), "seconds": time.perf_counter() - start}, tmp)
        study = optuna.create_study(directions=config.directions, sampler=optuna.samplers.NSGAIISampler(seed=args.seed, population_size=20))
        objective = oneshot_objective(supernet, data, costs, args.bn_images)
    else:
        pruner = "none" if name == "random" else "median"
        config = SearchConfig(strategy="standalone", trials=1, pruner=pruner, epochs=args.trial_epochs, batch_size=args.batch_size, seed=args.seed)
        sampler = optuna.samplers.RandomSampler(seed=args.seed) if name == "random" else optuna.samplers.TPESampler(seed=args.seed)
        pruner_obj = optuna.pruners.NopPruner() if name == "random" else optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        study = optuna.create_study(directions=config.directions, sampler=sampler, pruner=pruner_obj)
        objective = standalone_objective(space, data, costs, config, base, device)
    search_start = time.perf_counter()
    if name == "oneshot" and args.oneshot_trials:  # a set number of trials: the same sequence as a timed run's, whatever the load
        study.optimize(objective, n_trials=args.oneshot_trials)
    else:
        study.optimize(objective, timeout=max(1.0, budget - (search_start - start)))
    seconds = time.perf_counter() - start
    rows = trial_rows(study, space)
    finished = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]
    trained = [r for r in finished if r.get("seconds") and r.get("pruned_because") != "over the device budget"]
    pick = (best_feasible(rows, 1) or [None])[0]
    rerank = None
    if supernet is not None and args.rerank:
        pick, rerank = _rerank(best_feasible(rows, args.rerank), supernet, args, data, base, device)
        seconds = time.perf_counter() - start
    return {"name": name, "seconds": seconds, "rerank": rerank, "evaluated": len(trained), "finished": len(finished),
            "search_seconds": time.perf_counter() - search_start, "per_arch": float(np.mean([r["seconds"] for r in trained])) if trained else None,
            "pick": pick, "supernet": supernet, "supernet_epochs": epochs if supernet is not None else None}


def _rerank(candidates: list[dict], supernet, args, data, base, device) -> tuple[dict, dict]:
    """As `hetero search` chooses among its best candidates (hetero.search._rerank): each fine-tuned
    a third of --final-epochs from its inherited weights with the default knobs (seed + 1000), the
    best of that short fine-tuning picked."""
    from hetero.search import SearchConfig, evaluate_subnet, kendall_tau, knobs_of
    from hetero.search._rerank import RERANK_SEED_OFFSET, rerank_epochs
    from hetero.search._standalone import train_scored

    epochs = rerank_epochs(SearchConfig(strategy="oneshot", final_epochs=args.final_epochs))
    config = replace(base, epochs=epochs, batch_size=args.batch_size, **knobs_of(base))
    start = time.perf_counter()
    scored = []
    for row in candidates:
        evaluate_subnet(supernet, row["arch"], data, args.bn_images)
        _, scores = train_scored(row["arch"], config, data, device, args.seed + RERANK_SEED_OFFSET, net=supernet.extract(row["arch"]))
        scored.append({**row, "search_cross_map": row["cross_map"], "cross_map": scores["cross_map"]})
        print(f"  rerank {len(scored)}/{len(candidates)}: trial {row['number']} ({row['macs']:,} MACs) inherited "
              f"{row['cross_map']:.4f}, after {epochs} epochs {scores['cross_map']:.4f}", flush=True)
    pick = max(scored, key=lambda r: (r["cross_map"], -r["macs"]))
    info = {"candidates": len(scored), "epochs": epochs, "seconds": time.perf_counter() - start,
            "inherited_pick": candidates[0]["number"], "pick": pick["number"],
            "kendall_tau_inherited_vs_rerank": kendall_tau([r["search_cross_map"] for r in scored], [r["cross_map"] for r in scored])}
    return pick, info


def _epoch_seconds(space, data, base, args, device) -> float:
    """Seconds of one supernet epoch, from two sandwich steps timed on a throwaway supernet."""
    import dataclasses

    from hetero.search._oneshot import train_supernet

    idx = np.arange(min(2 * args.batch_size, len(data.fit.labels)))
    t = data.targets
    targets = dataclasses.replace(t, embeddings=t.embeddings[idx], rows=t.rows[idx], teacher_correct=t.teacher_correct[idx])
    one_batch = dataclasses.replace(data, fit=data.fit.subset(idx), targets=targets, _cache={})
    start = time.perf_counter()
    train_supernet(space.supernet(data.cloud.embed_dim, data.channels), one_batch, replace(base, epochs=1, batch_size=args.batch_size),
                   args.sandwich_random, device, args.seed)
    steps = max(1, len(idx) // args.batch_size)
    return (time.perf_counter() - start) / steps * max(1, len(data.fit.labels) // args.batch_size)


def _final(arch, knobs, supernet, args, data, base, device) -> tuple[dict, np.ndarray]:
    """Train ``arch`` for ``--final-epochs`` (from the supernet's weights for oneshot) and test it.

    Returns:
        The test summary and each test query's cross AP (for the paired bootstrap against the default).
    """
    from hetero.metrics import retrieval_metrics
    from hetero.pipeline import evaluate_compat
    from hetero.search import evaluate_subnet
    from hetero.search._standalone import train_scored

    net = None
    if supernet is not None:
        evaluate_subnet(supernet, arch, data, args.bn_images)
        net = supernet.extract(arch)
    config = replace(base, epochs=args.final_epochs, batch_size=args.batch_size, **knobs)
    edge, _ = train_scored(arch, config, data, device, args.seed, net=net)
    test = data.split.test
    labels = test.labels
    ap = retrieval_metrics(edge.embed(test.images), data.cloud.embed(test.images), labels, labels, same_images=True).average_precision
    return evaluate_compat(data.cloud, edge, test).summary(), ap


def _ranking(supernet, args, space, data, costs, base, device) -> dict:
    """Kendall tau between inherited-weight and fine-tuned cross mAP of random subnets.

    ``--tau-subnets`` subnets are drawn (the same draw for a given seed) under the MACs budget
    (``--tau-sample budget``) or anywhere in the space (``space``), scored with inherited weights
    after batch-norm recalibration, then each trained ``--tau-epochs`` from those weights with the
    default knobs (``--tau-seeds`` times, with different batch orders) and scored again on the same
    images: the search's validation part (``--tau-on val``) or the test classes (``test``, 5x more
    images, used for this measurement only). With two or more seeds the tau between two
    fine-tunings of the same subnets is the noise ceiling: no proxy can agree with fine-tuning
    better than fine-tuning agrees with itself.

    With ``--tau-proxy-epochs E ...`` each subnet is also scored after a short fine-tuning of ``E``
    epochs from its inherited weights (a seed of its own, so that its noise is not shared with any
    of the fine-tunings it is compared with): the cheaper proxy a search could rank its best
    candidates by, and its own tau against the fine-tuned scores.

    With ``--tau-reuse`` the recorded row's measurements of the same subnets stand in for training
    them again: its fine-tunings (seeds ``0..n-1``; seeds from ``n`` up to ``--tau-seeds`` are
    trained here) and its proxies (other ``--tau-proxy-epochs`` are trained here; recorded ones are
    kept in the row). Each is the score the same seed would give again on the same machine.
    """
    from hetero.search import evaluate_subnet, kendall_tau, knobs_of
    from hetero.search._standalone import train_scored

    if args.tau_on == "test":  # the same fit part and targets; scored on the test classes instead
        data = data.judged_on(data.split.test)
    rng = np.random.default_rng(args.seed + 7)
    archs: list[dict] = []
    macs: list[int] = []
    for _ in range(200 * args.tau_subnets):
        if len(archs) == args.tau_subnets:
            break
        arch = space.random_arch(rng)
        cost = costs.measure(arch)["macs"]
        if (args.tau_sample == "space" or cost <= args.max_macs) and arch not in archs:
            archs.append(arch)
            macs.append(cost)
    reused = args.tau_reused
    if reused is not None and reused.get("tau_macs") != macs:
        raise SystemExit(f"--tau-reuse {args.tau_reuse}: the recorded row's subnets differ from this run's draw "
                         "(another space, budget or seed); run without --tau-reuse")
    recorded = reused or {}  # no recorded row: every fine-tuning and proxy is trained here
    recorded_proxies = {int(e): p["scores"] for e, p in recorded.get("tau_proxy", {}).items()}
    recorded_runs = recorded.get("tau_fine_tuned", [[] for _ in archs])
    inherited: list[float] = []
    proxies: dict[int, list[float]] = {e: [] for e in sorted({*args.tau_proxy_epochs, *recorded_proxies})}
    tuned: list[list[float]] = []  # per subnet, one score per seed
    config = replace(base, epochs=args.tau_epochs, batch_size=args.batch_size, **knobs_of(base))
    start = time.perf_counter()
    for arch, cost in zip(archs, macs):
        inherited.append(evaluate_subnet(supernet, arch, data, args.bn_images)["cross_map"])
        i = len(tuned)
        # The same subnet from the same supernet, or the recorded fine-tunings are another subnet's.
        if reused is not None and abs(inherited[-1] - reused["tau_inherited"][i]) > 1e-9:
            raise SystemExit(f"--tau-reuse: subnet {i + 1} scores {inherited[-1]:.6f} with inherited weights here and "
                             f"{reused['tau_inherited'][i]:.6f} in the recorded row: another supernet or data; run "
                             "without --tau-reuse")
        weights = supernet.extract(arch)
        for e, scores_of in proxies.items():
            if e in recorded_proxies:
                scores_of.append(recorded_proxies[e][i])
            else:
                _, proxy = train_scored(arch, replace(config, epochs=e), data, device, args.seed + 1000, net=copy.deepcopy(weights))
                scores_of.append(proxy["cross_map"])
        runs = list(recorded_runs[i][:args.tau_seeds])
        runs += [train_scored(arch, config, data, device, args.seed + k, net=copy.deepcopy(weights))[1]["cross_map"]
                 for k in range(len(runs), args.tau_seeds)]
        tuned.append(runs)
        so_far = kendall_tau(inherited, [float(np.mean(r)) for r in tuned]) if len(tuned) > 1 else None
        print(f"  subnet {len(tuned)}/{len(archs)} ({cost:,} MACs, {arch['resolution']} px): inherited "
              f"{inherited[-1]:.4f}, fine-tuned {' / '.join(f'{r:.4f}' for r in runs)}; Kendall tau so far "
              f"{'n/a' if so_far is None else f'{so_far:+.3f}'}"
              + "".join(f"; after {e} epoch(s) {v[-1]:.4f}" for e, v in proxies.items()), flush=True)
    mean = [float(np.mean(r)) for r in tuned]
    # Fine-tuning's agreement with itself: the mean tau over pairs of seeds.
    pairs = [kendall_tau([r[i] for r in tuned], [r[j] for r in tuned]) for i in range(args.tau_seeds) for j in range(i + 1, args.tau_seeds)]
    known = [t for t in pairs if t is not None]
    ceiling = float(np.mean(known)) if known else None
    return {"subnets": len(archs), "kendall_tau": kendall_tau(inherited, mean), "inherited": inherited, "fine_tuned": mean,
            "fine_tuned_runs": tuned, "seed_tau": ceiling, "seconds": time.perf_counter() - start,
            "macs": macs, "proxy": {e: {"scores": v, "kendall_tau": kendall_tau(v, mean)} for e, v in proxies.items()}}


def _reused_fine_tunings(args) -> dict | None:
    """The oneshot row of ``--tau-reuse``'s file measured with these tau settings, or None without it.

    Its fine-tuned and proxy scores stand in for training the subnets again (6 epochs x 2 seeds of
    40 subnets is 80 minutes on 2 cores) when only a proxy or more fine-tuning seeds are new; any
    number of recorded seeds matches. :func:`_ranking` checks the subnets' MACs and each one's
    inherited score against the row's, so they are reused only for the same supernet and subnets.
    Read before minutes of training, so that a wrong file stops the run at once.
    """
    if not args.tau_reuse:
        return None
    from hetero._io import read_json
    from hetero.errors import UserError

    # supernet_seed as _rows writes it: only where it differs from --seed.
    wanted = {"data": _data_name(args.data), "space": args.space, "strategy": "oneshot",
              "supernet_seed": args.supernet_seed if args.supernet_seed != args.seed else None,
              "supernet_epochs": args.supernet_epochs, "tau_subnets": args.tau_subnets, "tau_epochs": args.tau_epochs,
              "tau_sample": args.tau_sample, "tau_on": args.tau_on}
    try:
        rows = read_json(args.tau_reuse)["rows"]
    except (UserError, KeyError, TypeError) as exc:
        raise SystemExit(f"--tau-reuse {args.tau_reuse}: not a results file with rows ({exc}); give benchmarks/results/"
                         "search_efficiency.json or a file this benchmark wrote with --out") from None
    found = [r for r in rows if all(r.get(k) == v for k, v in wanted.items()) and r.get("tau_fine_tuned")]
    if not found:
        raise SystemExit(f"--tau-reuse {args.tau_reuse}: no oneshot row with "
                         f"{', '.join(f'{k} {v}' for k, v in {**wanted, 'supernet_seed': args.supernet_seed}.items() if k != 'strategy')}"
                         "; run without --tau-reuse")
    return found[-1]


def _data_name(spec: str) -> str:
    """A data spec's folder name (``tiny-imagenet-100`` for ``imagefolder:.../tiny-imagenet-100/images``)."""
    parts = [p for p in Path(spec.split(":", 1)[-1]).parts if p not in ("images", "/")]
    return parts[-1] if parts else spec


def _rows(args, split, results, default, default_macs, default_test, default_ap) -> list[dict]:
    """The table as rows: one per strategy and one for the default (benchmarks/tables.py renders them)."""
    from hetero.metrics import probability_better

    common = {"data": _data_name(args.data), "protocol": split.protocol, "space": args.space, "minutes": args.minutes,
              "final_epochs": args.final_epochs, "trial_epochs": args.trial_epochs, "max_macs": args.max_macs,
              "paragon": default_test["paragon"]["map"]}
    rows = []
    for r in results:
        pick, test = r["pick"], r.get("test")
        # A reranked oneshot is its own row (strategy "oneshot+rerank"), beside the plain oneshot's.
        strategy = r["name"] + ("+rerank" if r.get("rerank") else "")
        rows.append({**common, "strategy": strategy, "evaluated": r["evaluated"], "seconds_per_arch": r["per_arch"],
                     "pick": pick["arch"] if pick else None, "pick_macs": pick["macs"] if pick else None,
                     "val_score": pick["cross_map"] if pick else None,
                     "test_cross_map": test["cross_torch"]["map"] if test else None,
                     "p_better_than_default": probability_better(r["test_ap"], default_ap) if test else None,
                     **({"supernet_epochs": r["supernet_epochs"]} if r.get("supernet_epochs") else {}),
                     # Only where it differs from --seed, so rows recorded before --supernet-seed keep their keys.
                     **({"supernet_seed": args.supernet_seed} if r["name"] == "oneshot" and args.supernet_seed != args.seed else {}),
                     **({"rerank": r["rerank"], "seconds": r["seconds"]} if r.get("rerank") else {}),
                     **({"oneshot_trials": args.oneshot_trials} if r["name"] == "oneshot" and args.oneshot_trials else {})})
    rows.append({**common, "strategy": "default", "pick": default, "pick_macs": default_macs,
                 "test_cross_map": default_test["cross_torch"]["map"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"omniglot:{REPO.parent / 'shared' / 'data' / 'omniglot'}")
    parser.add_argument("--minutes", type=float, default=3.0, help="search budget of each strategy (default 3)")
    parser.add_argument("--work", default=str(REPO / "runs" / "search_efficiency"), help="cache for the cloud model")
    parser.add_argument("--train-classes", type=int, default=100, help="training classes used (default 100 of 964)")
    parser.add_argument("--test-classes", type=int, default=100, help="test classes used (default 100 of 659)")
    parser.add_argument("--max-macs", type=int, default=None, help="MACs budget of the pick (default: the default architecture's)")
    parser.add_argument("--space", choices=("mobilenet_v3", "cloud_pruned"), default="mobilenet_v3",
                        help="the space searched (the default architecture compared against is mobilenet_v3's either way)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=None,
                        help="resolutions searched (default: 24 28; cloud_pruned: 16 20 24 28)")
    parser.add_argument("--cloud", default=None, metavar="DIR",
                        help="a cloud model to use (e.g. the imported MobileNetV2 for tiny-imagenet-100); default: train a small ResNet")
    parser.add_argument("--default-resolution", type=int, default=None, metavar="PX",
                        help="resolution of the default architecture compared against (default 28; its MACs set the budget)")
    parser.add_argument("--cloud-epochs", type=int, default=15)
    parser.add_argument("--trial-epochs", type=int, default=2, help="epochs of a standalone trial (default 2)")
    parser.add_argument("--final-epochs", type=int, default=12, help="epochs training each pick and the default (default 12)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sandwich-random", type=int, default=2, help="random subnets per supernet step (default 2)")
    parser.add_argument("--supernet-share", type=float, default=0.7, help="share of oneshot's budget spent training the supernet")
    parser.add_argument("--supernet-epochs", type=int, default=None,
                        help="train the supernet this many epochs instead of sizing it from --supernet-share (the search "
                             "then takes longer than --minutes)")
    parser.add_argument("--strategies", default=None,
                        help="comma-separated subset of random,standalone,oneshot to run (default: all the space allows)")
    parser.add_argument("--bn-images", type=int, default=None, help="images re-estimating a subnet's batch norm (default: hetero search's)")
    parser.add_argument("--tau-subnets", type=int, default=10,
                        help="random subnets under the budget whose inherited and fine-tuned ranks are compared (default 10; 0 skips)")
    parser.add_argument("--tau-epochs", type=int, default=3, help="epochs fine-tuning each of those subnets (default 3)")
    parser.add_argument("--tau-sample", choices=("budget", "space"), default="budget",
                        help="draw those subnets under the MACs budget (default) or anywhere in the space")
    parser.add_argument("--tau-on", choices=("val", "test"), default="val",
                        help="score them on the search's validation part (default) or on the test classes (more images)")
    parser.add_argument("--tau-seeds", type=int, default=1,
                        help="fine-tunings per subnet (2 or more also measure fine-tuning's own seed-to-seed tau)")
    parser.add_argument("--tau-proxy-epochs", type=int, nargs="*", default=[], metavar="E",
                        help="also score each of those subnets after E epochs of fine-tuning from its inherited weights "
                             "and measure that proxy's tau (e.g. 1 2)")
    parser.add_argument("--tau-reuse", default=None, metavar="FILE.json",
                        help="take the subnets' fine-tuned and proxy scores from the matching oneshot row of FILE (e.g. "
                             "benchmarks/results/search_efficiency.json) instead of training them again: to add a "
                             "--tau-proxy-epochs measurement or more --tau-seeds to a recorded run (checked: the same "
                             "subnets and inherited scores)")
    parser.add_argument("--reuse-supernet", action="store_true",
                        help="keep the trained supernet in --work and read it back in a later run of the same settings "
                             "(its training seconds still count against --minutes)")
    parser.add_argument("--oneshot-trials", type=int, default=None, metavar="N",
                        help="oneshot: score exactly N subnets instead of searching for the time left (seeded: the same "
                             "subnets as a timed run that scored N)")
    parser.add_argument("--rerank", type=int, default=0, metavar="K",
                        help="oneshot: fine-tune the best K candidates a third of --final-epochs and pick the best of that, "
                             "as hetero search chooses its finalists (its time is added to the strategy's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supernet-seed", type=int, default=None, metavar="S",
                        help="oneshot: train the supernet with seed S instead of --seed, on the same data, cloud and "
                             "subnets (the supernet's own seed moves the Kendall tau by about +/-0.1)")
    parser.add_argument("--out", default=None, metavar="FILE.json",
                        help="also write the table's rows as JSON (for `python benchmarks/tables.py record search_efficiency FILE`)")
    args = parser.parse_args()
    if args.supernet_seed is None:
        args.supernet_seed = args.seed
    args.tau_reused = _reused_fine_tunings(args)
    # Checked before minutes of loading and training the cloud.
    strategies: tuple[str, ...] = ("random", "standalone") if args.space == "cloud_pruned" else ("random", "standalone", "oneshot")
    if args.strategies:
        asked = tuple(name.strip() for name in args.strategies.split(",") if name.strip())
        unknown = [name for name in asked if name not in strategies]
        if unknown or not asked:
            raise SystemExit(f"--strategies {args.strategies}: {', '.join(unknown) or 'nothing'} not available for space "
                             f"{args.space} (choose from {', '.join(strategies)})")
        strategies = asked
    if args.bn_images is None:
        from hetero.search import SearchConfig

        args.bn_images = SearchConfig().bn_images

    import optuna
    import torch

    from hetero._io import write_json
    from hetero.data import load_split
    from hetero.devices import load_profile
    from hetero.models import load_cloud
    from hetero.runtime import seed_everything
    from hetero.search import CostModel, SearchData, knobs_of
    from hetero.search._nets import net_builder, search_space
    from hetero.search_spaces import get_space
    from hetero.training import EDGE_DEFAULTS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed_everything(args.seed)
    device = torch.device("cpu")
    # A given cloud sets the size the images are loaded at, as `hetero train` does.
    size = load_cloud(args.cloud).input_shape[-1] if args.cloud else None
    split = _subset(load_split(args.data, seed=args.seed, size=size), args.train_classes, args.test_classes, args.seed)
    print(f"data {args.data}: {split.describe()}", flush=True)
    cloud = _cloud(args, split, Path(args.work))
    base = EDGE_DEFAULTS
    data = SearchData.prepare(cloud, split, VAL_FRACTION, args.seed, base.prototype_temperature)
    if args.resolutions is None:
        args.resolutions = [16, 20, 24, 28] if args.space == "cloud_pruned" else [24, 28]
    # The default is trained by `hetero.search`'s own code, which rebuilds it in the space's stock
    # resolutions: refuse another one now rather than after the strategies' minutes.
    stock = get_space("mobilenet_v3").resolutions
    if (args.default_resolution or 28) not in stock:
        raise SystemExit(f"--default-resolution {args.default_resolution} is not one of mobilenet_v3's resolutions "
                         f"{list(stock)} (hetero train's default on larger images is {max(stock)}); pick one of them")
    default_space = get_space("mobilenet_v3", resolutions=(args.default_resolution or 28,))
    space = search_space(args.space, cloud, "standalone", tuple(args.resolutions))
    default_macs = CostModel(default_space, load_profile("x86-server"), "macs", None, cloud.embed_dim,
                             data.channels).measure(default_space.default_arch())["macs"]
    if args.max_macs is None:  # the target: a pick better than the default at no more than its MACs
        args.max_macs = default_macs
    costs = CostModel(space, load_profile("x86-server"), "macs", args.max_macs, cloud.embed_dim, data.channels,
                      build=net_builder(space, cloud, data.channels))
    from hetero.search import describe_validation, kendall_tau_interval

    print(describe_validation(data.validation_check()), flush=True)
    print(f"search data: {data.describe()}; MACs budget {args.max_macs:,}; {args.minutes} min per strategy", flush=True)

    from hetero.metrics import probability_better

    results = []
    for name in strategies:
        result = _run_strategy(name, args, space, data, costs, base, device)
        pick = result["pick"]
        if pick is not None:
            knobs = pick["knobs"] if name != "oneshot" else knobs_of(base)
            result["test"], result["test_ap"] = _final(pick["arch"], knobs, result["supernet"], args, data, base, device)
        results.append(result)
        test = f"; pick {pick['macs']:,} MACs, test cross mAP {result['test']['cross_torch']['map']:.4f}" if pick else ""
        print(f"  {name}: {result['finished']} finished, {result['evaluated']} evaluated in {result['seconds']:.0f} s{test}", flush=True)
    default = default_space.default_arch()
    default_test, default_ap = _final(default, knobs_of(base), None, args, data, base, device)
    print(f"  default: test cross mAP {default_test['cross_torch']['map']:.4f}", flush=True)
    paragon = default_test["paragon"]["map"]

    print(f"\n{args.data} subset, {split.protocol}-set; each strategy {args.minutes} min of search; picks and default trained "
          f"{args.final_epochs} epochs; MACs budget {args.max_macs:,}; paragon test mAP {paragon:.4f}")
    header = (f"{'strategy':<11} {'evaluated':>9} {'per min':>8} {'s/arch':>7} {'pick MACs':>10} {'val score':>9} {'test cross mAP':>14}"
              f" {'P(> default)':>12}")
    print(header + "\n" + "-" * len(header))
    for r in results:
        pick, test = r["pick"], r.get("test")
        per_min = 60.0 * r["evaluated"] / r["search_seconds"] if r["search_seconds"] else 0.0
        print(f"{r['name']:<11} {r['evaluated']:>9} {per_min:>8.2f} {r['per_arch'] or float('nan'):>7.2f} "
              f"{pick['macs'] if pick else 0:>10,} {pick['cross_map'] if pick else float('nan'):>9.4f} "
              f"{test['cross_torch']['map'] if test else float('nan'):>14.4f} "
              f"{probability_better(r['test_ap'], default_ap) if test else float('nan'):>12.3f}")
    print(f"{'default':<11} {'-':>9} {'-':>8} {'-':>7} {default_macs:>10,} {'-':>9} {default_test['cross_torch']['map']:>14.4f}")
    rows = _rows(args, split, results, default, default_macs, default_test, default_ap)
    if args.out:
        write_json(Path(args.out), {"rows": rows})
    oneshot = next((r for r in results if r["name"] == "oneshot"), None)
    if oneshot is None:  # a space without a supernet: no oneshot rate, no ranking of inherited weights
        return
    standalone = [r["per_arch"] for r in results if r["name"] != "oneshot" and r["per_arch"]]
    if oneshot["per_arch"] and standalone:
        print(f"oneshot evaluates an architecture in {oneshot['per_arch']:.2f} s; standalone trains one in "
              f"{np.mean(standalone):.1f} s ({args.trial_epochs} epochs): {np.mean(standalone) / oneshot['per_arch']:.0f}x")
    print("(val score: the strategy's own validation cross mAP - inherited weights for oneshot, "
          f"{args.trial_epochs} epochs of training for the others - so compare the test column; P(> default): paired "
          "bootstrap over the test queries' cross AP, 10,000 resamples)")
    # Last, and printed subnet by subnet: a run stopped in it keeps the table above.
    oneshot_supernet = next(r["supernet"] for r in results if r["name"] == "oneshot")
    ranking = _ranking(oneshot_supernet, args, space, data, costs, base, device) if args.tau_subnets else None
    if ranking is not None:
        tau = ranking["kendall_tau"]
        where = "under the budget" if args.tau_sample == "budget" else "of the whole space"
        scored = "validation" if args.tau_on == "val" else "test-class"
        print(f"Kendall tau, inherited-weight vs fine-tuned ({args.tau_epochs} epochs, {args.tau_seeds} seed(s)) {scored} "
              f"cross mAP of {ranking['subnets']} random subnets {where}: {'n/a' if tau is None else f'{tau:+.3f}'} "
              f"({ranking['seconds']:.0f} s)")
        interval = kendall_tau_interval(ranking["inherited"], ranking["fine_tuned"])
        if interval is not None:
            print(f"  95% interval over the subnets (bootstrap): {interval[0]:+.2f} to {interval[1]:+.2f}")
        if ranking["seed_tau"] is not None:
            print(f"Kendall tau between two fine-tunings (different seeds) of the same subnets, mean over pairs of the "
                  f"{args.tau_seeds} seeds: {ranking['seed_tau']:+.3f} (fine-tuning's agreement with itself)")
        for e, proxy in ranking["proxy"].items():
            t = proxy["kendall_tau"]
            print(f"Kendall tau, {e}-epoch fine-tuning from inherited weights vs fine-tuned: {'n/a' if t is None else f'{t:+.3f}'}")
        if args.out:
            for row in rows:
                if row["strategy"] == "oneshot":
                    row.update(kendall_tau=tau, tau_subnets=ranking["subnets"], tau_epochs=args.tau_epochs,
                               tau_sample=args.tau_sample, tau_on=args.tau_on, tau_seeds=args.tau_seeds,
                               tau_seed_ceiling=ranking["seed_tau"], tau_macs=ranking["macs"],
                               tau_inherited=ranking["inherited"], tau_fine_tuned=ranking["fine_tuned_runs"])
                    if ranking["proxy"]:
                        row.update(tau_proxy={str(e): p for e, p in ranking["proxy"].items()})
            write_json(Path(args.out), {"rows": rows})


if __name__ == "__main__":
    main()
