"""Recovery of known models by dynamic matching: a chain (L1), a teacher molecule (L2), a chiral chain.

Case ``chain`` (L1): 3-bead Brownian and Langevin chains with known bonds, angle, masses and friction (OpenMM
data); force constants start at half the truth and the friction 4x above or below it (:class:`ChainSettings`).

Case ``teacher`` (L2): the force-matching model of implicit-solvent alanine dipeptide (10 beads) is the *teacher*:
OpenMM runs it at a chosen friction (2/ps) and its trajectories, with its exact forces, are the data. A student
force-matched to those frames starts dynamic matching at a wrong friction (10/ps), once per entry of ``dm_runs``
(:data:`TEACHER_DM_RUNS`: the friction's estimator, whether the network keeps learning and whether its steps are
scaled by their evidence). The student is in the teacher's model class and the data are Markovian, so what it
misses is the estimator's or the game's failure, not the mapping's. Productions of every model from teacher frames
are compared with the teacher's data (MSM slowest timescale and psi-core relaxation time ratios, FES JS), beside
two references: the force-matched student at the start friction and at the teacher's friction (the kinetics the
potential fit alone allows), and an independent production of the teacher itself (the noise of the kinetic ratios
at these run lengths). Targets: friction within 10%, both kinetic ratios within 15%, held-out AUC of a fresh
classifier at most 0.6 (:class:`TeacherSettings`; ``--work-dir`` keeps and reuses the finished stages). The run
``crn_teacher_shifted`` learns the friction alone from the teacher's potential plus ``shift_psi_kj_per_mol cos(psi)``:
a potential with the teacher's forces but the wrong balance of its two psi basins, to see whether the friction the
game learns depends on that balance (it is reported beside the targets, not judged).

Case ``chirality``. The data are OpenMM Brownian trajectories of a 4-bead chain with a known potential: harmonic
bonds (0.38 nm, 1000 kJ/mol/nm^2), harmonic bond angles (100 degrees, 100 kJ/mol/rad^2) and one dihedral term
``k (1 + cos(phi + 90 deg)) = k (1 - sin phi)`` that favours ``phi > 0`` (about 88% at k = 4 kJ/mol, 300 K); the
handedness flips every few tens of steps, so short runs sample it. The CG model has the same bonds and angles but
no dihedral term, plus an ``internal_mlp`` net (it sees ``cos phi`` and ``sin phi``) whose output layer starts at
zero: the starting model is mirror-symmetric (50% ``phi > 0``). It is trained by
:class:`~openmm_dynmatch.train.DynamicMatchingTrainer` with the true friction held fixed, against a
chirality-aware invariant window classifier, and the handedness population of the trained (parameter-averaged)
model is measured by an OpenMM run. Target: within 5 percentage points of the data's.

Logged along training (every ``trace_every`` iterations): the population of the persistent free-mode CG walkers,
the classifier's AUC on the iteration's windows, and the mirror-energy gap ``<U(-x) - U(x)>`` over data frames
(kJ/mol; the true potential's value is reported beside it: ``2 k <sin phi>``).

Usage (JSON on stdout, a summary line on stderr)::

    python benchmarks/recovery.py --quick
    python benchmarks/recovery.py --case chirality --out benchmarks/results/recovery.json
    python benchmarks/recovery.py --case chain --out benchmarks/results/recovery_chain.json
    python benchmarks/recovery.py --case teacher --work-dir teacher_work --out benchmarks/results/recovery_teacher.json
"""
import argparse
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from openmm_dynmatch import trajio
from openmm_dynmatch.config import Config, DynamicsConfig, TrainConfig
from openmm_dynmatch.data import make_windows
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.models.geometry import dihedral_cos_sin
from openmm_dynmatch.models.internal import InternalMLP
from openmm_dynmatch.models.invariant_classifier import InvariantWindowClassifier
from openmm_dynmatch.models.potential import CGPotential
from openmm_dynmatch.models.prior import PriorPotential
from openmm_dynmatch.train import DynamicMatchingTrainer

BONDS = [[0, 1], [1, 2], [2, 3]]
MASS_AMU, TEMPERATURE_K = 12.0, 300.0
BOND_NM, BOND_K, ANGLE_RAD, ANGLE_K = 0.38, 1000.0, math.radians(100.0), 100.0
DIHEDRAL_K, DIHEDRAL_PHI0_RAD = 4.0, -math.pi / 2   # minimum at phi = +90 degrees


@dataclass
class ChiralitySettings:
    """Sizes of the chirality case (defaults: the full run; :data:`QUICK`: the small one)."""

    friction_per_ps: float = 10.0
    timestep_ps: float = 0.02
    steps_per_frame: int = 10
    window_frames: int = 6
    data_walkers: int = 64
    data_steps: int = 20000
    mode: str = "free"
    iterations: int = 300
    walkers: int = 256
    classifier_warmup: int = 30
    classifier_hidden: int = 32
    net_hidden: int = 32
    lr_potential: float = 3e-3
    lr_classifier: float = 1e-3
    production_walkers: int = 64
    production_steps: int = 5000
    trace_every: int = 10


QUICK = ChiralitySettings(data_steps=6000, iterations=120, walkers=128, classifier_warmup=20,
                          production_steps=3000)


# ------------------------------------------------------------------------------------------ the toy
def chain_prior(with_dihedral: bool) -> PriorPotential:
    """The true potential (``with_dihedral=True``) or the CG model's prior (bonds and angles only)."""
    dihedral = dict(dihedral_k=[[DIHEDRAL_K]], dihedral_phi0_rad=[[DIHEDRAL_PHI0_RAD]]) if with_dihedral else {}
    return PriorPotential(4, BONDS, bond_r0_nm=BOND_NM, bond_k=BOND_K, angle_theta0_rad=ANGLE_RAD, angle_k=ANGLE_K,
                          **dihedral)


def chain_metadata(settings: ChiralitySettings) -> dict:
    """Exported-model metadata of the chain (Brownian dynamics)."""
    return {"n_beads": 4, "bead_names": ["A", "B", "C", "D"], "bead_types": [0] * 4, "type_names": ["A"],
            "masses_amu": [MASS_AMU] * 4, "temperature_k": TEMPERATURE_K, "integrator": "brownian",
            "friction_per_ps": settings.friction_per_ps, "timestep_ps": settings.timestep_ps, "cutoff_nm": None,
            "periodic": False, "bonds": BONDS}


def chain_start() -> np.ndarray:
    """One configuration ``(4, 3)`` nm at the bond lengths and angles, dihedral about +75 degrees."""
    x = np.zeros((4, 3))
    x[1, 0] = BOND_NM
    x[2] = x[1] + BOND_NM * np.array([-math.cos(ANGLE_RAD), math.sin(ANGLE_RAD), 0.0])
    x[3] = x[2] + np.array([BOND_NM, 0.0, 0.1])
    return x


def dihedral_rad(positions) -> np.ndarray:
    """IUPAC dihedral of beads 0-1-2-3, rad, of ``positions`` (..., 4, 3) nm."""
    x = torch.as_tensor(np.asarray(positions, dtype=np.float64)).reshape(-1, 4, 3)
    cos_sin = dihedral_cos_sin(x, torch.tensor([[0, 1, 2, 3]]))
    return np.arctan2(cos_sin[1, :, 0].numpy(), cos_sin[0, :, 0].numpy()).reshape(np.shape(positions)[:-2])


def right_handed_fraction(positions) -> float:
    """Fraction of configurations with ``phi > 0``."""
    return float(np.mean(dihedral_rad(positions) > 0))


def run_model(model, settings: ChiralitySettings, starts: np.ndarray, n_steps: int, work: Path, label: str,
              seed: int) -> np.ndarray:
    """Export ``model``, run it with the package's runner and return frames ``(walkers, frames, 4, 3)`` nm."""
    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.runner import simulate

    path = export(model, work / f"{label}.pt", chain_metadata(settings))
    out = work / f"{label}.h5"
    n_walkers = len(starts)
    simulate(path, starts, n_walkers, out, n_steps=n_steps,
             frame_interval_ps=settings.steps_per_frame * settings.timestep_ps, platform="Reference", seed=seed,
             progress=False, start_selection="cyclic")
    return trajio.load(out).positions.reshape(-1, n_walkers, 4, 3).transpose(1, 0, 2, 3)


def mirror_gap(potential, frames: torch.Tensor) -> float:
    """``<U(-x) - U(x)>`` over ``frames`` (n, 4, 3) nm, kJ/mol: > 0 when the model prefers their handedness."""
    with torch.no_grad():
        return float((potential(-frames) - potential(frames)).mean())


# ------------------------------------------------------------------------------------------ the case
def build_trainer(settings: ChiralitySettings, frames: np.ndarray, work: Path, seed: int) -> DynamicMatchingTrainer:
    """Dynamic-matching trainer of the mirror-symmetric start model against windows of ``frames``."""
    from openmm_dynmatch.openmm.sampler import OpenMMSampler

    windows = np.concatenate([make_windows(f, settings.window_frames) for f in frames])
    torch.manual_seed(seed)
    net = InternalMLP(4, bonds=BONDS, hidden=settings.net_hidden)
    net.fit_scales(frames.reshape(-1, 4, 3))
    potential = CGPotential(chain_prior(with_dihedral=False), net)
    with torch.no_grad():
        potential.net.mlp[-1].weight.zero_()
        potential.net.mlp[-1].bias.zero_()
    classifier = InvariantWindowClassifier(4, settings.window_frames, hidden=settings.classifier_hidden)
    classifier.fit_scales(torch.as_tensor(windows[np.random.default_rng(seed).permutation(len(windows))[:4000]]))
    config = Config(
        train=TrainConfig(mode=settings.mode, iterations=settings.iterations, walkers=settings.walkers,
                          classifier_warmup=settings.classifier_warmup, lr_potential=settings.lr_potential,
                          lr_classifier=settings.lr_classifier, checkpoint_every=10**6, snr_every=0, seed=seed),
        dynamics=DynamicsConfig(integrator="brownian", timestep_ps=settings.timestep_ps,
                                friction_per_ps=settings.friction_per_ps, learn_friction=False))
    dynamics = DynamicsParameters("brownian", settings.friction_per_ps, [0] * 4, learnable=False)
    sampler = OpenMMSampler(chain_metadata(settings), settings.walkers)
    return DynamicMatchingTrainer(config, potential, classifier, dynamics, sampler, windows, [MASS_AMU] * 4,
                                  TEMPERATURE_K, settings.steps_per_frame, work / "run")


def chirality_case(settings: ChiralitySettings, work: Path, seed: int = 0) -> dict:
    """Data, training and production of the chirality case; returns its JSON-able result."""
    t0 = time.perf_counter()
    starts = np.repeat(chain_start()[None], settings.data_walkers, axis=0)
    data = run_model(chain_prior(with_dihedral=True), settings, starts, settings.data_steps, work, "data", seed + 1)
    data = data[:, data.shape[1] // 10:]   # drop the first tenth: equilibration from one start
    flat = torch.as_tensor(data.reshape(-1, 4, 3))
    true_gap = mirror_gap(chain_prior(with_dihedral=True), flat)
    t1 = time.perf_counter()
    trainer = build_trainer(settings, data, work, seed)
    trace = []
    for _ in range(settings.iterations):
        row = trainer.step()
        if trainer.iteration % settings.trace_every == 0 or trainer.iteration == settings.iterations:
            walkers = trainer.free_positions
            trace.append({"iteration": trainer.iteration, "phase": row["phase"], "mode": row["mode"],
                          "classifier_auc": row["classifier_auc"], "reward_mean": row.get("reward_mean"),
                          "mirror_gap_kj_per_mol": mirror_gap(trainer.potential, flat),
                          "walkers_right_handed": None if walkers is None else right_handed_fraction(walkers)})
    trainer.load_averaged()
    t2 = time.perf_counter()
    picks = np.random.default_rng(seed).integers(0, len(flat), settings.production_walkers)
    cg = run_model(trainer.potential, settings, flat[picks].numpy(), settings.production_steps, work, "cg", seed + 2)
    cg = cg[:, cg.shape[1] // 10:]
    t3 = time.perf_counter()
    p_data, p_cg = right_handed_fraction(data), right_handed_fraction(cg)
    return {
        "case": "chirality", "settings": vars(settings), "seed": seed,
        "data_right_handed": p_data, "cg_right_handed": p_cg, "start_right_handed": 0.5,
        "difference_points": 100.0 * (p_cg - p_data), "target_points": 5.0,
        "met": bool(abs(p_cg - p_data) <= 0.05),
        "mirror_gap_true_kj_per_mol": true_gap, "mirror_gap_trained_kj_per_mol": mirror_gap(trainer.potential, flat),
        "trace": trace,
        "time_data_s": t1 - t0, "time_train_s": t2 - t1, "time_production_s": t3 - t2,
    }


# ------------------------------------------------------------------------------------------ L1: a known chain
@dataclass
class ChainSettings:
    """Sizes of the L1 case: a 3-bead chain with known bonds, angle, masses and friction (full run)."""

    iterations: int = 450   # 300 left the angle constant from below at the edge of 5% (benchmarks/README.md)
    walkers: int = 1024
    classifier_warmup: int = 30
    classifier_hidden: int = 32
    data_walkers: int = 64
    data_frames: int = 2000
    start_factor: float = 4.0          # friction starts this many times off the truth (both directions are run)
    constants_factor: float = 0.5      # force constants start at this multiple of the truth
    lr_prior: float = 0.02
    lr_friction: float = 0.03
    friction_beta2: float = 0.9        # Adam beta2 of log friction (train.friction_beta2)
    evidence_scaling: bool = False     # the prior constants' steps scaled by their evidence (train.evidence_scaling)
    reward_windows: str = "unseen"
    mode: str = "conditional"
    classifier_steps: int = 10
    average_last_fraction: float = 0.2
    decay_last_fraction: float = 0.33
    integrators: str = "brownian,langevin"   # which of the four runs (comma-separated lists)
    directions: str = "above,below"


CHAIN = {  # integrator: true friction 1/ps, time step ps, steps per frame, window frames
    "brownian": dict(friction_per_ps=10.0, timestep_ps=0.01, steps_per_frame=5, window_frames=6),
    "langevin": dict(friction_per_ps=5.0, timestep_ps=0.005, steps_per_frame=10, window_frames=9),
}
CHAIN_BONDS = [[0, 1], [1, 2]]
CHAIN_QUICK = ChainSettings(iterations=150, walkers=256, data_frames=800)


def chain_truth(trainable: bool = False, factor: float = 1.0, kt: float = 2.494) -> PriorPotential:
    """The 3-bead chain's potential: bonds 0.38 nm / 1000 kJ/mol/nm^2, angle 100 deg / 100 kJ/mol/rad^2, force
    constants times ``factor``."""
    return PriorPotential(3, CHAIN_BONDS, bond_r0_nm=BOND_NM, bond_k=factor * BOND_K, angle_theta0_rad=ANGLE_RAD,
                          angle_k=factor * ANGLE_K, trainable=trainable, scale_kt=kt)


def chain_case_metadata(integrator: str) -> dict:
    spec = CHAIN[integrator]
    return {"n_beads": 3, "bead_names": ["A", "B", "C"], "bead_types": [0, 0, 0], "type_names": ["A"],
            "masses_amu": [MASS_AMU] * 3, "temperature_k": TEMPERATURE_K, "integrator": integrator,
            "friction_per_ps": spec["friction_per_ps"], "timestep_ps": spec["timestep_ps"], "cutoff_nm": None,
            "periodic": False, "bonds": CHAIN_BONDS}


def chain_data(integrator: str, settings: ChainSettings, work: Path, seed: int) -> np.ndarray:
    """OpenMM trajectories ``(walkers, frames, 3, 3)`` nm of the true chain, first tenth dropped."""
    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.runner import simulate

    spec = CHAIN[integrator]
    path = export(chain_truth(), work / f"truth_{integrator}.pt", chain_case_metadata(integrator))
    start = np.array([[0.0, 0.0, 0.0], [BOND_NM, 0.0, 0.0],
                      [BOND_NM * (1 - math.cos(ANGLE_RAD)), BOND_NM * math.sin(ANGLE_RAD), 0.0]])
    out = work / f"truth_{integrator}.h5"
    n = settings.data_walkers
    frames = int(settings.data_frames * 10 / 9)
    simulate(path, np.repeat(start[None], n, axis=0), n, out, n_steps=frames * spec["steps_per_frame"],
             frame_interval_ps=spec["steps_per_frame"] * spec["timestep_ps"], platform="Reference", seed=seed,
             progress=False, start_selection="cyclic")
    data = trajio.load(out).positions.reshape(-1, n, 3, 3).transpose(1, 0, 2, 3)
    return data[:, data.shape[1] // 10:]


def chain_case(settings: ChainSettings, work: Path, seed: int = 0, integrator: str = "brownian",
               direction: float = 1.0) -> dict:
    """Dynamic matching of the chain from force constants ``constants_factor`` x and friction
    ``start_factor ** direction`` x the truth; returns the recovered constants and their errors."""
    from openmm_dynmatch.models.potential import NoNet
    from openmm_dynmatch.openmm.sampler import OpenMMSampler
    from openmm_dynmatch.units import kt_kj_per_mol

    spec, t0 = CHAIN[integrator], time.perf_counter()
    data = chain_data(integrator, settings, work, seed + 1)
    windows = np.concatenate([make_windows(f, spec["window_frames"]) for f in data])
    t1 = time.perf_counter()
    torch.manual_seed(seed)
    kt = kt_kj_per_mol(TEMPERATURE_K)
    potential = CGPotential(chain_truth(trainable=True, factor=settings.constants_factor, kt=kt), NoNet(3))
    friction0 = spec["friction_per_ps"] * settings.start_factor ** direction
    classifier = InvariantWindowClassifier(3, spec["window_frames"], hidden=settings.classifier_hidden)
    classifier.fit_scales(torch.as_tensor(windows[np.random.default_rng(seed).permutation(len(windows))[:4000]]))
    config = Config(
        train=TrainConfig(mode=settings.mode, iterations=settings.iterations, walkers=settings.walkers,
                          classifier_warmup=settings.classifier_warmup, lr_prior=settings.lr_prior,
                          lr_friction=settings.lr_friction, friction_beta2=settings.friction_beta2,
                          evidence_scaling=settings.evidence_scaling, reward_windows=settings.reward_windows,
                          classifier_steps=settings.classifier_steps,
                          average_last_fraction=settings.average_last_fraction,
                          decay_last_fraction=settings.decay_last_fraction, checkpoint_every=10**6, snr_every=0,
                          seed=seed),
        dynamics=DynamicsConfig(integrator=integrator, timestep_ps=spec["timestep_ps"], friction_per_ps=friction0))
    dynamics = DynamicsParameters(integrator, friction0, [0, 0, 0])
    sampler = OpenMMSampler(chain_case_metadata(integrator), settings.walkers)
    trainer = DynamicMatchingTrainer(config, potential, classifier, dynamics, sampler, windows, [MASS_AMU] * 3,
                                     TEMPERATURE_K, spec["steps_per_frame"], work / f"run_{integrator}")
    trace = []
    for _ in range(settings.iterations):
        row = trainer.step()
        if trainer.iteration % 10 == 0:
            constants = potential.prior.constants()
            trace.append({"iteration": trainer.iteration, "classifier_auc": row["classifier_auc"],
                          "friction_per_ps": float(dynamics.friction_per_bead()[0].detach()),
                          "bond_k": float(constants["bond_k"].detach().mean()),
                          "angle_k": float(constants["angle_k"][0].detach())})
    trainer.load_averaged()
    t2 = time.perf_counter()
    constants = {k: v.detach() for k, v in potential.prior.constants().items()}
    recovered = {"friction_per_ps": float(dynamics.friction_per_bead()[0].detach()),
                 "bond_k": constants["bond_k"].tolist(), "bond_r0_nm": constants["bond_r0"].tolist(),
                 "angle_k": constants["angle_k"].tolist(), "angle_theta0_rad": constants["angle_theta0"].tolist()}
    errors = {"friction": recovered["friction_per_ps"] / spec["friction_per_ps"] - 1,
              "bond_k": max(abs(k / BOND_K - 1) for k in recovered["bond_k"]),
              "angle_k": abs(recovered["angle_k"][0] / ANGLE_K - 1),
              "bond_r0": max(abs(r / BOND_NM - 1) for r in recovered["bond_r0_nm"]),
              "angle_theta0": abs(recovered["angle_theta0_rad"][0] / ANGLE_RAD - 1)}
    worst = max(abs(errors["friction"]), errors["bond_k"], errors["angle_k"])
    return {"case": "chain", "integrator": integrator, "settings": vars(settings), "seed": seed,
            "truth": {"friction_per_ps": spec["friction_per_ps"], "bond_k": BOND_K, "bond_r0_nm": BOND_NM,
                      "angle_k": ANGLE_K, "angle_theta0_rad": ANGLE_RAD},
            "start": {"friction_per_ps": friction0, "constants_factor": settings.constants_factor},
            "recovered": recovered, "relative_errors": errors, "worst_relative_error": worst,
            "target": 0.05, "met": bool(worst <= 0.05), "trace": trace,
            "time_data_s": t1 - t0, "time_train_s": t2 - t1}


def chain_cases(settings, work: Path, seed: int = 0) -> list:
    """The four L1 runs: both integrators, friction started ``start_factor`` x above and below the truth."""
    rows = []
    for integrator in settings.integrators.split(","):
        for side in settings.directions.split(","):
            folder = work / f"{integrator}_{side}"
            folder.mkdir(exist_ok=True)
            rows.append(chain_case(settings, folder, seed, integrator, {"above": 1.0, "below": -1.0}[side]))
    return rows


# ------------------------------------------------------------------------------------------ L2: a teacher molecule
@dataclass
class TeacherSettings:
    """Sizes of the L2 case: a CG alanine-dipeptide teacher model simulated as the data (full run)."""

    aa_ns: float = 1.0                      # AA reference MD the teacher is force-matched to
    fm_iterations: int = 1500               # force matching of the teacher (to the AA data)
    student_fm_iterations: int = 6000       # force matching of the student (to the teacher's exact forces)
    teacher_friction_per_ps: float = 2.0
    start_friction_per_ps: float = 10.0
    data_walkers: int = 64                  # teacher trajectories (the data), from spaced AA frames
    data_ps: float = 100.0
    frame_interval_ps: float = 0.1
    window_frames: int = 6
    frame_step: int = 3                     # windows of 1.5 ps: 3/gamma at the truth (docs/concepts.md)
    mode: str = "conditional"
    iterations: int = 200
    walkers: int = 256
    walkers_per_start: int = 1
    classifier: str = "invariant"
    classifier_steps: int = 10
    classifier_warmup: int = 30
    lr_potential: float = 2e-4
    lr_friction: float = 0.03
    dm_runs: str = "crn_evidence,crn_teacher_potential"  # keys of TEACHER_DM_RUNS; the first is judged
    shift_psi_kj_per_mol: float = -2.0      # amplitude A of A cos(psi) added for the run crn_teacher_shifted
    production_walkers: int = 64            # each model's production, from teacher frames
    production_ps: float = 100.0
    probe_windows: int = 256
    tolerance_friction: float = 0.10
    tolerance_kinetics: float = 0.15
    max_auc: float = 0.6


#: Dynamic-matching runs of the L2 case: the friction's estimator, whether the network keeps learning, and
#: whether its steps are scaled by their evidence (``train.evidence_scaling``; the judged run since 2026-12-04).
TEACHER_DM_RUNS = {"crn": {"friction_gradient": "crn"}, "score": {"friction_gradient": "score"},
                   "crn_fixed_potential": {"friction_gradient": "crn", "lr_potential": 0.0},
                   "crn_teacher_potential": {"friction_gradient": "crn", "lr_potential": 0.0},
                   "crn_teacher_shifted": {"friction_gradient": "crn", "lr_potential": 0.0},
                   "crn_evidence": {"friction_gradient": "crn", "evidence_scaling": True}}
#: Runs that start from the teacher's own potential instead of the force-matched student (friction only).
FROM_TEACHER = ("crn_teacher_potential",)
#: Runs that start from the teacher's potential with its psi basins shifted (:func:`shifted_teacher`).
SHIFTED = ("crn_teacher_shifted",)
TEACHER_QUICK = TeacherSettings(aa_ns=0.1, fm_iterations=200, student_fm_iterations=200, data_walkers=16,
                                data_ps=10.0, iterations=6, walkers=32, classifier_warmup=2, classifier_steps=2,
                                production_walkers=16, production_ps=10.0, probe_windows=32)


def teacher_config(cg_path: Path, settings: TeacherSettings, objective: str, friction_per_ps: float,
                   seed: int, run: str = "crn") -> Config:
    """The demo's configuration of one alanine-dipeptide model, at the sizes of ``settings``; ``run`` is
    ``"teacher"``, ``"student"`` (force matching) or a key of :data:`TEACHER_DM_RUNS`."""
    from openmm_dynmatch.config import ClassifierConfig
    from openmm_dynmatch.demo import FULL, demo_config

    fm_iterations = settings.fm_iterations if run == "teacher" else settings.student_fm_iterations
    demo = replace(FULL, fm_iterations=fm_iterations, dm_iterations=settings.iterations,
                   dm_walkers=settings.walkers, dm_warmup=settings.classifier_warmup,
                   window_frames=settings.window_frames, probe_windows=settings.probe_windows)
    config = demo_config(cg_path, demo, objective, seed)
    train = replace(config.train, mode=settings.mode, classifier_steps=settings.classifier_steps,
                    walkers_per_start=settings.walkers_per_start, lr_potential=settings.lr_potential,
                    lr_friction=settings.lr_friction, checkpoint_every=max(settings.iterations // 4, 1))
    train = replace(train, **TEACHER_DM_RUNS.get(run, {}))
    data = replace(config.data, window_frames=settings.window_frames, frame_step=settings.frame_step)
    return replace(config, train=train, data=data,
                   classifier=ClassifierConfig(kind=settings.classifier),
                   dynamics=replace(config.dynamics, friction_per_ps=friction_per_ps))


def teacher_data(teacher_run: Path, mapped: Path, settings: TeacherSettings, work: Path, seed: int) -> Path:
    """OpenMM trajectories of the teacher at its friction, with its exact forces, as a CG data file."""
    from openmm_dynmatch.openmm.runner import load_walkers

    out = work / "teacher_data.h5"
    if out.exists():
        return out
    aa = trajio.load(mapped)
    production = run_production(teacher_run / "model.pt", aa.positions, settings.data_walkers, settings.data_ps,
                                settings, work / "teacher_run.h5", seed, settings.teacher_friction_per_ps)
    return exact_force_data(load_walkers(production), teacher_run / "potential.pt", aa, settings.frame_interval_ps,
                            out)


def exact_force_data(walkers, potential_file: Path, aa, frame_interval_ps: float, out: Path) -> Path:
    """Walkers of a teacher's OpenMM run, the first tenth of each dropped, with the forces of its potential
    (``potential_file``) as the exact mean forces, written as a CG data file with the mapped AA data's (``aa``)
    bead metadata and topology; returns ``out``."""
    from openmm_dynmatch.cgdata import import_cg
    from openmm_dynmatch.models.potential import forces, load_potential

    trajectories = [t[len(t) // 10:] for t in walkers]
    potential, _ = load_potential(potential_file)
    potential = potential.double()
    teacher_forces = [forces(potential, torch.as_tensor(t))[1].detach().numpy() for t in trajectories]
    meta = aa.metadata
    import_cg(trajectories, out, masses_amu=meta["masses_amu"], bonds=meta["bonds"],
              temperature_k=meta["temperature_k"], frame_interval_ps=frame_interval_ps,
              bead_names=[a.name for a in aa.topology.atoms], bead_types=meta.get("bead_types"),
              type_names=meta.get("type_names"), forces=teacher_forces, timestep_ps=0.002, topology=aa.topology)
    return out


def run_production(model: Path, frames: np.ndarray, n_walkers: int, ps: float, settings: TeacherSettings,
                   out: Path, seed: int, friction_per_ps=None) -> Path:
    """Batched OpenMM run of ``model`` (at ``friction_per_ps`` when given) from spaced ``frames``."""
    from openmm_dynmatch.openmm.runner import simulate

    if not out.exists():
        simulate(model, frames, n_walkers, out, ns=ps / 1000.0, frame_interval_ps=settings.frame_interval_ps,
                 platform="Reference", seed=seed, progress=False, start_selection="spaced",
                 friction_per_ps=friction_per_ps)
    return out


def shifted_teacher(teacher_potential: Path, metadata: dict, amplitude: float, work: Path) -> Path:
    """The teacher's potential plus ``amplitude cos(psi)`` kJ/mol, as a prior dihedral correction: the teacher's
    forces but along psi, its extended basin (psi near 2.6 rad) moved against the helical one (near -0.7 rad): by
    ``-1.6 amplitude`` between the two centres, by 2.1-2.4 kJ/mol on the cores' free energy at amplitude -2
    (measured, benchmarks/README.md). ``metadata``: the mapped AA data's (psi found from its bead names or
    mapping). Written once, to ``work``; returns the file."""
    from openmm_dynmatch.correction import resolve_dihedrals, with_corrections
    from openmm_dynmatch.models.potential import load_potential, save_potential

    out = work / "teacher_shifted_potential.pt"
    if not out.exists():
        potential, stored = load_potential(teacher_potential)
        shifted = with_corrections(potential, resolve_dihedrals(["psi"], metadata), order=1)
        shifted.prior.add_correction([[float(amplitude)]], [[0.0]])
        save_potential(out, shifted, stored)
    return out


def basin_balance(positions: np.ndarray, metadata: dict) -> float:
    """``science.py``'s extended - helical free energy (kJ/mol) of frames of alanine-dipeptide beads; ``metadata``
    as for :func:`shifted_teacher`, with the temperature."""
    from science import backbone_cvs, extended_minus_helical  # benchmarks/ is on the path when this script runs

    return extended_minus_helical(backbone_cvs(positions, metadata), metadata["temperature_k"])


def force_error(potential_file: Path, data: "trajio.Trajectory", every: int = 20) -> float:
    """RMS of a potential's force error against the teacher's exact forces stored in ``data``, relative to the
    RMS teacher force, on every ``every``-th frame."""
    from openmm_dynmatch.models.potential import forces, load_potential

    potential = load_potential(potential_file)[0].double()
    positions = torch.as_tensor(data.positions[::every], dtype=torch.float64)
    teacher = torch.as_tensor(data.forces[::every], dtype=torch.float64)
    model = forces(potential, positions)[1].detach()
    return float(torch.sqrt(((model - teacher) ** 2).mean() / (teacher ** 2).mean()))


def teacher_stages(settings: TeacherSettings, work: Path, seed: int, clock, student: bool = True) -> tuple:
    """The L2 case's stages before dynamic matching, each made where missing (``clock``: a ``StageClock`` of
    ``work``): the AA data, the teacher (force-matched to them) and its trajectories as the data, and the student
    force-matched to those (None without ``student``). Returns ``(mapped AA file, teacher's run summary, data
    file, student's summary)``."""
    from openmm_dynmatch.demo import FULL, prepare_aa_data, train_model

    _, mapped = clock.run("aa_data_s", (work / "aa_mapped.h5").exists(), prepare_aa_data, work,
                          replace(FULL, aa_ns=settings.aa_ns), seed, False)

    def teacher_stage():
        summary = train_model(teacher_config(mapped, settings, "force_matching", settings.teacher_friction_per_ps,
                                             seed, "teacher"), work / "run_teacher", False)
        return summary, teacher_data(Path(summary["run_dir"]), mapped, settings, work, seed + 1)

    teacher, data = clock.run("teacher_s", (work / "teacher_data.h5").exists(), teacher_stage)
    if not student:
        return mapped, teacher, data, None
    fm_dir = work / "run_fm"
    fm = clock.run("student_fm_s", (fm_dir / "summary.json").exists(), train_model,
                   teacher_config(data, settings, "force_matching", settings.start_friction_per_ps, seed, "student"),
                   fm_dir, False)
    return mapped, teacher, data, fm


def teacher_case(settings: TeacherSettings, work: Path, seed: int = 0) -> dict:
    """L2: recover a CG alanine-dipeptide teacher's friction and kinetics by dynamic matching.

    The teacher is the force-matching model of AA data, run by OpenMM at ``teacher_friction_per_ps``; its
    trajectories (with its exact forces) are the data. The student is force-matched to those frames and starts
    dynamic matching at ``start_friction_per_ps``. The student is in the teacher's model class and the data are
    Markovian at the CG resolution, so whatever it misses is the estimator's (or the game's) failure.
    Reference rows: the teacher itself in an independent production (the noise of the kinetic ratios at these
    run lengths), and the force-matched student at the start friction and at the teacher's friction (the kinetics
    the potential fit alone allows). Every model's potential is also scored by its force error against the
    teacher's exact forces on the data's frames.
    """
    from openmm_dynmatch.analysis import compare
    from openmm_dynmatch.demo import train_model
    from openmm_dynmatch.openmm.runner import load_walkers
    from stages import StageClock

    clock = StageClock(work)
    mapped, teacher, data, fm = teacher_stages(settings, work, seed, clock)
    runs = {"teacher_again": (teacher, settings.teacher_friction_per_ps), "fm_start_friction": (fm, None),
            "fm_teacher_friction": (fm, settings.teacher_friction_per_ps)}
    dm_runs = settings.dm_runs.split(",")
    truth = trajio.load(data)
    beads = trajio.read_metadata(mapped)  # the teacher's data keep bead names without residues; the mapping has them
    for name in dm_runs:
        config = teacher_config(data, settings, "dynamic_matching", settings.start_friction_per_ps, seed, name)
        start = (shifted_teacher(Path(teacher["potential"]), beads, settings.shift_psi_kj_per_mol, work)
                 if name in SHIFTED else Path(teacher["potential"]) if name in FROM_TEACHER else None)
        run_dir = work / f"run_dm_{name}"
        summary = clock.run(f"student_dm_{name}_s", (run_dir / "summary.json").exists(), train_model, config,
                            run_dir, False, start)
        runs[f"dm_{name}"] = (summary, None)
        if name in SHIFTED:  # the shifted landscape at the teacher's friction: what a right friction gives it
            runs[f"{name}_teacher_friction"] = (summary, settings.teacher_friction_per_ps)
    frames = np.concatenate(load_walkers(work / "teacher_run.h5"))
    models = {}
    for label, (summary, friction) in runs.items():
        out = work / f"cg_{label}.h5"
        clock.run(f"production_{label}_s", out.exists(), run_production, Path(summary["model"]), frames,
                  settings.production_walkers, settings.production_ps, settings, out, seed + 2, friction)
        s = compare(truth, trajio.load(out), seed=seed)["summary"]
        ratios = s.get("timescale_ratio") or [None]
        models[label] = {"friction_per_ps": friction or summary["friction_per_ps"],
                         "slowest_timescale_ratio": ratios[0], "core_relaxation_ratio": s.get("core_relaxation_ratio"),
                         "js_fes_2d": s.get("js_fes_2d"), "timescales_teacher_ps": s.get("timescales_aa_ps"),
                         "timescales_cg_ps": s.get("timescales_cg_ps"),
                         "force_error_vs_teacher": force_error(Path(summary["potential"]), truth),
                         "extended_minus_helical_kj_per_mol": basin_balance(np.concatenate(load_walkers(out)),
                                                                             beads),  # every walker's frames
                         # the teacher's probe compares it with the AA data, not with its own trajectories
                         "heldout_auc": {} if label == "teacher_again" else summary.get("heldout_auc", {})}
    judged = f"dm_{dm_runs[0]}"
    kinetics = models[judged]
    auc, friction = kinetics["heldout_auc"], kinetics["friction_per_ps"]
    errors = {"friction": friction / settings.teacher_friction_per_ps - 1,
              "msm": _ratio_error(kinetics["slowest_timescale_ratio"]),
              "core": _ratio_error(kinetics["core_relaxation_ratio"])}
    auc_after = (auc.get("after") or {}).get("auc")
    met = {"friction": abs(errors["friction"]) <= settings.tolerance_friction,
           "msm": errors["msm"] <= settings.tolerance_kinetics, "core": errors["core"] <= settings.tolerance_kinetics,
           "auc": auc_after is not None and auc_after <= settings.max_auc}
    shifted = {name: {"amplitude_kj_per_mol": settings.shift_psi_kj_per_mol,
                      "friction_per_ps": models[f"dm_{name}"]["friction_per_ps"],
                      "friction_relative_error": models[f"dm_{name}"]["friction_per_ps"]
                      / settings.teacher_friction_per_ps - 1,
                      "extended_minus_helical_kj_per_mol": {
                          "teacher_data": basin_balance(truth.positions, beads),
                          "shifted_model": models[f"dm_{name}"]["extended_minus_helical_kj_per_mol"]}}
               for name in dm_runs if name in SHIFTED}
    return {"case": "teacher", "settings": vars(settings), "seed": seed, "judged": judged,
            "basin_shift": shifted,
            "teacher_friction_per_ps": settings.teacher_friction_per_ps,
            "start_friction_per_ps": settings.start_friction_per_ps, "recovered_friction_per_ps": friction,
            "relative_errors": errors, "heldout_auc": auc, "models": models, "met": met,
            "all_met": bool(all(met.values())), "timings_s": clock.this_run(),
            "time_train_s": clock.seconds[f"student_{judged}_s"]}


def _ratio_error(ratio) -> float:
    """``|ratio - 1|``, or infinity when the ratio could not be measured."""
    return abs(ratio - 1.0) if ratio is not None and math.isfinite(ratio) else math.inf


CASES = {"chirality": chirality_case, "chain": chain_cases, "teacher": teacher_case}


SETTINGS = {"chirality": (ChiralitySettings, QUICK), "chain": (ChainSettings, CHAIN_QUICK),
            "teacher": (TeacherSettings, TEACHER_QUICK)}


def _summary(row: dict) -> str:
    if row["case"] == "chirality":
        return (f"phi > 0 data {row['data_right_handed']:.3f}, CG {row['cg_right_handed']:.3f} "
                f"({row['difference_points']:+.1f} points; target 5: {'met' if row['met'] else 'missed'})")
    if row["case"] == "teacher":
        dm, met = row["models"][row["judged"]], row["met"]
        return (f"teacher friction {row['teacher_friction_per_ps']:g}/ps, DM {row['start_friction_per_ps']:g} -> "
                f"{row['recovered_friction_per_ps']:.3g}/ps ({100 * row['relative_errors']['friction']:+.1f}%), "
                f"MSM ratio {dm['slowest_timescale_ratio']}, core ratio {dm['core_relaxation_ratio']}, held-out AUC "
                f"{(row['heldout_auc'].get('after') or {}).get('auc')} (met: {met})")
    errors = row["relative_errors"]
    return (f"{row['integrator']} friction {row['start']['friction_per_ps']:.3g} -> "
            f"{row['recovered']['friction_per_ps']:.3g}/ps (truth {row['truth']['friction_per_ps']:g}, "
            f"{100 * errors['friction']:+.1f}%), bond k {100 * errors['bond_k']:.1f}%, angle k "
            f"{100 * errors['angle_k']:.1f}% (target 5%: {'met' if row['met'] else 'missed'})")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small version of every case")
    parser.add_argument("--case", choices=sorted(CASES), action="append", default=None)
    parser.add_argument("--mode", choices=["free", "conditional", "conditional_then_free"], default=None,
                        help="where CG windows start (default: the case's)")
    parser.add_argument("--iterations", type=int, default=None, help="override the case's iterations")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any setting of the cases that have it, e.g. --set lr_friction=0.05")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    parser.add_argument("--work-dir", default=None,
                        help="keep intermediate files here (the teacher case reuses its finished stages; default: "
                             "a temporary folder per case)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in (("mode", args.mode), ("iterations", args.iterations)) if v is not None}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value) if value[:1] in "0123456789-[{" else value
    rows = []
    for case in args.case or sorted(CASES):
        full, quick = SETTINGS[case]
        settings = quick if args.quick else full()
        settings = replace(settings, **{k: v for k, v in overrides.items() if hasattr(settings, k)})
        for seed in args.seeds:
            if args.work_dir:
                work = Path(args.work_dir) / f"{case}_seed{seed}"
                work.mkdir(parents=True, exist_ok=True)
                result = CASES[case](settings, work, seed)
            else:
                with tempfile.TemporaryDirectory(prefix="recovery-") as tmp:
                    result = CASES[case](settings, Path(tmp), seed)
            for row in result if isinstance(result, list) else [result]:
                rows.append(row)
                print(f"{case} seed {seed}: {_summary(row)}, train {row['time_train_s']:.0f} s", file=sys.stderr)
    result = {"benchmark": "recovery", "quick": bool(args.quick), "python": platform.python_version(),
              "torch": torch.__version__, "threads": args.threads, "cases": rows}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
