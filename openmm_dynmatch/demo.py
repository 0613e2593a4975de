"""The end-to-end demo on the embedded default system, alanine dipeptide in implicit solvent.

AA reference MD (OpenMM) -> mapping to the 10 heavy atoms -> prior fit -> force-matching baseline ->
dynamic matching (pre-trained by force matching) -> export -> batched OpenMM CG production of both models ->
analysis report comparing AA, force matching and dynamic matching.

The AA run keeps bonds to hydrogen flexible (1 fs step) so that the mapped heavy-atom forces are exact for
force matching: OpenMM's reported forces leave out constraint forces.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from openmm_dynmatch.config import (ClassifierConfig, Config, DataConfig, DynamicsConfig, TrainConfig,
                                    apply_overrides, from_dict, to_dict)
from openmm_dynmatch.fileio import write_json


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo's stages."""

    aa_ns: float
    frame_interval_ps: float
    fm_iterations: int
    dm_iterations: int
    dm_walkers: int
    dm_warmup: int
    window_frames: int
    cg_walkers: int
    cg_ns: float
    probe_windows: int
    frame_step: int = 1            # saved frames between a window's frames
    classifier_steps: int = 3      # classifier updates per generator update
    internal_motion: bool = False  # the classifier sees windows without their rigid-body motion
    friction_first: int = 0        # iterations in which only the friction learns, after the classifier warm-up
    friction_then: str = "joint"   # or frozen: after friction_first, the potential alone learns
    friction_optimizer: str = "adam"  # or sgd: steps proportional to the friction's gradient
    lr_friction: float = 0.05      # learning rate of log friction
    evidence_scaling: bool = False  # potential steps scaled by the evidence that their gradient is not noise
    aa_replicas: int = 1           # independent AA trajectories of aa_ns each (made side by side by science.py)
    classifier_replay: int = 1     # batches of windows every classifier step trains on (this one and earlier ones)
    classifier_batch: int = 0      # windows of each kind per classifier step, drawn from those (0: all)
    classifier_reset_every: int = 0  # generator iterations between re-initialisations of the classifier (0: never)
    classifier_reset_warmup: int = 10  # classifier-only iterations after each re-initialisation
    config_overrides: tuple = ()   # "section.key=value" changes of every model's training configuration


FULL = DemoSettings(aa_ns=2.0, frame_interval_ps=0.1, fm_iterations=1500, dm_iterations=150, dm_walkers=64,
                    dm_warmup=20, window_frames=4, cg_walkers=32, cg_ns=0.1, probe_windows=256)
QUICK = DemoSettings(aa_ns=0.05, frame_interval_ps=0.1, fm_iterations=150, dm_iterations=4, dm_walkers=8,
                     dm_warmup=2, window_frames=3, cg_walkers=8, cg_ns=0.01, probe_windows=32)


def demo_config(cg_path: Path, settings: DemoSettings, objective: str, seed: int) -> Config:
    """Training configuration of one of the demo's CG models, with ``settings.config_overrides`` applied last
    (checked as a configuration file's keys are)."""
    train = TrainConfig(objective=objective, iterations=settings.dm_iterations, walkers=settings.dm_walkers,
                        classifier_warmup=settings.dm_warmup, seed=seed, platform="Reference",
                        checkpoint_every=max(settings.dm_iterations // 5, 1), snr_every=5,
                        lr_pretrain=1e-3, lr_potential=2e-4, lr_friction=settings.lr_friction,
                        friction_optimizer=settings.friction_optimizer,
                        probe_windows=settings.probe_windows, probe_steps=200,
                        classifier_steps=settings.classifier_steps, friction_first=settings.friction_first,
                        friction_then=settings.friction_then, evidence_scaling=settings.evidence_scaling,
                        classifier_replay=settings.classifier_replay, classifier_batch=settings.classifier_batch,
                        classifier_reset_every=settings.classifier_reset_every,
                        classifier_reset_warmup=settings.classifier_reset_warmup)
    if objective == "force_matching":
        train = replace(train, iterations=settings.fm_iterations)
    else:
        train = replace(train, pretrain="force_matching", pretrain_iterations=settings.fm_iterations)
    config = Config(data=DataConfig(cg_path=str(cg_path), window_frames=settings.window_frames,
                                    frame_step=settings.frame_step),
                    dynamics=DynamicsConfig(timestep_ps=0.002, friction_per_ps=10.0),
                    classifier=ClassifierConfig(internal_motion=settings.internal_motion), train=train)
    if not settings.config_overrides:
        return config
    return from_dict(Config, apply_overrides(to_dict(config), list(settings.config_overrides)),
                     where="config_overrides")


def run_demo(out_dir="dynmatch_demo", quick: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Run the whole pipeline; returns the headline numbers (also written to ``out_dir/demo.json``).

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created). Finished stages found there are reused.
    quick : bool
        Tiny sizes (a smoke run of every stage, minutes); the default sizes aim at a meaningful comparison.
    seed : int
    """
    settings = QUICK if quick else FULL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    start = time.perf_counter()
    aa_path, cg_path = prepare_aa_data(out, settings, seed, progress)
    timings["aa_reference_and_mapping_s"] = time.perf_counter() - start
    models = {}
    for label, objective in (("fm", "force_matching"), ("dm", "dynamic_matching")):
        t0 = time.perf_counter()
        models[label] = train_model(demo_config(cg_path, settings, objective, seed), out / f"run_{label}",
                                    progress)
        timings[f"train_{label}_s"] = time.perf_counter() - t0
    trajectories = {}
    for label, summary in models.items():
        t0 = time.perf_counter()
        trajectories[label] = produce(summary["model"], cg_path, out / f"cg_{label}.h5", settings, seed, progress)
        timings[f"production_{label}_s"] = time.perf_counter() - t0
    result = {"out_dir": str(out), "quick": quick, "aa": str(aa_path), "aa_mapped": str(cg_path),
              "models": {k: v["model"] for k, v in models.items()},
              "friction_per_ps": {k: v["friction_per_ps"] for k, v in models.items()},
              "heldout_auc": {k: v.get("heldout_auc", {}) for k, v in models.items()},
              "trajectories": {k: str(v) for k, v in trajectories.items()}, "timings_s": timings}
    result.update(_report(cg_path, trajectories, out / "report", settings, out))
    result["timings_s"]["total_s"] = time.perf_counter() - start
    write_json(out / "demo.json", result)
    return result


def prepare_aa_data(out: Path, settings: DemoSettings, seed: int, progress: bool,
                    only_replica: Optional[int] = None) -> tuple:
    """AA reference MD of implicit-solvent alanine dipeptide (flexible bonds, 1 fs) and its 10-bead mapping.

    With ``settings.aa_replicas`` > 1 the AA data are that many independent trajectories of ``aa_ns`` each
    (``out/aa.r<i>.h5``, seeds from ``seed``; :func:`~openmm_dynmatch.openmm.reference.run_reference`), mapped into
    one file that keeps them apart (``trajectory_lengths``). ``only_replica`` makes that replica alone and maps
    nothing (for processes that make the replicas side by side).

    Returns ``(AA file or list of replica files, out/aa_mapped.h5)``; finished files found there are reused.
    """
    from openmm_dynmatch.mapping import map_trajectory
    from openmm_dynmatch.openmm.reference import run_reference
    from openmm_dynmatch.openmm.aa_systems import get_system

    aa_path, cg_path = Path(out) / "aa.h5", Path(out) / "aa_mapped.h5"
    system = get_system("alanine-dipeptide-implicit", constraints=None)
    aa_files = run_reference(system, aa_path, settings.aa_ns, settings.frame_interval_ps, timestep_ps=0.001,
                             save_forces=True, seed=seed, platform="Reference", progress=progress,
                             equilibration_ps=min(10.0, settings.aa_ns * 100), replicas=settings.aa_replicas,
                             only_replica=only_replica)
    if only_replica is None and not cg_path.exists():
        map_trajectory(aa_files, "ala2-heavy10", cg_path, progress=progress)
    return aa_files, cg_path


def train_model(config: Config, run_dir: Path, progress: bool, start_potential=None) -> dict:
    """:func:`openmm_dynmatch.runs.run_training` in ``run_dir`` (from ``start_potential`` when given), resumed if
    interrupted; a finished run's ``summary.json`` is returned as it is."""
    from openmm_dynmatch.runs import run_training

    summary_file = run_dir / "summary.json"
    if summary_file.exists():
        import json

        return json.loads(summary_file.read_text())
    return run_training(config, run_dir, resume=run_dir.exists(), progress=progress, start_potential=start_potential)


def produce(model_path, cg_path: Path, out_path: Path, settings: DemoSettings, seed: int, progress: bool,
            friction_per_ps=None) -> Path:
    """Batched OpenMM production of a CG model from mapped AA start frames (at the model's own friction unless
    ``friction_per_ps`` is given)."""
    return produce_groups(model_path, cg_path, [out_path], settings, seed, progress, friction_per_ps)[0]


def production_starts(frames: np.ndarray, n_walkers: int) -> np.ndarray:
    """Start frames of a production of ``n_walkers`` walkers, shape (n_walkers, n_beads, 3): every
    ``len(frames) // n_walkers``-th frame from the first, repeated cyclically when there are fewer frames."""
    picks = frames[:: max(len(frames) // n_walkers, 1)][:n_walkers]
    return picks[np.arange(n_walkers) % len(picks)]


def produce_groups(model_path, cg_path: Path, out_paths: list, settings: DemoSettings, seed: int, progress: bool,
                   friction_per_ps=None, bead_friction_per_ps=None) -> list:
    """:func:`produce` for several productions at once: ``settings.cg_walkers`` walkers per file in
    ``out_paths``, all from the same start frames, run as one System of all their walkers (seeded by ``seed``)
    and split into the files (:func:`~openmm_dynmatch.openmm.runner.split_walkers`); a single file is simulated
    directly. Nothing is run when every file exists. ``bead_friction_per_ps``: one friction per bead instead of
    the model's (:func:`~openmm_dynmatch.openmm.runner.simulate`)."""
    from openmm_dynmatch import trajio
    from openmm_dynmatch.openmm.runner import simulate, split_walkers

    out_paths = [Path(p) for p in out_paths]
    if all(p.exists() for p in out_paths):
        return out_paths
    starts = production_starts(trajio.load(cg_path).positions, settings.cg_walkers)
    n = len(out_paths)
    target = out_paths[0] if n == 1 else out_paths[0].with_name(out_paths[0].stem + f"_{n}_groups.h5")
    run = simulate(model_path, np.concatenate([starts] * n), settings.cg_walkers * n, target, ns=settings.cg_ns,
                   frame_interval_ps=settings.frame_interval_ps, platform="Reference", seed=seed, progress=progress,
                   friction_per_ps=friction_per_ps, bead_friction_per_ps=bead_friction_per_ps)
    if n > 1:
        split_walkers(target, out_paths)
        for leftover in (run.trajectory_path, run.energies_path, run.checkpoint_path):
            leftover.unlink(missing_ok=True)
    return out_paths


def _report(aa_path: Path, trajectories: dict, report_dir: Path, settings: DemoSettings, out: Path) -> dict:
    """The analysis report (AA vs DM, with FM as baseline, and their training curves); returns the headline
    numbers."""
    from openmm_dynmatch.report import write_report

    metrics = write_report(aa_path, trajectories["dm"], report_dir, cg_baseline_path=trajectories["fm"],
                           labels={"cg": "dynamic matching", "baseline": "force matching"},
                           run_dirs={"cg": out / "run_dm", "baseline": out / "run_fm"})
    return {"report": str(report_dir / "report.md"), "headline": headline_numbers(metrics)}


def headline_numbers(metrics: dict) -> dict:
    """FES JS divergence and slowest implied-timescale ratio CG/AA for each CG model of a report."""
    heads = {}
    for key, label in (("cg", "dm"), ("baseline", "fm")):
        summary = (metrics.get(key) or {}).get("summary", {})
        ratios = summary.get("timescale_ratio")
        heads[label] = {"js_fes_2d": summary.get("js_fes_2d"),
                        "slowest_timescale_ratio": ratios[0] if ratios else None,
                        "diffusion_com_ratio": summary.get("diffusion_com_ratio")}
    return heads
