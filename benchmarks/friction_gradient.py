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

    python benchmarks/friction_gradient.py RUN_DIR --walkers 256 --out friction_gradient.json
"""
import argparse
import json
import math
import sys
import time
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
    """Per-walker score-function terms ``(g_j - mean g) d log P_j / d log gamma``: their mean and standard error."""
    coefficients = advantages(reward, "mean") / len(reward)
    chunks = [torch.tensor([j]) for j in range(len(reward))]
    _, rows = accumulate_gradient(lambda index: trainer.path_log_p(paths.subset(index), "conditional"),
                                  coefficients, chunks, [trainer.dynamics.log_friction], per_chunk=True)
    for parameter in list(trainer.potential.parameters()) + [trainer.dynamics.log_friction]:
        parameter.grad = None
    terms = rows[:, 0]
    return float(terms.mean()), float(terms.std() / math.sqrt(len(terms))), float(terms.std())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a dynamic-matching run directory with a checkpoint.pt (Langevin)")
    parser.add_argument("--walkers", type=int, default=256, help="CG windows per batch")
    parser.add_argument("--factors", default="0.2,0.4,0.7,1,1.4",
                        help="frictions of the landscape, as multiples of the checkpoint's (comma-separated)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    trainer = load_trainer(args.run_dir, walkers=args.walkers)
    if trainer.dynamics.log_friction.numel() != 1:
        parser.error("only runs with one friction (Langevin) are supported")
    log_gamma0 = float(trainer.dynamics.log_friction.detach()[0])
    factors = sorted({float(f) for f in args.factors.split(",")} | {1.0})
    landscape = []
    for factor in factors:
        reward, paths = rewards_at(trainer, log_gamma0 + math.log(factor))
        landscape.append({"friction_per_ps": math.exp(log_gamma0) * factor, "reward_mean": float(reward.mean()),
                          "reward_se": float(reward.std() / math.sqrt(len(reward)))})
        if factor == 1.0:
            score = score_function_estimate(trainer, paths, reward)
            n_steps = paths.positions.shape[1] - 1
            _, crn = trainer.friction_crn_gradient(paths.positions[:, 0].numpy(), n_steps)
    slopes = [{"between_per_ps": [a["friction_per_ps"], b["friction_per_ps"]],
               "slope": (b["reward_mean"] - a["reward_mean"]) / math.log(b["friction_per_ps"] / a["friction_per_ps"])}
              for a, b in zip(landscape[:-1], landscape[1:])]
    crn_std = crn["friction_crn_se"] * math.sqrt(args.walkers)
    local = [s["slope"] for s in slopes if min(s["between_per_ps"]) <= math.exp(log_gamma0) <= max(s["between_per_ps"])]
    reference = float(np.mean(local))
    estimates = {
        "score_function": {"gradient": score[0], "se": score[1], "per_walker_std": score[2]},
        "common_random_numbers": {"gradient": crn["friction_crn_gradient"], "se": crn["friction_crn_se"],
                                  "per_walker_std": crn_std},
    }
    for value in estimates.values():
        value["walkers_for_snr_1"] = (value["per_walker_std"] / abs(reference)) ** 2 if reference else math.inf
    result = {"benchmark": "friction_gradient", "run": Path(args.run_dir).name, "iteration": trainer.iteration,
              "friction_per_ps": math.exp(log_gamma0), "walkers": args.walkers,
              "steps_per_window": n_steps, "landscape": landscape, "landscape_slopes": slopes,
              "landscape_slope_at_checkpoint": reference,
              "estimates": estimates, "wall_s": time.perf_counter() - start}
    print(json.dumps(result, indent=2))
    print(f"friction {math.exp(log_gamma0):.3g}/ps: landscape slope {reference:.3g}; score function "
          f"{score[0]:.3g} +- {score[1]:.2g}; common random numbers {crn['friction_crn_gradient']:.3g} +- "
          f"{crn['friction_crn_se']:.2g} ({args.walkers} walkers)", file=sys.stderr)
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
