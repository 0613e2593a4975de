"""Several ``science.py`` runs at different seeds, judged against one AA reference, in one table and one figure.

Each run is one draw of everything a seed sets (the training data, start frames, OpenMM noise, every training's
random numbers); the runs must have been judged against the same reference AA data (``science.py --reference``,
the same replicas and reference seed), so their CG/AA ratios share the denominator and their spread is the
method's. Per model: the learned friction, the MSM slowest-timescale and psi-core relaxation ratios of each run
(each already the mean of that run's productions), their mean over the runs with its standard error, and in how
many runs each lies within 25%; per target of ``science.py``: in how many runs it was met. The training data
judged against the reference (``training_aa_vs_reference``) are a row of their own: the AA side's noise at the
training data's length.

    python benchmarks/science_seeds.py results/science_reference_seed*.json --out results/science_reference_seeds.json

writes the JSON and ``<stem>.png`` beside it (the ratios per run and model, the +-25% band shaded).
"""
import argparse
import json
from pathlib import Path

import numpy as np

from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.report import pyplot, save_figure
from science import ITS_TOLERANCE, LABELS, seed_average  # benchmarks/ is on the path when this script runs

RATIOS = ("slowest_timescale_ratio", "core_relaxation_ratio")
TRAINING = "training AA data"


def load_runs(paths) -> list:
    """The science JSONs, checked to share one reference; sorted by seed."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    for path, run in zip(paths, runs):
        if not run.get("reference"):
            raise SystemExit(f"{path}: not judged against a reference (run science.py with --reference)")
    keys = {json.dumps({k: run["reference"][k] for k in ("replicas", "seed", "ns_each")}) for run in runs}
    if len(keys) > 1:
        raise SystemExit(f"the runs were judged against different reference AA data: {sorted(keys)}")
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"two runs share a seed: {seeds}")
    return sorted(runs, key=lambda run: run["seed"])


def aggregate(runs: list) -> dict:
    """Per model (and the training data) the ratios per run, their mean and standard error over runs and the
    number of runs within 25%; per target the number of runs that met it."""
    rows = {label: [run["models"][label] for run in runs] for label in runs[0]["models"]}
    rows[TRAINING] = [run["training_aa_vs_reference"] for run in runs]
    models = {}
    for label, per_run in rows.items():
        entry = seed_average(per_run, RATIOS)
        entry = {(k.replace("_per_seed", "_per_run") if k.endswith("_per_seed") else k): v for k, v in entry.items()}
        for key in RATIOS:
            values = entry[f"{key}_per_run"]
            entry[f"{key}_runs_within_25pct"] = sum(v is not None and abs(v - 1.0) <= ITS_TOLERANCE for v in values)
            entry[f"{key}_log_sd"] = (float(np.std(np.log(values), ddof=1))
                                      if None not in values and len(values) > 1 else None)
        entry["friction_per_run"] = [row.get("friction_per_ps") for row in per_run]
        models[label] = entry
    targets = {}
    for name in runs[0]["targets"]:
        values = [run["targets"].get(name) for run in runs]
        if all(isinstance(v, bool) or v is None for v in values):
            targets[name] = {"met": sum(v is True for v in values), "missed": sum(v is False for v in values),
                             "undecided": sum(v is None for v in values)}
    return {"benchmark": "science_seeds", "seeds": [run["seed"] for run in runs], "reference": runs[0]["reference"],
            "aa_reference_halves": runs[0]["aa_halves"], "models": models, "targets": targets}


def plot(result: dict, path: Path) -> None:
    """The two ratios per model, one marker per run (colour: seed), their mean with its standard error."""
    labels = list(result["models"])
    fig, axes = pyplot().subplots(1, 2, figsize=(12, 4), layout="constrained", sharey=True)
    for ax, key, title in zip(axes, RATIOS, ("MSM slowest timescale", "psi-core relaxation time")):
        for x, label in enumerate(labels):
            entry = result["models"][label]
            values = np.array([np.nan if v is None else v for v in entry[f"{key}_per_run"]], dtype=float)
            if entry[key] is not None:
                ax.errorbar(x, entry[key], yerr=entry[f"{key}_sem"] or 0.0, fmt="_", markersize=40, color="black",
                            capsize=4, label="mean +- SEM" if x == 0 else None)
            for k, (seed, value) in enumerate(zip(result["seeds"], values)):
                ax.plot(x + 0.25 * (k / max(len(values) - 1, 1) - 0.5), value, "o", color=f"C{k}",
                        label=f"seed {seed}" if x == 0 else None)
        ax.axhspan(1 - ITS_TOLERANCE, 1 + ITS_TOLERANCE, color="C2", alpha=0.15, zorder=0)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set(xticks=range(len(labels)), xticklabels=[LABELS.get(n, n) for n in labels], yscale="log",
               ylabel="CG / reference AA", title=f"{title}, {len(result['seeds'])} seeds")
        ax.tick_params(axis="x", labelsize=8, labelrotation=15)
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="science.py JSON results, one per seed")
    parser.add_argument("--out", default="science_seeds.json", help="JSON; the figure is written beside it")
    args = parser.parse_args(argv)
    if len(args.results) < 2:
        parser.error(f"expected at least two runs, got {len(args.results)}")
    result = aggregate(load_runs(args.results))
    out = Path(args.out)
    write_json(out, result)
    plot(result, out.with_suffix(".png"))
    for label, entry in result["models"].items():
        print(f"{label}: friction {entry['friction_per_run']}; " + "; ".join(
            f"{key} {entry[key]:.3f} +- {entry[f'{key}_sem'] or 0:.3f} per run {entry[f'{key}_per_run']}, "
            f"within 25% in {entry[f'{key}_runs_within_25pct']}" for key in RATIOS if entry[key] is not None))
    for name, counts in result["targets"].items():
        print(f"{name}: met {counts['met']}, missed {counts['missed']}, undecided {counts['undecided']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
