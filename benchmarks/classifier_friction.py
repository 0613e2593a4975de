"""What a classifier sees of the friction: its friction landscape after training against CG at one friction.

For every variant of the classifier's training (``--variant NAME KEY=VALUE ...``, keys of ``train``) and every
seed, a classifier is trained from scratch against the CG windows of one potential at one friction (the
pre-trained potential of a dynamic-matching run directory or ``--potential``, at ``--friction``; ``--iterations``
classifier-only iterations: ``train.classifier_warmup = train.iterations``, so neither the potential nor the
friction moves), and its friction landscape is measured as ``benchmarks/friction_gradient.py`` measures a
run's: the mean reward of probe windows simulated at ``--factors`` times that friction, every friction from the
same start frames and noise. The per-walker quadratic fit in log friction (``landscape_fit``) gives the slope,
what the classifier pushes the friction by, and the curvature: negative where the classifier scores every other
friction as more AA-like than the one it was trained against, a bump at its own friction that holds the friction
where it is.

This separates what the friction's learning needs from what the game lets it see: with the same potential and
friction, how strong and how smooth the classifier's friction signal is as a function of the walkers per
iteration (fresh CG windows), the classifier steps per iteration and ``train.classifier_replay`` (earlier batches
trained on again).

    python benchmarks/classifier_friction.py RUN_DIR --friction 4.3 --work-dir cf \\
        --variant w64 walkers=64 --variant w256 walkers=256 --variant replay4 walkers=64 classifier_replay=4 \\
        --seeds 0 1 --out classifier_friction.json --plot classifier_friction.png
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from openmm_dynmatch.config import Config, TrainConfig, apply_overrides, from_dict, load_config, to_dict
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.runs import run_training, stage_path
from friction_gradient import measure  # benchmarks/ is on the path when this script runs
from stages import plan_lanes, run_lanes


def variant_config(base: Config, overrides: dict, friction: float, iterations: int, seed: int) -> Config:
    """The run's configuration with a classifier-only schedule at ``friction`` and the variant's ``train`` keys."""
    data = to_dict(base)
    data["dynamics"]["friction_per_ps"] = float(friction)
    data["train"].update(iterations=int(iterations), classifier_warmup=int(iterations), seed=int(seed),
                         checkpoint_every=int(iterations))
    data = apply_overrides(data, [f"train.{key}={value}" for key, value in overrides.items()])
    return from_dict(Config, data)


def parse_variant(words: list) -> tuple:
    """``NAME KEY=VALUE ...`` -> (name, {key: value}); keys must be fields of ``train``."""
    if not words:
        raise ValueError("--variant needs a name, then KEY=VALUE pairs")
    name, pairs = words[0], {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or key not in TrainConfig.__dataclass_fields__:
            raise ValueError(f"--variant {name}: expected KEY=VALUE with KEY a train option, got {word!r}")
        pairs[key] = value
    return name, pairs


def train_lane(lane: list, run_dir: Path, friction: float, iterations: int, start: Path) -> None:
    """Train the classifiers of one lane (``stages.run_lanes``: its own process, one torch thread), each against
    the potential in ``start``; a finished one is kept, an interrupted one goes on from its checkpoint."""
    torch.set_num_threads(1)
    base = load_config(run_dir / "config.yaml")
    for _, overrides, seed, target in lane:
        if (target / "summary.json").exists():
            continue
        run_training(variant_config(base, dict(overrides), friction, iterations, seed), target,
                     resume=(target / "config.yaml").exists(), progress=False, start_potential=start)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="dynamic-matching run directory: its config.yaml is used, and its "
                                        "pre-trained potential (stage0_<pretrain>.pt) unless --potential")
    parser.add_argument("--friction", type=float, required=True, help="friction of the CG windows, 1/ps")
    parser.add_argument("--potential", default=None, help="potential file of the CG windows (default: the run's "
                                                          "pre-trained potential, stage0_<pretrain>.pt)")
    parser.add_argument("--iterations", type=int, default=60, help="classifier-only iterations per variant")
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME KEY=VALUE",
                        help="a classifier training variant: a name, then train options (repeat for more)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--walkers", type=int, default=512, help="probe windows per friction")
    parser.add_argument("--factors", default="0.7,0.85,1,1.18,1.4", help="probe frictions, multiples of --friction")
    parser.add_argument("--work-dir", default="classifier_friction", help="one run directory per variant and seed "
                                                                          "(reused when finished)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side (one thread each)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)
    if args.friction <= 0 or args.iterations < 1:
        parser.error(f"--friction must be > 0 and --iterations >= 1, got {args.friction} and {args.iterations}")
    try:
        variants = [parse_variant(words) for words in args.variant]
    except ValueError as error:
        parser.error(str(error))
    run_dir, work = Path(args.run_dir), Path(args.work_dir)
    base = load_config(run_dir / "config.yaml")
    potential = Path(args.potential) if args.potential else stage_path(run_dir, 0, base.train.pretrain)
    if not potential.exists():
        parser.error(f"--potential: no potential file {potential}" if args.potential else
                     f"{run_dir} has no pre-trained potential {potential.name}; pass --potential")
    tasks = [(name, tuple(sorted(overrides.items())), seed, work / f"{name}_seed{seed}")
             for name, overrides in variants for seed in args.seeds]
    start = time.perf_counter()
    costs = {task: variant_config(base, dict(task[1]), args.friction, args.iterations, task[2]).train.walkers
             for task in tasks}  # the sampling and the classifier's work grow with the walkers
    run_lanes(train_lane, plan_lanes(costs, max(args.jobs, 1)), run_dir, args.friction, args.iterations, potential)
    trained = time.perf_counter() - start

    factors = sorted({float(f) for f in args.factors.split(",")} | {1.0})
    results = []
    for name, overrides, seed, target in tasks:
        result = measure(target, args.walkers, factors)
        log = np.genfromtxt(target / "log.csv", delimiter=",", names=True)
        last = slice(-10, None)
        result.update(variant=name, overrides=dict(overrides), seed=seed,
                      classifier_auc_last10=float(np.mean(log["classifier_auc"][last])),
                      classifier_seconds_per_iteration=float(np.mean(log["time_classifier_s"])),
                      sampling_seconds_per_iteration=float(np.mean(log["time_sampling_s"])))
        fit = result["landscape_fit"]
        print(f"{name} seed {seed}: slope {fit['slope']:.3f} +- {fit['slope_se']:.3f}, curvature "
              f"{fit['curvature']:.3f} +- {fit['curvature_se']:.3f} per unit log friction; training AUC "
              f"{result['classifier_auc_last10']:.3f}", file=sys.stderr)
        results.append(result)
    document = {"benchmark": "classifier_friction", "run": str(run_dir.name), "potential": potential.name,
                "friction_per_ps": args.friction,
                "iterations": args.iterations, "probe_walkers": args.walkers, "factors": factors,
                "training_wall_s": trained, "wall_s": time.perf_counter() - start, "results": results}
    if args.out:
        write_json(args.out, document)
    if args.plot:
        plot(document, args.plot)
    print(json.dumps({r["variant"] + f"_seed{r['seed']}": r["landscape_fit"] for r in results}, indent=2))
    return document


def plot(document: dict, path) -> None:
    """Every classifier's landscape relative to its reward at the training friction, one colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(dict.fromkeys(r["variant"] for r in document["results"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for result in document["results"]:
        rows = result["landscape"]
        own = min(rows, key=lambda r: abs(math.log(r["friction_per_ps"] / result["friction_per_ps"])))
        k = names.index(result["variant"])
        ax.errorbar([r["friction_per_ps"] for r in rows], [r["reward_mean"] - own["reward_mean"] for r in rows],
                    yerr=[r["difference_to_own_se"] for r in rows], marker="os^Dv"[result["seed"] % 5],
                    color=f"C{k}", capsize=3, lw=1,
                    label=f"{result['variant']} seed {result['seed']} (slope {result['landscape_fit']['slope']:.2f})")
    ax.axvline(document["friction_per_ps"], color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ticks = [document["friction_per_ps"] * f for f in document["factors"]]
    ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("probe friction (1/ps); dotted: the training friction")
    ax.set_ylabel("mean reward - reward at training friction")
    ax.set_title(f"classifiers trained {document['iterations']} iterations against one CG model\n"
                 "(the generator lowers the reward; bars: standard error of the difference)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
