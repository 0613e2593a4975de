"""Which friction each coordinate's short-time motion asks for: one potential, productions at several frictions.

A Markovian CG model has one friction. Dynamic matching learns the friction at which the classifier can no longer
tell CG windows from AA windows; the friction calibration (``train.pretrain_friction: msd``) picks the one whose
centre-of-mass-free bead mean-square displacement matches the data. Where the potential and the mapping leave
different coordinates with different short-time motion, each of these observables asks for another friction, and
so does the slow process the kinetic targets measure.

This script reads a ``science.py`` work directory (``aa_mapped.h5`` and productions ``cg_<model>.h5``, with their
walker groups ``cg_<model>_group<k>.h5``) and, for models that share **one potential** at different frictions (the
force-matched model ``fm``, its calibrated ``fmc``, its friction-scan productions ``fm_friction_<f>``, and
dynamic-matching runs that learned the friction alone on it, ``dm``, ``dm_from_<f>``), reports at each lag:

- the mean squared change of every bond, angle and dihedral of the bead graph (:func:`features.coordinate_msd`),
  of the AA data and of each model, and their ratio CG/AA;
- two bead observables: the bead mean-square displacement with the centre of mass removed (what the msd
  calibration matches) and the mean-square displacement after superposing each frame onto the earlier one (what a
  classifier with ``classifier.internal_motion`` sees: internal motion only), the latter also bead by bead;
- for each of those, the friction where the ratio crosses 1 (linear in log ratio against log friction between the
  two frictions that bracket the crossing), with a standard error from the scatter of the AA data over
  ``--aa-blocks`` blocks and of the CG walkers, divided by the slope; none where no pair of frictions brackets it.

The models' frictions are read from their productions. Nothing checks that the models share a potential: that is
the caller's choice of models.

    python benchmarks/coordinate_friction.py WORK_DIR fmc fm_friction_2.5 dm_from_1 dm dm_from_20 fm \\
        --out benchmarks/results/coordinate_friction.json --plot benchmarks/results/coordinate_friction.png
"""
import argparse
import math
from pathlib import Path

import numpy as np
import torch

from core_memory import production_files  # benchmarks/ is on the path when this script runs
from openmm_dynmatch import trajio
from openmm_dynmatch.calibration import displacement_msd
from openmm_dynmatch.features import bond_graph_terms, coordinate_msd, find_backbone_beads
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.models.internal_motion import superposition
from openmm_dynmatch.openmm.runner import load_walkers

LAGS = (1, 2, 3, 5, 10, 15)
BEAD_OBSERVABLES = ("bead_msd_com_free", "bead_msd_internal")


def bead_msd(trajectory, masses_amu, lags) -> dict:
    """Per lag, nm^2: the bead MSD with the (mass-weighted) centre of mass removed, as the friction calibration
    measures it, and the bead MSD after superposing frame ``t + lag`` onto frame ``t`` (optimal translation and
    proper rotation, equal bead weights, as ``classifier.internal_motion``), both averaged over beads
    (shape (n_lags,)), and the latter bead by bead (``beads_internal``, shape (n_lags, n_beads))."""
    x = np.asarray(trajectory, dtype=np.float64)
    centred = torch.as_tensor(x - x.mean(axis=1, keepdims=True))
    out = {name: np.full(len(lags), np.nan) for name in BEAD_OBSERVABLES}
    out["beads_internal"] = np.full((len(lags), x.shape[1]), np.nan)
    for row, lag in enumerate(lags):
        if lag >= x.shape[0]:
            continue
        out["bead_msd_com_free"][row] = float(displacement_msd(x[:-lag], x[lag:, None], masses_amu)[0])
        moved = centred[lag:] @ superposition(centred[lag:], centred[:-lag])
        per_bead = torch.mean(torch.sum((moved - centred[:-lag]) ** 2, dim=-1), dim=0).numpy()
        out["beads_internal"][row] = per_bead
        out["bead_msd_internal"][row] = float(per_bead.mean())
    return out


def observables(trajectories, terms: dict, masses_amu, lags) -> dict:
    """Every observable of every trajectory: ``{name: array (n_trajectories, n_lags, n_columns)}``."""
    rows = []
    for trajectory in trajectories:
        row = coordinate_msd(trajectory, terms, lags)
        row.update({name: values if values.ndim == 2 else values[:, None]
                    for name, values in bead_msd(trajectory, masses_amu, lags).items()})
        rows.append(row)
    return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


def pooled(values: dict, weights) -> tuple:
    """Per observable, the mean over trajectories (axis 0) weighted by ``weights`` (their frame counts) and its
    standard error from their scatter: two dicts of arrays (n_lags, n_columns)."""
    w = np.asarray(weights, dtype=np.float64)[:, None, None]
    means, errors = {}, {}
    for name, table in values.items():
        means[name] = np.sum(table * w, axis=0) / np.sum(w)
        spread = np.sqrt(np.sum(w * (table - means[name]) ** 2, axis=0) / np.sum(w))
        errors[name] = spread / math.sqrt(max(table.shape[0] - 1, 1))
    return means, errors


def matching_friction(frictions, log_ratio, log_ratio_se) -> dict:
    """The friction where ``log_ratio`` (CG/AA, one value per friction) crosses zero: linear in log friction
    between the first pair of neighbouring frictions (sorted) whose log ratios bracket zero, with the standard
    error ``mean se / |slope|`` in log friction. ``{"friction_per_ps": None, ...}`` where none brackets it."""
    order = np.argsort(frictions)
    x = np.log(np.asarray(frictions, dtype=np.float64)[order])
    y = np.asarray(log_ratio, dtype=np.float64)[order]
    se = np.asarray(log_ratio_se, dtype=np.float64)[order]
    for i in range(len(x) - 1):
        if y[i] * y[i + 1] <= 0 and y[i] != y[i + 1] and x[i + 1] > x[i]:
            slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
            crossing = x[i] - y[i] / slope
            return {"friction_per_ps": float(math.exp(crossing)),
                    "log_se": float(0.5 * (se[i] + se[i + 1]) / abs(slope))}
    side = "above" if np.all(y > 0) else "below" if np.all(y < 0) else "flat"
    return {"friction_per_ps": None, "log_se": None, "cg_is": side}


def aa_blocks(data: "trajio.Trajectory", n_blocks: int) -> list:
    """The AA data's trajectories, each cut into blocks so that ``n_blocks`` blocks cover all frames."""
    segments = trajio.trajectory_segments(data.metadata, data.positions.shape[0])
    per_segment = max(1, n_blocks // len(segments))
    blocks = []
    for start, stop in segments:
        blocks += [data.positions[a:b] for a, b in zip(*_edges(start, stop, per_segment))]
    return blocks


def _edges(start: int, stop: int, pieces: int) -> tuple:
    edges = np.linspace(start, stop, pieces + 1).astype(int)
    return edges[:-1], edges[1:]


def column_names(terms: dict, backbone: dict, bead_names) -> dict:
    """Readable names of every observable's columns (``phi`` and ``psi`` for the backbone dihedrals)."""
    named = {}
    if backbone:
        order = [backbone[k] for k in ("C_ace", "N", "CA", "C", "N_nme")]
        for name, quad in (("phi", order[:4]), ("psi", order[1:])):
            named[tuple(quad)] = named[tuple(reversed(quad))] = name
    names = {kind: ["-".join(map(str, t)) for t in np.asarray(terms[kind]).tolist()]
             for kind in ("bonds", "angles")}
    names["dihedrals"] = [named.get(tuple(t), "-".join(map(str, t))) for t in np.asarray(terms["dihedrals"]).tolist()]
    names.update({name: [name] for name in BEAD_OBSERVABLES})
    names["beads_internal"] = [f"{i}:{name}" for i, name in enumerate(bead_names)]
    return names


def data_observables(work: Path, lags=LAGS, n_blocks: int = 20, data_path=None) -> dict:
    """The AA side of a work directory: its metadata, bond-graph terms and column names, and every observable's
    mean and standard error over ``n_blocks`` blocks of ``aa_mapped.h5`` (``mean``, ``se``, ``blocks``), or of
    ``data_path`` when given (any CG data file of the same beads)."""
    aa_path = Path(data_path) if data_path is not None else work / "aa_mapped.h5"
    loaded = trajio.load(aa_path)
    meta = loaded.metadata
    n_beads = len(meta["masses_amu"])
    terms = bond_graph_terms(meta["bonds"], n_beads)
    blocks = aa_blocks(loaded, n_blocks)
    mean, se = pooled(observables(blocks, terms, meta["masses_amu"], lags), [len(b) for b in blocks])
    try:
        backbone = find_backbone_beads(meta.get("bead_names"), loaded.topology, meta.get("mapping"))
    except ValueError:
        backbone = {}
    names = column_names(terms, backbone, meta.get("bead_names") or [str(i) for i in range(n_beads)])
    return {"meta": meta, "terms": terms, "names": names, "mean": mean, "se": se, "blocks": len(blocks)}


def production_observables(work: Path, model: str, data: dict, lags=LAGS) -> tuple:
    """Every observable's mean and standard error over the walkers of a model's productions in ``work``, and
    their files; refuses a model without productions."""
    paths = production_files(work, model)
    if not paths:
        raise FileNotFoundError(f"no productions of model '{model}' in {work} (expected cg_{model}.h5)")
    walkers = [w for p in paths for w in load_walkers(p)]
    mean, se = pooled(observables(walkers, data["terms"], data["meta"]["masses_amu"], lags),
                      [len(w) for w in walkers])
    return mean, se, paths


def analyse(work: Path, models, lags=LAGS, n_blocks: int = 20, data_path=None) -> dict:
    """The report of the module docstring for the models of one work directory, against its ``aa_mapped.h5`` or
    ``data_path``."""
    data = data_observables(work, lags, n_blocks, data_path)
    aa_mean, aa_se, names = data["mean"], data["se"], data["names"]
    frame_ps = float(data["meta"]["frame_interval_ps"])
    frictions, cg_mean, cg_se, files = [], [], [], {}
    for model in models:
        mean, se, paths = production_observables(work, model, data, lags)
        friction = float(trajio.read_metadata(paths[0])["friction_per_ps"])
        if any(not math.isclose(float(trajio.read_metadata(p)["friction_per_ps"]), friction) for p in paths):
            raise ValueError(f"the productions of model '{model}' were made at different frictions")
        frictions.append(friction)
        cg_mean.append(mean)
        cg_se.append(se)
        files[model] = [p.name for p in paths]
    table = {}
    for kind in aa_mean:
        rows = []
        for column, name in enumerate(names[kind]):
            per_lag = []
            for row, lag in enumerate(lags):
                aa, aa_err = aa_mean[kind][row, column], aa_se[kind][row, column]
                cg = np.array([m[kind][row, column] for m in cg_mean])
                cg_err = np.array([s[kind][row, column] for s in cg_se])
                log_ratio = np.log(cg / aa)
                log_se = np.sqrt((cg_err / cg) ** 2 + (aa_err / aa) ** 2)
                per_lag.append({"lag_ps": lag * frame_ps, "aa": float(aa), "cg": cg.tolist(),
                                "ratio": np.exp(log_ratio).tolist(), "log_ratio_se": log_se.tolist(),
                                "match": matching_friction(frictions, log_ratio, log_se)})
            rows.append({"name": name, "lags": per_lag})
        table[kind] = rows
    return {"benchmark": "coordinate_friction", "work_dir": work.name, "models": list(models),
            "data": Path(data_path).name if data_path is not None else "aa_mapped.h5",
            "friction_per_ps": dict(zip(models, frictions)), "productions": files,
            "lags_ps": [lag * frame_ps for lag in lags], "aa_blocks": data["blocks"], "observables": table}


def highlights(report: dict) -> dict:
    """Matching frictions (per lag) of phi, psi and the two bead observables, where present."""
    out = {}
    for kind, rows in report["observables"].items():
        for row in rows:
            if row["name"] in ("phi", "psi") or kind in BEAD_OBSERVABLES:
                out[row["name"]] = [lag["match"]["friction_per_ps"] for lag in row["lags"]]
    return out


def matching_curve(row: dict) -> tuple:
    """One observable's matching friction against lag, for a figure: ``(lags_ps, frictions, errors)``, NaN where
    no pair of frictions brackets the data (errors: the log standard error times the friction)."""
    match = [lag["match"] for lag in row["lags"]]
    return ([lag["lag_ps"] for lag in row["lags"]],
            [m["friction_per_ps"] if m["friction_per_ps"] else np.nan for m in match],
            [m["log_se"] * m["friction_per_ps"] if m["friction_per_ps"] else np.nan for m in match])


def format_matches(values) -> str:
    """Matching frictions, one per lag, as a fixed-width line (``-`` where none)."""
    return " ".join("   -  " if v is None else f"{v:6.2f}" for v in values)


def plot(report: dict, out: Path) -> None:
    """Left: the matching friction against lag for phi, psi and the bead observables, with each model's friction
    as a line. Right: the ratio CG/AA of the same observables at the lag nearest 0.5 ps against friction."""
    from matplotlib.ticker import ScalarFormatter

    from openmm_dynmatch.report import pyplot, save_figure
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    lags = np.asarray(report["lags_ps"])
    pick = int(np.argmin(np.abs(lags - 0.5)))
    frictions = report["friction_per_ps"]
    order = np.argsort(list(frictions.values()))
    f_sorted = np.asarray(list(frictions.values()))[order]
    for kind, rows in report["observables"].items():
        for row in rows:
            if not (row["name"] in ("phi", "psi") or kind in BEAD_OBSERVABLES):
                continue
            _, ys, errs = matching_curve(row)
            line = left.errorbar(lags, ys, yerr=errs, marker="o", capsize=2, label=row["name"])
            ratio = np.asarray(row["lags"][pick]["ratio"])[order]
            right.plot(f_sorted, ratio, marker="o", color=line[0].get_color(), label=row["name"])
    groups = []  # models within 5% of one another share a line and a label
    for model, friction in sorted(frictions.items(), key=lambda item: item[1]):
        if groups and friction < 1.05 * groups[-1][1]:
            groups[-1][0].append(model)
        else:
            groups.append(([model], friction))
    for models, friction in groups:
        left.axhline(friction, color="0.6", lw=0.8, ls=":")
        left.annotate(", ".join(models), (lags[-1], friction), fontsize=7, color="0.4", ha="right", va="bottom")
    left.set(xlabel="lag (ps)", ylabel="friction where CG matches AA (1/ps)", yscale="log",
             title="friction each observable asks for")
    right.axhline(1.0, color="k", lw=0.8)
    right.set(xlabel="friction (1/ps)", xscale="log", ylabel="mean squared change, CG / AA",
              title=f"at lag {lags[pick]:.1f} ps")
    for axis in (left.yaxis, right.xaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    save_figure(fig, out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work_dir", type=Path, help="science.py work directory")
    parser.add_argument("models", nargs="+", help="models of one potential at different frictions (cg_<model>.h5)")
    parser.add_argument("--lags", type=int, nargs="+", default=list(LAGS), help="lags in frames")
    parser.add_argument("--aa-blocks", type=int, default=20, help="blocks of the AA data for its standard errors")
    parser.add_argument("--data", type=Path, default=None,
                        help="data file to compare with (default: WORK_DIR/aa_mapped.h5)")
    parser.add_argument("--out", type=Path, default=Path("coordinate_friction.json"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error(f"models: need at least two frictions to bracket a crossing, got {args.models}")
    if min(args.lags) < 1:
        parser.error(f"--lags must be at least 1 frame, got {args.lags}")
    if args.data is not None and not args.data.is_file():
        parser.error(f"--data: no such file '{args.data}'")
    report = analyse(args.work_dir, args.models, args.lags, args.aa_blocks, args.data)
    report["highlights"] = highlights(report)
    write_json(args.out, report)
    for name, values in report["highlights"].items():
        print(f"{name:18s} " + format_matches(values))
    if args.plot:
        plot(report, args.plot)


if __name__ == "__main__":
    main()
