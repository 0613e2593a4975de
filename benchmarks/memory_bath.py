"""Memory in the CG dynamics on the AA data: one potential run Markovian and with hidden-particle baths.

Dynamic matching learns the friction at which the windows' internal motion (frames 0.5 ps apart) looks like the
AA data's; on the psi-corrected potential of seed 1 that friction (about 4/ps) makes the psi-core time 1.2-1.5x
the data's, where a friction of 1.7/ps brings it within 10% and leaves the internal motion at 0.5 ps 1.2x too
large (benchmarks/README.md). A Markovian friction is one number for every time scale. A kernel with memory is
not: a bead with a small friction of its own and a hidden particle tied to it by a spring
(``memory_truth.HiddenBath``) feels the small friction in fast motion and the kernel's integral, the
zero-frequency friction, in slow motion. This script measures whether such dynamics can give both the internal
motion the classifier sees and the psi-core time, on the AA data, with one potential held fixed.

It reads a ``science.py`` work directory (``aa_mapped.h5`` and a trained model's ``run_<model>/model.pt``) and
makes, in ``--out-dir``, productions of that model as ``science.py`` makes them (``--groups`` walker groups of
one System, from the same start frames, 32 walkers x 100 ps each): at each Markovian friction of ``--frictions``,
and with each bath of ``--bath BEAD ZERO MEMORY`` (the bead's own friction, the zero-frequency friction, both
1/ps, and the memory time in ps, :meth:`memory_truth.HiddenBath.from_memory` for the mean bead mass). The model's
own productions in the work directory are judged beside them. For each: the MSM slowest timescale and psi-core
relaxation time over the data's (``memory_truth.judged``: mean and standard error over the groups), and the
internal motion the internal-motion classifier sees (bead MSD after superposing the frames) and the bead MSD
without the centre of mass (whole-molecule rotation included) over the data's at lags of 0.1-5 ps; a figure of
the two times against the internal motion at the windows' frame spacing.

Runs at other ``--seed`` values (their productions in ``WORK/memory_bath_seed<SEED>``) are pooled by ``--pool``:
each row's productions judged together (one run's groups understated the spread between runs, benchmarks/README.md).

    OMP_NUM_THREADS=1 python benchmarks/memory_bath.py WORK --model dm --seed 1 --frictions 1.7 2.5 3.2 \\
        --bath 0.5 4 0.1 --bath 1.5 4 0.1 --out memory_bath_seed1.json --plot memory_bath_seed1.png
    python benchmarks/memory_bath.py --pool memory_bath_seed1.json memory_bath_seed11.json --out pooled.json
"""
import argparse
from pathlib import Path

import numpy as np
import torch

from coordinate_friction import data_observables, production_observables  # benchmarks/ is on the path
from core_memory import production_files
from memory_truth import TIMESTEP_PS, HiddenBath, judged, memory_trajectories, summarised
from openmm_dynmatch import trajio
from openmm_dynmatch.fileio import write_json

#: Lags of the motion ratios, in saved frames (0.1 ps): 0.1 - 5 ps.
LAGS = (1, 2, 5, 10, 20, 50)
#: The lag at which the figure compares the internal motion: the frame spacing of science.py's windows (ps).
WINDOW_LAG_PS = 0.5
OBSERVABLES = ("bead_msd_internal", "bead_msd_com_free")
#: The data's metadata a bath production keeps: the beads' (not the data's trajectories, forces or mapping files).
BEAD_METADATA = ("bead_names", "bead_types", "type_names", "bonds", "masses_amu", "temperature_k", "mapping")


def markov_key(friction: float) -> str:
    return f"markov_{friction:g}"


def bath_key(bead: float, zero: float, memory: float) -> str:
    return f"bath_{bead:g}_{zero:g}_{memory:g}"


def group_files(out_dir: Path, key: str, groups: int) -> list:
    """``cg_<key>.h5`` and ``cg_<key>_group<k>.h5``: ``science.productions``' walker groups, the names
    ``core_memory.production_files`` reads."""
    from science import productions

    return [path for _, path in productions(out_dir, key, 0, groups)]


def made_at(files: list, seed: int) -> list:
    """``files``, after refusing any of them that exists from a run at another seed (they are reused, not made)."""
    for f in files:
        if f.exists() and trajio.read_metadata(f).get("seed") != seed:
            raise ValueError(f"{f} was made at seed {trajio.read_metadata(f).get('seed')}, not at --seed {seed}: "
                             "give another --out-dir")
    return files


def bath_production(model: Path, data, bath: HiddenBath, out_paths: list, settings, seed: int) -> list:
    """Productions of ``model`` with ``bath``, one file per walker group of ``settings.cg_walkers``, all from
    ``science.py``'s start frames (:func:`openmm_dynmatch.demo.production_starts`), run as one System; made where
    missing. Each file is written as :func:`openmm_dynmatch.openmm.runner.simulate` writes its walkers (one frame
    holds every walker's beads, ``n_walkers`` in the metadata), so that every reader of productions takes it; the
    hidden particles are left out, the bath is in the metadata."""
    from openmm_dynmatch.demo import production_starts
    from openmm_dynmatch.fileio import atomic_path

    if all(p.exists() for p in out_paths):
        return out_paths
    meta = data.metadata
    n = settings.cg_walkers
    starts = np.concatenate([production_starts(data.positions, n)] * len(out_paths))
    walkers = memory_trajectories(model, starts, meta, len(starts), settings.cg_ns * 1000.0,
                                  settings.frame_interval_ps, bath, seed)
    n_frames, n_beads = walkers.shape[1], walkers.shape[2]
    topology = data.topology
    for _ in range(n - 1):
        topology = topology.join(data.topology)
    kept = {key: meta[key] for key in BEAD_METADATA if key in meta}
    for k, out in enumerate(out_paths):
        metadata = dict(kept, n_walkers=n, walker_group=[k, len(out_paths)], seed=seed, source=Path(model).name,
                        frame_interval_ps=settings.frame_interval_ps, timestep_ps=TIMESTEP_PS, bath=vars(bath),
                        zero_frequency_friction_per_ps=bath.zero_frequency_friction())
        positions = walkers[k * n:(k + 1) * n].transpose(1, 0, 2, 3).reshape(n_frames, n * n_beads, 3)
        with atomic_path(out) as tmp:
            with trajio.TrajectoryWriter(Path(tmp), topology, metadata) as writer:
                writer.write(positions, np.arange(n_frames) * settings.frame_interval_ps)
    return out_paths


def motion_ratios(work: Path, key: str, obs: dict) -> dict:
    """CG/data of each observable of :data:`OBSERVABLES` at :data:`LAGS` (bead averages), with the standard error
    of its log from the data's blocks and the CG walkers."""
    mean, se, _ = production_observables(work, key, obs, LAGS)
    out = {}
    for name in OBSERVABLES:
        cg, cg_se = np.asarray(mean[name]).ravel(), np.asarray(se[name]).ravel()
        aa, aa_se = np.asarray(obs["mean"][name]).ravel(), np.asarray(obs["se"][name]).ravel()
        out[name] = {"ratio": (cg / aa).tolist(),
                     "log_se": np.sqrt((cg_se / cg) ** 2 + (aa_se / aa) ** 2).tolist()}
    return out


def run(work: Path, model: str, frictions, baths, out_dir: Path, groups: int = 4, seed: int = 0,
        mass_ratio: float = 0.3) -> dict:
    """The productions (made where missing) and their judgement; returns the JSON document. ``baths``: (bead,
    zero-frequency friction, memory time) triples."""
    from openmm_dynmatch.demo import produce_groups
    from science import DEFAULT

    model_file = work / f"run_{model}" / "model.pt"
    if not model_file.exists():
        raise FileNotFoundError(f"no exported model {model_file}; --model names a science.py label (fm, dm, ...)")
    own = production_files(work, model)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = work / "aa_mapped.h5"
    data = trajio.load(data_path)
    bead_mass = float(np.mean(data.metadata["masses_amu"]))
    rows = {}
    if own:  # the model's own productions, judged beside the others where science.py made them
        rows[model] = {"kind": "own", "friction_per_ps": float(trajio.read_metadata(own[0])["friction_per_ps"]),
                       "dir": work}
    for friction in frictions:
        files = made_at(group_files(out_dir, markov_key(friction), groups), seed)
        produce_groups(model_file, data_path, files, DEFAULT, seed, False, friction_per_ps=float(friction))
        rows[markov_key(friction)] = {"kind": "markov", "friction_per_ps": float(friction), "dir": out_dir}
    for bead, zero, memory in baths:
        bath = HiddenBath.from_memory(bead, zero, memory, bead_mass, mass_ratio)
        key = bath_key(bead, zero, memory)
        bath_production(model_file, data, bath, made_at(group_files(out_dir, key, groups), seed), DEFAULT, seed)
        rows[key] = {"kind": "bath", "bath": vars(bath), "bead_friction_per_ps": bead,
                     "zero_frequency_friction_per_ps": bath.zero_frequency_friction(), "memory_time_ps": memory,
                     "dir": out_dir}
    obs = data_observables(work, LAGS, 20)
    frame_ps = float(data.metadata["frame_interval_ps"])
    for key, row in rows.items():
        folder = row.pop("dir")
        files = production_files(folder, key)
        row["productions"] = [f.name for f in files]
        row["kinetics"] = judged(data, files, seed)
        row["motion"] = motion_ratios(folder, key, obs)
    return {"benchmark": "memory_bath", "work_dir": work.name, "model": model, "seed": seed, "groups": groups,
            "mass_ratio": mass_ratio, "bead_mass_amu": bead_mass, "lags_ps": [lag * frame_ps for lag in LAGS],
            "window_lag_ps": WINDOW_LAG_PS, "rows": rows}


def pool(results: list, names=None) -> dict:
    """Results of several runs of one model (other production seeds) as one: per row, every run's productions
    judged together (:func:`memory_truth.summarised`) and the motion ratios averaged over the runs (each run has
    the same walkers); a row keeps the runs and seeds it came from."""
    first = results[0]
    for r in results[1:]:
        if (r["work_dir"], r["model"], r["lags_ps"]) != (first["work_dir"], first["model"], first["lags_ps"]):
            raise ValueError("pool: the results are of other work directories, models or lags "
                             f"({r['work_dir']}/{r['model']} against {first['work_dir']}/{first['model']})")
    rows = {}
    for r in results:
        for key, row in r["rows"].items():
            if row["kind"] == "own" and key in rows:
                continue  # the work directory's own productions: the same files in every run
            rows.setdefault(key, []).append((r["seed"], row))
    pooled = {}
    for key, runs in rows.items():
        row = {k: v for k, v in runs[0][1].items() if k not in ("kinetics", "motion", "productions")}
        row["seeds"] = [seed for seed, _ in runs]
        row["kinetics"] = summarised([p for _, r in runs for p in r["kinetics"]["productions"]])
        row["motion"] = {name: {stat: np.mean([r["motion"][name][stat] for _, r in runs], axis=0).tolist()
                                for stat in ("ratio", "log_se")} for name in OBSERVABLES}
        pooled[key] = row
    return dict({k: v for k, v in first.items() if k not in ("rows", "seed")}, benchmark="memory_bath_pooled",
                sources=list(names or []), seeds=[r["seed"] for r in results], rows=pooled)


def window_ratio(result: dict, row: dict, name: str = "bead_msd_internal") -> tuple:
    """A row's ratio of ``name`` at the windows' frame spacing and the standard error of its log."""
    i = int(np.argmin(np.abs(np.asarray(result["lags_ps"]) - result["window_lag_ps"])))
    return row["motion"][name]["ratio"][i], row["motion"][name]["log_se"][i]


def row_label(key: str, row: dict) -> str:
    if row["kind"] == "bath":
        return (f"bath {row['bead_friction_per_ps']:g} | {row['zero_frequency_friction_per_ps']:g}/ps, "
                f"{row['memory_time_ps']:g} ps")
    if row["kind"] == "own":
        return f"{key} {row['friction_per_ps']:.3g}/ps"
    return f"Markovian {row['friction_per_ps']:g}/ps"


def plot(result: dict, out: Path) -> None:
    """The psi-core and MSM times against the internal motion at the windows' frame spacing: Markovian rows as a
    line in friction, the model's own productions as a star, baths as squares; the 25% band shaded."""
    from openmm_dynmatch.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"wspace": 0.25})
    rows = result["rows"]
    markov = sorted((r for r in rows.values() if r["kind"] == "markov"), key=lambda r: r["friction_per_ps"])
    for ax, key, name in zip(axes, ("core", "msm"), ("psi-core relaxation time", "MSM slowest timescale")):
        xs = [window_ratio(result, r) for r in markov]
        ax.errorbar([x for x, _ in xs], [r["kinetics"][key] for r in markov],
                    xerr=[x * s for x, s in xs], yerr=[r["kinetics"][f"{key}_se"] or 0.0 for r in markov],
                    marker="o", color="0.3", capsize=2, label="Markovian (friction, 1/ps)")
        for r, (x, _) in zip(markov, xs):
            ax.annotate(f"{r['friction_per_ps']:.3g}", (x, r["kinetics"][key]), textcoords="offset points",
                        xytext=(5, 4), fontsize=7)
        others = [(label, r) for label, r in rows.items() if r["kind"] != "markov"]
        for k, (label, r) in enumerate(others):
            x, s = window_ratio(result, r)
            own = r["kind"] == "own"
            ax.errorbar(x, r["kinetics"][key], xerr=x * s, yerr=r["kinetics"][f"{key}_se"] or 0.0,
                        marker="*" if own else "s", ms=10 if own else 6, ls="none", color=f"C{k}", capsize=2,
                        label=row_label(label, r) + (" (its own productions)" if own else ""))
        ax.axhspan(0.75, 1.25, color="0.93", zorder=0)
        ax.axhline(1.0, color="0.5", lw=0.8)
        ax.axvline(1.0, color="0.5", lw=0.8)
        ax.set(xlabel=f"internal motion at {result['window_lag_ps']:g} ps, CG / data", ylabel=f"{name}, CG / data")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result['work_dir']}, model {result['model']}: Markovian frictions and hidden-particle baths "
                 f"(bead friction | zero-frequency friction, memory time); band: within 25%", fontsize=9)
    save_figure(fig, out)


def print_table(result: dict) -> None:
    lags = " ".join(f"{lag:g}" for lag in result["lags_ps"])
    print(f"{'row':32s} {'MSM':>11s} {'psi-core':>11s} | internal at {lags} ps | without centre of mass")
    for key, row in result["rows"].items():
        k = row["kinetics"]
        times = f"{k['msm']:.2f}+-{k['msm_se'] or 0:.2f} {k['core']:.2f}+-{k['core_se'] or 0:.2f}"
        motion = [" ".join(f"{v:.2f}" for v in row["motion"][name]["ratio"]) for name in OBSERVABLES]
        print(f"{row_label(key, row):32s} {times} | " + " | ".join(motion))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path, nargs="?", help="a science.py work directory")
    parser.add_argument("--pool", type=Path, nargs="+", metavar="JSON",
                        help="instead of a run: pool the results of runs of one model at other --seed values "
                             "(each row's productions judged together)")
    parser.add_argument("--model", default="dm", help="the science.py label of the model (its run_<model>)")
    parser.add_argument("--frictions", type=float, nargs="*", default=[1.7, 2.5, 3.2],
                        help="Markovian frictions (1/ps)")
    parser.add_argument("--bath", type=float, nargs=3, action="append", default=[],
                        metavar=("BEAD", "ZERO", "MEMORY"),
                        help="a hidden-particle bath: the bead's own friction and the zero-frequency friction "
                             "(1/ps), the memory time (ps); repeat for more")
    parser.add_argument("--mass-ratio", type=float, default=0.3, help="hidden particle's mass over its bead's")
    parser.add_argument("--groups", type=int, default=4, help="walker groups (productions) per row")
    parser.add_argument("--seed", type=int, default=0, help="the productions' seed (the work directory's)")
    parser.add_argument("--out-dir", type=Path, help="the productions (default WORK_DIR/memory_bath_seed<SEED>)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("memory_bath.json"))
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    if args.groups < 2:
        parser.error(f"--groups must be at least 2 (the standard errors come from the groups), got {args.groups}")
    for bead, zero, memory in args.bath:
        if not (0 < bead < zero and memory > 0):
            parser.error(f"--bath BEAD ZERO MEMORY needs 0 < BEAD < ZERO and MEMORY > 0, got {bead:g} {zero:g} "
                         f"{memory:g}")
    if args.pool:
        import json

        result = pool([json.loads(path.read_text()) for path in args.pool], [path.name for path in args.pool])
        write_json(args.out, result)
        if args.plot:
            plot(result, args.plot)
        print_table(result)
        return result
    if args.work_dir is None:
        parser.error("give a science.py work directory, or --pool with result files")
    torch.set_num_threads(args.threads)
    out_dir = args.out_dir or args.work_dir / f"memory_bath_seed{args.seed}"
    result = run(args.work_dir, args.model, args.frictions, args.bath, out_dir, args.groups, args.seed,
                 args.mass_ratio)
    write_json(args.out, result)
    if args.plot:
        plot(result, args.plot)
    print_table(result)
    return result


if __name__ == "__main__":
    main()
