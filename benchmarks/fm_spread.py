"""How much force matching's kinetics depend on its training seed: one AA data set, several training seeds.

``benchmarks/science.py`` at three seeds found the force-matched potential of implicit-solvent alanine dipeptide
1.2-2.2x too slow (MSM slowest time over a 40 ns AA reference) and the spread to be the force-matching training's,
not the data's (benchmarks/README.md, "Three seeds judged against one 40 ns AA reference"). This script measures
that spread for one training recipe: force matching as ``science.py`` trains it (``train.*`` options changed with
``--set``) at every ``--seeds`` value on the same mapped AA data, each model run in ``--productions`` walker
groups and judged against ``--reference`` (mapped AA data, e.g. the ``aa_mapped.h5`` that ``science.py
--reference DIR`` makes in DIR).

Per seed: the MSM slowest-timescale and psi-core relaxation-time ratios CG / reference (means over the
productions, with their standard errors), the FES JS divergence, the validation force loss the training kept and
where it stopped, and the landscape behind the rates (``psi_landscape``: the free energy along psi of the
productions pooled, its two gaps between the psi cores and the extended - helical free energy, as ``science.py``
measures them; the reference's in ``reference_psi_landscape``). Over the seeds: mean, standard deviation and
max / min of each ratio, and the correlation over seeds of each landscape number with the log of each ratio
(``landscape_correlation``). A figure of the ratios per seed, and one of the MSM ratio against the landscape
numbers, are written beside the JSON.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/fm_spread.py --data WORK/aa_mapped.h5 --reference REF/aa_mapped.h5 \\
        --seeds 0 1 2 3 --set train.pretrain_lr_schedule=cosine --out results/fm_spread_cosine.json
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from openmm_dynmatch import trajio
from openmm_dynmatch.config import Config, config_differences, load_config
from openmm_dynmatch.demo import demo_config, train_model
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.report import pyplot, save_figure

from science import (DEFAULT, DEFAULT_PRODUCTION_SEEDS, backbone_cvs, landscape_numbers, model_metrics,
                     produce_model, production_angles)  # benchmarks/ on the path
from stages import StageClock

RATIOS = ("slowest_timescale_ratio", "core_relaxation_ratio")
LABELS = {"slowest_timescale_ratio": "MSM slowest time CG / AA", "core_relaxation_ratio": "psi-core time CG / AA"}
LANDSCAPE = ("barrier_via_psi_0.75_kj_per_mol", "barrier_via_psi_-2.1_kj_per_mol", "extended_minus_helical_kj_per_mol")


def fm_config(cg_path: Path, seed: int, overrides) -> Config:
    """``science.py``'s force-matching configuration at training seed ``seed``, with ``section.key=value``
    overrides applied (checked as a configuration file's would be)."""
    return demo_config(cg_path, replace(DEFAULT, config_overrides=tuple(overrides)), "force_matching", seed)


def spread(values) -> dict:
    """Mean, sample standard deviation and max / min of positive ``values`` (None entries skipped)."""
    x = np.array([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return {"n": 0, "mean": None, "sd": None, "max_over_min": None}
    return {"n": int(x.size), "mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else None,
            "max_over_min": float(x.max() / x.min())}


def one_seed(cg_path: Path, reference, work: Path, seed: int, overrides, productions: int, progress: bool) -> dict:
    """Train, produce and judge force matching at training seed ``seed``; the row of the JSON."""
    clock = StageClock(work)
    run_dir, config = work / f"run_fm_seed{seed}", fm_config(cg_path, seed, overrides)
    if (run_dir / "config.yaml").exists():
        differ = config_differences(load_config(run_dir / "config.yaml"), config)
        if differ:
            raise SystemExit(f"--work-dir {work}: {run_dir.name} was trained with other settings "
                             f"({', '.join(differ)}); give each recipe its own work directory")
    summary = clock.run(f"train_fm_seed{seed}_s", (run_dir / "summary.json").exists(), train_model, config,
                        run_dir, progress)
    files = produce_model(f"fm_seed{seed}", summary, cg_path, work, DEFAULT, seed, clock, progress, productions)
    metrics = model_metrics(reference, files, summary, seed)
    stage = (summary.get("stages") or [{}])[0]
    landscape = landscape_numbers(production_angles(files, reference.metadata), reference.metadata["temperature_k"])
    row = {"seed": seed, "js_fes_2d": metrics.get("js_fes_2d"), "timings_s": clock.this_run(),
           "psi_landscape": landscape,
           "stopped_at_iteration": stage.get("stopped_at_iteration"),
           "best_validation_force_loss": stage.get("best_validation_force_loss")}
    for key in RATIOS:
        row[key], row[f"{key}_sem"] = metrics.get(key), metrics.get(f"{key}_sem")
    return row


def landscape_correlation(rows: list) -> dict:
    """Pearson correlation over seeds of each landscape number with the log of each ratio (None with fewer than
    three seeds that have both)."""
    result = {}
    for number in LANDSCAPE:
        for key in RATIOS:
            pairs = [(r["psi_landscape"][number], np.log(r[key])) for r in rows
                     if r[key] is not None and r["psi_landscape"].get(number) is not None]
            x, y = np.array(pairs, dtype=float).reshape(-1, 2).T
            ok = len(pairs) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
            result[f"{number}_vs_log_{key}"] = float(np.corrcoef(x, y)[0, 1]) if ok else None
    return result


def plot_landscape(rows: list, reference: dict, title: str, path: Path) -> None:
    """The MSM ratio of every seed against each landscape number; the reference's number as a vertical line."""
    fig, axes = pyplot().subplots(1, len(LANDSCAPE), figsize=(4 * len(LANDSCAPE), 3.5), sharey=True,
                                  layout="constrained")
    key = RATIOS[0]
    for ax, number in zip(axes, LANDSCAPE):
        x = [r["psi_landscape"].get(number) for r in rows]
        keep = [k for k, v in enumerate(x) if v is not None and rows[k][key] is not None]
        ax.errorbar([x[k] for k in keep], [rows[k][key] for k in keep],
                    yerr=[rows[k][f"{key}_sem"] or 0.0 for k in keep], fmt="o", capsize=3)
        for k in keep:
            ax.annotate(str(rows[k]["seed"]), (x[k], rows[k][key]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if reference.get(number) is not None:
            ax.axvline(reference[number], color="black", linewidth=1, label="reference AA")
        ax.axhline(1.0, color="0.5", linewidth=1)
        ax.set_xlabel(number.replace("_kj_per_mol", " (kJ/mol)").replace("_", " "), fontsize=8)
    axes[0].set_ylabel(LABELS[key])
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def plot(rows: list, title: str, path: Path) -> None:
    """Each seed's two ratios (with standard errors) against the training seed; 1 is the reference."""
    fig, ax = pyplot().subplots(figsize=(5.5, 3.5))
    seeds = [r["seed"] for r in rows]
    for k, key in enumerate(RATIOS):
        ax.errorbar(np.array(seeds) + 0.08 * (k - 0.5), [r[key] or np.nan for r in rows],
                    yerr=[r[f"{key}_sem"] or 0.0 for r in rows], fmt="o", capsize=3, label=LABELS[key])
    ax.axhline(1.0, color="black", linewidth=1)
    ax.axhspan(0.75, 1.25, color="0.9", zorder=0)
    ax.set_xlabel("force-matching training seed")
    ax.set_ylabel("CG / reference AA")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="mapped AA training data with forces (trajio HDF5)")
    parser.add_argument("--reference", required=True, help="mapped AA data that judge the models (trajio HDF5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="training seeds")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change the force-matching configuration, e.g. --set train.pretrain_average=0.999")
    parser.add_argument("--productions", type=int, default=DEFAULT_PRODUCTION_SEEDS,
                        help=f"walker groups per model (default {DEFAULT_PRODUCTION_SEEDS})")
    parser.add_argument("--work-dir", default="fm_spread_run", help="runs and productions (reused when present)")
    parser.add_argument("--out", default="fm_spread.json", help="JSON result; the figure is written beside it")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name in ("data", "reference"):
        if not Path(getattr(args, name)).is_file():
            parser.error(f"--{name}: no such file: {getattr(args, name)}")
    if args.productions < 1:
        parser.error(f"--productions: expected a positive integer, got {args.productions}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds: each seed once, got {args.seeds}")
    try:
        fm_config(Path(args.data), args.seeds[0], args.set)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    work, out = Path(args.work_dir), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    reference = trajio.load(args.reference)
    rows = [one_seed(Path(args.data), reference, work, seed, args.set, args.productions, not args.no_progress)
            for seed in args.seeds]
    result = {"benchmark": "fm_spread", "data": Path(args.data).name, "reference": Path(args.reference).name,
              "reference_frames": int(reference.n_frames), "overrides": list(args.set),
              "productions": args.productions, "seeds": rows,
              "spread": {key: spread([r[key] for r in rows]) for key in RATIOS + ("js_fes_2d",)},
              "reference_psi_landscape": landscape_numbers(backbone_cvs(reference.positions, reference.metadata),
                                                           reference.metadata["temperature_k"]),
              "landscape_correlation": landscape_correlation(rows)}
    write_json(out, result)
    title = "force matching " + (" ".join(args.set) or "(science.py's settings)")
    plot(rows, title, out.with_suffix(".png"))
    plot_landscape(rows, result["reference_psi_landscape"], title, out.with_name(out.stem + "_landscape.png"))
    for key in RATIOS:
        s = result["spread"][key]
        print(f"{LABELS[key]}: " + ", ".join(f"{r[key]:.2f}" for r in rows if r[key] is not None)
              + f" | mean {s['mean']:.2f}, sd {s['sd'] if s['sd'] is None else round(s['sd'], 2)}, "
              f"max/min {s['max_over_min']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
