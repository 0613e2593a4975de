"""Dynamic-matching runs continued past their schedule: do runs that ended apart come together with more iterations?

Each run directory is copied (the original is not written), its trainer loaded as its last checkpoint left it
(:func:`openmm_dynmatch.runs.load_trainer`: models, classifier, friction, optimiser states), every learning rate
set back to its configured value and held there (the decay of the schedules switched off), and stepped
``--iterations`` more times in the phase the run ended in, with the run's own seeds (runs that shared their seeds
keep sharing them). Reported per run: its friction at every continued iteration, the friction it exported (the
parameter average of the run), and the mean of log friction over the last ``--average`` continued iterations;
and the spread (largest over smallest, minus 1) of the exported frictions and of those means. ``--plot`` draws
each run's training trace and its continuation on one log axis.

``--export-dir DIR`` also writes each continued model, its parameters averaged over the last ``--average``
iterations as training averages them, to ``DIR/<run>`` (``model.pt``, ``potential.pt``, ``summary.json``), and
with ``--aa-data MAPPED_AA`` runs one production of it as ``benchmarks/science.py`` does (its default settings,
seed 0) and compares it with those AA data: MSM slowest timescale and psi-core relaxation time CG/AA.

    python benchmarks/continue_runs.py RUN_A RUN_B RUN_C --iterations 100 --out continued.json --plot continued.png
    python benchmarks/continue_runs.py RUN_A RUN_B --export-dir continued --aa-data aa_mapped.h5 --jobs 2
"""
import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from openmm_dynmatch.curves import read_log
from openmm_dynmatch.fileio import write_json


class HeldRates:
    """Stands in for a learning-rate scheduler: every learning rate stays where it was set."""

    def step(self) -> None:
        return None


def hold_learning_rates(trainer) -> None:
    """Every parameter group of the trainer's generator and friction optimisers back at its configured learning
    rate (the ``initial_lr`` its scheduler recorded), and the schedulers replaced by :class:`HeldRates`."""
    optimizers = [trainer.generator_optimizer] + ([trainer.friction_optimizer] if trainer.friction_optimizer else [])
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
    trainer.scheduler = HeldRates()
    if trainer.friction_scheduler is not None:
        trainer.friction_scheduler = HeldRates()


def mean_state(states: list) -> dict:
    """The mean of several state dicts, key by key (entries that are not floating point: the last state's)."""
    return {key: torch.stack([s[key] for s in states]).mean(dim=0) if value.is_floating_point() else value
            for key, value in states[-1].items()}


def export_and_compare(trainer, states: list, out_dir: Path, aa_data) -> dict:
    """Load the mean of ``states`` (generator states of the last iterations) into the trainer's models, write them
    as a run directory ``out_dir``, and with ``aa_data`` produce and compare it as ``science.py`` does."""
    from science import DEFAULT, kinetics_with_spread  # benchmarks/ is on the path when this script runs

    from openmm_dynmatch import trajio
    from openmm_dynmatch.analysis import compare
    from openmm_dynmatch.demo import produce
    from openmm_dynmatch.runs import finish_run, load_training_data

    trainer.load_averaged(mean_state(states))
    summary = finish_run(trainer.config, load_training_data(trainer.config), trainer.potential, trainer.dynamics,
                         out_dir)
    row = {"model": f"{out_dir.name}/model.pt", "friction_per_ps": summary["friction_per_ps"]}
    if aa_data is not None:
        production = produce(out_dir / "model.pt", Path(aa_data), out_dir / "production.h5", DEFAULT, 0, False)
        kinetics = kinetics_with_spread(compare(trajio.load(aa_data), trajio.load(production), seed=0))
        row.update(slowest_timescale_ratio=kinetics["slowest_timescale_ratio"],
                   core_relaxation_ratio=kinetics["core_relaxation_ratio"])
    return row


def continue_run(run_dir: str, iterations: int, average: int, threads: int, export_dir=None, aa_data=None,
                 reset_init=None) -> dict:
    """Continue one run (a copy of it) and return its friction trace and summary numbers (and with
    ``export_dir`` its averaged continued model, :func:`export_and_compare`); ``reset_init`` replaces the run's
    ``train.classifier_reset_init`` for the continuation."""
    from openmm_dynmatch.runs import load_trainer

    torch.set_num_threads(threads)
    start = time.perf_counter()
    source = Path(run_dir)
    summary = json.loads((source / "summary.json").read_text()) if (source / "summary.json").exists() else {}
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / source.name
        shutil.copytree(source, copy)
        trainer = load_trainer(copy)
        if trainer.dynamics.log_friction.numel() != 1:
            raise SystemExit(f"{run_dir}: only runs with one friction (Langevin) are supported")
        hold_learning_rates(trainer)
        if reset_init is not None:
            trainer.train_cfg.classifier_reset_init = reset_init
        first = trainer.iteration
        frictions, phases, states = [], [], []
        for k in range(iterations):
            row = trainer.step()
            frictions.append(float(row["friction_per_ps"]))
            phases.append(row["phase"])
            if export_dir is not None and k >= iterations - average:
                states.append(trainer.generator_state())
        tail = np.log(frictions[-average:])
        result = {"run": source.name, "start_friction_per_ps": trainer.config.dynamics.friction_per_ps,
                  "exported_friction_per_ps": summary.get("friction_per_ps"), "continued_from_iteration": first,
                  "phases": sorted(set(phases)), "friction_per_ps": frictions,
                  "classifier_reset_init": trainer.train_cfg.classifier_reset_init,
                  "mean_friction_last_per_ps": float(math.exp(tail.mean()))}
        if export_dir is not None:
            result["continued_model"] = export_and_compare(trainer, states, Path(export_dir) / source.name, aa_data)
    return dict(result, wall_s=time.perf_counter() - start)


def spread(values) -> float:
    """Largest over smallest, minus 1."""
    return float(max(values) / min(values) - 1.0)


def plot(results: list, run_dirs: list, path) -> None:
    """Training trace (from ``log.csv``) and continuation of every run, friction on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from friction_gradient import friction_log_axis  # benchmarks/ is on the path when this script runs

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (result, run_dir) in enumerate(zip(results, run_dirs)):
        log = read_log(Path(run_dir) / "log.csv")
        ax.plot(log["iteration"], log["friction_per_ps"], color=f"C{k}",
                label=f"from {result['start_friction_per_ps']:g}/ps")
        first = result["continued_from_iteration"]
        ax.plot(np.arange(first, first + len(result["friction_per_ps"])), result["friction_per_ps"],
                color=f"C{k}", linestyle="--")
        if result["exported_friction_per_ps"]:
            ax.plot([first], [result["exported_friction_per_ps"]], "o", color=f"C{k}")
    ax.axvline(results[0]["continued_from_iteration"], color="0.5", linewidth=1)
    friction_log_axis(ax.yaxis)
    ax.set(xlabel="iteration (dashed: continued at constant learning rates)",
           ylabel="friction (1/ps); dot: exported")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="run_dir", help="dynamic-matching run directories")
    parser.add_argument("--iterations", type=int, default=100, help="iterations to continue each run")
    parser.add_argument("--average", type=int, default=40, help="continued iterations averaged (log friction)")
    parser.add_argument("--jobs", type=int, default=1, help="runs continued side by side (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    parser.add_argument("--plot", default=None, help="also draw the traces here")
    parser.add_argument("--export-dir", default=None, help="also write each continued model (parameters averaged "
                                                           "over the last --average iterations) under this folder")
    parser.add_argument("--aa-data", default=None, help="with --export-dir: mapped AA data to produce and compare "
                                                        "each continued model against, as science.py does")
    parser.add_argument("--reset-init", choices=("same", "new"), default=None,
                        help="train.classifier_reset_init of the continuation (default: the run's own)")
    args = parser.parse_args(argv)
    if args.aa_data is not None and args.export_dir is None:
        parser.error("--aa-data needs --export-dir (the continued models are produced from there)")
    if args.iterations < 1 or not 1 <= args.average <= args.iterations:
        parser.error(f"--iterations must be positive and --average between 1 and it, got {args.iterations} and "
                     f"{args.average}")
    for run_dir in args.run_dirs:
        if not (Path(run_dir) / "checkpoint.pt").is_file():
            parser.error(f"{run_dir} has no checkpoint.pt: a dynamic-matching run directory is needed")
    jobs = [(str(d), args.iterations, args.average, args.threads, args.export_dir, args.aa_data, args.reset_init)
            for d in args.run_dirs]
    if args.jobs > 1:
        with ProcessPoolExecutor(min(args.jobs, len(jobs)), mp_context=get_context("spawn")) as pool:
            results = list(pool.map(continue_run, *zip(*jobs)))
    else:
        results = [continue_run(*job) for job in jobs]
    exported = [r["exported_friction_per_ps"] for r in results if r["exported_friction_per_ps"]]
    document = {"benchmark": "continue_runs", "iterations": args.iterations, "average": args.average,
                "runs": results, "spread_exported": spread(exported) if len(exported) > 1 else None,
                "spread_continued": spread([r["mean_friction_last_per_ps"] for r in results])
                if len(results) > 1 else None}
    for r in results:
        print(f"{r['run']}: exported {r['exported_friction_per_ps']}, mean of the last {args.average} continued "
              f"{r['mean_friction_last_per_ps']:.3g}/ps ({r['wall_s']:.0f} s)"
              + (f"; continued model MSM / psi-core CG/AA {r['continued_model'].get('slowest_timescale_ratio')} / "
                 f"{r['continued_model'].get('core_relaxation_ratio')}"
                 if "slowest_timescale_ratio" in r.get("continued_model", {}) else ""),
              file=sys.stderr)
    print(f"spread: exported {document['spread_exported']}, continued {document['spread_continued']}",
          file=sys.stderr)
    print(json.dumps(document, indent=2))
    if args.out:
        write_json(args.out, document)
    if args.plot:
        plot(results, args.run_dirs, args.plot)
    return document


if __name__ == "__main__":
    main()
