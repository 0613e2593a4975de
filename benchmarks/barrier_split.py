"""How much of a model's psi-core time over its data's the equilibrium along psi sets, and how much the dynamics.

The psi-core relaxation time of alanine dipeptide (:mod:`openmm_dynmatch.cores`) depends on the potential (how
rare the frames at the tops of the two psi barriers are, and how the frames split between the helical and the
extended side) and on the dynamics (how fast the molecule moves across a barrier top and how often it recrosses:
friction, memory, inertia). Transition state theory along psi separates the two. With the dividing surfaces
``s_1, s_2`` at the AA data's lowest density in each gap between the psi cores (``science.PSI_GAPS_RAD``), ``rho_i``
the density of psi at ``s_i`` (per rad, frames within ``HALF_WIDTH_RAD``) and ``P`` the fraction of frames between
the surfaces (the helical side), the one-way flux through the surfaces is ``(rho_1 + rho_2) v / 2`` for a mean
speed ``|dpsi/dt| = v`` there, and the relaxation time of a two-state process is

    tau_TST = 2 / (v (rho_1 + rho_2) (1 / P + 1 / (1 - P))).

Every model's ratio ``tau / tau_data`` then splits into the equilibrium ratio ``tau_TST / tau_TST,data`` (the same
``v`` assumed on both sides) and the dynamical factor, the rest: the ratio of ``kappa v`` (transmission times
speed) of the data over the model's. On one potential produced at several frictions the equilibrium ratio is one
number (the frictions do not change the Boltzmann distribution), which the rows check; the dynamical factor is
what a friction, a bath or memory can change. A model whose psi-core time is right because its barriers are too
low and its dynamics too slow shows both factors away from 1.

It reads a ``science.py`` work directory (``aa_mapped.h5``) and the productions of each row, ``cg_<row>.h5`` and its
walker groups (``core_memory.production_files``), in the work directory or in ``--productions DIR ...`` (a row's
files in all of them judged together; ``memory_bath.py`` directories: rows ``markov_<friction>``,
``bath_<bead>_<zero>_<memory>``). For each row and each
of its productions: the psi-core time, the TST time and their ratios over the data's; means and standard errors
over the productions, and the ratios of all productions pooled. ``--plot-from`` draws several such JSON files.

    OMP_NUM_THREADS=1 python benchmarks/barrier_split.py WORK fm fmc dm --out barrier_split_seed0.json
    OMP_NUM_THREADS=1 python benchmarks/barrier_split.py WORK markov_1.7 markov_4.075 --productions \\
        WORK/memory_bath_seed1 --out barrier_split_seed1.json
    python benchmarks/barrier_split.py --plot-from barrier_split_seed0.json barrier_split_seed1.json \\
        --labels "seed 0" "seed 1" --plot barrier_split.png
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

from core_memory import production_files  # benchmarks/ is on the path when this script runs
from memory_truth import mean_se
from openmm_dynmatch import trajio
from openmm_dynmatch.cores import alanine_psi_cores, core_set_kinetics
from openmm_dynmatch.features import backbone_phi_psi, find_backbone_beads
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.openmm.runner import load_walkers
from openmm_dynmatch.units import kt_kj_per_mol
from science import PSI_GAPS_RAD

HALF_WIDTH_RAD = 0.1   # frames within this of a dividing surface count toward its density
BIN_RAD = 0.05         # histogram of the data's psi that places the surfaces
SMOOTH_BINS = 5        # running mean over this many bins before the lowest point is taken
BLOCKS = 20            # contiguous blocks of the data (trajectories one after the other) for its TST time's SE


def dividing_surfaces(psi, gaps: dict = None) -> dict:
    """The psi of the lowest smoothed density within each gap, rad (``gaps``: name -> (low, high))."""
    psi = np.asarray(psi, dtype=float)
    edges = np.arange(-np.pi, np.pi + BIN_RAD, BIN_RAD)
    counts, edges = np.histogram(psi, bins=edges)
    smooth = np.convolve(np.concatenate([counts[-SMOOTH_BINS:], counts, counts[:SMOOTH_BINS]]),
                         np.ones(SMOOTH_BINS) / SMOOTH_BINS, mode="same")[SMOOTH_BINS:-SMOOTH_BINS]
    centres = 0.5 * (edges[1:] + edges[:-1])
    surfaces = {}
    for name, (low, high) in (gaps or PSI_GAPS_RAD).items():
        inside = (centres > low) & (centres < high)
        surfaces[name] = float(centres[inside][np.argmin(smooth[inside])])
    return surfaces


def tst_time(psi, surfaces: dict, half_width: float = HALF_WIDTH_RAD) -> dict:
    """Transition state theory of a two-state process along psi with two dividing surfaces, in units of ``1 / v``
    (rad): ``2 / ((rho_1 + rho_2) (1 / P + 1 / (1 - P)))``, with ``rho_i`` the density at surface ``i`` (per rad)
    and ``P`` the fraction of frames between the surfaces; ``None`` where a surface has no frame or one side none."""
    psi = np.asarray(psi, dtype=float)
    low, high = sorted(surfaces.values())
    density = {name: float(np.mean(np.abs(np.angle(np.exp(1j * (psi - s)))) < half_width) / (2 * half_width))
               for name, s in surfaces.items()}
    between = float(np.mean((psi > low) & (psi < high)))
    total = sum(density.values())
    valid = total > 0 and 0.0 < between < 1.0
    return {"density_per_rad": density, "fraction_between": between,
            "tst_time": 2.0 / (total * (1.0 / between + 1.0 / (1.0 - between))) if valid else None}


def core_time_ps(angle_trajs, frame_interval_ps: float):
    """Psi-core relaxation time (ps) of (phi, psi) trajectories pooled, ``None`` without a transition each way."""
    result = core_set_kinetics([alanine_psi_cores(a) for a in angle_trajs], frame_interval_ps, 2, n_bootstrap=0)
    time = result["relaxation_time_ps"]
    return float(time) if np.isfinite(time) else None


def split(core_ratio, tst_ratio):
    """The dynamical factor ``core_ratio / tst_ratio`` (None where either is)."""
    return None if core_ratio is None or tst_ratio is None else core_ratio / tst_ratio


def data_side(path: Path) -> dict:
    """:func:`reference` of a mapped AA file, one (phi, psi) array per trajectory, with its backbone beads."""
    data = trajio.load(path)
    beads = find_backbone_beads(data.metadata.get("bead_names"), None, data.metadata.get("mapping"))
    segments = trajio.trajectory_segments(data.metadata, len(data.positions))
    angles = [backbone_phi_psi(data.positions[a:b], beads) for a, b in segments]
    return reference(angles, float(data.metadata["frame_interval_ps"]), float(data.metadata["temperature_k"])) | {
        "beads": beads}


def reference(angle_trajs: list, frame_interval_ps: float, temperature_k: float) -> dict:
    """The data's dividing surfaces, psi-core time (with the 16th and 84th percentiles of a bootstrap over blocks)
    and TST time, and the TST time's relative standard error from :data:`BLOCKS` contiguous blocks of the frames
    (the trajectories one after the other)."""
    psi = np.concatenate([a[:, 1] for a in angle_trajs])
    surfaces = dividing_surfaces(psi)
    _, block_se = mean_se(tst_time(b, surfaces)["tst_time"] for b in np.array_split(psi, BLOCKS))
    tst = tst_time(psi, surfaces)
    cores = core_set_kinetics([alanine_psi_cores(a) for a in angle_trajs], frame_interval_ps, 2, n_bootstrap=100)
    return {"frame_interval_ps": float(frame_interval_ps), "temperature_k": float(temperature_k),
            "surfaces_rad": surfaces, "core_time_ps": float(cores["relaxation_time_ps"]),
            "core_time_percentiles_16_84_ps": [cores["lower_ps"], cores["upper_ps"]], "tst": tst,
            "tst_time_relative_se": None if block_se is None else block_se / tst["tst_time"]}


def row_friction(metadata: dict) -> dict:
    """The friction of a production (Markovian) or its bath's zero-frequency friction, from its metadata."""
    if "zero_frequency_friction_per_ps" in metadata:
        return {"kind": "bath", "friction_per_ps": float(metadata["zero_frequency_friction_per_ps"])}
    return {"kind": "markov", "friction_per_ps": float(metadata["friction_per_ps"])}


def judge_row(files: list, data: dict) -> dict:
    """Per production and pooled: psi-core and TST times over the data's, their split, and each surface's
    density over the data's as a free-energy difference (kJ/mol; positive: the model's barrier top is rarer)."""
    kt = kt_kj_per_mol(data["temperature_k"])
    productions, pooled = [], []
    for path in files:
        angles = [backbone_phi_psi(w, data["beads"]) for w in load_walkers(path)]
        pooled += angles
        productions.append(ratios(angles, data, kt) | {"file": path.name})
    row = row_friction(trajio.read_metadata(files[0])) | {"productions": productions,
                                                           "pooled": ratios(pooled, data, kt)}
    for key in ("core_ratio", "tst_ratio", "dynamical_factor"):
        row[key], row[f"{key}_se"] = mean_se(p[key] for p in productions)
    return row


def ratios(angles: list, data: dict, kt: float) -> dict:
    """Psi-core and TST times of (phi, psi) trajectories pooled, over the data's (:func:`reference`), their split
    and the density at each surface as a free-energy difference from the data's (kJ/mol, ``kt`` in kJ/mol)."""
    psi = np.concatenate([a[:, 1] for a in angles])
    tst = tst_time(psi, data["surfaces_rad"])
    core = core_time_ps(angles, data["frame_interval_ps"])
    core_ratio = None if core is None else core / data["core_time_ps"]
    tst_ratio = None if tst["tst_time"] is None else tst["tst_time"] / data["tst"]["tst_time"]
    barrier = {name: (-kt * math.log(rho / data["tst"]["density_per_rad"][name]) if rho > 0 else None)
               for name, rho in tst["density_per_rad"].items()}
    return {"core_time_ps": core, "core_ratio": core_ratio, "tst_ratio": tst_ratio,
            "dynamical_factor": split(core_ratio, tst_ratio), "fraction_between": tst["fraction_between"],
            "surface_free_energy_kj_per_mol": barrier}


def plot(results: list, labels: list, out: Path) -> None:
    """Three panels against the friction (a bath at its zero-frequency friction, hollow): the psi-core time, the
    equilibrium (TST) ratio and the dynamical factor, each CG / data, one colour per JSON file."""
    from friction_gradient import friction_log_axis
    from openmm_dynmatch.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"wspace": 0.3})
    names = (("core_ratio", "psi-core time, CG / data"), ("tst_ratio", "TST time along psi, CG / data"),
             ("dynamical_factor", "dynamical factor (psi-core / TST ratio)"))
    for ax, (key, name) in zip(axes, names):
        for k, (result, label) in enumerate(zip(results, labels)):
            for kind, fill in (("markov", None), ("bath", "none")):
                rows = sorted((r for r in result["rows"].values() if r["kind"] == kind and r[key] is not None),
                              key=lambda r: r["friction_per_ps"])
                if rows:
                    ax.errorbar([r["friction_per_ps"] for r in rows], [r[key] for r in rows],
                                yerr=[r[f"{key}_se"] or 0.0 for r in rows], marker="o", mfc=fill, ls="none",
                                color=f"C{k}", capsize=2, label=f"{label}{', baths' if kind == 'bath' else ''}")
        ax.axhline(1.0, color="0.5", lw=0.8)
        ax.axhspan(0.75, 1.25, color="0.93", zorder=0)
        ax.set(xlabel="friction (1/ps; a bath: its zero-frequency friction)", ylabel=name)
        friction_log_axis(ax.xaxis)
    axes[0].legend(fontsize=7)
    save_figure(fig, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", nargs="?", help="a science.py work directory (its aa_mapped.h5)")
    parser.add_argument("rows", nargs="*", help="rows with productions cg_<row>.h5 (fm, dm, markov_1.7, ...)")
    parser.add_argument("--productions", nargs="+", default=None, metavar="DIR",
                        help="where the rows' productions are, a row's files in every DIR judged together "
                             "(default: the work directory)")
    parser.add_argument("--out", default="barrier_split.json")
    parser.add_argument("--plot-from", nargs="+", default=None, metavar="JSON",
                        help="draw these results of earlier runs instead of measuring")
    parser.add_argument("--labels", nargs="+", default=None, help="legend labels of --plot-from's files")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args(argv)
    if args.plot_from:
        if not args.plot:
            parser.error("--plot-from needs --plot")
        labels = args.labels or [Path(p).stem for p in args.plot_from]
        if len(labels) != len(args.plot_from):
            parser.error(f"--labels: expected {len(args.plot_from)} labels, got {len(labels)}")
        plot([json.loads(Path(p).read_text()) for p in args.plot_from], labels, Path(args.plot))
        return 0
    if not args.work_dir or not args.rows:
        parser.error("give a work directory and at least one row (or --plot-from)")
    work = Path(args.work_dir)
    where = [Path(p) for p in args.productions] if args.productions else [work]
    files = {row: [f for folder in where for f in production_files(folder, row)] for row in args.rows}
    for row, found in files.items():
        if not found:
            parser.error(f"no production of row '{row}' in {', '.join(map(str, where))} (expected cg_{row}.h5)")
    data = data_side(work / "aa_mapped.h5")
    result = {"work_dir": work.name, "productions_dirs": [folder.name for folder in where],
              "half_width_rad": HALF_WIDTH_RAD, "data": {k: v for k, v in data.items() if k != "beads"},
              "rows": {row: judge_row(found, data) for row, found in files.items()}}
    write_json(Path(args.out), json.loads(json.dumps(result, default=float)))
    low, high = data["core_time_percentiles_16_84_ps"]
    print(f"data: psi-core {data['core_time_ps']:.2f} ps ({low:.2f}-{high:.2f}), surfaces "
          + ", ".join(f"{k} {v:.2f} rad" for k, v in data["surfaces_rad"].items())
          + f", TST time relative SE {data['tst_time_relative_se']:.3f}")
    for row, r in result["rows"].items():
        cells = [f"{key} {r[key]:.2f} +- {r[f'{key}_se'] or 0:.2f}" if r[key] is not None else f"{key} -"
                 for key in ("core_ratio", "tst_ratio", "dynamical_factor")]
        print(f"{row:22s} {r['kind']:6s} {r['friction_per_ps']:6.3g}/ps  " + "  ".join(cells))
    if args.plot:
        plot([result], [work.name], Path(args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
