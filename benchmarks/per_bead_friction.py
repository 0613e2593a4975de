"""Productions of a trained model with a friction per bead, and how each bead's short-time motion then compares.

``coordinate_friction.py`` measures, for one potential produced at several (uniform) frictions, the friction at
which each bead's internal motion matches the data's. This script produces the same potential with a friction
per bead: the ``beads_internal`` matches of such a report at one lag (``--from-json``, ``--lag``), frictions
given (``--frictions``), or one Newton step per bead from an earlier report of this script (``--refine``, with
the scan's slopes: :func:`refined_frictions`). It reports the ratio CG/AA of every bead's internal mean-square
displacement, of the bead averages and of phi and psi at each lag, beside the same ratios of other productions
in the work directory (``--compare``). Langevin models run with
:func:`openmm_dynmatch.openmm.integrators.per_bead_langevin_integrator` (``create_system(...,
bead_friction_per_ps=...)``); the productions are those of ``science.py`` (its default settings: walkers, length,
frame interval; ``--productions`` walker groups of one System seeded by ``--seed``), written as
``cg_<label>.h5`` and ``cg_<label>_group<k>.h5`` in the work directory, so that ``core_memory.py WORK_DIR
<label> ...`` gives their psi-core and MSM times against the data's.

    python benchmarks/per_bead_friction.py WORK_DIR --label per_bead \
        --from-json benchmarks/results/coordinate_friction_seed1.json --lag 0.5 --compare dm \
        --out benchmarks/results/per_bead_friction_seed1.json
    python benchmarks/per_bead_friction.py WORK_DIR --label per_bead_refined \
        --from-json benchmarks/results/coordinate_friction_seed1.json --lag 0.5 \
        --refine benchmarks/results/per_bead_friction_seed1.json \
        --out benchmarks/results/per_bead_friction_refined_seed1.json
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

from coordinate_friction import LAGS, data_observables, production_observables  # benchmarks/ on the path
from openmm_dynmatch import trajio
from openmm_dynmatch.demo import produce_groups
from openmm_dynmatch.fileio import write_json
from science import DEFAULT

REPORTED = ("beads_internal", "bead_msd_internal", "bead_msd_com_free", "dihedrals")


def frictions_from_report(report: dict, lag_ps: float) -> list:
    """Every bead's matching friction at the report's lag nearest ``lag_ps`` (``beads_internal`` rows of
    ``coordinate_friction.py``); refuses a lag more than 1% away and beads without a match there."""
    lags = np.asarray(report["lags_ps"], dtype=np.float64)
    row = int(np.argmin(np.abs(lags - lag_ps)))
    if abs(lags[row] - lag_ps) > 0.01 * lag_ps:
        raise ValueError(f"--lag {lag_ps} ps is not one of the report's lags {lags.tolist()}")
    frictions, missing = [], []
    for bead in report["observables"]["beads_internal"]:
        value = bead["lags"][row]["match"]["friction_per_ps"]
        frictions.append(value)
        if value is None:
            missing.append(bead["name"])
    if missing:
        raise ValueError(f"no friction matches the data at {lags[row]:g} ps for beads {missing} (their CG/AA ratio "
                         f"stays on one side over the report's frictions); give --frictions instead")
    return frictions


def refined_frictions(previous: dict, scan: dict, lag_ps: float) -> list:
    """One Newton step per bead from a production at per-bead frictions (``previous``, a report of this
    script): ``gamma_i * r_i ** (-1 / s_i)``, with ``r_i`` that production's CG/AA ratio of bead ``i``'s internal
    MSD at the lag nearest ``lag_ps`` and ``s_i`` the slope of log ratio against log friction fitted (least
    squares) to the uniform-friction productions of ``scan`` (a ``coordinate_friction.py`` report) at that lag."""
    lags = np.asarray(scan["lags_ps"], dtype=np.float64)
    row = int(np.argmin(np.abs(lags - lag_ps)))
    if abs(lags[row] - lag_ps) > 0.01 * lag_ps or abs(previous["lags_ps"][row] - lags[row]) > 1e-9:
        raise ValueError(f"--lag {lag_ps} ps must be a lag of both reports ({lags.tolist()})")
    log_friction = np.log([scan["friction_per_ps"][m] for m in scan["models"]])
    ratios = previous["ratios"][previous["label"]]
    out = []
    for gamma, bead in zip(previous["bead_friction_per_ps"], scan["observables"]["beads_internal"]):
        slope = np.polyfit(log_friction, np.log(bead["lags"][row]["ratio"]), 1)[0]
        if slope >= 0:
            raise ValueError(f"bead {bead['name']}: its internal MSD does not fall with the friction in the scan "
                             f"(slope {slope:.3f}); no Newton step")
        out.append(float(gamma * ratios[bead["name"]][row] ** (-1.0 / slope)))
    return out


def short_time_ratios(work: Path, models, lags=LAGS, n_blocks: int = 20) -> dict:
    """Ratio CG/AA, per model, of every bead's internal MSD, the bead averages and phi and psi, at each lag."""
    data = data_observables(work, lags, n_blocks)
    aa, names = data["mean"], data["names"]
    out, frictions = {}, {}
    for model in models:
        cg, _, paths = production_observables(work, model, data, lags)
        rows = {}
        for kind in REPORTED:
            for column, name in enumerate(names[kind]):
                if kind == "dihedrals" and name not in ("phi", "psi"):
                    continue
                rows[name] = (cg[kind][:, column] / aa[kind][:, column]).tolist()
        out[model] = rows
        production = trajio.read_metadata(paths[0])
        per_bead = production.get("bead_friction_per_ps") or []
        # a production at one friction: friction_per_ps (files made before 2026-12-07 kept the model's bead list)
        varies = len(per_bead) > 1 and max(per_bead) > min(per_bead)
        frictions[model] = per_bead if varies else [float(production["friction_per_ps"])]
    return {"lags_ps": [lag * float(data["meta"]["frame_interval_ps"]) for lag in lags], "ratios": out,
            "production_bead_friction_per_ps": frictions}


def plot(reports: list, out: Path, lag_ps: float = 0.5) -> None:
    """Every bead's (and phi's, psi's) CG/AA ratio at the lag nearest ``lag_ps``, one group of bars per bead, one
    bar per production of the reports given (each production once, in the order met)."""
    from openmm_dynmatch.report import pyplot, save_figure
    plt = pyplot()
    rows = {}
    for report in reports:
        for model, ratios in report["ratios"].items():
            rows.setdefault(model, (report, ratios))
    first = reports[0]
    lag = int(np.argmin(np.abs(np.asarray(first["lags_ps"]) - lag_ps)))
    names = [name for name in next(iter(rows.values()))[1] if ":" in name or name in ("phi", "psi")]
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(10.0, 4.0))
    for k, (model, (report, ratios)) in enumerate(rows.items()):
        frictions = report.get("production_bead_friction_per_ps", {}).get(model) or [math.nan]
        spread = f"{min(frictions):.1f}-{max(frictions):.1f}/ps per bead" if max(frictions) > min(frictions) \
            else f"{frictions[0]:.2f}/ps"
        label = f"{model} ({spread})"
        ax.bar(np.arange(len(names)) + (k - (len(rows) - 1) / 2) * width, [ratios[n][lag] for n in names], width,
               label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    top = max(max(ratios[n][lag] for n in names) for _, ratios in rows.values())
    ax.set_ylim(0.5, 1.0 + 1.6 * (top - 1.0))
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="mean squared change, CG / AA", title=f"internal motion at lag {first['lags_ps'][lag]:.1f} ps")
    ax.legend(fontsize=7, ncol=2, loc="upper center")
    save_figure(fig, out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work_dir", type=Path, help="science.py work directory")
    parser.add_argument("--model", default="fm", help="the run whose model.pt is produced (run_<model>)")
    parser.add_argument("--label", default="per_bead", help="productions are written as cg_<label>*.h5")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--frictions", type=float, nargs="+", help="one friction per bead, 1/ps")
    source.add_argument("--from-json", type=Path, help="a coordinate_friction.py report of this potential")
    parser.add_argument("--lag", type=float, default=0.5, help="with --from-json: the lag (ps) whose matches to use")
    parser.add_argument("--refine", type=Path, default=None,
                        help="with --from-json: a report of this script; take one Newton step per bead from its "
                             "frictions (refined_frictions) instead of the scan's matches")
    parser.add_argument("--productions", type=int, default=4, help="walker groups (productions) of the one System")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", nargs="*", default=[], help="other models of the work directory to report")
    parser.add_argument("--out", type=Path, default=Path("per_bead_friction.json"))
    parser.add_argument("--plot", type=Path, default=None,
                        help="bar chart of the ratios at --lag, with the productions of the --refine report too")
    args = parser.parse_args(argv)
    if args.productions < 1:
        parser.error(f"--productions must be at least 1, got {args.productions}")
    model_path = args.work_dir / f"run_{args.model}" / "model.pt"
    if not model_path.exists():
        parser.error(f"no trained model {model_path}")
    if args.refine and not args.from_json:
        parser.error("--refine needs --from-json (the scan whose slopes the Newton step uses)")
    scan = json.loads(args.from_json.read_text()) if args.from_json else None
    if args.refine:
        frictions = refined_frictions(json.loads(args.refine.read_text()), scan, args.lag)
    else:
        frictions = args.frictions or frictions_from_report(scan, args.lag)
    n_beads = len(trajio.read_metadata(args.work_dir / "aa_mapped.h5")["masses_amu"])
    if len(frictions) != n_beads or not all(math.isfinite(f) and f > 0 for f in frictions):
        parser.error(f"need {n_beads} finite positive frictions, one per bead, got {frictions}")
    targets = [args.work_dir / f"cg_{args.label}.h5"] + [args.work_dir / f"cg_{args.label}_group{k}.h5"
                                                          for k in range(1, args.productions)]
    produce_groups(model_path, args.work_dir / "aa_mapped.h5", targets, DEFAULT, args.seed, True,
                   bead_friction_per_ps=frictions)
    report = {"benchmark": "per_bead_friction", "work_dir": args.work_dir.name, "model": args.model,
              "label": args.label, "bead_friction_per_ps": [float(f) for f in frictions],
              "from_json": str(args.from_json) if args.from_json else None,
              "lag_ps": args.lag if args.from_json else None, "seed": args.seed,
              "refined_from": str(args.refine) if args.refine else None,
              "productions": [t.name for t in targets]}
    report.update(short_time_ratios(args.work_dir, [args.label] + list(args.compare)))
    write_json(args.out, report)
    if args.plot:
        plot([report] + ([json.loads(args.refine.read_text())] if args.refine else []), args.plot, args.lag)
    for model, rows in report["ratios"].items():
        print(model)
        for name, values in rows.items():
            print(f"  {name:18s} " + " ".join(f"{v:5.2f}" for v in values))


if __name__ == "__main__":
    main()
