"""Known-truth recovery at chain scale (the CI-sized version of ``benchmarks/recovery.py --case chain``): OpenMM
Brownian trajectories of a 3-bead chain with known bonds, angle and friction; dynamic matching started at half the
force constants and 4x the friction recovers all three within 10%."""
import math

import numpy as np
import pytest
import torch

from openmm_dynmatch.config import Config, DynamicsConfig, TrainConfig
from openmm_dynmatch.data import make_windows
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.models.invariant_classifier import InvariantWindowClassifier
from openmm_dynmatch.models.potential import CGPotential, NoNet
from openmm_dynmatch.models.prior import PriorPotential
from openmm_dynmatch.train import DynamicMatchingTrainer
from openmm_dynmatch.units import kt_kj_per_mol

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]

MASS_AMU, TEMPERATURE_K, FRICTION, DT, STEPS_PER_FRAME, WINDOW_FRAMES = 12.0, 300.0, 10.0, 0.01, 5, 6
BOND_NM, BOND_K, ANGLE_RAD, ANGLE_K = 0.38, 1000.0, math.radians(100.0), 100.0
BONDS = [[0, 1], [1, 2]]


def chain(factor: float = 1.0, trainable: bool = False) -> PriorPotential:
    return PriorPotential(3, BONDS, bond_r0_nm=BOND_NM, bond_k=factor * BOND_K, angle_theta0_rad=ANGLE_RAD,
                          angle_k=factor * ANGLE_K, trainable=trainable, scale_kt=kt_kj_per_mol(TEMPERATURE_K))


def metadata() -> dict:
    return {"n_beads": 3, "bead_names": ["A", "B", "C"], "bead_types": [0, 0, 0], "type_names": ["A"],
            "masses_amu": [MASS_AMU] * 3, "temperature_k": TEMPERATURE_K, "integrator": "brownian",
            "friction_per_ps": FRICTION, "timestep_ps": DT, "cutoff_nm": None, "periodic": False, "bonds": BONDS}


def chain_data(tmp_path, n_walkers: int = 64, n_frames: int = 1000) -> np.ndarray:
    """OpenMM trajectories ``(walkers, frames, 3, 3)`` nm of the true chain, the first 100 frames dropped."""
    from openmm_dynmatch import trajio
    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.runner import simulate

    model = export(chain(), tmp_path / "truth.pt", metadata())
    start = np.array([[0.0, 0.0, 0.0], [BOND_NM, 0.0, 0.0],
                      [BOND_NM * (1 - math.cos(ANGLE_RAD)), BOND_NM * math.sin(ANGLE_RAD), 0.0]])
    out = tmp_path / "truth.h5"
    simulate(model, np.repeat(start[None], n_walkers, axis=0), n_walkers, out, n_steps=(n_frames + 100) * STEPS_PER_FRAME,
             frame_interval_ps=STEPS_PER_FRAME * DT, platform="Reference", seed=1, progress=False,
             start_selection="cyclic")
    return trajio.load(out).positions.reshape(-1, n_walkers, 3, 3).transpose(1, 0, 2, 3)[:, 100:]


def test_dynamic_matching_recovers_friction_and_force_constants_of_a_chain(tmp_path):
    windows = np.concatenate([make_windows(f, WINDOW_FRAMES) for f in chain_data(tmp_path)])
    torch.manual_seed(0)
    potential = CGPotential(chain(factor=0.5, trainable=True), NoNet(3))
    classifier = InvariantWindowClassifier(3, WINDOW_FRAMES, hidden=32)
    classifier.fit_scales(torch.as_tensor(windows[np.random.default_rng(0).permutation(len(windows))[:4000]]))
    config = Config(train=TrainConfig(iterations=250, walkers=512, classifier_warmup=30, classifier_steps=10,
                                      lr_prior=0.02, lr_friction=0.03, checkpoint_every=10**6, snr_every=0),
                    dynamics=DynamicsConfig(integrator="brownian", timestep_ps=DT, friction_per_ps=4 * FRICTION))
    from openmm_dynmatch.openmm.sampler import OpenMMSampler

    trainer = DynamicMatchingTrainer(config, potential, classifier, DynamicsParameters("brownian", 4 * FRICTION, [0] * 3),
                                     OpenMMSampler(metadata(), 512), windows, [MASS_AMU] * 3, TEMPERATURE_K,
                                     STEPS_PER_FRAME, tmp_path / "run")
    trainer.run(progress=False)
    trainer.load_averaged()
    constants = potential.prior.constants()
    friction = float(trainer.dynamics.friction_per_bead()[0].detach())
    assert abs(friction / FRICTION - 1) < 0.10, f"friction {friction:.2f}/ps, truth {FRICTION}"
    for k in constants["bond_k"].detach().tolist():
        assert abs(k / BOND_K - 1) < 0.10, f"bond k {k:.0f}, truth {BOND_K}"
    angle_k = float(constants["angle_k"][0].detach())
    assert abs(angle_k / ANGLE_K - 1) < 0.10, f"angle k {angle_k:.1f}, truth {ANGLE_K}"
