"""The friction gradient of a dynamic-matching run, measured three ways from one of its checkpoints.

With the run's classifier and potential frozen as the checkpoint left them, conditional-mode CG windows (from the
run's AA start frames) are simulated by OpenMM and scored with the reward ``g = -logit``:

1. **landscape**: the mean reward at a grid of frictions (``--factors`` times the checkpoint's), every friction
   from the same start frames and OpenMM seed (common random numbers), and the slopes ``d<g>/d log gamma`` between
   neighbouring frictions: what the classifier says about the friction, independent of any estimator;
2. **score function**: the path-likelihood estimate of ``d<g>/d log gamma`` at the checkpoint's friction (what
   ``train.friction_gradient: score`` uses), with its standard error over walkers;
3. **common random numbers**: the estimate of ``train.friction_gradient: crn`` at the same friction
   (:meth:`openmm_dynmatch.train.DynamicMatchingTrainer.friction_crn_gradient`), with its standard error.

Both estimates should agree with the landscape's slope at the checkpoint; their standard errors at equal walkers
say which one the training can use. ``walkers_for_snr_1`` is the batch size at which an estimate's
signal-to-noise ratio would reach 1 (its per-walker spread over the landscape's slope at the checkpoint, the mean
of the two slopes beside it). Only Langevin runs (one friction) are supported.

Several run directories (e.g. two runs' checkpoints with the same potential) give one result each, under
``"runs"``, every one from the same start frames and seeds; ``--plot`` draws their landscapes in one figure, each
reward relative to its value at the run's own friction, so the friction a classifier pushes towards can be read
off (the reward is lowered: a landscape falling on both sides of the checkpoint pushes the friction away).

    python benchmarks/friction_gradient.py RUN_DIR --walkers 256 --out friction_gradient.json
    python benchmarks/friction_gradient.py RUN_A RUN_B --factors 0.5,0.8,1,1.4,2 --plot landscape.png
"""
import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from openmm_dynmatch.estimators import advantages
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.runs import load_trainer
from openmm_dynmatch.updates import accumulate_gradient

#: Iteration number whose random streams draw the diagnostic's start frames and seeds (beyond any real run).
PROBE_ITERATION = 10**6


def rewards_at(trainer, log_friction: float):
    """Rewards ``(B,)`` and paths of the probe batch simulated at ``log_friction``."""
    with torch.no_grad():
        trainer.dynamics.log_friction.fill_(log_friction)
    paths, _ = trainer.sample(PROBE_ITERATION, "conditional")
    return trainer.window_rewards(paths), paths


def score_function_estimate(trainer, paths, reward) -> tuple:
    """Per-walker score-function terms ``(g_j - mean g) d log P_j / d log gamma``: their mean and standard error
    (with the path likelihood differentiable in the friction, also for runs whose friction learns by crn)."""
    coefficients = advantages(reward, "mean") / len(reward)
    chunks = [torch.tensor([j]) for j in range(len(reward))]
    run_cfg = trainer.train_cfg
    trainer.train_cfg = replace(run_cfg, friction_gradient="score")
    try:
        _, rows = accumulate_gradient(lambda index: trainer.path_log_p(paths.subset(index), "conditional"),
                                      coefficients, chunks, [trainer.dynamics.log_friction], per_chunk=True)
    finally:
        trainer.train_cfg = run_cfg
    for parameter in list(trainer.potential.parameters()) + [trainer.dynamics.log_friction]:
        parameter.grad = None
    terms = rows[:, 0]
    return float(terms.mean()), float(terms.std() / math.sqrt(len(terms))), float(terms.std())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="run_dir",
                        help="dynamic-matching run directories with a checkpoint.pt (Langevin)")
    parser.add_argument("--walkers", type=int, default=256, help="CG windows per batch")
    parser.add_argument("--factors", default="0.2,0.4,0.7,1,1.4",
                        help="frictions of the landscape, as multiples of the checkpoint's (comma-separated)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    parser.add_argument("--plot", default=None, help="also draw the landscapes (mean reward against friction) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        factors = sorted({float(f) for f in args.factors.split(",")} | {1.0})
    except ValueError:
        parser.error(f"--factors must be comma-separated positive numbers, got {args.factors!r}")
    if factors[0] <= 0:
        parser.error(f"--factors must be positive, got {args.factors!r}")
    results = [measure(run_dir, args.walkers, factors) for run_dir in args.run_dirs]
    for result in results:
        print(f"{result['run']}: friction {result['friction_per_ps']:.3g}/ps: landscape slope "
              f"{result['landscape_slope_at_checkpoint']:.3g}; score function "
              f"{result['estimates']['score_function']['gradient']:.3g} +- "
              f"{result['estimates']['score_function']['se']:.2g}; common random numbers "
              f"{result['estimates']['common_random_numbers']['gradient']:.3g} +- "
              f"{result['estimates']['common_random_numbers']['se']:.2g} ({args.walkers} walkers)", file=sys.stderr)
    document = results[0] if len(results) == 1 else {"benchmark": "friction_gradient", "runs": results}
    print(json.dumps(document, indent=2))
    if args.out:
        write_json(args.out, document)
    if args.plot:
        plot_landscapes(results, args.plot)
    return document


def plot_landscapes(results: list, path) -> None:
    """Mean reward against friction (log axis) for every run, relative to the reward at the run's own friction
    (marked), with the standard errors of those differences over walkers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for k, result in enumerate(results):
        rows = result["landscape"]
        own = min(rows, key=lambda r: abs(math.log(r["friction_per_ps"] / result["friction_per_ps"])))
        x = [r["friction_per_ps"] for r in rows]
        y = [r["reward_mean"] - own["reward_mean"] for r in rows]
        ax.errorbar(x, y, yerr=[r["difference_to_own_se"] for r in rows], marker="o", color=f"C{k}", capsize=3,
                    label=f"{result['run']} (iteration {result['iteration']})")
        ax.axvline(result["friction_per_ps"], color=f"C{k}", ls=":", lw=1)
    friction_log_axis(ax.xaxis)
    ax.set_xlabel("friction (1/ps); dotted: the run's own")
    ax.set_ylabel("mean reward - reward at own friction")
    ax.set_title("frozen classifiers; the generator lowers the reward\n(bars: standard error of the difference)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def friction_log_axis(axis) -> None:
    """A logarithmic friction axis (``ax.xaxis`` or ``ax.yaxis``) with plain tick labels at 1, 2, 3, 5, 10, 20/ps,
    and at 0.2, 0.5 and 50/ps where what is plotted already reaches them (call it after plotting)."""
    import matplotlib.ticker

    axes = axis.axes
    (axes.set_xscale if axis is axes.xaxis else axes.set_yscale)("log")
    low, high = sorted(axis.get_view_interval())
    ticks = [t for t in (0.2, 0.5) if t >= low] + [1, 2, 3, 5, 10, 20] + ([50] if high >= 50 else [])
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_ticks(ticks)


def landscape_fit(factors: list, rewards: list) -> dict:
    """Least-squares ``g = a + b x + c x^2`` in ``x = ln(factor)`` fitted to every walker's rewards at the
    ``factors`` (the same start and noise at each), and the mean and standard error over walkers of its slope ``b``
    (``d<g>/d log gamma`` at the checkpoint's friction) and curvature ``2c``: a classifier that pushes the friction
    one way has a slope; one that scores every other friction as more AA-like than its own has a negative
    curvature (a bump at its own friction). None with fewer than three frictions."""
    if len(factors) < 3:
        return None
    x = np.log(np.asarray(factors, dtype=float))
    design = np.stack([np.ones_like(x), x, x ** 2], axis=1)
    coefficients = np.linalg.lstsq(design, np.stack([np.asarray(r, dtype=float) for r in rewards]), rcond=None)[0]
    n = coefficients.shape[1]
    slope, curvature = coefficients[1], 2.0 * coefficients[2]
    return {"slope": float(slope.mean()), "slope_se": float(slope.std() / math.sqrt(n)),
            "curvature": float(curvature.mean()), "curvature_se": float(curvature.std() / math.sqrt(n))}


def measure(run_dir, walkers: int, factors: list) -> dict:
    """Landscape and both estimates (see the module docstring) for one run directory's checkpoint."""
    start = time.perf_counter()
    trainer = load_trainer(run_dir, walkers=walkers)
    if trainer.dynamics.log_friction.numel() != 1:
        raise SystemExit(f"{run_dir}: only runs with one friction (Langevin) are supported")
    log_gamma0 = float(trainer.dynamics.log_friction.detach()[0])
    landscape, rewards = [], {}
    for factor in factors:
        reward, paths = rewards_at(trainer, log_gamma0 + math.log(factor))
        rewards[factor] = reward
        landscape.append({"friction_per_ps": math.exp(log_gamma0) * factor, "reward_mean": float(reward.mean()),
                          "reward_se": float(reward.std() / math.sqrt(len(reward)))})
        if factor == 1.0:
            score = score_function_estimate(trainer, paths, reward)
            n_steps = paths.positions.shape[1] - 1
            _, crn = trainer.friction_crn_gradient(paths.positions[:, 0].numpy(), n_steps)
    for row, factor in zip(landscape, factors):  # same starts and noise: the differences are far more precise
        difference = rewards[factor] - rewards[1.0]
        row["difference_to_own_se"] = float(difference.std() / math.sqrt(len(difference)))
    slopes = [{"between_per_ps": [a["friction_per_ps"], b["friction_per_ps"]],
               "slope": (b["reward_mean"] - a["reward_mean"]) / math.log(b["friction_per_ps"] / a["friction_per_ps"])}
              for a, b in zip(landscape[:-1], landscape[1:])]
    fit = landscape_fit(factors, [rewards[f] for f in factors])
    crn_std = crn["friction_crn_se"] * math.sqrt(walkers)
    local = [s["slope"] for s in slopes if min(s["between_per_ps"]) <= math.exp(log_gamma0) <= max(s["between_per_ps"])]
    reference = float(np.mean(local))
    estimates = {
        "score_function": {"gradient": score[0], "se": score[1], "per_walker_std": score[2]},
        "common_random_numbers": {"gradient": crn["friction_crn_gradient"], "se": crn["friction_crn_se"],
                                  "per_walker_std": crn_std},
    }
    for value in estimates.values():
        value["walkers_for_snr_1"] = (value["per_walker_std"] / abs(reference)) ** 2 if reference else math.inf
    return {"benchmark": "friction_gradient", "run": Path(run_dir).name, "iteration": trainer.iteration,
            "friction_per_ps": math.exp(log_gamma0), "walkers": walkers,
            "steps_per_window": n_steps, "landscape": landscape, "landscape_slopes": slopes,
            "landscape_slope_at_checkpoint": reference, "landscape_fit": fit,
            "estimates": estimates, "wall_s": time.perf_counter() - start}


if __name__ == "__main__":
    main()
