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
where it stopped. Over the seeds: mean, standard deviation and max / min of each ratio. A figure of the ratios per
seed is written beside the JSON.

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

from science import DEFAULT, DEFAULT_PRODUCTION_SEEDS, model_metrics, produce_model  # benchmarks/ on the path
from stages import StageClock

RATIOS = ("slowest_timescale_ratio", "core_relaxation_ratio")
LABELS = {"slowest_timescale_ratio": "MSM slowest time CG / AA", "core_relaxation_ratio": "psi-core time CG / AA"}


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
    row = {"seed": seed, "js_fes_2d": metrics.get("js_fes_2d"), "timings_s": clock.this_run(),
           "stopped_at_iteration": stage.get("stopped_at_iteration"),
           "best_validation_force_loss": stage.get("best_validation_force_loss")}
    for key in RATIOS:
        row[key], row[f"{key}_sem"] = metrics.get(key), metrics.get(f"{key}_sem")
    return row


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
              "spread": {key: spread([r[key] for r in rows]) for key in RATIOS + ("js_fes_2d",)}}
    write_json(out, result)
    plot(rows, "force matching " + (" ".join(args.set) or "(science.py's settings)"), out.with_suffix(".png"))
    for key in RATIOS:
        s = result["spread"][key]
        print(f"{LABELS[key]}: " + ", ".join(f"{r[key]:.2f}" for r in rows if r[key] is not None)
              + f" | mean {s['mean']:.2f}, sd {s['sd'] if s['sd'] is None else round(s['sd'], 2)}, "
              f"max/min {s['max_over_min']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
