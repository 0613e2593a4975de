"""Does one friction fit the motion at every lag? Markovian known truth against AA data.

A Markovian CG model at friction ``gamma`` moves, at every lag, as data made by the same model at ``gamma`` do:
compared with such data, productions at several frictions cross at ``gamma`` whatever the lag. Data whose motion
has memory (the mapped AA data: the atoms the mapping removes act on the beads as friction with memory) ask for
another friction at each lag, and no single friction reproduces them at all lags.

The script makes (or reuses, in ``--work-dir``) the stages of ``recovery.py``'s L2 case: AA data, the teacher (a
force-matched CG model of them) whose OpenMM trajectories at 2/ps are the data, and the student force-matched to
those. It produces the teacher's potential at ``--teacher-frictions`` and the student's at ``--student-frictions``
(as the L2 case's productions: 64 walkers x 100 ps from teacher frames) and reports, with
``coordinate_friction.analyse``, the friction at which each observable (bead MSD without the centre of mass,
internal motion, phi, psi, every bond, angle and dihedral) matches the data at lags of 0.1-1.5 ps, for three
comparisons:

- ``teacher``: the teacher's potential against its own data, the exact model class: every lag must ask for the
  teacher's friction within noise (a check of the measurement itself);
- ``student``: the force-matched student against the teacher's data: a fitted potential, Markovian data;
- ``aa``: the teacher's potential against the AA data it was fitted to: the same productions, data with memory.

    OMP_NUM_THREADS=1 python benchmarks/markov_lags.py --work-dir markov_work \\
        --out benchmarks/results/markov_lags.json --plot benchmarks/results/markov_lags.png
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from coordinate_friction import LAGS, analyse, format_matches, highlights, matching_curve  # benchmarks/ on path
from openmm_dynmatch.fileio import write_json
from recovery import TEACHER_QUICK, TeacherSettings, run_production, teacher_stages
from stages import StageClock

#: The observables of the figure and of the spread summary, in panel order.
SHOWN = ("bead_msd_com_free", "bead_msd_internal", "psi", "phi")


def lag_spread(matches: dict, lags_ps, max_lag_ps: float = 1.0) -> dict:
    """Per observable of ``matches`` (``{name: [friction or None per lag]}``), the smallest and largest matching
    friction at lags up to ``max_lag_ps`` and their ratio (1 for a friction that fits every lag); lags without a
    crossing are left out, and an observable with fewer than two crossings there gets None."""
    keep = np.asarray(lags_ps) <= max_lag_ps + 1e-9
    out = {}
    for name, values in matches.items():
        found = [v for v, k in zip(values, keep) if k and v is not None]
        out[name] = ({"min_per_ps": min(found), "max_per_ps": max(found), "max_over_min": max(found) / min(found),
                      "lags": len(found)} if len(found) >= 2 else None)
    return out


def productions(work: Path, label: str, summary: dict, frictions, frames: np.ndarray, settings: TeacherSettings,
                seed: int, clock: StageClock) -> list:
    """One production of ``summary``'s model per friction, made where missing; returns the model names."""
    names = []
    for friction in frictions:
        name = f"{label}_f{friction:g}"
        out = work / f"cg_{name}.h5"
        clock.run(f"production_{name}_s", out.exists(), run_production, Path(summary["model"]), frames,
                  settings.production_walkers, settings.production_ps, settings, out, seed, float(friction))
        names.append(name)
    return names


def plot(result: dict, out: Path) -> None:
    """One panel per observable of :data:`SHOWN`: the matching friction against lag for each comparison, the
    teacher's friction dotted."""
    from openmm_dynmatch.report import pyplot, save_figure
    plt = pyplot()
    fig, axes = plt.subplots(1, len(SHOWN), figsize=(4 * len(SHOWN), 3.6), sharey=True)
    for axis, name in zip(axes, SHOWN):
        for label, comparison in result["comparisons"].items():
            rows = {row["name"]: row for rows in comparison["report"]["observables"].values() for row in rows}
            if name not in rows:
                continue
            lags, ys, errs = matching_curve(rows[name])
            axis.errorbar(lags, ys, yerr=errs, marker="o", capsize=2, label=comparison["label"])
        axis.axhline(result["teacher_friction_per_ps"], color="0.5", ls=":", lw=1)
        axis.set(xlabel="lag (ps)", yscale="log", title=name)
    axes[0].set_ylabel("friction where CG matches the data (1/ps)")
    axes[0].legend(fontsize=7)
    save_figure(fig, out)


LABELS = {"teacher": "teacher's potential vs its data (2/ps)", "student": "force-matched student vs teacher's data",
          "aa": "teacher's potential vs AA data"}


def run(work: Path, teacher_frictions, student_frictions, seed: int = 0, lags=LAGS,
        settings: TeacherSettings = None) -> dict:
    """The stages, productions and the three comparisons of the module docstring; returns the JSON document."""
    from openmm_dynmatch.openmm.runner import load_walkers

    settings = settings or TeacherSettings()
    work.mkdir(parents=True, exist_ok=True)
    clock = StageClock(work)
    mapped, teacher, data, student = teacher_stages(settings, work, seed, clock)
    frames = np.concatenate(load_walkers(work / "teacher_run.h5"))
    teacher_models = productions(work, "teacher", teacher, teacher_frictions, frames, settings, seed + 2, clock)
    student_models = productions(work, "student", student, student_frictions, frames, settings, seed + 2, clock)
    began = time.perf_counter()
    comparisons = {}
    for key, models, target in (("teacher", teacher_models, data), ("student", student_models, data),
                                ("aa", teacher_models, mapped)):
        report = analyse(work, models, lags, data_path=target)
        matches = highlights(report)
        comparisons[key] = {"label": LABELS[key], "highlights": matches,
                            "spread_to_1ps": lag_spread(matches, report["lags_ps"]), "report": report}
    return {"benchmark": "markov_lags", "seed": seed, "settings": vars(settings),
            "teacher_friction_per_ps": settings.teacher_friction_per_ps, "aa_ns": settings.aa_ns,
            "production": {"walkers": settings.production_walkers, "ps": settings.production_ps},
            "comparisons": comparisons, "timings_s": dict(clock.this_run(), analysis_s=time.perf_counter() - began)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("markov_lags_run"),
                        help="stage files (reused when present)")
    parser.add_argument("--teacher-frictions", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--student-frictions", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--quick", action="store_true", help="the L2 case's small sizes (a smoke run, minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=Path("markov_lags.json"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    for option, values in (("--teacher-frictions", args.teacher_frictions),
                           ("--student-frictions", args.student_frictions)):
        if len(values) < 2 or min(values) <= 0:
            parser.error(f"{option}: need at least two positive frictions (1/ps) to bracket a crossing, got {values}")
    torch.set_num_threads(args.threads)
    result = run(args.work_dir, args.teacher_frictions, args.student_frictions, args.seed,
                 settings=TEACHER_QUICK if args.quick else None)
    write_json(args.out, result)
    lags = result["comparisons"]["teacher"]["report"]["lags_ps"]
    print("lag (ps)".ljust(30) + " ".join(f"{lag:6.2f}" for lag in lags), file=sys.stderr)
    for key, comparison in result["comparisons"].items():
        for name in SHOWN:
            values = comparison["highlights"].get(name)
            if values is not None:
                print(f"{key:8s}{name:22s}" + format_matches(values), file=sys.stderr)
    if args.plot:
        plot(result, args.plot)
    return result


if __name__ == "__main__":
    main()
