"""The learned friction against iteration for several dynamic-matching runs, in one figure.

Reads each run directory's ``log.csv`` (and ``summary.json`` when the run finished: the exported, averaged
friction) and draws ``friction_per_ps`` on a log axis, with the phases of the first run shaded (classifier
warm-up; the friction learning alone, ``train.friction_first``; the potential alone with the friction frozen,
``train.friction_then: frozen``; both together, the joint game). Runs with ``train.evidence_scaling`` get a
second panel: the factor their potential's steps were scaled by (``step_scale``). Writes a JSON summary beside
the figure: per run, its label, start friction, friction every ``--every`` iterations, the final (averaged)
friction and, where logged, the mean step scale, and how much signal the potential's gradient carried: over the
iterations in which the potential learned (``gradient_snr`` logged), the mean ``SNR^2`` of the whole gradient and its
standard error. With ``N`` walkers per batch, ``E[SNR^2] = 1 + N |mu|^2 / tr(Sigma)`` (``mu`` and ``Sigma``: one
walker's mean gradient and its covariance), so ``(SNR^2 - 1) / N`` is the signal per walker and
``N / (SNR^2 - 1)`` the walkers a batch needs for ``SNR^2 = 2`` (the evidence factor 1/2); the JSON gives the
latter as a lower bound, from the mean plus two standard errors.

    python benchmarks/friction_traces.py RUN_A RUN_B --labels "adam from 1" "adam from 20" --out traces.png
"""
import argparse
import json
from pathlib import Path

import numpy as np

from friction_gradient import friction_log_axis  # benchmarks/ is on the path when this script runs
from openmm_dynmatch.config import load_config
from openmm_dynmatch.curves import read_log
from openmm_dynmatch.fileio import write_json


def trace(run_dir: Path, label: str, every: int) -> dict:
    """Iterations, frictions and phases of one run, and its summary friction if it finished."""
    log = read_log(run_dir / "log.csv")
    if "friction_per_ps" not in log:
        raise SystemExit(f"{run_dir}: log.csv has no friction_per_ps column (a Langevin dynamic-matching run is "
                         f"needed)")
    iterations = np.asarray(log["iteration"], dtype=int)
    friction = np.asarray(log["friction_per_ps"], dtype=float)
    summary = run_dir / "summary.json"
    final = json.loads(summary.read_text())["friction_per_ps"] if summary.exists() else None
    scale = np.asarray(log.get("step_scale", np.full(len(iterations), np.nan)), dtype=float)
    scaled = np.isfinite(scale) & (scale < 1.0)   # 1 exactly: a plain step (no evidence scaling)
    result = {"label": label, "run": run_dir.name, "iterations": iterations, "friction": friction,
              "phase": np.asarray(log["phase"]), "step_scale": np.where(scaled, scale, np.nan),
              "start_per_ps": float(friction[0]),
              "every": {int(i): float(f) for i, f in zip(iterations[::every], friction[::every])},
              "final_averaged_per_ps": final}
    if scaled.any():
        result["mean_step_scale"] = float(scale[np.isfinite(scale)].mean())
    snr = np.asarray(log.get("gradient_snr", np.full(len(iterations), np.nan)), dtype=float)
    learning = np.isin(result["phase"], ("adversarial", "potential")) & np.isfinite(snr)
    if learning.sum() >= 2 and (run_dir / "config.yaml").exists():
        result["snr2"] = snr[learning] ** 2
        result["potential_gradient"] = signal_per_walker(result["snr2"],
                                                         load_config(run_dir / "config.yaml").train.walkers)
    return result


def signal_per_walker(snr2: np.ndarray, walkers: int) -> dict:
    """Mean ``SNR^2`` of the potential's gradient over iterations, its standard error, the signal per walker
    ``(SNR^2 - 1) / N`` with an upper bound (mean + 2 standard errors) and the walkers per batch that bound
    says ``SNR^2 = 2`` needs at least (None where even the bound shows no signal)."""
    mean, se = float(snr2.mean()), float(snr2.std(ddof=1) / np.sqrt(len(snr2)))
    upper = (mean + 2.0 * se - 1.0) / walkers
    return {"iterations": int(len(snr2)), "walkers": int(walkers), "snr2_mean": mean, "snr2_se": se,
            "signal_per_walker": (mean - 1.0) / walkers, "signal_per_walker_upper": upper,
            "walkers_for_snr2_of_2_at_least": 1.0 / upper if upper > 0 else None}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="run_dir", help="dynamic-matching run directories")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: the directory names)")
    parser.add_argument("--every", type=int, default=10, help="iterations between the frictions in the JSON")
    parser.add_argument("--out", required=True, help="figure (PNG); the JSON goes beside it with .json")
    args = parser.parse_args(argv)
    labels = args.labels or [Path(r).name for r in args.run_dirs]
    if len(labels) != len(args.run_dirs):
        parser.error(f"--labels needs one label per run: {len(args.run_dirs)} runs, {len(labels)} labels")
    if args.every < 1:
        parser.error(f"--every must be a positive integer, got {args.every}")
    traces = [trace(Path(r), label, args.every) for r, label in zip(args.run_dirs, labels)]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_scale = [t for t in traces if "mean_step_scale" in t]
    if with_scale:
        fig, (ax, scale_ax) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(2, 1))
    else:
        fig, ax = plt.subplots(figsize=(7, 4))
    first = traces[0]
    shading = {"warmup": ("0.9", "classifier warm-up"), "friction": ("#e8f0ff", "friction alone"),
               "potential": ("#fff0e0", "potential alone, friction frozen"),
               "adversarial": ("#eefaea", "potential and friction together")}
    phase, iterations = first["phase"], first["iterations"]
    starts = np.flatnonzero(np.r_[True, phase[1:] != phase[:-1]])  # a phase may recur (classifier re-initialised)
    labelled = set()
    for begin, end in zip(starts, np.r_[starts[1:], len(phase)]):
        if phase[begin] in shading:
            colour, label = shading[phase[begin]]
            ax.axvspan(iterations[begin] - 0.5, iterations[end - 1] + 0.5, color=colour, lw=0,
                       label=None if label in labelled else label)
            labelled.add(label)
    for k, t in enumerate(traces):
        ax.plot(t["iterations"], t["friction"], color=f"C{k}", lw=1.2, label=t["label"])
        if t["final_averaged_per_ps"] is not None:
            ax.plot([t["iterations"][-1]], [t["final_averaged_per_ps"]], marker="o", color=f"C{k}")
    friction_log_axis(ax.yaxis)
    if not with_scale:
        ax.set_xlabel("iteration")
    ax.set_ylabel("friction (1/ps); dot: exported (averaged)")
    ax.legend(fontsize=7, ncol=2)
    if with_scale:
        for k, t in enumerate(traces):
            if "mean_step_scale" in t:
                scale_ax.plot(t["iterations"], t["step_scale"], ".", ms=3, color=f"C{k}",
                              label=f"{t['label']} (mean {t['mean_step_scale']:.3f})")
        scale_ax.set(ylim=(-0.02, 1.02), xlabel="iteration",
                     ylabel="potential's step scale\nmax(0, 1 - 1/SNR^2)")
        scale_ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    document = {"benchmark": "friction_traces", "runs": [
        {k: v for k, v in t.items() if k not in ("iterations", "friction", "phase", "step_scale", "snr2")}
        for t in traces]}
    measured = [t for t in traces if "potential_gradient" in t]
    if len(measured) >= 2 and len({t["potential_gradient"]["walkers"] for t in measured}) == 1:
        document["potential_gradient_pooled"] = signal_per_walker(
            np.concatenate([t["snr2"] for t in measured]), measured[0]["potential_gradient"]["walkers"])
    finals = [t["final_averaged_per_ps"] for t in traces if t["final_averaged_per_ps"] is not None]
    if len(finals) >= 2:
        document["spread_of_final"] = max(finals) / min(finals) - 1.0
    write_json(out.with_suffix(".json"), document)
    print(json.dumps(document, indent=2))
    return document


if __name__ == "__main__":
    main()
