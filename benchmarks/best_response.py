"""Where fresh classifiers would put the friction, against what the game's classifiers said.

A classifier trained from scratch against the CG at one friction (``benchmarks/classifier_friction.py``) has no
memory of other frictions: the slope of its reward in log friction at that friction is the friction gradient of
a game whose classifier always kept up with the CG (its best response). Measured at several frictions, those
slopes cross zero where such a game would stop; a weighted straight line in log friction gives that point and its
standard error. The game's own crn gradients (``friction_crn_gradient`` in a run's ``log.csv``), averaged over
blocks of iterations, are drawn beside them at the friction each block had: where the two disagree at the same
friction and potential, the game's classifier carries something other than the current CG (its history).

The generator lowers the reward, so a positive slope pushes the friction down.

    python benchmarks/best_response.py CF_A.json CF_B.json CF_C.json --runs RUN_A RUN_B --from-iteration 100 \\
        --out best_response.json --plot best_response.png
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

from friction_gradient import friction_log_axis  # benchmarks/ is on the path when this script runs
from openmm_dynmatch.curves import read_log
from openmm_dynmatch.fileio import write_json


def fresh_points(paths: list, variants=None) -> list:
    """Every classifier of the ``classifier_friction.py`` and ``refine_friction.py`` results (of the named
    ``variants`` only, when given): its training friction, variant, seed, slope at its own friction and standard
    error."""
    points = []
    for path in paths:
        document = json.loads(Path(path).read_text())
        if document.get("benchmark") == "refine_friction":
            points += [{key: point[key] for key in ("friction_per_ps", "variant", "seed", "slope", "slope_se")}
                       | {"source": Path(path).name} for point in document["fresh"]
                       if not variants or point["variant"] in variants]
            continue
        if document.get("benchmark") != "classifier_friction":
            raise SystemExit(f"{path}: not a classifier_friction.py or refine_friction.py result (benchmark "
                             f"{document.get('benchmark')!r})")
        for result in document["results"]:
            if variants and result["variant"] not in variants:
                continue
            fit = result["landscape_fit"]
            points.append({"friction_per_ps": float(result["friction_per_ps"]), "variant": result["variant"],
                           "seed": int(result["seed"]), "slope": float(fit["slope"]),
                           "slope_se": float(fit["slope_se"]), "source": Path(path).name})
    return sorted(points, key=lambda p: p["friction_per_ps"])


def zero_crossing(frictions, slopes, standard_errors) -> dict:
    """Weighted least-squares line ``slope = a + b (x - x0)`` in ``x = ln friction`` (weights 1/se^2, ``x0`` their
    weighted mean, so ``a`` and ``b`` are uncorrelated) and its zero ``x* = x0 - a / b`` with the delta-method
    standard error ``sqrt(var a + (a / b)^2 var b) / |b|``; ``chi2_per_dof`` says whether the line and the
    standard errors describe the points. Where it exceeds 1 the points scatter more than their errors say (e.g.
    classifiers of several seeds at one friction, whose slopes differ by more than the probe's noise), and
    ``zero_log_se_scaled`` multiplies the standard error by ``sqrt(chi2_per_dof)`` (the Birge ratio; equal to
    ``zero_log_se`` otherwise). The zero is None where the line does not rise (``b <= 0``: no friction it would
    return to)."""
    x = np.log(np.asarray(frictions, dtype=float))
    y, se = np.asarray(slopes, dtype=float), np.asarray(standard_errors, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError(f"a zero crossing needs slopes at two or more frictions, got {sorted(set(np.exp(x)))}")
    w = 1.0 / se ** 2
    x0 = float(np.sum(w * x) / np.sum(w))
    a = float(np.sum(w * y) / np.sum(w))
    b = float(np.sum(w * (x - x0) * y) / np.sum(w * (x - x0) ** 2))
    var_a, var_b = 1.0 / np.sum(w), 1.0 / np.sum(w * (x - x0) ** 2)
    residual = y - a - b * (x - x0)
    dof = len(x) - 2
    result = {"intercept_at_log_friction": x0, "intercept": a, "intercept_se": math.sqrt(var_a),
              "slope_per_log_friction": b, "slope_per_log_friction_se": math.sqrt(var_b),
              "chi2_per_dof": float(np.sum(w * residual ** 2) / dof) if dof > 0 else None,
              "zero_per_ps": None, "zero_log_se": None, "zero_log_se_scaled": None}
    if b > 0:
        result["zero_per_ps"] = math.exp(x0 - a / b)
        result["zero_log_se"] = math.sqrt(var_a + (a / b) ** 2 * var_b) / b
        birge = math.sqrt(max(result["chi2_per_dof"], 1.0)) if dof > 0 else 1.0
        result["zero_log_se_scaled"] = result["zero_log_se"] * birge
    return result


def game_blocks(run_dir, start: int, block: int) -> list:
    """A run's crn friction gradients from iteration ``start`` on, in blocks of ``block`` logged iterations: the
    block's geometric-mean friction, mean gradient and its standard error (iterations treated as independent)."""
    log = read_log(Path(run_dir) / "log.csv")
    if "friction_crn_gradient" not in log:
        raise SystemExit(f"{run_dir}: log.csv has no friction_crn_gradient column (a run with "
                         f"train.friction_gradient: crn is needed)")
    iterations = np.asarray(log["iteration"], dtype=int)
    gradient = np.asarray(log["friction_crn_gradient"], dtype=float)
    friction = np.asarray(log["friction_per_ps"], dtype=float)
    keep = (iterations >= start) & np.isfinite(gradient)
    iterations, gradient, friction = iterations[keep], gradient[keep], friction[keep]
    blocks = []
    for k in range(0, len(iterations) - block + 1, block):
        g, f = gradient[k:k + block], friction[k:k + block]
        blocks.append({"iterations": [int(iterations[k]), int(iterations[k + block - 1])],
                       "friction_per_ps": float(np.exp(np.log(f).mean())), "gradient": float(g.mean()),
                       "gradient_se": float(g.std(ddof=1) / math.sqrt(len(g)))})
    return blocks


def plot(document: dict, path) -> None:
    """Fresh classifiers' slopes (filled, with the fitted line and its zero) and the game's block means (open)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.axhline(0.0, color="grey", lw=0.8)
    points = document["fresh"]
    variants = list(dict.fromkeys(p["variant"] for p in points))
    for k, variant in enumerate(variants):
        shown = [p for p in points if p["variant"] == variant]
        ax.errorbar([p["friction_per_ps"] for p in shown], [p["slope"] for p in shown],
                    yerr=[p["slope_se"] for p in shown], fmt="o", color="k", mfc="k" if k == 0 else "w",
                    capsize=3, label=f"fresh classifier ({variant}) at its own friction")
    fit = document["fit"]
    grid = np.exp(np.linspace(math.log(min(p["friction_per_ps"] for p in points)) - 0.2,
                              math.log(max(p["friction_per_ps"] for p in points)) + 0.2, 50))
    ax.plot(grid, fit["intercept"] + fit["slope_per_log_friction"] * (np.log(grid) - fit["intercept_at_log_friction"]),
            color="k", lw=1, ls="--", label="weighted line")
    if fit["zero_per_ps"] is not None:
        low, high = (fit["zero_per_ps"] * math.exp(s * fit["zero_log_se"]) for s in (-1, 1))
        ax.axvspan(low, high, color="0.85", lw=0, label=f"its zero {fit['zero_per_ps']:.2f}/ps +- 1 se")
        if fit.get("zero_log_se_scaled", fit["zero_log_se"]) > fit["zero_log_se"]:
            low, high = (fit["zero_per_ps"] * math.exp(s * fit["zero_log_se_scaled"]) for s in (-1, 1))
            ax.axvspan(low, high, color="0.85", alpha=0.5, lw=0, label="+- 1 se scaled by the scatter (Birge)")
    for k, run in enumerate(document["runs"]):
        ax.errorbar([b["friction_per_ps"] for b in run["blocks"]], [b["gradient"] for b in run["blocks"]],
                    yerr=[b["gradient_se"] for b in run["blocks"]], fmt="s", mfc="none", color=f"C{k}", ms=4,
                    capsize=2, lw=0.8, alpha=0.8,
                    label=f"game {run['label']}: {document['block']}-iteration means from {document['from_iteration']}")
    ax.set_xscale("log")
    friction_log_axis(ax.xaxis)
    ax.set_xlabel("friction (1/ps)")
    ax.set_ylabel("friction gradient (reward per unit log friction)\npositive: the generator lowers the friction")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="classifier_friction.py (one friction each) or "
                                                   "refine_friction.py JSON results")
    parser.add_argument("--variants", nargs="*", help="only these variants of the results (default: all)")
    parser.add_argument("--runs", nargs="*", default=[], help="dynamic-matching run directories to draw beside")
    parser.add_argument("--labels", nargs="*", help="one label per run (default: the directory names)")
    parser.add_argument("--from-iteration", type=int, default=0, help="first iteration of the runs' blocks")
    parser.add_argument("--block", type=int, default=10, help="iterations per block of a run's gradients")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)
    labels = args.labels or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"--labels needs one label per run: {len(args.runs)} runs, {len(labels)} labels")
    if args.block < 2:
        parser.error(f"--block must be at least 2 (a standard error needs two iterations), got {args.block}")
    points = fresh_points(args.results, args.variants)
    try:
        fit = zero_crossing([p["friction_per_ps"] for p in points], [p["slope"] for p in points],
                            [p["slope_se"] for p in points])
    except ValueError as error:
        parser.error(str(error))
    runs = [{"label": label, "run": Path(run).name, "blocks": game_blocks(run, args.from_iteration, args.block)}
            for run, label in zip(args.runs, labels)]
    document = {"benchmark": "best_response", "fresh": points, "fit": fit, "runs": runs,
                "from_iteration": args.from_iteration, "block": args.block}
    if args.out:
        write_json(args.out, document)
    if args.plot:
        plot(document, args.plot)
    print(json.dumps({"fresh": [(p["friction_per_ps"], round(p["slope"], 3), round(p["slope_se"], 3))
                                for p in points], "fit": fit}, indent=2))
    return document


if __name__ == "__main__":
    main()
