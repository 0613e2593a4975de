"""Force matching vs calibrated friction vs relative entropy vs dynamic matching on alanine dipeptide.

One run, one set of AA data, four CG models of the same 10 heavy-atom beads (``ala2-heavy10``) with the same
potential (the default: a prior of bonds, angles and repulsion fitted by Boltzmann inversion, no dihedral terms,
plus the many-body ``internal_mlp`` network; see docs/models.md for why) and the same budget. The default
settings (``DEFAULT``) are those of the result of record: 10 ns of AA data (two independent trajectories of
5 ns, made side by side), windows of 4 frames 0.5 ps apart, the internal-motion classifier with 10 steps per
iteration, 256 walkers per iteration (the classifier's steps on 64 + 64 windows drawn from them), the
friction learned alone (Adam's steps) on the force-matched potential with the classifier re-initialised every 20
updates (15 classifier-only iterations after each; 80 friction updates), four productions per model; ``--set
KEY=VALUE`` changes one of them, ``--quick`` and ``--full`` replace them all.

1. AA reference MD: implicit-solvent (OBC2) alanine dipeptide, OpenMM Reference platform, flexible bonds at a
   1 fs step (so the mapped forces are exact), Langevin friction 1/ps, 300 K; frames every 0.1 ps; mapped to
   the beads. ``--aa-mapped FILE`` uses an existing mapped AA trajectory with forces instead (explicit-solvent
   data made elsewhere, for instance on a GPU).
2. Training, each in its own run folder through :func:`openmm_dynmatch.runs.run_training`:

   - ``fm``: force matching alone, ``fm_iterations`` Adam steps (early stop on the validation force loss), at
     the friction dynamic matching starts from (``DynamicsConfig.friction_per_ps`` of the demo, 10/ps);
   - ``fmc``: the same force matching, then the friction calibrated on the bead mean-square displacement of the
     mapped AA data (``train.pretrain_friction: msd``, :mod:`openmm_dynmatch.calibration`): what
     practitioners do by hand, the baseline dynamic matching has to beat;
   - ``rem``: the same force matching, then ``iterations`` relative-entropy steps, each advancing ``walkers``
     persistent OpenMM walkers by one window's worth of steps;
   - ``dm``: the same force matching, then ``iterations`` dynamic-matching steps with ``walkers`` OpenMM walkers
     of one window each: the OpenMM sampling budget of ``rem`` exactly, learning the friction (and, where
     ``friction_first`` leaves a joint phase, the potential).

3. Batched OpenMM production of each exported model (``cg_walkers`` walkers of ``cg_ns`` from mapped AA frames;
   ``--production-seeds N``: N productions per model from the same frames, run as N walker groups of one System
   seeded by ``seed`` and split into one file each, which costs far less than N Systems on the CPU;
   ``--separate-productions`` runs them one System each at seeds ``seed .. seed + N - 1``, as runs before
   2026-12-05 did), and of the ``fm`` model's prior alone.
4. :func:`openmm_dynmatch.analysis.compare` of each model with the AA data: FES JS divergence on (phi, psi)
   beside the AA data's own split-half JS (its noise floor at this data length), MSM implied timescales (TICA
   fitted on AA, k-means centres on AA), their CG/AA ratio at the lag ``compare`` chooses, the relaxation time
   of extended <-> helical transitions counted on psi cores (:mod:`openmm_dynmatch.cores`; it stays meaningful
   when few CG walkers cross, where the MSM's connected set can lose the slow process) and its CG/AA ratio, the
   COM diffusion ratio; plus the held-out ROC-AUC of a fresh classifier telling AA windows from the model's
   (:mod:`openmm_dynmatch.indistinguishability`; 0.5 = indistinguishable). With several productions the
   kinetic ratios and the FES JS are averaged over them (each also per seed, with its standard error) and the
   targets are judged on the means: one production of 32 walkers x 100 ps moves the ratios by about +-0.2.
   The AA data are also judged against themselves (:func:`aa_halves`, ``aa_halves`` in the JSON): the later half
   of the AA trajectories against the earlier half, the noise of the AA side of those ratios.
   ``--reference DIR`` judges every model against other AA data instead: ``--reference-replicas`` independent
   trajectories of ``aa_ns`` each at ``--reference-seed`` (apart from the training data's seeds), made in DIR or
   reused from there, so that runs at several seeds share one yardstick longer than their training data; the
   training data are then judged against it too (``training_aa_vs_reference``), and ``aa_halves`` are the
   reference's.
5. The thermodynamic investigation of the ``fm`` model (:func:`profile_study`): along phi and along psi, AA
   ``-kT ln p``, the sampled free energy of the full model and of its prior alone, and the network's energy
   averaged per bin. And the landscape behind the kinetics for every model (:func:`psi_landscape`, all its
   productions pooled): the free energy along psi, the highest point of each of the two gaps between the psi
   cores (a helical <-> extended transition crosses one) and the extended - helical free energy.

``--friction-starts 1 20`` also trains dynamic matching from those initial frictions and reports whether the
learned frictions agree with the main run's within 15%, and the kinetics of each of those models from one
production (seed ``seed``, beside the main model's production at that seed). ``--friction-scan 0.25 0.5 1 2`` also runs
the force-matched and the dynamic-matching potentials at those frictions (production only) and writes
``<stem>_friction_scan.png``: whether any single friction gives both AA times with either potential.

Writes ``<out>`` (JSON: settings, timings, per-model metrics, the targets and whether they are met) and four
figures beside it, ``<stem>_fes.png``, ``<stem>_summary.png``, ``<stem>_profiles.png`` and ``<stem>_psi.png``;
prints a one-line summary to stderr. Finished stages in ``--work-dir`` are reused, so an interrupted run continues where it
stopped; the timings of reused stages are the ones measured when they ran (kept in ``<work-dir>/timings.json``).
The same reuse runs the stages in parallel: ``--jobs N`` (default: the cores available, at most 4) first makes
every training and production in N processes (``stages.py``; lanes of about equal estimated cost, each a
model's training followed by its productions), then this process analyses what they wrote; the results are
those of one process (``--jobs 1``) to the last digit.

    OMP_NUM_THREADS=1 python benchmarks/science.py --out benchmarks/results/science_default.json  # 27 min, 2 cores
    python benchmarks/science.py --friction-starts 1 20 --out science_starts.json  # + two DM trainings (21 min each)
    python benchmarks/science.py --full --out science_full.json                     # hours
"""
import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from openmm_dynmatch import trajio
from openmm_dynmatch.analysis import compare, to_jsonable
from openmm_dynmatch.cores import alanine_psi_cores
from openmm_dynmatch.demo import (FULL, QUICK, DemoSettings, demo_config, prepare_aa_data, produce, produce_groups,
                                  train_model)
from openmm_dynmatch.features import backbone_phi_psi, find_backbone_beads
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.profiles import barrier_height, free_energy_profiles
from openmm_dynmatch.report import plot_fes_panels, plot_profiles, pyplot, save_figure
from openmm_dynmatch.threads import available_cores
from openmm_dynmatch.units import kt_kj_per_mol
from stages import StageClock, plan_lanes, run_lanes  # benchmarks/ is on the path when this script runs

# The settings of the result of record (benchmarks/README.md, "Adam's steps at seed 0"; with sgd's steps, "The
# default run"): 10 ns of AA data as two independent 5 ns trajectories (made side by side), windows of 4 frames 0.5
# ps apart, 10 classifier steps per iteration, the internal-motion classifier; dynamic matching with 256 walkers
# (classifier steps on 64 + 64 windows drawn from them) learns the friction alone on the force-matched potential for
# 125 iterations after the warm-up, the classifier re-initialised every 20 updates and trained alone for 15
# iterations after each (80 friction updates in all; 100 took 35.7 min instead of 27.2 and gave the same friction):
# the classifier's memory of earlier CG set the friction the game reached with one classifier throughout
# (benchmarks/README.md, "The three starts with 256 walkers"). The friction's steps are Adam's at the demo's rate
# (0.05), not sgd's (rate 0.3, the default until 2026-12-07): the starts from 1, 10 and 20/ps ended within 15% of
# each other at the three seeds measured with Adam, with sgd at one of two, because the classifiers push up from
# below far more weakly than down from above (benchmarks/README.md, "Adam's steps at seed 2").
DEFAULT = replace(FULL, aa_ns=5.0, aa_replicas=2, frame_step=5, classifier_steps=10, internal_motion=True,
                  dm_walkers=256, classifier_batch=64, classifier_reset_every=20, classifier_reset_warmup=15,
                  friction_first=125, dm_iterations=145)
DEFAULT_PRODUCTION_SEEDS = 4
LARGE = DemoSettings(aa_ns=10.0, frame_interval_ps=0.1, fm_iterations=3000, dm_iterations=600, dm_walkers=128,
                     dm_warmup=40, window_frames=4, cg_walkers=64, cg_ns=1.0, probe_windows=512)
OBJECTIVES = {"fm": "force_matching", "fmc": "force_matching", "rem": "relative_entropy", "dm": "dynamic_matching"}
LABELS = {"aa": "AA (mapped)", "fm": "force matching", "fmc": "FM + calibrated friction", "rem": "relative entropy",
          "dm": "dynamic matching"}
ITS_TOLERANCE = 0.25
REFERENCE_SEED = 1000
REFERENCE_REPLICAS = 8
FRICTION_START_TOLERANCE = 0.15
JS_MARGIN = 0.01
SPLIT_HALF_FACTOR = 2.0
PSI_BARRIER_RAD = (0.0, 2.0)
# the two gaps between the psi cores of openmm_dynmatch.cores (helical -1.4..0, extended 1.5..pi and -pi..-2.8):
# a helical <-> extended transition crosses one of them
PSI_GAPS_RAD = {"via_psi_0.75": (0.0, 1.5), "via_psi_-2.1": (-2.8, -1.4)}
PROFILE_STYLES = {"AA": {"color": "black", "linewidth": 2}, "CG (prior + network)": {"color": "C0"},
                  "CG prior only": {"color": "C1"}, "network": {"color": "C2"}, "prior dihedral terms": {"color": "C3"}}


def train_one(label: str, cg_path: Path, work: Path, settings: DemoSettings, seed: int, clock: StageClock,
              progress: bool) -> dict:
    """Train one of the four models (``OBJECTIVES``; ``dm_from_<f>``: dynamic matching from the initial friction
    ``f``); returns its run summary."""
    run_dir = work / f"run_{label}"
    if label.startswith("dm_from_"):
        config = demo_config(cg_path, settings, "dynamic_matching", seed)
        config = replace(config, dynamics=replace(config.dynamics, friction_per_ps=float(label[len("dm_from_"):])))
    else:
        config = demo_config(cg_path, settings, OBJECTIVES[label], seed)
    if label == "fmc":
        config = replace(config, train=replace(config.train, pretrain_friction="msd"))
    return clock.run(f"train_{label}_s", (run_dir / "summary.json").exists(), train_model, config, run_dir,
                     progress)


def train_all(cg_path: Path, work: Path, settings: DemoSettings, seed: int, clock: StageClock,
              progress: bool) -> dict:
    """Train the four models; returns their run summaries keyed by model label."""
    return {label: train_one(label, cg_path, work, settings, seed, clock, progress) for label in OBJECTIVES}


def produce_model(label: str, summary: dict, cg_path: Path, work: Path, settings: DemoSettings, seed: int,
                  clock: StageClock, progress: bool, count: int, separate: bool = False) -> list:
    """The model's ``count`` productions, made where missing; returns their files. They are walker groups of one
    System seeded by ``seed`` (one stage), or with ``separate`` one System each at seeds ``seed ..``."""
    tasks = productions(work, label, seed, count, separate)
    if separate or count == 1:
        return [clock.run(key, target.exists(), produce, summary["model"], cg_path, target, settings, seed + k,
                          progress) for k, (key, target) in enumerate(tasks)]
    targets = [target for _, target in tasks]
    return clock.run(f"production_{label}_{count}_groups_s", all(t.exists() for t in targets), produce_groups,
                     summary["model"], cg_path, targets, settings, seed, progress)


def produce_prior(cg_path: Path, work: Path, settings: DemoSettings, seed: int, clock: StageClock,
                  progress: bool) -> Path:
    """Production of the force-matched model's prior alone (made where missing); returns its file."""
    target = work / "cg_fm_prior.h5"
    return clock.run("production_fm_prior_only_s", target.exists(), produce, prior_only_model(work / "run_fm"),
                     cg_path, target, settings, seed, progress)


def produce_at_friction(label: str, friction: float, summary: dict, cg_path: Path, work: Path,
                        settings: DemoSettings, seed: int, clock: StageClock, progress: bool) -> Path:
    """One production of a trained model at another friction (made where missing); returns its file."""
    target = work / f"cg_{label}_friction_{friction:g}.h5"
    return clock.run(f"production_{label}_friction_{friction:g}_s", target.exists(), produce, summary["model"],
                     cg_path, target, settings, seed, progress, friction)


# Rough cost of each kind of stage lane task, in units of one force-matching training (29 s; the default run of
# 2026-12-05, sixth session, one thread each): dynamic matching 50, calibrated friction 8, relative entropy 16 (DM
# and REM with 256 walkers), one production 2.2. They only balance the lanes of --jobs; results do not depend on
# them.
LANE_COSTS = {"dm": 50.0, "fmc": 8.0, "rem": 16.0, "fm": 1.0, "production": 2.2}
# One more walker group of a grouped production adds about this fraction of one production's cost (a force
# evaluation of 128 walkers costs 1.45x one of 32, benchmarks/potential_speed.py's internal_mlp).
GROUP_COST = 0.15


def production_cost(count: int, separate: bool) -> float:
    """Rough lane cost of ``count`` productions of one model (units of :data:`LANE_COSTS`)."""
    return LANE_COSTS["production"] * (count if separate else 1.0 + GROUP_COST * (count - 1))


def lane_tasks(production_seeds: int, friction_starts, friction_scan, separate: bool = False, work=None,
               seed: int = 0) -> dict:
    """The stage tasks of a run and their rough costs: one task per model (its training, productions and, for
    ``fm`` and ``dm``, its productions at the ``friction_scan`` frictions; for ``fm`` also its prior alone), one
    per extra friction start (training and one production). Stages whose outputs are already in ``work`` cost
    nothing, so that a run added to a finished one (more friction starts) spreads its new stages over the lanes."""
    root = Path(work or ".")

    def missing(path: Path) -> bool:
        return work is None or not path.exists()

    def model_cost(label: str, base: str, count: int, extra_files: list) -> float:
        files = [target for _, target in productions(root, label, seed, count, separate)]
        cost = LANE_COSTS[base] if missing(root / f"run_{label}" / "summary.json") else 0.0
        cost += production_cost(count, separate) if any(missing(f) for f in files) else 0.0
        return cost + LANE_COSTS["production"] * sum(missing(f) for f in extra_files)

    costs = {}
    for label in OBJECTIVES:
        extra = [root / f"cg_{label}_friction_{float(f):g}.h5" for f in friction_scan] if label in SCAN_MODELS else []
        extra += [root / "cg_fm_prior.h5"] if label == "fm" else []
        costs[("model", label)] = model_cost(label, label, production_seeds, extra)
    for start in friction_starts:
        name = f"dm_from_{float(start):g}"
        costs[("model", name)] = model_cost(name, "dm", 1, [])
    return costs


def run_lane(tasks: list, cg_path: Path, work: Path, settings: DemoSettings, seed: int, production_seeds: int,
             friction_scan: list, threads: int, separate: bool) -> None:
    """Make every output of the lane's tasks (see :func:`lane_tasks`) in this process, without progress bars."""
    import torch

    torch.set_num_threads(threads)
    clock = StageClock(work)
    for _, label in tasks:
        summary = train_one(label, cg_path, work, settings, seed, clock, False)
        produce_model(label, summary, cg_path, work, settings, seed, clock, False,
                      1 if label.startswith("dm_from_") else production_seeds, separate)
        if label == "fm":
            produce_prior(cg_path, work, settings, seed, clock, False)
        if label in SCAN_MODELS:
            for friction in sorted(set(map(float, friction_scan)) - {float(summary["friction_per_ps"])}):
                produce_at_friction(label, friction, summary, cg_path, work, settings, seed, clock, False)


SEED_AVERAGED = ("slowest_timescale_ratio", "core_relaxation_ratio", "diffusion_com_ratio", "js_fes_2d",
                 "core_memory_ratio", "slowest_timescale_ratio_plateau")


def model_metrics(aa, cg_files: list, summary: dict, seed: int) -> dict:
    """Headline numbers of one CG model against the AA data, plus the curves the figures need.

    ``cg_files`` are the model's productions (walker groups of one run, or runs at seeds ``seed ..``). The
    kinetic ratios and the FES JS divergence are the means over them (:func:`seed_average`: each also per
    production, ``<key>_per_seed``, and with its standard error); the curves and the other numbers come from the
    first production.
    """
    results = [compare(aa, trajio.load(path), seed=seed) for path in cg_files]
    s = results[0]["summary"]
    per_seed = [judged_row(r) for r in results]
    auc = summary.get("heldout_auc") or {}
    metrics = {
        "js_fes_1d": s.get("js_fes_1d"), "js_fes_2d_aa_split_half": s.get("js_fes_2d_aa_split_half"),
        "timescale_ratios": s.get("timescale_ratio"),
        "timescales_cg_ps": s.get("timescales_cg_ps"), "timescales_aa_ps": s.get("timescales_aa_ps"),
        "timescale_lag_ps": s.get("timescale_lag_ps"),
        "core_relaxation_cg_ps": s.get("core_relaxation_cg_ps"), "core_relaxation_aa_ps": s.get("core_relaxation_aa_ps"),
        "core_relaxation_cg_bound_ps": s.get("core_relaxation_cg_bound_ps"),
        "core_transitions_cg": s.get("core_transitions_cg"), "core_transitions_aa": s.get("core_transitions_aa"),
        "core_memory_ratio_aa": s.get("core_memory_ratio_aa"), "plateau_lag_ps": per_seed[0].get("plateau_lag_ps"),
        "acf_time_ratio": s.get("acf_time_ratio"), "bond_js_max": s.get("bond_js_max"),
        "angle_js_max": s.get("angle_js_max"),
        "heldout_auc": heldout_auc(summary),
        "heldout_auc_before_dm": (auc.get("before") or {}).get("auc"),
        "friction_per_ps": summary.get("friction_per_ps"),
        "production_files": [Path(f).name for f in cg_files], "kinetics_per_seed": per_seed,
        "curves": {"fes": results[0]["fes"], "its": results[0]["its"]},
    }
    metrics.update(seed_average(per_seed, SEED_AVERAGED))
    return metrics


def judged_row(result: dict) -> dict:
    """One comparison's row: :func:`kinetics_with_spread` and the FES JS divergence."""
    return dict(kinetics_with_spread(result), js_fes_2d=result["summary"].get("js_fes_2d"))


def heldout_auc(summary: dict):
    """Held-out AUC of a fresh classifier against a trained model's windows (None where the run has none)."""
    return ((summary.get("heldout_auc") or {}).get("after") or {}).get("auc")


def seed_average(rows: list, keys) -> dict:
    """For each key: the mean over ``rows`` (None when any row lacks it: a production whose walkers never crossed
    cannot be averaged away), the values per row as ``<key>_per_seed``, and the standard error of the mean
    (sample standard deviation over sqrt(n); None for one row) as ``<key>_sem``."""
    out = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        known = None not in values
        out[key] = float(np.mean(values)) if known else None
        out[f"{key}_per_seed"] = values
        out[f"{key}_sem"] = float(np.std(values, ddof=1) / np.sqrt(len(values))) if known and len(values) > 1 else None
    return out


def productions(work: Path, label: str, seed: int, count: int, separate: bool = False) -> list:
    """``(timing key, file)`` of a model's ``count`` productions: walker groups ``cg_<label>_group<k>.h5``, or with
    ``separate`` runs at seeds ``seed .. seed + count - 1`` (``cg_<label>_seed<s>.h5``); the first keeps the name
    of a single-production run, so earlier work directories are reused."""
    name = (lambda k: f"seed{seed + k}") if separate else (lambda k: f"group{k}")
    return [(f"production_{label}_s", work / f"cg_{label}.h5")] + [
        (f"production_{label}_{name(k)}_s", work / f"cg_{label}_{name(k)}.h5") for k in range(1, count)]


def backbone_cvs(positions, metadata) -> np.ndarray:
    """(phi, psi) of alanine-dipeptide frames ``(n_frames, n_beads, 3)``, shape (n_frames, 2), rad."""
    beads = find_backbone_beads(metadata.get("bead_names"), None, metadata.get("mapping"))
    return backbone_phi_psi(positions, beads)


def walker_frames(path: Path) -> np.ndarray:
    """Every frame of every walker of a CG production file, shape (n_walkers * n_frames, n_beads, 3), nm."""
    from openmm_dynmatch.openmm.runner import load_walkers

    walkers = load_walkers(path)
    return walkers.reshape(-1, *walkers.shape[2:])


def production_angles(paths, metadata) -> np.ndarray:
    """(phi, psi) of every frame of every walker of the CG productions ``paths`` pooled, shape (n, 2), rad."""
    return np.concatenate([backbone_cvs(walker_frames(path), metadata) for path in paths])


def prior_only_model(run_dir: Path) -> Path:
    """The trained run's prior alone (network removed), exported next to its model as ``prior_model.pt``."""
    import torch

    from openmm_dynmatch.models.potential import CGPotential, build_net, load_potential
    from openmm_dynmatch.openmm.export import export

    target = run_dir / "prior_model.pt"
    if not target.exists():
        potential, metadata = load_potential(run_dir / "potential.pt")
        net = build_net({"kind": "none", "n_beads": potential.n_beads, "bonds": potential.spec["bonds"]})
        with torch.no_grad():
            export(CGPotential(potential.prior, net).eval(), target, metadata)
    return target


def profile_study(aa, run_dir: Path, cg_file: Path, prior_file: Path, max_frames: int = 20000) -> dict:
    """Along phi and psi: AA ``-kT ln p``, the sampled free energy of the full CG model and of its prior alone,
    and the network's energy and the prior's dihedral energy averaged per bin over the full model's frames.

    Returns :func:`openmm_dynmatch.profiles.free_energy_profiles` plus ``psi_barrier_kj_per_mol``: the highest
    point of each curve along psi between the helical and extended basins (0 < psi < 2 rad).
    """
    import torch

    from openmm_dynmatch.models.potential import load_potential

    meta = aa.metadata
    cg = walker_frames(cg_file)
    sub = cg[:: max(len(cg) // max_frames, 1)]
    potential = load_potential(run_dir / "potential.pt")[0].double().eval()
    with torch.no_grad():
        x = torch.as_tensor(sub, dtype=torch.float64)
        u_net = potential.net(x).numpy()
        u_dihedrals = potential.prior.energy_terms(x)["dihedrals"].numpy()
    sub_cvs = backbone_cvs(sub, meta)
    energies = {"network": (sub_cvs, u_net)}
    if np.ptp(u_dihedrals) > 0:
        energies["prior dihedral terms"] = (sub_cvs, u_dihedrals)
    cvs = {"AA": backbone_cvs(aa.positions, meta), "CG (prior + network)": backbone_cvs(cg, meta),
           "CG prior only": backbone_cvs(walker_frames(prior_file), meta)}
    profiles = free_energy_profiles(cvs, meta["temperature_k"], ["phi", "psi"], energies)
    psi = profiles["psi"]
    profiles["psi_barrier_kj_per_mol"] = {
        label: barrier_height(curve, psi["edges"], PSI_BARRIER_RAD)
        for kind in ("free_energy", "mean_energy") for label, curve in psi[kind].items()}
    return profiles


def psi_landscape(psi_by_source: dict, temperature_k: float) -> dict:
    """Free energy along psi of each source (AA, each model with all its productions pooled) and the numbers that
    set the helical <-> extended kinetics: the highest point of each gap between the psi cores
    (:data:`PSI_GAPS_RAD`), measured from the source's own minimum, and the extended - helical free energy
    ``-kT ln(P_extended / P_helical)`` from the core populations (:func:`openmm_dynmatch.cores.alanine_psi_cores`).

    Parameters
    ----------
    psi_by_source : dict of label -> np.ndarray, shape (n_frames, 2)
        (phi, psi) of every frame, rad.
    temperature_k : float, K

    Returns
    -------
    dict
        ``edges`` and ``free_energy`` (label -> curve, kJ/mol) along psi, and ``barriers`` (label -> the two gap
        heights and ``extended_minus_helical_kj_per_mol``).
    """
    psi = free_energy_profiles(psi_by_source, temperature_k, ["phi", "psi"])["psi"]
    kt = kt_kj_per_mol(temperature_k)
    barriers = {}
    for label, angles in psi_by_source.items():
        labels = alanine_psi_cores(angles)
        extended, helical = int(np.sum(labels == 0)), int(np.sum(labels == 1))
        row = {f"barrier_{gap}_kj_per_mol": barrier_height(psi["free_energy"][label], psi["edges"], window)
               for gap, window in PSI_GAPS_RAD.items()}
        row["extended_minus_helical_kj_per_mol"] = (-kt * float(np.log(extended / helical))
                                                    if extended and helical else None)
        barriers[label] = row
    return {"edges": psi["edges"], "free_energy": psi["free_energy"], "barriers": barriers}


def landscape_numbers(angles: np.ndarray, temperature_k: float) -> dict:
    """:func:`psi_landscape`'s numbers of one set of (phi, psi) frames: the two gap heights and the extended -
    helical free energy, kJ/mol."""
    return to_jsonable(psi_landscape({"x": angles}, temperature_k)["barriers"]["x"])


def extended_minus_helical(angles: np.ndarray, temperature_k: float):
    """:func:`landscape_numbers`' extended - helical free energy of (phi, psi) frames, kJ/mol."""
    return landscape_numbers(angles, temperature_k)["extended_minus_helical_kj_per_mol"]


def plot_psi_landscape(landscape: dict, path: Path) -> None:
    """Free energy along psi of AA and every model, the gaps between the psi cores shaded."""
    fig, ax = pyplot().subplots(figsize=(7, 4), layout="constrained")
    edges = np.asarray(landscape["edges"], dtype=float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    for label, curve in landscape["free_energy"].items():
        ax.plot(centres, np.asarray(curve, dtype=float), label=LABELS.get(label, label),
                color="black" if label == "aa" else None, linewidth=2 if label == "aa" else 1.2)
    for low, high in PSI_GAPS_RAD.values():
        ax.axvspan(low, high, color="0.9", zorder=0)
    ax.set(xlabel="psi (rad)", ylabel="free energy (kJ/mol)",
           title="along psi; shaded: the gaps between the helical and extended cores")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def targets(models: dict, split_half: float) -> dict:
    """The targets, on the seed-averaged numbers: FM's FES JS divergence at most twice the AA split-half JS and
    FM walkers crossing between the basins (thermodynamics); DM's MSM slowest timescale and psi-core relaxation
    time each within 25% of AA while FM's is off by more; DM at least as close as the calibrated-friction
    baseline on both and closer on at least one; DM's FES JS divergence no worse than FM's by more than 0.01;
    DM's held-out AUC below FM's (dynamics)."""
    js_dm, js_fm = models["dm"]["js_fes_2d"], models["fm"]["js_fes_2d"]
    auc_dm, auc_fm = models["dm"]["heldout_auc"], models["fm"]["heldout_auc"]
    result = {
        "fm_js_over_split_half": None if js_fm is None else js_fm / split_half,
        "fm_js_within_2x_split_half": None if js_fm is None else js_fm <= SPLIT_HALF_FACTOR * split_half,
        "fm_walkers_cross": bool(models["fm"]["core_transitions_cg"]),
        "dm_js_minus_fm_js": None if None in (js_dm, js_fm) else js_dm - js_fm,
        "dm_js_no_worse_than_fm_plus_0.01": None if None in (js_dm, js_fm) else js_dm <= js_fm + JS_MARGIN,
        "dm_auc_below_fm": None if None in (auc_dm, auc_fm) else auc_dm < auc_fm}
    versus_calibrated = []
    for key, name in (("slowest_timescale_ratio", "msm"), ("core_relaxation_ratio", "core")):
        dm_off, fm_off, fmc_off = (None if models[m][key] is None else abs(models[m][key] - 1.0)
                                   for m in ("dm", "fm", "fmc"))
        result.update({
            f"{name}_dm_relative_error": dm_off, f"{name}_fm_relative_error": fm_off,
            f"{name}_fmc_relative_error": fmc_off,
            f"{name}_dm_within_25pct": None if dm_off is None else dm_off <= ITS_TOLERANCE,
            f"{name}_fm_off_by_more": None if None in (dm_off, fm_off) else fm_off > max(dm_off, ITS_TOLERANCE)})
        versus_calibrated.append(None if None in (dm_off, fmc_off) else (dm_off <= fmc_off, dm_off < fmc_off))
        # reported beside the targets, not one of them: DM's error minus the calibrated baseline's, and the
        # standard error of that difference (the productions' standard errors, added in quadrature)
        sems = [models[m].get(f"{key}_sem") for m in ("dm", "fmc")]
        difference = None if None in (dm_off, fmc_off) else dm_off - fmc_off
        result[f"{name}_dm_minus_fmc_error"] = difference
        result[f"{name}_dm_minus_fmc_error_se"] = None if difference is None or None in sems else float(np.hypot(*sems))
    result["dm_as_close_as_calibrated_on_both_closer_on_one"] = (
        None if None in versus_calibrated
        else all(a for a, _ in versus_calibrated) and any(b for _, b in versus_calibrated))
    # reported beside the targets, not one of them: the MSM ratio where AA's slowest timescale has levelled off
    for m in ("dm", "fm", "fmc"):
        value = models[m].get("slowest_timescale_ratio_plateau")
        result[f"msm_{m}_relative_error_plateau_lag"] = None if value is None else abs(value - 1.0)
    return result


def plot_fes(models: dict, path: Path) -> None:
    """(phi, psi) free energy surfaces of AA and every model, one colour scale."""
    first = next(iter(models.values()))["curves"]["fes"]
    if "aa_2d" not in first:
        return
    panels = [(LABELS["aa"], first["aa_2d"], None)] + [(LABELS[k], m["curves"]["fes"]["cg_2d"], m["js_fes_2d"])
                                                       for k, m in models.items()]
    plot_fes_panels(panels, first["edges"], ["phi (rad)", "psi (rad)"], path)


def plot_summary(models: dict, path: Path) -> None:
    """Slowest implied timescale vs lag (AA and models, bootstrap percentile bands) and the headline bars."""
    fig, axes = pyplot().subplots(1, 4, figsize=(17, 3.8), layout="constrained")
    its_aa = next(iter(models.values()))["curves"]["its"]["aa"]
    series = [("aa", its_aa)] + [(k, m["curves"]["its"]["cg"]) for k, m in models.items()]
    for key, its in series:
        lags = np.asarray(its["lags_ps"], dtype=float)
        values = np.asarray(its["timescales_ps"], dtype=float)[:, 0]
        lower = np.asarray(its["lower_ps"], dtype=float)[:, 0]
        upper = np.asarray(its["upper_ps"], dtype=float)[:, 0]
        line, = axes[0].plot(lags, values, marker="o", markersize=3, label=LABELS[key],
                             color="black" if key == "aa" else None)
        axes[0].fill_between(lags, lower, upper, color=line.get_color(), alpha=0.2)
    lag_ps = next(iter(models.values()))["timescale_lag_ps"]
    axes[0].axvline(lag_ps, color="0.5", linewidth=1)
    axes[0].set(xscale="log", yscale="log", xlabel="lag (ps)", ylabel="slowest implied timescale (ps)",
                title="MSM slowest timescale")
    axes[0].legend(fontsize=8)
    names = list(models)
    x = np.arange(len(names))
    msm = [models[n]["slowest_timescale_ratio"] for n in names]
    axes[1].bar(x - 0.2, [np.nan if v is None else v for v in msm], width=0.4, label="MSM slowest ITS",
                yerr=_sems(models, "slowest_timescale_ratio"), capsize=3)
    core, bound = [], []
    for n in names:
        m = models[n]
        core.append(np.nan if m["core_relaxation_ratio"] is None else m["core_relaxation_ratio"])
        seen = m["core_relaxation_ratio"] is not None or None in (m["core_relaxation_cg_bound_ps"],
                                                                  m["core_relaxation_aa_ps"])
        bound.append(np.nan if seen else m["core_relaxation_cg_bound_ps"] / m["core_relaxation_aa_ps"])
    axes[1].bar(x + 0.2, core, width=0.4, color="C1", label="psi-core relaxation",
                yerr=_sems(models, "core_relaxation_ratio"), capsize=3)
    axes[1].bar(x + 0.2, bound, width=0.4, color="white", edgecolor="C1", hatch="//",
                label="psi-core, no crossing: lower bound")
    seeds = len(next(iter(models.values()))["production_files"])
    axes[1].set(yscale="log", xticks=x, xticklabels=[LABELS[n] for n in names],
                title="timescale CG/AA" + (f" (mean of {seeds} productions, +-SEM)" if seeds > 1 else ""))
    axes[1].axhspan(1 - ITS_TOLERANCE, 1 + ITS_TOLERANCE, color="0.85", zorder=0)  # behind the bars
    axes[1].axhline(1.0, color="black", linewidth=1)
    axes[1].legend(fontsize=8)
    for ax, (key, title) in zip(axes[2:], (("js_fes_2d", "FES JS divergence"),
                                           ("heldout_auc", "held-out AUC (0.5 = same)"))):
        values = [models[n][key] if models[n][key] is not None else np.nan for n in names]
        ax.bar([LABELS[n] for n in names], values, color=[f"C{k}" for k in range(len(names))])
        ax.set_title(title)
    for ax in axes[1:]:
        ax.tick_params(axis="x", labelsize=8, labelrotation=15)
    axes[3].axhline(0.5, color="black", linewidth=1)
    save_figure(fig, path)


def _sems(models: dict, key: str) -> list:
    """Standard errors of a seed-averaged ratio per model (0 where there is none), for error bars."""
    return [models[n].get(f"{key}_sem") or 0.0 for n in models]


def friction_starts_study(aa, cg_path: Path, work: Path, settings: DemoSettings, seed: int, clock: StageClock,
                          progress: bool, starts: list, dm_summary: dict, dm_kinetics: dict) -> dict:
    """Dynamic matching again from other initial frictions: the learned friction of each start beside the main
    run's (from 10/ps), the target that they agree within 15% (largest over smallest), and the kinetics of each
    start's model from one production (seed ``seed``; the main run's row is its first production)."""
    learned = {"10": dm_summary["friction_per_ps"]}
    kinetics = {"10": dm_kinetics}
    for start in starts:
        name = f"dm_from_{float(start):g}"
        summary = train_one(name, cg_path, work, settings, seed, clock, progress)
        learned[f"{start:g}"] = summary["friction_per_ps"]
        trajectory, = produce_model(name, summary, cg_path, work, settings, seed, clock, progress, 1)
        kinetics[f"{start:g}"] = dict(kinetics_with_spread(compare(aa, trajio.load(trajectory), seed=seed)),
                                      heldout_auc=heldout_auc(summary))
    spread = max(learned.values()) / min(learned.values()) - 1.0
    return {"learned_friction_per_ps": learned, "spread": spread,
            "within_15pct": bool(spread <= FRICTION_START_TOLERANCE), "kinetics": kinetics}


SCAN_MODELS = ("fm", "dm")  # the two potentials (fmc shares fm's)


def friction_scan_study(aa, cg_path: Path, work: Path, settings: DemoSettings, seed: int, clock: StageClock,
                        progress: bool, frictions: list, summaries: dict, models: dict) -> dict:
    """Production of the force-matched and the dynamic-matching potential at other frictions: can any one
    friction give both AA times with that potential? Separates a friction that dynamic matching learned badly
    from a potential (or a Markovian model with one friction) that cannot match. Each row is one production
    (seed ``seed``); the row at the model's own friction is its first production, analysed already in
    ``models``."""
    scan = {}
    for label in SCAN_MODELS:
        own = float(summaries[label]["friction_per_ps"])
        rows = []
        for friction in sorted({own, *map(float, frictions)}):
            if friction == own:
                row = models[label]["kinetics_per_seed"][0]
            else:
                trajectory = produce_at_friction(label, friction, summaries[label], cg_path, work, settings, seed,
                                                 clock, progress)
                row = kinetics_with_spread(compare(aa, trajio.load(trajectory), seed=seed))
            rows.append(dict(friction_per_ps=friction, **{k: v for k, v in row.items() if k != "js_fes_2d"}))
        scan[label] = rows
    return scan


def aa_halves(aa_path: Path, seed: int, **compare_kwargs) -> dict:
    """The AA data judged against themselves: the later half of its trajectories (of a single trajectory, its
    later half of frames) compared with the earlier half as every model is compared with all of them
    (:func:`kinetics_with_spread`). Its ratios are the noise of the AA side at half the data: the log of a ratio
    of two independent halves has twice the variance of one half's log time, and the whole data's has half of it,
    so the whole data's time is off by about ``|log ratio| / 2`` (on average; one pair of halves is one sample)."""
    n_frames = trajio.count_frames(aa_path)
    segments = trajio.trajectory_segments(trajio.read_metadata(aa_path), n_frames)
    split = segments[len(segments) // 2][0] if len(segments) > 1 else n_frames // 2
    earlier, later = trajio.load(aa_path, stop=split), trajio.load(aa_path, start=split)
    row = kinetics_with_spread(compare(earlier, later, seed=seed, **compare_kwargs))
    return {"trajectories": len(segments), "split_frame": split, "frames": [split, n_frames - split], **row}


def kinetics_with_spread(result: dict) -> dict:
    """CG/AA ratios of the MSM slowest timescale (at the comparison's lag) and of the psi-core relaxation time,
    each with the CG side's 16th-84th bootstrap percentiles over the AA value, and the COM diffusion ratio."""
    s = result["summary"]
    row = {"slowest_timescale_ratio": (s.get("timescale_ratio") or [None])[0],
           "core_relaxation_ratio": s.get("core_relaxation_ratio"), "diffusion_com_ratio": s.get("diffusion_com_ratio"),
           "core_memory_ratio": s.get("core_memory_ratio_cg")}
    its, lag = result.get("its"), s.get("timescale_lag_ps")
    if its and lag is not None and row["slowest_timescale_ratio"] is not None:
        k = int(np.argmin(np.abs(np.asarray(its["aa"]["lags_ps"], dtype=float) - lag)))
        aa = float(np.asarray(its["aa"]["timescales_ps"], dtype=float)[k, 0])
        row["slowest_timescale_ratio_16_84"] = [float(np.asarray(its["cg"][q], dtype=float)[k, 0]) / aa
                                                for q in ("lower_ps", "upper_ps")]
    if its and lag is not None:
        row.update(plateau_ratio(its, lag))
    cores = result.get("cores")
    if cores and row["core_relaxation_ratio"] is not None:
        aa = cores["aa"]["relaxation_time_ps"]
        row["core_relaxation_ratio_16_84"] = [None if cores["cg"].get(q) is None else float(cores["cg"][q]) / aa
                                              for q in ("lower_ps", "upper_ps")]  # None: too few crossings
    row["both_within_25pct"] = all(v is not None and abs(v - 1.0) <= ITS_TOLERANCE for v in
                                   (row["slowest_timescale_ratio"], row["core_relaxation_ratio"]))
    return row


PLATEAU_FRACTION = 0.95


def plateau_ratio(its: dict, lag_ps: float) -> dict:
    """The CG/AA ratio of the slowest implied timescale at the plateau lag: the first lag, from ``lag_ps`` on, at
    which AA's slowest timescale reaches ``PLATEAU_FRACTION`` of its largest value over the lags that resolve it.
    At short lags an MSM underestimates its timescales, and the AA side (one long trajectory) converges at longer
    lags than the CG side: at the ratio lag its timescale can still be well below its plateau. A timescale
    shorter than its own lag is not resolved by that MSM (the eigenvalue is noise; with long CG trajectories the
    lags reach hundreds of ps), so such lags are left out."""
    lags = np.asarray(its["aa"]["lags_ps"], dtype=float)
    aa = np.asarray(its["aa"]["timescales_ps"], dtype=float)[:, 0]
    cg = np.asarray(its["cg"]["timescales_ps"], dtype=float)[:, 0]
    start = int(np.argmin(np.abs(lags - lag_ps)))
    resolved = np.isfinite(aa) & (aa > lags)
    if not resolved[start:].any():
        return {"plateau_lag_ps": None, "slowest_timescale_ratio_plateau": None}
    candidates = start + np.flatnonzero(resolved[start:])
    reached = candidates[aa[candidates] >= PLATEAU_FRACTION * aa[resolved].max()]
    j = int(reached[0]) if reached.size else int(candidates[np.argmax(aa[candidates])])
    ratio = cg[j] / aa[j]
    return {"plateau_lag_ps": float(lags[j]),
            "slowest_timescale_ratio_plateau": float(ratio) if np.isfinite(ratio) else None}


def plot_friction_scan(scan: dict, dm_friction: float, path: Path) -> None:
    """CG/AA ratios of the MSM slowest timescale, the psi-core relaxation time and the COM diffusion coefficient
    against the friction, for each potential (bars: 16th-84th bootstrap percentiles of the CG side); the band is
    the +-25% target."""
    keys = (("slowest_timescale_ratio", "MSM slowest timescale"), ("core_relaxation_ratio", "psi-core relaxation"),
            ("diffusion_com_ratio", "COM diffusion"))
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for ax, (key, title) in zip(axes, keys):
        for k, (label, rows) in enumerate(scan.items()):
            x = [r["friction_per_ps"] for r in rows]
            y = np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=float)
            spread = np.array([r.get(f"{key}_16_84", [np.nan, np.nan]) for r in rows], dtype=float)
            ax.errorbar(x, y, yerr=np.abs(spread.T - y), marker="o", color=f"C{k}", capsize=3,
                        label=f"{LABELS[label]} potential")
        ax.axhspan(1 - ITS_TOLERANCE, 1 + ITS_TOLERANCE, color="0.85", zorder=0)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.axvline(dm_friction, color="0.5", linestyle="--", linewidth=1, label="friction DM learned")
        ax.set(xscale="log", yscale="log", xlabel="friction (1/ps)", ylabel="CG / AA", title=title)
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def make_aa_data(work: Path, settings: DemoSettings, seed: int, progress: bool, jobs: int) -> tuple:
    """:func:`openmm_dynmatch.demo.prepare_aa_data`, its replicas first made by up to ``jobs`` processes side by
    side (each replica is the trajectory a sequential run makes, so the data do not depend on ``jobs``)."""
    if jobs > 1 and settings.aa_replicas > 1:
        lanes = [list(range(k, settings.aa_replicas, jobs)) for k in range(min(jobs, settings.aa_replicas))]
        run_lanes(aa_lane, lanes, work, settings, seed)
    return prepare_aa_data(work, settings, seed, progress)


def make_reference(directory: Path, settings: DemoSettings, replicas: int, seed: int, progress: bool,
                   jobs: int) -> Path:
    """The AA data that judge the models when ``--reference`` is given: ``replicas`` independent trajectories of
    ``settings.aa_ns`` each, seeded from ``seed``, made in ``directory`` (finished files there are reused) and
    mapped to ``directory/aa_mapped.h5``, which is returned."""
    directory.mkdir(parents=True, exist_ok=True)
    return make_aa_data(directory, replace(settings, aa_replicas=replicas), seed, progress, jobs)[1]


def check_reference(reference, aa, settings: DemoSettings, replicas: int, directory) -> None:
    """Refuse reference AA data found in ``directory`` that are not what this run asked for (a directory made by a
    run with other sizes is reused, not remade): another frame interval than the training data's, or another
    number of frames than ``replicas`` trajectories of ``settings.aa_ns``."""
    ours, theirs = aa.metadata["frame_interval_ps"], reference.metadata["frame_interval_ps"]
    if not np.isclose(ours, theirs):
        raise SystemExit(f"--reference {directory}: its frames are {theirs} ps apart, the training data's {ours} ps")
    expected = replicas * int(round(settings.aa_ns * 1000.0 / ours))
    if reference.n_frames != expected:
        raise SystemExit(f"--reference {directory}: holds {reference.n_frames} frames, expected {expected} "
                         f"({replicas} x {settings.aa_ns:g} ns every {ours:g} ps); give another directory or the "
                         f"--reference-replicas it was made with")


def training_data_judged(reference, aa, seed: int, **compare_kwargs) -> dict:
    """The training AA data judged against the reference as a model's production is: how far the times of the
    data the models learn from lie from the reference's (its ratios are the training data's own noise when both
    are AA of the same force field)."""
    return judged_row(compare(reference, aa, seed=seed, **compare_kwargs))


def aa_lane(replicas: list, work: Path, settings: DemoSettings, seed: int) -> None:
    """Make the AA replicas ``replicas`` in this process, one after the other, without progress bars."""
    for replica in replicas:
        prepare_aa_data(work, settings, seed, False, only_replica=replica)


def run(settings: DemoSettings, work: Path, out: Path, seed: int, aa_mapped, progress: bool,
        friction_starts=(), friction_scan=(), production_seeds: int = 1, jobs: int = 1, threads: int = 1,
        separate: bool = False, reference=None, reference_replicas: int = REFERENCE_REPLICAS,
        reference_seed: int = REFERENCE_SEED) -> dict:
    """All stages; returns the JSON document (also written to ``out``). With ``jobs > 1`` the AA replicas are made
    side by side (:func:`make_aa_data`) and the stages after the AA data run first in up to ``jobs`` processes of
    ``threads`` torch threads each (:func:`lane_tasks`), then this process analyses. With ``reference`` (a
    directory) the models are judged against the AA data of :func:`make_reference` instead of the training
    data."""
    began = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    clock = StageClock(work)
    if aa_mapped is None:
        _, cg_path = clock.run("aa_data_s", (work / "aa_mapped.h5").exists(), make_aa_data, work, settings,
                               seed, progress, jobs)
    else:
        cg_path = Path(aa_mapped)
    aa, reference_path = trajio.load(cg_path), None
    judge = aa  # the AA data the models are judged by
    if reference is not None:  # made or reused, and checked, before any training
        reference_path = clock.run("aa_reference_s", (Path(reference) / "aa_mapped.h5").exists(), make_reference,
                                   Path(reference), settings, reference_replicas, reference_seed, progress, jobs)
        judge = trajio.load(reference_path)
        check_reference(judge, aa, settings, reference_replicas, reference)
    if jobs > 1:
        lanes = plan_lanes(lane_tasks(production_seeds, friction_starts, friction_scan, separate, work, seed), jobs)
        run_lanes(run_lane, lanes, cg_path, work, settings, seed, production_seeds, list(friction_scan), threads,
                  separate)
    summaries = train_all(cg_path, work, settings, seed, clock, progress)
    models, files, analysis_s = {}, {}, 0.0
    for label, summary in summaries.items():
        files[label] = produce_model(label, summary, cg_path, work, settings, seed, clock, progress,
                                     production_seeds, separate)
        start = time.perf_counter()
        models[label] = model_metrics(judge, files[label], summary, seed)
        analysis_s += time.perf_counter() - start
    start = time.perf_counter()
    halves = aa_halves(reference_path or cg_path, seed)
    training_vs_reference = None if reference_path is None else training_data_judged(judge, aa, seed)
    analysis_s += time.perf_counter() - start
    starts = friction_starts_study(judge, cg_path, work, settings, seed, clock, progress, list(friction_starts),
                                   summaries["dm"], dict(models["dm"]["kinetics_per_seed"][0],
                                                         heldout_auc=models["dm"]["heldout_auc"])
                                   ) if friction_starts else None
    scan = friction_scan_study(judge, cg_path, work, settings, seed, clock, progress, list(friction_scan),
                               summaries, models) if friction_scan else None
    angles = {"aa": backbone_cvs(judge.positions, judge.metadata)}
    for label, paths in files.items():
        angles[label] = production_angles(paths, aa.metadata)
    landscape = to_jsonable(psi_landscape(angles, aa.metadata["temperature_k"]))
    floor = models["fm"]["js_fes_2d_aa_split_half"]
    prior_file = produce_prior(cg_path, work, settings, seed, clock, progress)
    profiles = to_jsonable(profile_study(aa, work / "run_fm", work / "cg_fm.h5", prior_file))
    timings = dict(clock.this_run(), analysis_s=analysis_s)
    timings["total_s"] = sum(timings.values())
    timings["wall_s_this_invocation"] = time.perf_counter() - began
    result = {
        "benchmark": "science", "date": time.strftime("%Y-%m-%d"), "host": platform.platform(),
        "system": "alanine-dipeptide-implicit" if aa_mapped is None else str(aa_mapped), "mapping": "ala2-heavy10",
        "settings": asdict(settings), "seed": seed, "production_seeds": production_seeds,
        "productions": "separate systems" if separate else "walker groups of one system", "jobs": jobs,
        "timings_s": timings,
        "aa_frames": int(aa.n_frames), "aa_split_half_js": floor, "aa_halves": halves,
        "reference": None if reference_path is None else {
            "replicas": reference_replicas, "seed": reference_seed, "ns_each": settings.aa_ns,
            "frames": int(judge.n_frames)},
        "training_aa_vs_reference": training_vs_reference,
        "aa_core_memory_ratio": models["fm"]["core_memory_ratio_aa"], "targets": targets(models, floor),
        "friction_starts": starts, "friction_scan": scan,
        "psi_barrier_kj_per_mol": profiles["psi_barrier_kj_per_mol"], "psi_landscape": landscape["barriers"],
        "models": {k: {n: v for n, v in m.items() if n != "curves"} for k, m in models.items()},
        "curves": dict({k: m["curves"] for k, m in models.items()}, profiles=profiles, psi_landscape=landscape),
    }
    write_json(out, result, indent=None)
    plot_fes(models, out.with_name(out.stem + "_fes.png"))
    plot_summary(models, out.with_name(out.stem + "_summary.png"))
    plot_profiles(profiles, ["phi", "psi"], out.with_name(out.stem + "_profiles.png"), PROFILE_STYLES)
    plot_psi_landscape(landscape, out.with_name(out.stem + "_psi.png"))
    if scan:
        plot_friction_scan(scan, summaries["dm"]["friction_per_ps"], out.with_name(out.stem + "_friction_scan.png"))
    return result


def one_line(result: dict) -> str:
    """The one-line summary printed at the end."""
    parts = []
    for label, m in result["models"].items():
        parts.append(f"{label}: JS {_fmt(m['js_fes_2d'])}, ITS ratio MSM {_fmt(m['slowest_timescale_ratio'])} "
                     f"core {_fmt(m['core_relaxation_ratio'])}, MSM at {_fmt(m.get('plateau_lag_ps'))} ps "
                     f"{_fmt(m.get('slowest_timescale_ratio_plateau'))}, core memory ratio "
                     f"{_fmt(m['core_memory_ratio'])}, AUC {_fmt(m['heldout_auc'])}")
    t = result["targets"]
    seeds = result.get("production_seeds", 1)
    return (f"science ({result['timings_s']['total_s']:.0f} s" + (f", kinetics and JS averaged over {seeds} "
                                                                  f"productions" if seeds > 1 else "")
            + f"): AA core memory ratio {_fmt(result.get('aa_core_memory_ratio'))}"
            + _reference_line(result) + _halves_line(result.get("aa_halves")) + "; " + "; ".join(parts)
            + f" | FM JS / AA split-half JS {_fmt(t['fm_js_over_split_half'])} (target <= 2), FM walkers cross: "
              f"{t['fm_walkers_cross']} | DM within 25% (MSM/core): {t['msm_dm_within_25pct']}/"
              f"{t['core_dm_within_25pct']}, FM off by "
              f"more: {t['msm_fm_off_by_more']}/{t['core_fm_off_by_more']}, DM JS <= FM + 0.01: "
              f"{t['dm_js_no_worse_than_fm_plus_0.01']}, DM as close as calibrated on both, closer on one: "
              f"{t['dm_as_close_as_calibrated_on_both_closer_on_one']}, DM AUC below FM's: {t['dm_auc_below_fm']}"
            + _starts_line(result.get("friction_starts"))
            + _scan_line(result.get("friction_scan")))


def _reference_line(result: dict) -> str:
    reference, training = result.get("reference"), result.get("training_aa_vs_reference")
    if not reference:
        return ""
    return (f", judged against {reference['replicas']} x {reference['ns_each']:g} ns of reference AA (seed "
            f"{reference['seed']}); training AA / reference MSM {_fmt(training['slowest_timescale_ratio'])} core "
            f"{_fmt(training['core_relaxation_ratio'])}")


def _halves_line(halves) -> str:
    if not halves:
        return ""
    return (f", AA later / earlier half MSM {_fmt(halves['slowest_timescale_ratio'])} core "
            f"{_fmt(halves['core_relaxation_ratio'])}")


def _starts_line(starts) -> str:
    if not starts:
        return ""
    learned = ", ".join(f"{k} -> {v:.3g}" for k, v in starts["learned_friction_per_ps"].items())
    kinetics = ", ".join(f"{k}: {_fmt(row['slowest_timescale_ratio'])}/{_fmt(row['core_relaxation_ratio'])}"
                         for k, row in (starts.get("kinetics") or {}).items())
    return (f" | DM friction from each start (1/ps): {learned}; within 15%: {starts['within_15pct']}"
            + (f"; MSM/core CG/AA per start (one production): {kinetics}" if kinetics else ""))


def _scan_line(scan) -> str:
    if not scan:
        return ""
    parts = [f"{label} potential: " + ", ".join(f"{r['friction_per_ps']:g} -> MSM {_fmt(r['slowest_timescale_ratio'])} "
                                                f"core {_fmt(r['core_relaxation_ratio'])}" for r in rows)
             for label, rows in scan.items()]
    return " | friction scan: " + "; ".join(parts)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def setting_value(default, text: str, parser):
    """``text`` of ``--set KEY=VALUE`` as the type of the setting's ``default`` (booleans: true/false)."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            parser.error(f"--set: a boolean setting takes true or false, got '{text}'")
        return text.lower() == "true"
    try:
        return type(default)(text)
    except ValueError:
        parser.error(f"--set: expected a value of type {type(default).__name__}, got '{text}'")


def setting_overrides(items, settings: DemoSettings, parser) -> dict:
    """``--set KEY=VALUE`` items as ``{key: value}``, each value of its field's type in ``settings`` (errors through
    ``parser``: a key that is no field, an empty value, or one of the wrong type)."""
    overrides = {}
    for item in items:
        key, _, value = item.partition("=")
        if not hasattr(settings, key) or not value or key == "config_overrides":
            parser.error(f"--set expects KEY=VALUE with KEY a field of DemoSettings "
                         f"({', '.join(k for k in vars(settings) if k != 'config_overrides')}; training "
                         f"configuration keys go to --train-set), got '{item}'")
        overrides[key] = setting_value(getattr(settings, key), value, parser)
    return overrides


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="10 ns AA, 600 iterations of 128 walkers, 64 x 1 ns CG")
    size.add_argument("--quick", action="store_true", help="tiny smoke run of every stage (about two minutes)")
    parser.add_argument("--work-dir", default="science_run", help="stage files (reused when present)")
    parser.add_argument("--out", default="science.json", help="JSON result; figures are written beside it")
    parser.add_argument("--aa-mapped", default=None,
                        help="existing mapped AA trajectory with forces (trajio HDF5) instead of the implicit run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--friction-starts", type=float, nargs="*", default=[], metavar="PER_PS",
                        help="also train dynamic matching from these initial frictions (e.g. 1 20) and report "
                             "whether the learned frictions agree within 15%%, and each model's kinetics from one "
                             "production (a DM training and a production each)")
    parser.add_argument("--friction-scan", type=float, nargs="*", default=[], metavar="PER_PS",
                        help="also run the force-matched and the dynamic-matching potentials at these frictions "
                             "(e.g. 0.25 0.5 2) and report their kinetics (production only, a few min each)")
    parser.add_argument("--production-seeds", type=int, default=None, metavar="N",
                        help="production runs per model (seeds SEED .. SEED+N-1, same start frames); the kinetic "
                             "ratios, the FES JS and the targets use their means (one production's ratios spread "
                             "by about +-0.2 between seeds); default 4, 1 with --quick. They run as walker groups "
                             "of one System unless --separate-productions")
    parser.add_argument("--separate-productions", action="store_true",
                        help="run each production as its own System at seeds SEED .. SEED+N-1 (as runs before "
                             "2026-12-05 did) instead of walker groups of one System")
    parser.add_argument("--jobs", type=int, default=min(available_cores(), 4), metavar="N",
                        help="processes for the stages after the AA data (trainings and productions; default: the "
                             "cores available, at most 4); each gets --threads torch threads (default: cores / N)")
    parser.add_argument("--reference", default=None, metavar="DIR",
                        help="judge the models against other AA data: --reference-replicas trajectories of aa_ns "
                             "each at --reference-seed, made in DIR or reused from there (share DIR between runs "
                             "at several seeds)")
    parser.add_argument("--reference-replicas", type=int, default=REFERENCE_REPLICAS, metavar="N",
                        help=f"independent AA trajectories of the reference (default {REFERENCE_REPLICAS})")
    parser.add_argument("--reference-seed", type=int, default=REFERENCE_SEED,
                        help=f"seed of the reference's trajectories (default {REFERENCE_SEED}); must differ from "
                             "--seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a size of the run (a field of openmm_dynmatch.demo.DemoSettings), e.g. "
                             "--set frame_step=5")
    parser.add_argument("--train-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change every model's training configuration (openmm_dynmatch.config), e.g. "
                             "--train-set potential.kind=ensemble --train-set train.pretrain_average=0.999; give "
                             "a new --work-dir, since finished stages found there are reused")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if args.aa_mapped is not None and not Path(args.aa_mapped).is_file():
        parser.error(f"--aa-mapped: no such file '{args.aa_mapped}'")
    settings = LARGE if args.full else QUICK if args.quick else DEFAULT
    settings = replace(settings, **setting_overrides(args.set, settings, parser))
    if args.train_set:
        settings = replace(settings, config_overrides=tuple(settings.config_overrides) + tuple(args.train_set))
        try:
            demo_config(Path(args.work_dir) / "aa_mapped.h5", settings, "dynamic_matching", args.seed)
        except (ValueError, TypeError) as error:
            parser.error(f"--train-set: {error}")
    for option, values in (("--friction-starts", args.friction_starts), ("--friction-scan", args.friction_scan)):
        if any(f <= 0 for f in values):
            parser.error(f"{option} must be positive frictions in 1/ps, got {values}")
    if args.production_seeds is None:
        args.production_seeds = 1 if args.quick else DEFAULT_PRODUCTION_SEEDS
    if args.production_seeds < 1:
        parser.error(f"--production-seeds must be >= 1, got {args.production_seeds}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.reference_replicas < 1:
        parser.error(f"--reference-replicas must be >= 1, got {args.reference_replicas}")
    if args.reference is not None and args.aa_mapped is not None:
        parser.error("--reference makes implicit-solvent AA data, so it cannot judge models trained on --aa-mapped "
                     "data")
    if args.reference is not None and args.reference_seed == args.seed:
        parser.error(f"--reference-seed must differ from --seed (the training data's), got {args.reference_seed} "
                     "for both")
    lane_threads = args.threads or max(1, available_cores() // args.jobs)
    result = run(settings, Path(args.work_dir), Path(args.out), args.seed, args.aa_mapped, not args.no_progress,
                 args.friction_starts, args.friction_scan, args.production_seeds, args.jobs, lane_threads,
                 args.separate_productions, args.reference, args.reference_replicas, args.reference_seed)
    print(json.dumps({k: v for k, v in result.items() if k != "curves"}, indent=2))
    print(one_line(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
