"""The hidden-particle dynamics of ``benchmarks/memory_truth.py``: its forces written out by hand, the friction of
slow motion against a diffusion measurement, the replicas' naming and statistics, and the kinetic range."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import openmm
from toys import HarmonicChain
from openmm_dynmatch.openmm.export import export

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from core_memory import production_files  # noqa: E402
from memory_truth import HiddenBath, judged, kinetic_range, memory_system, model_runs, replica_files  # noqa: E402

KT_300 = 0.00831446261815324 * 300.0
MASSES = [12.0, 13.0, 14.0, 15.0]


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory):
    meta = {"n_beads": 4, "bead_names": [f"B{i}" for i in range(4)], "bead_types": [0] * 4, "type_names": ["C"],
            "masses_amu": MASSES, "temperature_k": 300.0, "integrator": "langevin", "friction_per_ps": 1.0,
            "timestep_ps": 0.002, "cutoff_nm": None, "periodic": False, "bonds": [[0, 1], [1, 2], [2, 3]]}
    return export(HarmonicChain(800.0), tmp_path_factory.mktemp("model") / "chain.pt", meta)


def test_beads_feel_the_model_and_the_spring_hidden_particles_the_spring_only(chain_model, rng):
    bath = HiddenBath(mass_ratio=0.5, spring_kj_per_mol_nm2=3000.0)
    system, integrator = memory_system(chain_model, MASSES, 2, bath, 300.0, seed=3)
    assert system.getNumParticles() == 16
    masses = [system.getParticleMass(i).value_in_unit(openmm.unit.amu) for i in range(16)]
    np.testing.assert_allclose(masses, MASSES * 2 + [0.5 * m for m in MASSES] * 2)
    line = np.stack([0.3 * np.arange(4), np.zeros(4), np.zeros(4)], axis=1)
    beads = line[None] + 0.03 * rng.standard_normal((2, 4, 3))
    hidden = beads + 0.02 * rng.standard_normal(beads.shape)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.concatenate([beads.reshape(-1, 3), hidden.reshape(-1, 3)]))
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    offset = hidden - beads
    chain = HarmonicChain(800.0)(torch.tensor(beads)).sum().item()
    assert energy == pytest.approx(chain + 0.5 * 3000.0 * np.sum(offset ** 2), rel=1e-9)
    x = torch.tensor(beads, requires_grad=True)
    HarmonicChain(800.0)(x).sum().backward()
    np.testing.assert_allclose(forces[:8], (-x.grad.numpy() + 3000.0 * offset).reshape(-1, 3), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(forces[8:], (-3000.0 * offset).reshape(-1, 3), rtol=1e-9, atol=1e-9)


def test_slow_motion_feels_the_zero_frequency_friction(chain_model, one_thread):
    """A walker's centre of mass moves freely (the chain has bonds only), so at lags long against the momentum's
    relaxation its MSD grows as 6 kT t / (M gamma_0): gamma_0 the bead's friction plus mass_ratio times the
    hidden particle's, not the bead's own friction."""
    bath = HiddenBath(mass_ratio=1.0, spring_kj_per_mol_nm2=2000.0, bead_friction_per_ps=1.0,
                      hidden_friction_per_ps=4.0)
    n_walkers, n_frames, every = 128, 61, 100  # frames 0.2 ps apart, 12 ps
    system, integrator = memory_system(chain_model, MASSES, n_walkers, bath, 300.0, seed=11)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    beads = np.tile(np.stack([0.3 * np.arange(4), np.zeros(4), np.zeros(4)], axis=1), (n_walkers, 1))
    context.setPositions(np.concatenate([beads, beads + 0.01]))
    context.setVelocitiesToTemperature(300.0, 5)
    integrator.step(1000)  # 2 ps: the springs and momenta reach equilibrium
    com = np.empty((n_frames, n_walkers, 3))
    weights = np.asarray(MASSES) / sum(MASSES)
    for k in range(n_frames):
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        x = x[:4 * n_walkers]
        com[k] = np.einsum("wbd,b->wd", x.reshape(n_walkers, 4, 3), weights)
        integrator.step(every)

    def msd(lag):
        return np.mean(np.sum((com[lag:] - com[:-lag]) ** 2, axis=-1))

    # MSD(t) = 6 D (t - tau) at long t: the difference of two long lags leaves the offset tau out
    d = (msd(40) - msd(15)) / (6.0 * 25 * 0.2)
    expected = KT_300 / (sum(MASSES) * bath.zero_frequency_friction())
    assert bath.zero_frequency_friction() == pytest.approx(5.0)
    assert d == pytest.approx(expected, rel=0.15)
    assert d < 0.5 * KT_300 / (sum(MASSES) * bath.bead_friction_per_ps)  # the bead's own friction: 5x too fast


def test_an_overdamped_hidden_particle_relaxes_in_the_memory_time(chain_model, one_thread):
    """``HiddenBath.from_memory``'s memory time against a measurement: beads heavy enough to stand still, hidden
    particles strongly overdamped (hidden friction 200/ps against a spring frequency of 10/ps), so every offset
    from its bead is an Ornstein-Uhlenbeck process whose correlation decays as exp(-t / tau); its slow rate written
    out, (gamma - sqrt(gamma^2 - 4 omega^2)) / 2, is within 0.3% of 1 / tau."""
    heavy = [1.0e6] * 4
    bath = HiddenBath.from_memory(1.0e-4, 1.0e-4 + 8.0e-4, 2.0, bead_mass_amu=1.0e6, mass_ratio=4.0e-6)
    assert bath.hidden_friction_per_ps == pytest.approx(200.0)
    assert bath.spring_kj_per_mol_nm2 == pytest.approx(400.0)
    assert bath.zero_frequency_friction() == pytest.approx(9.0e-4)
    assert bath.memory_time_ps(1.0e6) == pytest.approx(2.0)
    n_walkers = 64
    system, integrator = memory_system(chain_model, heavy, n_walkers, bath, 300.0, seed=4)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    beads = np.tile(np.stack([0.3 * np.arange(4), np.zeros(4), np.zeros(4)], axis=1), (n_walkers, 1))
    rng = np.random.default_rng(2)
    context.setPositions(np.concatenate([beads, beads + rng.normal(0.0, math.sqrt(KT_300 / 400.0), beads.shape)]))
    context.setVelocitiesToTemperature(300.0, 3)
    n = beads.shape[0]
    offsets = []
    for _ in range(81):  # 40 ps, a frame every 0.5 ps
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        offsets.append(x[n:] - x[:n])
        integrator.step(250)
    offsets = np.asarray(offsets).reshape(81, -1)  # mean zero: the spring's rest length (no mean taken out,
    lag = 2  # 1 ps                                    # which would bias the correlation of 40 ps series low)
    correlation = np.mean(offsets[lag:] * offsets[:-lag]) / np.mean(offsets ** 2)
    measured = -1.0 / math.log(correlation)
    gamma, omega2 = 200.0, 400.0 / (4.0e-6 * 1.0e6)
    assert 1.0 / ((gamma - math.sqrt(gamma ** 2 - 4.0 * omega2)) / 2.0) == pytest.approx(2.0, rel=3e-3)
    assert measured == pytest.approx(2.0, rel=0.1)


def test_a_bath_from_its_memory_needs_a_zero_frequency_friction_above_the_beads():
    with pytest.raises(ValueError, match="zero_frequency_friction_per_ps must exceed bead_friction_per_ps"):
        HiddenBath.from_memory(2.0, 1.5, 0.1, bead_mass_amu=12.0)
    with pytest.raises(ValueError, match="memory_time_ps must be a finite positive number, got 0"):
        HiddenBath.from_memory(0.5, 4.0, 0.0, bead_mass_amu=12.0)


def test_the_kinetic_range_keeps_the_frictions_whose_ratio_is_within_the_tolerance():
    frictions = [0.5, 1.0, 2.0, 4.0, 8.0]
    ratios = [1.02, 0.87, 0.96, 1.18, 1.42]  # a minimum at 1/ps, as in Kramers' turnover
    assert kinetic_range(frictions, ratios, 0.15) == [0.5, 1.0, 2.0]
    assert kinetic_range(frictions, ratios, 0.2) == [0.5, 1.0, 2.0, 4.0]
    assert kinetic_range(frictions, [None, 1.0, None, 0.8, 1.1], 0.15) == [1.0, 8.0]


def test_a_bath_with_a_non_positive_constant_is_refused(chain_model):
    with pytest.raises(ValueError, match="HiddenBath.spring_kj_per_mol_nm2 must be a finite positive number, got 0"):
        memory_system(chain_model, MASSES, 1, HiddenBath(spring_kj_per_mol_nm2=0.0), 300.0, seed=0)


def test_replica_productions_stay_out_of_the_lag_analysis(tmp_path):
    """The lag analysis reads a model's ``cg_<key>.h5`` with its ``_seed``/``_group`` files; the kinetics'
    replicas must not change what it reads."""
    files = replica_files(tmp_path, "teacher_f2", 3)
    assert [f.name for f in files] == ["cg_teacher_f2.h5", "cg_teacher_f2_rep1.h5", "cg_teacher_f2_rep2.h5"]
    for f in files:
        f.write_bytes(b"")
    assert production_files(tmp_path, "teacher_f2") == [tmp_path / "cg_teacher_f2.h5"]


def test_judged_ratios_are_the_mean_and_standard_error_over_productions(monkeypatch, tmp_path):
    import memory_truth

    values = {"a": (0.9, 1.2), "b": (1.1, None), "c": (1.3, 1.0)}
    monkeypatch.setattr(memory_truth, "kinetic_ratios",
                        lambda data, path, seed: {"msm": values[path][0], "core": values[path][1]})
    out = judged(None, ["a", "b", "c"], seed=0)
    assert out["msm"] == pytest.approx(1.1)
    assert out["msm_se"] == pytest.approx(0.2 / math.sqrt(3))  # SD 0.2 of (0.9, 1.1, 1.3), over sqrt(3)
    assert out["core"] == pytest.approx(1.1)  # the production without a psi-core time is left out
    assert out["core_se"] == pytest.approx(math.sqrt(0.1 ** 2 + 0.1 ** 2) / math.sqrt(2))  # SD of (1.2, 1.0)
    assert len(out["productions"]) == 3


def test_runs_with_changed_settings_get_their_own_folder_and_keys(tmp_path):
    from science import DEFAULT

    plain = model_runs(tmp_path, DEFAULT, dm_frame_steps=[2, DEFAULT.frame_step], dm_starts=[1.0])
    assert [(key, label, folder) for key, label, folder, _ in plain] == [
        ("fm", "fm", tmp_path), ("fmc", "fmc", tmp_path), ("dm", "dm", tmp_path), ("dm_fs2", "dm", tmp_path / "fs2"),
        ("dm_from_1", "dm_from_1", tmp_path)]  # science.py's own spacing is not run twice
    assert plain[3][3].frame_step == 2 and plain[2][3] == DEFAULT
    assert DEFAULT.friction_optimizer != "sgd"
    tagged = model_runs(tmp_path, DEFAULT, dm_starts=[1.0], overrides={"friction_optimizer": "sgd"}, tag="sgd")
    assert [(key, folder) for key, _, folder, _ in tagged] == [
        ("fm", tmp_path), ("fmc", tmp_path), ("dm_sgd", tmp_path / "sgd"), ("dm_from_1_sgd", tmp_path / "sgd")]
    assert [s.friction_optimizer for *_, s in tagged] == [DEFAULT.friction_optimizer] * 2 + ["sgd"] * 2
