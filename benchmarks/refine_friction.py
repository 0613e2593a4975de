"""The friction where fresh classifiers stop pushing: a best-response friction for a finished run, found adaptively.

The game's friction can stop far from where a classifier that kept up with the CG would hold it
(``benchmarks/best_response.py``: 6.35/ps against 2.32/ps at one alanine dipeptide seed). This script finds the
second directly for one potential: a classifier trained from scratch against the CG at a friction
(``classifier_friction.py``'s training and probe) gives the slope of its reward in log friction there; the next
friction is chosen from the slopes so far, and a weighted straight line through all of them
(``best_response.zero_crossing``) gives the friction where the slope is zero and its standard error.

The first friction is ``--start`` (default: the run's last friction). After one point the next is a Newton step
with a prior slope per unit log friction (``--prior-curvature``; 0.19 and 0.24 were measured on alanine
dipeptide), at least ``--min-step`` and at most ``--max-step`` in log friction; after two or more it is the line's
zero, kept within ``--max-step`` of the frictions measured (a line that does not rise falls back to the Newton
step from the point of smallest slope). It stops after ``--points`` classifiers, or earlier where the next
friction is within 0.05 in log friction of one already measured. Every classifier's run directory and the points
so far (``points.json``) stay in ``--work-dir``: an interrupted search goes on where it stopped, and one begun
with other settings there (``search.json``: start, seed, classifier iterations, probe, options, potential, step
rule) is refused rather than continued.

A point's standard error counts the probe's noise only. Classifiers of other seeds (``--seed``) trained at the
same friction scatter more: on alanine dipeptide by 0.12 in slope against probe errors of 0.03-0.045, where the
slope rises by about 0.2 per unit log friction (benchmarks/README.md, "One classifier's verdict on the friction
is a random draw"); there one search places the friction to within a factor of about 1.8 only, and searches at
several seeds, pooled by ``best_response.py`` (its ``zero_log_se_scaled``), are needed.

Each point costs one classifier training and one probe (6-11 minutes measured on one thread with 256 walkers,
beside another one-thread job).

    python benchmarks/refine_friction.py RUN_DIR --potential RUN_DIR/potential.pt --work-dir rf \\
        --set walkers=256 classifier_batch=64 --out refine_friction.json --plot refine_friction.png
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from best_response import game_blocks, plot, zero_crossing  # benchmarks/ is on the path when this script runs
from classifier_friction import parse_variant, train_lane
from friction_gradient import measure
from openmm_dynmatch.config import load_config
from openmm_dynmatch.curves import read_log
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.runs import stage_path

SAME_FRICTION = 0.05  # log friction: a proposal this close to a measured friction adds nothing


def newton_step(slope: float, prior_curvature: float, min_step: float, max_step: float) -> float:
    """Step in log friction from a point with reward slope ``slope``: ``-slope / prior_curvature`` (a positive
    slope lowers the friction), its size clipped to ``[min_step, max_step]``."""
    step = -slope / prior_curvature
    size = min(max(abs(step), min_step), max_step)
    return math.copysign(size, step if step != 0 else -1.0)


def next_friction(points: list, prior_curvature: float, min_step: float, max_step: float) -> float:
    """The friction to measure next, from the points so far (dicts with ``friction_per_ps``, ``slope``,
    ``slope_se``); see the module docstring."""
    logs = [math.log(p["friction_per_ps"]) for p in points]
    if len(points) >= 2:
        fit = zero_crossing([p["friction_per_ps"] for p in points], [p["slope"] for p in points],
                            [p["slope_se"] for p in points])
        if fit["zero_per_ps"] is not None:
            x = math.log(fit["zero_per_ps"])
            return math.exp(min(max(x, min(logs) - max_step), max(logs) + max_step))
    nearest = min(points, key=lambda p: abs(p["slope"]))
    return nearest["friction_per_ps"] * math.exp(newton_step(nearest["slope"], prior_curvature, min_step, max_step))


def measure_point(run_dir: Path, potential: Path, friction: float, overrides: dict, seed: int, iterations: int,
                  probe_walkers: int, factors: list, target: Path) -> dict:
    """Train a fresh classifier against ``potential`` at ``friction`` in ``target`` (reused when finished) and
    measure its slope at that friction."""
    train_lane([("refine", tuple(sorted(overrides.items())), seed, target)], run_dir, friction, iterations,
               potential)
    result = measure(target, probe_walkers, factors)
    fit = result["landscape_fit"]
    return {"friction_per_ps": float(friction), "variant": "refine", "seed": seed, "slope": float(fit["slope"]),
            "slope_se": float(fit["slope_se"]), "source": target.name, "landscape_fit": fit,
            "landscape": result["landscape"], "wall_s": result["wall_s"]}


def check_resume(saved: Path, search: dict) -> list:
    """The settings of the search saved as ``saved`` (``search.json``) that differ from ``search``, as
    ``name: saved -> given`` strings; none when nothing was saved (a new search) or nothing differs."""
    if not saved.exists():
        return []
    before = json.loads(saved.read_text())
    return [f"{key}: {before.get(key)!r} -> {value!r}" for key, value in search.items() if before.get(key) != value]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="dynamic-matching run directory (its config.yaml; its last friction is the "
                                        "default start)")
    parser.add_argument("--potential", default=None, help="potential file of the CG windows (default: the run's "
                                                          "potential.pt, else its pre-trained stage)")
    parser.add_argument("--start", type=float, default=None, help="first friction, 1/ps (default: the run's last)")
    parser.add_argument("--points", type=int, default=3, help="most classifiers (frictions) to measure")
    parser.add_argument("--prior-curvature", type=float, default=0.2,
                        help="slope change per unit log friction assumed for the first step")
    parser.add_argument("--min-step", type=float, default=0.3, help="smallest first step, in log friction")
    parser.add_argument("--max-step", type=float, default=1.0, help="largest step beyond the measured frictions")
    parser.add_argument("--iterations", type=int, default=60, help="classifier-only iterations per point")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="train options of the classifiers")
    parser.add_argument("--seed", type=int, default=0, help="seed of every classifier's training")
    parser.add_argument("--walkers", type=int, default=512, help="probe windows per friction")
    parser.add_argument("--factors", default="0.7,0.85,1,1.18,1.4", help="probe frictions, multiples of each point")
    parser.add_argument("--work-dir", default="refine_friction")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)
    if args.points < 2 or args.iterations < 1:
        parser.error(f"--points must be >= 2 and --iterations >= 1, got {args.points} and {args.iterations}")
    if args.start is not None and args.start <= 0:
        parser.error(f"--start must be a friction > 0 (1/ps), got {args.start}")
    if args.prior_curvature <= 0 or not 0 < args.min_step <= args.max_step:
        parser.error("--prior-curvature must be > 0 and 0 < --min-step <= --max-step, got "
                     f"{args.prior_curvature}, {args.min_step}, {args.max_step}")
    try:
        _, overrides = parse_variant(["refine", *args.set])
    except ValueError as error:
        parser.error(str(error))
    run_dir, work = Path(args.run_dir), Path(args.work_dir)
    log = read_log(run_dir / "log.csv")
    game_friction = float(np.asarray(log["friction_per_ps"], dtype=float)[-1])
    base = load_config(run_dir / "config.yaml")
    potential = Path(args.potential) if args.potential else run_dir / "potential.pt"
    if not args.potential and not potential.exists():
        potential = stage_path(run_dir, 0, base.train.pretrain)
    if not potential.exists():
        parser.error(f"--potential: no potential file {potential}")
    factors = sorted({float(f) for f in args.factors.split(",")} | {1.0})
    work.mkdir(parents=True, exist_ok=True)
    search = {"start_per_ps": float(args.start or game_friction), "seed": args.seed, "iterations": args.iterations,
              "probe_walkers": args.walkers, "factors": factors, "overrides": overrides,
              "potential": str(potential.resolve()), "prior_curvature": args.prior_curvature,
              "min_step": args.min_step, "max_step": args.max_step}
    differ = check_resume(work / "search.json", search)
    if differ:
        parser.error(f"--work-dir {work} holds a search begun with other settings ({'; '.join(differ)}); give "
                     "those settings to continue it, or another --work-dir")
    write_json(work / "search.json", search)
    saved = work / "points.json"
    points = json.loads(saved.read_text()) if saved.exists() else []
    start = time.perf_counter()
    friction = points[-1]["next_per_ps"] if points else search["start_per_ps"]
    while len(points) < args.points:
        if any(abs(math.log(friction / p["friction_per_ps"])) < SAME_FRICTION for p in points):
            break
        point = measure_point(run_dir, potential, friction, overrides, args.seed, args.iterations, args.walkers,
                              factors, work / f"friction_{friction:.4g}")
        points.append(point)
        point["next_per_ps"] = next_friction(points, args.prior_curvature, args.min_step, args.max_step)
        write_json(saved, points)
        print(f"at {friction:.3f}/ps: slope {point['slope']:.3f} +- {point['slope_se']:.3f}; next "
              f"{point['next_per_ps']:.3f}/ps", file=sys.stderr)
        friction = point["next_per_ps"]
    fit = zero_crossing([p["friction_per_ps"] for p in points], [p["slope"] for p in points],
                        [p["slope_se"] for p in points])
    document = {"benchmark": "refine_friction", "run": run_dir.name, "potential": potential.name,
                "game_friction_per_ps": game_friction, "overrides": overrides, "iterations": args.iterations,
                "probe_walkers": args.walkers, "factors": factors, "fresh": points, "fit": fit,
                "refined_friction_per_ps": fit["zero_per_ps"], "wall_s": time.perf_counter() - start,
                "runs": [], "from_iteration": 0, "block": 10}
    if args.out:
        write_json(args.out, document)
    if args.plot:  # beside the fresh slopes, the game's own gradients over its last 40 iterations (crn runs only)
        first = max(int(np.asarray(log["iteration"])[-1]) - 39, 0)
        blocks = game_blocks(run_dir, first, 10) if "friction_crn_gradient" in log else None
        plot(dict(document, from_iteration=first,
                  runs=[{"label": run_dir.name, "run": run_dir.name, "blocks": blocks}] if blocks is not None else []),
             args.plot)
    print(json.dumps({"points": [(round(p["friction_per_ps"], 3), round(p["slope"], 3), round(p["slope_se"], 3))
                                 for p in points], "fit": fit, "game_friction_per_ps": game_friction}, indent=2))
    return document


if __name__ == "__main__":
    main()
