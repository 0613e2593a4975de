"""Which process the MSM's slowest timescale follows, and how far each model's psi switching is from Markovian.

Reads a ``science.py`` work directory (``aa_mapped.h5`` and the productions ``cg_<model>.h5``,
``cg_<model>_seed<k>.h5``) and, for the AA data and every model named, reports:

- the correlation, over frames, between the slowest right eigenvector of the MSM that ``analysis.compare`` builds
  (2-D TICA fitted on AA, 20 k-means centres on AA, reversible MLE) and the milestoned psi-core indicator
  (extended 1, helical 0), and with the indicator of phi > 0: which process the "slowest timescale" is;
- the psi-core relaxation time from the counted rates, the indicator's correlation time (1/e) and their ratio,
  the memory ratio (:mod:`openmm_dynmatch.cores`; 1 for a two-state Markov chain), with the productions of a
  model pooled; for AA also from the trajectory cut into pieces as long as a CG walker (the short-walker bias);
- the complete dwells in each core: count, mean, coefficient of variation and the share shorter than 1 ps.

    python benchmarks/core_memory.py WORK_DIR fm fmc rem dm --out benchmarks/results/core_memory.json
"""
import argparse
import json
from pathlib import Path

import numpy as np

from openmm_dynmatch import trajio
from openmm_dynmatch.cores import alanine_psi_cores, core_set_kinetics, milestones
from openmm_dynmatch.features import backbone_phi_psi, default_features, find_backbone_beads, tica_project
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.kinetics import discretize, fit_msm
from openmm_dynmatch.openmm.runner import load_walkers

N_STATES = 20
CORE_NAMES = ("extended", "helical")


def production_files(work: Path, model: str) -> list:
    """A model's productions in a science.py work directory (the first, then the other walker groups or seeds)."""
    files = [work / f"cg_{model}.h5"] + sorted(work.glob(f"cg_{model}_group*.h5")) + sorted(
        work.glob(f"cg_{model}_seed*.h5"))
    return [f for f in files if f.exists() and not f.name.endswith(".energies.h5")]


def slowest_process(dtrajs, cvs, lag: int) -> dict:
    """Implied timescales (frames) of the MSM at ``lag`` and the correlation of its slowest right eigenvector with
    the milestoned psi-core indicator and with phi > 0, over all frames committed to a core."""
    msm = fit_msm(dtrajs, lag, N_STATES)
    vector = np.full(N_STATES, np.nan)
    vector[msm.count_model.state_symbols] = np.real(msm.eigenvectors_right(2))[:, 1]
    value = np.concatenate([vector[d] for d in dtrajs])
    angles = np.concatenate(cvs)
    core = np.concatenate([milestones(alanine_psi_cores(c)) for c in cvs])
    keep = np.isfinite(value) & (core >= 0)
    correlation = (lambda other: abs(float(np.corrcoef(value[keep], other[keep])[0, 1])))
    return {"timescales_frames": np.real(msm.timescales(3)), "states": int(msm.n_states),
            "abs_corr_psi_core": correlation((core == 0).astype(float)),
            "abs_corr_phi_positive": correlation((angles[:, 0] > 0).astype(float))}


def dwell_statistics(core_trajs, frame_interval_ps: float) -> dict:
    """Complete dwells (both ends seen) in each core of milestoned trajectories."""
    out = {}
    for core, name in enumerate(CORE_NAMES):
        dwells = []
        for labels in core_trajs:
            m = milestones(labels)
            m = m[m >= 0]
            bounds = np.concatenate([[0], np.flatnonzero(np.diff(m)) + 1, [len(m)]])
            dwells += [(b - a) * frame_interval_ps for a, b in zip(bounds[:-1], bounds[1:])
                       if m[a] == core and a > 0 and b < len(m)]
        d = np.asarray(dwells)
        out[name] = {"n": len(d), "mean_ps": float(d.mean()) if len(d) else None,
                     "cv": float(d.std() / d.mean()) if len(d) > 1 else None,
                     "fraction_below_1ps": float(np.mean(d < 1.0)) if len(d) else None}
    return out


def memory(core_trajs, frame_interval_ps: float) -> dict:
    """Relaxation time, indicator time and memory ratio of core trajectories (no bootstrap)."""
    result = core_set_kinetics(core_trajs, frame_interval_ps, n_bootstrap=0)
    return {key: result[key] for key in ("relaxation_time_ps", "indicator_time_ps", "memory_ratio",
                                         "n_transitions")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", help="a science.py work directory")
    parser.add_argument("models", nargs="+", help="model labels with productions there (fm, fmc, rem, dm, ...)")
    parser.add_argument("--lags-ps", type=float, nargs="+", default=[0.4, 2.7],
                        help="MSM lags of the eigenvector analysis (0.4 ps: the lag science.py's ratios use)")
    parser.add_argument("--piece-ps", type=float, default=100.0,
                        help="AA cut into pieces of this length for the short-walker control (a CG walker's)")
    parser.add_argument("--out", default="core_memory.json")
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    aa = trajio.load(work / "aa_mapped.h5")
    metadata = aa.metadata
    dt = float(metadata["frame_interval_ps"])
    beads = find_backbone_beads(metadata.get("bead_names"), None, metadata.get("mapping"))
    sides = {"aa": [aa.positions]}
    for model in args.models:
        files = production_files(work, model)
        if not files:
            parser.error(f"no production of model '{model}' in {work} (expected cg_{model}.h5)")
        sides[model] = [walker for f in files for walker in load_walkers(f)]
    cvs = {side: [backbone_phi_psi(x, beads) for x in trajs] for side, trajs in sides.items()}
    features = {side: [default_features(x, None, beads) for x in trajs] for side, trajs in sides.items()}
    others = [f for side in args.models for f in features[side]]
    tica = tica_project(features["aa"], others, lagtime=1, dim=2)
    states = discretize(np.concatenate(tica["aa"]), np.concatenate(tica["cg"]), N_STATES, "kmeans", seed=0)
    dtrajs = {"aa": np.split(states["aa"], np.cumsum([len(x) for x in features["aa"]])[:-1])}
    cg_dtrajs = np.split(states["cg"], np.cumsum([len(x) for x in others])[:-1])
    start = 0
    for model in args.models:
        dtrajs[model], start = cg_dtrajs[start:start + len(features[model])], start + len(features[model])
    result = {"work_dir": work.name, "frame_interval_ps": dt, "sides": {}}
    for side in sides:
        cores = [alanine_psi_cores(c) for c in cvs[side]]
        row = {"msm": {f"{lag:g}ps": slowest_process(dtrajs[side], cvs[side], int(round(lag / dt)))
                       for lag in args.lags_ps},
               "memory": memory(cores, dt), "dwells": dwell_statistics(cores, dt),
               "frames": int(sum(len(c) for c in cores))}
        for values in row["msm"].values():
            values["timescales_ps"] = values.pop("timescales_frames") * dt
        if side == "aa":
            piece = int(round(args.piece_ps / dt))
            pieces = [c[i:i + piece] for c in cores for i in range(0, len(c), piece)]
            row[f"memory_in_{args.piece_ps:g}ps_pieces"] = memory(pieces, dt)
        result["sides"][side] = row
        m = row["memory"]
        print(f"{side:5s} memory ratio {m['memory_ratio']:.3f} (indicator {m['indicator_time_ps']:.2f} ps, "
              f"relaxation {m['relaxation_time_ps']:.2f} ps, {m['n_transitions']} transitions); slowest MSM "
              + ", ".join(f"{lag}: {v['timescales_ps'][0]:.2f} ps, |corr| psi-core {v['abs_corr_psi_core']:.2f}, "
                          f"phi>0 {v['abs_corr_phi_positive']:.2f}" for lag, v in row["msm"].items()))
    write_json(Path(args.out), json.loads(json.dumps(result, default=lambda x: np.asarray(x).tolist())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
