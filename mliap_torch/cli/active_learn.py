"""``mliap_torch active-learn``: the active-learning loop on the built-in EMT Cu/Cu–Ni system, γ selection
against random selection (:mod:`mliap_torch.uncertainty.active_learning`; docs/uncertainty.md).

For each seed, both strategies run from the same initial set: fit (exact, ``model=snap_quadratic`` by default),
MD with the current model at rising temperature and strain until γ passes ``--gamma-stop``, select
``--per-iteration`` frames (by γ, or at random), label them with EMT, refit. Writes into ``--out``:
``results.json`` (every record), ``labels.md`` (labels needed to reach ``--target`` meV/atom per seed and
strategy) and ``active_learning.png`` (test errors against labelled configurations); prints a line per iteration.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..uncertainty.active_learning import STRATEGIES, ActiveLearningSettings

DEFAULTS = ActiveLearningSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=["gamma", "random"],
                        help="selection strategies (default: gamma random)")
    parser.add_argument("--iterations", type=int, default=d.iterations, help=f"rounds (default {d.iterations})")
    parser.add_argument("--per-iteration", type=int, default=d.per_iteration,
                        help=f"configurations labelled per round (default {d.per_iteration})")
    parser.add_argument("--initial", type=int, default=d.initial,
                        help=f"training-split configurations in the initial set (default {d.initial})")
    parser.add_argument("--gamma-stop", type=float, default=d.gamma_stop,
                        help=f"an MD run stops when its largest atomic γ exceeds this (default {d.gamma_stop:g})")
    parser.add_argument("--md-steps", type=int, default=d.md_steps, help=f"MD steps per run at most (default {d.md_steps})")
    parser.add_argument("--frame-every", type=int, default=d.frame_every,
                        help=f"pool frame every this many MD steps (default {d.frame_every})")
    parser.add_argument("--temperature", type=float, nargs=2, default=list(d.temperature), metavar=("FIRST", "LAST"),
                        help="MD temperature of the first and last round, K (default %(default)s)")
    parser.add_argument("--strain", type=float, nargs=2, default=list(d.strain), metavar=("FIRST", "LAST"),
                        help="strain amplitude of the MD start cells, first and last round (default %(default)s)")
    parser.add_argument("--per-kind", action=argparse.BooleanOptionalAction, default=d.per_kind,
                        help="γ selection spreads its picks over the kinds of MD start structure (default: on)")
    parser.add_argument("--target", type=float, default=3.0, help="test energy MAE to reach, meV/atom (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("outputs/active_learning"), help="output folder")
    parser.add_argument("overrides", nargs="*", default=["model=snap_quadratic"],
                        help="Hydra overrides of the run configuration (default: model=snap_quadratic)")


def main(argv: list[str] | None = None) -> int:
    import torch

    from ..uncertainty.active_learning import labels_table, plot_curves, run_active_learning, setup_from_config

    parser = argparse.ArgumentParser(prog="mliap_torch active-learn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    setup = setup_from_config(args.overrides)
    print(setup.description, flush=True)
    results = []
    for seed in args.seeds:
        for strategy in args.strategies:
            settings = ActiveLearningSettings(
                strategy=strategy, seed=seed, initial=args.initial, iterations=args.iterations,
                per_iteration=args.per_iteration, gamma_stop=args.gamma_stop, md_steps=args.md_steps,
                frame_every=args.frame_every, temperature=tuple(args.temperature), strain=tuple(args.strain),
                per_kind=args.per_kind)
            result = run_active_learning(setup, settings, log=lambda line: print(line, flush=True))
            reached = result.labels_to_reach(args.target)
            print(f"[{strategy} seed {seed}] {result.seconds:.1f} s; labels to reach {args.target:g} meV/atom: "
                  f"{'not reached' if reached is None else reached}", flush=True)
            results.append(result)
    seconds = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    table = labels_table(results, args.target)
    (args.out / "results.json").write_text(json.dumps({
        "setup": setup.description, "target_mev_per_atom": args.target, "seconds": seconds,
        "threads": args.threads, "runs": [r.to_dict() for r in results]}, indent=1))
    (args.out / "labels.md").write_text(table + "\n")
    png = plot_curves(results, args.target, args.out / "active_learning.png",
                      title=f"active learning, {setup.description.split(':')[0]}")
    print(f"\n{table}\n\ntotal {seconds:.0f} s; wrote {args.out / 'results.json'}, {args.out / 'labels.md'}, {png}")
    return 0
