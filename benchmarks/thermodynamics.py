"""Force matching on alanine dipeptide: which prior, which network, how much data.

The thermodynamic baseline that dynamic matching builds on. Every variant is force matching (FM) of the 10 heavy
atom beads (``ala2-heavy10``) on implicit-solvent AA data (flexible bonds, 1 fs, exact mapped forces), with the
budget of the science benchmark (``DemoSettings`` FULL: 1500 Adam steps of 256 frames, early stop on the
validation force loss), then batched OpenMM production (32 walkers x 100 ps from mapped AA frames, Langevin
10/ps) and :func:`openmm_dynmatch.analysis.compare` with the AA data. Per variant: the (phi, psi) FES JS
divergence beside the AA data's own split-half JS (the noise floor at this data length), the extended <->
helical core transitions the CG walkers made, the psi-core relaxation time and MSM slowest timescale ratios,
and the validation force loss.

Two studies:

- ``variants`` (default): prior dihedral modes x network kinds on the 2 ns of the science benchmark
  (``all``: every bonded dihedral inverted on its own marginal, the old default; ``one_per_bond``; ``none``)
  x (``pair_mlp``, ``internal_mlp``, ``schnet``, ``equivariant``); writes ``<stem>_profiles.png``: CG free
  energy along phi and psi of each ``internal_mlp`` prior mode against AA ``-kT ln p``.
- ``--data-sizes 2 5 10 20``: the default potential trained on that many ns of AA data, made as independent
  1 ns replicas (``run_reference(..., replicas=N)``, one mapped file with trajectory boundaries).

Stage outputs in ``--work-dir`` are reused, so an interrupted run continues.

    python benchmarks/thermodynamics.py --out benchmarks/results/thermodynamics.json
    python benchmarks/thermodynamics.py --variants internal_mlp:none pair_mlp:all --out thermo.json
    python benchmarks/thermodynamics.py --data-sizes 2 5 10 20 --out benchmarks/results/thermo_data_size.json
"""
import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from openmm_dynmatch import trajio
from openmm_dynmatch.analysis import compare, to_jsonable
from openmm_dynmatch.demo import FULL, QUICK, demo_config, prepare_aa_data, produce, train_model
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.profiles import free_energy_profiles
from openmm_dynmatch.report import plot_profiles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from science import SPLIT_HALF_FACTOR, backbone_cvs, walker_frames  # noqa: E402

VARIANTS = ["pair_mlp:all", "pair_mlp:none", "internal_mlp:all", "internal_mlp:one_per_bond",
            "internal_mlp:none", "schnet:none", "equivariant:none"]
DEFAULT_VARIANT = "internal_mlp:none"


def fm_variant(cg_path: Path, work: Path, label: str, variant: str, settings, seed: int, progress: bool) -> dict:
    """Train, produce and compare one FM variant (``"<net kind>:<prior dihedrals>"``); reuses finished stages."""
    kind, dihedrals = variant.split(":")
    config = demo_config(cg_path, settings, "force_matching", seed)
    config = replace(config, potential=replace(config.potential, kind=kind, prior_dihedrals=dihedrals),
                     train=replace(config.train, probe_windows=0))
    start = time.perf_counter()
    summary = train_model(config, work / f"run_{label}", progress)
    trained = time.perf_counter()
    cg_file = produce(summary["model"], cg_path, work / f"cg_{label}.h5", settings, seed, progress)
    produced = time.perf_counter()
    aa = trajio.load(cg_path)
    s = compare(aa, trajio.load(cg_file), seed=seed)["summary"]
    stage = (summary.get("stages") or [{}])[-1]
    return {"variant": variant, "net": kind, "prior_dihedrals": dihedrals, "aa_ns": float(
        aa.n_frames * aa.metadata["frame_interval_ps"] / 1000.0),
        "js_fes_2d": s.get("js_fes_2d"), "js_fes_1d": s.get("js_fes_1d"),
        "aa_split_half_js": s.get("js_fes_2d_aa_split_half"),
        "core_transitions_cg": s.get("core_transitions_cg"), "core_transitions_aa": s.get("core_transitions_aa"),
        "core_relaxation_ratio": s.get("core_relaxation_ratio"),
        "core_relaxation_cg_bound_ps": s.get("core_relaxation_cg_bound_ps"),
        "slowest_timescale_ratio": (s.get("timescale_ratio") or [None])[0],
        "validation_force_loss": summary.get("validation_force_loss"),
        "fm_stopped_at_iteration": stage.get("stopped_at_iteration"),
        "train_s": trained - start, "production_s": produced - trained, "cg_file": Path(cg_file).name}


def with_targets(row: dict) -> dict:
    """Add whether the variant meets the thermodynamic targets (JS within twice the AA split-half JS, walkers
    crossing between the basins)."""
    js, floor = row["js_fes_2d"], row["aa_split_half_js"]
    return dict(row, js_over_split_half=None if js is None else js / floor,
                js_within_2x_split_half=None if js is None else js <= SPLIT_HALF_FACTOR * floor,
                crosses=bool(row["core_transitions_cg"]))


def study_variants(work: Path, variants, settings, seed: int, progress: bool) -> dict:
    """Every variant on the 2 ns data set; the profile figure's curves."""
    _, cg_path = prepare_aa_data(work, settings, seed, progress)
    aa = trajio.load(cg_path)
    rows = [with_targets(fm_variant(cg_path, work, v.replace(":", "_"), v, settings, seed, progress))
            for v in variants]
    cvs = {"AA": backbone_cvs(aa.positions, aa.metadata)}
    for row in rows:
        if row["net"] == "internal_mlp":
            cvs[f"FM, prior dihedrals: {row['prior_dihedrals']}"] = backbone_cvs(
                walker_frames(work / row["cg_file"]), aa.metadata)
    profiles = free_energy_profiles(cvs, aa.metadata["temperature_k"], ["phi", "psi"])
    return {"rows": rows, "profiles": to_jsonable(profiles)}


def study_data_sizes(work: Path, sizes_ns, settings, seed: int, progress: bool) -> dict:
    """The default variant trained on 1 ns replicas adding up to each size."""
    from openmm_dynmatch.mapping import map_trajectory
    from openmm_dynmatch.openmm.reference import run_reference
    from openmm_dynmatch.openmm.aa_systems import get_system

    n_replicas = int(max(sizes_ns))
    replica_ns = settings.aa_ns / 2.0
    system = get_system("alanine-dipeptide-implicit", constraints=None)
    files = run_reference(system, work / "replicas" / "aa.h5", replica_ns, settings.frame_interval_ps,
                          timestep_ps=0.001, save_forces=True, seed=seed, platform="Reference", progress=progress,
                          equilibration_ps=min(10.0, replica_ns * 100), replicas=n_replicas)
    rows = []
    for size in sizes_ns:
        count = int(round(size / replica_ns))
        cg_path = work / f"aa_mapped_{size:g}ns.h5"
        if not cg_path.exists():
            map_trajectory(files[:count], "ala2-heavy10", cg_path, progress=progress)
        rows.append(with_targets(fm_variant(cg_path, work, f"size_{size:g}ns", DEFAULT_VARIANT, settings, seed,
                                            progress)))
    return {"replica_ns": replica_ns, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=None, metavar="NET:PRIOR",
                        help=f"variants to run (default: {' '.join(VARIANTS)})")
    parser.add_argument("--data-sizes", nargs="+", type=float, default=None, metavar="NS",
                        help="run the data-size study instead, e.g. 2 5 10 20 (ns of AA data)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--work-dir", default="thermodynamics_run", help="stage files (reused when present)")
    parser.add_argument("--out", default="thermodynamics.json", help="JSON result; the figure is written beside it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(args.threads, 1))
    settings = QUICK if args.quick else FULL
    work, out = Path(args.work_dir), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.data_sizes:
        result = study_data_sizes(work, args.data_sizes, settings, args.seed, not args.no_progress)
    else:
        variants = args.variants or VARIANTS
        for v in variants:
            if v.count(":") != 1:
                parser.error(f"--variants: expected NET:PRIOR (e.g. internal_mlp:none), got {v!r}")
        result = study_variants(work, variants, settings, args.seed, not args.no_progress)
        plot_profiles(result["profiles"], ["phi", "psi"], out.with_name(out.stem + "_profiles.png"),
                      styles={"AA": {"color": "black", "linewidth": 2}})
    result.update(benchmark="thermodynamics", date=time.strftime("%Y-%m-%d"), host=platform.platform(),
                  settings={"fm_iterations": settings.fm_iterations, "aa_ns": settings.aa_ns,
                            "cg_walkers": settings.cg_walkers, "cg_ns": settings.cg_ns}, seed=args.seed,
                  total_s=time.perf_counter() - start)
    write_json(out, result, indent=None)
    table = [{k: r[k] for k in ("variant", "aa_ns", "js_fes_2d", "aa_split_half_js", "core_transitions_cg",
                                "core_relaxation_ratio", "slowest_timescale_ratio")} for r in result["rows"]]
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
