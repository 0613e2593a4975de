"""Tests of the batched-walker OpenMM Systems and of the path recorder (DESIGN.md sections 5 and 7)."""
import numpy as np
import pytest
import torch

import openmm
from conftest import available_platforms, tolerance
from toys import HarmonicChain
from openmm_dynmatch.openmm.export import export
from openmm_dynmatch.openmm.recorder import record_paths
from openmm_dynmatch.openmm.cg_walkers import platform_and_properties, create_force, create_system

PLATFORMS = [p for p in ("Reference", "CPU", "CUDA") if p in available_platforms()]
KT_300 = 0.00831446261815324 * 300.0


def chain_metadata(n_beads: int, **changes) -> dict:
    meta = {"n_beads": n_beads, "bead_names": [f"B{i}" for i in range(n_beads)], "bead_types": [0] * n_beads,
            "type_names": ["C"], "masses_amu": [12.0 + i for i in range(n_beads)], "temperature_k": 300.0,
            "integrator": "langevin", "friction_per_ps": 1.0, "timestep_ps": 0.002, "cutoff_nm": None,
            "periodic": False, "bonds": [[i, i + 1] for i in range(n_beads - 1)]}
    meta.update(changes)
    return meta


def chain_forces_numpy(walkers: np.ndarray, k: float, r0: float = 0.3) -> np.ndarray:
    """-dU/dx of the harmonic chain, written out by hand: (n_walkers, n_beads, 3) kJ/mol/nm."""
    bond = np.diff(walkers, axis=1)
    r = np.linalg.norm(bond, axis=-1, keepdims=True)
    pull = k * (r - r0) * bond / r  # force on the first bead of each bond
    forces = np.zeros_like(walkers)
    forces[:, :-1] += pull
    forces[:, 1:] -= pull
    return forces


def random_walkers(rng, n_walkers: int, n_beads: int, noise: float = 0.03) -> np.ndarray:
    base = np.stack([0.3 * np.arange(n_beads), np.zeros(n_beads), np.zeros(n_beads)], axis=1)
    return base[None] + noise * rng.standard_normal((n_walkers, n_beads, 3))


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory):
    return export(HarmonicChain(800.0), tmp_path_factory.mktemp("model") / "chain.pt", chain_metadata(4))


def state_of(context, walkers):
    context.setPositions(walkers.reshape(-1, 3))
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    return energy, forces.reshape(walkers.shape)


def platform_tolerance(platform: str) -> dict:
    return tolerance(torch.float64 if platform == "Reference" else torch.float32)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("n_walkers", [1, 7])
def test_openmm_energy_and_forces_equal_the_model(chain_model, rng, platform, n_walkers):
    cg = create_system(chain_model, n_walkers, platform=platform)
    walkers = random_walkers(rng, n_walkers, 4)
    energy, forces = state_of(cg.context, walkers)
    positions = torch.tensor(walkers, requires_grad=True)
    model_energy = HarmonicChain(800.0)(positions).sum()
    (grad,) = torch.autograd.grad(model_energy, positions)
    tol = platform_tolerance(platform)
    np.testing.assert_allclose(energy, model_energy.item(), **tol)
    np.testing.assert_allclose(forces, -grad.numpy(), **tol)
    np.testing.assert_allclose(forces, chain_forces_numpy(walkers, 800.0), **tol)


def test_openmm_forces_match_finite_differences_of_openmm_energy(chain_model, rng):
    cg = create_system(chain_model, 2, platform="Reference")
    walkers = random_walkers(rng, 2, 4)
    _, forces = state_of(cg.context, walkers)
    h = 1e-5
    for w, i, d in [(0, 0, 0), (0, 2, 1), (1, 3, 2), (1, 1, 0)]:
        plus, minus = walkers.copy(), walkers.copy()
        plus[w, i, d] += h
        minus[w, i, d] -= h
        derivative = (state_of(cg.context, plus)[0] - state_of(cg.context, minus)[0]) / (2 * h)
        np.testing.assert_allclose(forces[w, i, d], -derivative, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_walkers_are_independent(chain_model, rng, platform):
    cg = create_system(chain_model, 5, platform=platform)
    walkers = random_walkers(rng, 5, 4)
    _, before = state_of(cg.context, walkers)
    moved = walkers.copy()
    moved[2] += 0.1 * rng.standard_normal((4, 3))
    _, after = state_of(cg.context, moved)
    others = [0, 1, 3, 4]
    np.testing.assert_allclose(after[others], before[others], rtol=1e-12, atol=1e-12)
    assert not np.allclose(after[2], before[2])


def test_system_topology_and_integrator_come_from_metadata(chain_model):
    cg = create_system(chain_model, 3, platform="Reference")
    masses = [cg.system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(12)]
    assert masses == [12.0, 13.0, 14.0, 15.0] * 3
    assert cg.system.getNumConstraints() == 0 and cg.system.getNumForces() == 1
    assert isinstance(cg.integrator, openmm.LangevinMiddleIntegrator)
    assert cg.integrator.getStepSize().value_in_unit(openmm.unit.picosecond) == pytest.approx(0.002)
    assert cg.integrator.getFriction().value_in_unit(openmm.unit.picosecond**-1) == pytest.approx(1.0)
    top = cg.topology
    assert top.getNumChains() == 3 and top.getNumAtoms() == 12
    bonds = sorted((a.index, b.index) for a, b in top.bonds())
    assert bonds == sorted((4 * w + i, 4 * w + i + 1) for w in range(3) for i in range(3))
    md_top = cg.mdtraj_topology()
    assert md_top.n_chains == 3 and [a.name for a in md_top.chain(1).atoms] == ["B0", "B1", "B2", "B3"]
    brownian = create_system(chain_model, 1, platform="Reference", integrator="brownian",
                             friction_per_ps=5.0 / openmm.unit.picosecond, temperature_k=310.0)
    assert isinstance(brownian.integrator, openmm.BrownianIntegrator)
    assert brownian.integrator.getFriction().value_in_unit(openmm.unit.picosecond**-1) == pytest.approx(5.0)
    assert brownian.metadata["temperature_k"] == 310.0


def test_create_dynamics_gives_the_trained_integrator_and_masses(chain_model, tmp_path):
    from openmm_dynmatch.openmm.cg_walkers import create_dynamics

    integrator, masses = create_dynamics(chain_model, seed=6)
    assert isinstance(integrator, openmm.LangevinMiddleIntegrator) and masses == [12.0, 13.0, 14.0, 15.0]
    assert integrator.getFriction().value_in_unit(openmm.unit.picosecond**-1) == pytest.approx(1.0)
    assert integrator.getRandomNumberSeed() == 7  # dynmatch simulate's OpenMM seed for run seed 6
    frictions = [2.0, 8.0, 8.0, 2.0]
    meta = chain_metadata(4, integrator="brownian", friction_per_ps=5.0, bead_friction_per_ps=frictions,
                          temperature_k=310.0, timestep_ps=0.004)
    integrator, masses = create_dynamics(meta)
    assert isinstance(integrator, openmm.BrownianIntegrator)
    assert integrator.getFriction().value_in_unit(openmm.unit.picosecond**-1) == pytest.approx(5.0)
    assert integrator.getTemperature().value_in_unit(openmm.unit.kelvin) == pytest.approx(310.0)
    assert integrator.getStepSize().value_in_unit(openmm.unit.picosecond) == pytest.approx(0.004)
    # every bead keeps its trained mobility: gamma * mass_i = gamma_i * m_i
    np.testing.assert_allclose(5.0 * np.array(masses), np.array(frictions) * [12.0, 13.0, 14.0, 15.0], rtol=1e-12)
    with pytest.raises(ValueError, match="seed must be a non-negative integer or None, got -1"):
        create_dynamics(meta, seed=-1)


def test_create_force_in_a_user_system(chain_model, rng):
    system = openmm.System()
    for mass in chain_metadata(4)["masses_amu"]:
        system.addParticle(mass)
    system.addForce(create_force(chain_model))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    walkers = random_walkers(rng, 1, 4)
    energy, forces = state_of(context, walkers)
    np.testing.assert_allclose(forces, chain_forces_numpy(walkers, 800.0), rtol=1e-9, atol=1e-9)


class _PlatformWithPrecision:
    """Stands in for CUDA/OpenCL (absent here): a platform with a ``Precision`` property."""

    def getPropertyNames(self):
        return ("DeviceIndex", "Precision")


def test_platforms_with_a_precision_setting_default_to_mixed(monkeypatch):
    """OpenMM's CUDA default is single precision, which stores positions in float32 and would break the float64
    recorded paths of DESIGN.md section 3; the engine asks for mixed unless told otherwise."""
    from openmm_dynmatch.openmm import cg_walkers

    monkeypatch.setattr(cg_walkers, "available_platforms", lambda: ["Reference", "GPU"])
    monkeypatch.setattr(cg_walkers.openmm.Platform, "getPlatformByName",
                        staticmethod(lambda name: _PlatformWithPrecision()))
    assert platform_and_properties("GPU")[1] == {"Precision": "mixed"}
    assert platform_and_properties("GPU", "single")[1] == {"Precision": "single"}
    assert platform_and_properties("GPU", "double")[1] == {"Precision": "double"}


def test_bad_engine_inputs_raise_clear_errors(chain_model):
    with pytest.raises(ValueError, match="unknown platform 'Quantum'"):
        platform_and_properties("Quantum")
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        platform_and_properties("Reference", "half")
    with pytest.raises(ValueError, match="platform CPU has no precision setting"):
        platform_and_properties("CPU", "single")
    assert platform_and_properties("Reference", "double")[1] == {}
    with pytest.raises(ValueError, match="n_walkers must be a positive integer, got 0"):
        create_system(chain_model, 0)
    with pytest.raises(ValueError, match="unknown integrator 'verlet'"):
        create_system(chain_model, 1, integrator="verlet")
    with pytest.raises(ValueError, match="timestep_ps must be a finite positive number"):
        create_system(chain_model, 1, timestep_ps=0.0)
    cg = create_system(chain_model, 2, platform="Reference")
    with pytest.raises(ValueError, match=r"n_walkers \* n_beads = 8 particles, got \(3, 4, 3\)"):
        record_paths(cg, np.zeros((3, 4, 3)), 5)
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        record_paths(cg, np.zeros((2, 4, 3)), 0)


# --- the path recorder: the noise rebuilt from recorded paths must be N(0, 1) (DESIGN.md section 7) -------

K_STIFF = 5000.0


def langevin_noise(paths, forces_fn) -> np.ndarray:
    """R_k of the LFMiddle scheme, rebuilt from positions at every step and the start velocities."""
    x, dt, m = paths.positions, paths.timestep_ps, paths.masses_amu[None, :, None]
    a = np.exp(-paths.friction_per_ps * dt)
    s = np.sqrt(KT_300 * (1.0 - a * a) / m)
    u = paths.velocities
    noise = []
    for k in range(x.shape[1] - 1):
        w = u + dt * forces_fn(x[:, k]) / m
        u = 2.0 * (x[:, k + 1] - x[:, k]) / dt - w
        noise.append((u - a * w) / s)
    return np.stack(noise, axis=1)


def brownian_noise(paths, forces_fn) -> np.ndarray:
    """xi_k of OpenMM's Brownian scheme, rebuilt from positions at every step."""
    x, dt = paths.positions, paths.timestep_ps
    gamma_m = paths.friction_per_ps * paths.masses_amu[None, :, None]
    sigma = np.sqrt(2.0 * KT_300 * dt / gamma_m)
    steps = [(x[:, k + 1] - x[:, k] - dt * forces_fn(x[:, k]) / gamma_m) / sigma for k in range(x.shape[1] - 1)]
    return np.stack(steps, axis=1)


def assert_standard_normal(noise: np.ndarray) -> None:
    n = noise.size
    assert abs(noise.mean()) < 5.0 / np.sqrt(n)
    assert abs(noise.var() - 1.0) < 5.0 * np.sqrt(2.0 / n)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kind", ["langevin", "brownian"])
def test_recorded_paths_give_standard_normal_noise(tmp_path, rng, platform, kind):
    friction = 1.0 if kind == "langevin" else 2.0
    model = export(HarmonicChain(K_STIFF), tmp_path / "stiff.pt",
                   chain_metadata(3, integrator=kind, friction_per_ps=friction))
    cg = create_system(model, 16, platform=platform, seed=11)
    start = random_walkers(rng, 16, 3, noise=0.02)
    paths = record_paths(cg, start, 80, seed=5)
    assert paths.positions.shape == (16, 81, 3, 3) and paths.positions.dtype == np.float64
    np.testing.assert_allclose(paths.positions[:, 0], start, rtol=1e-12, atol=1e-12)
    rebuild = langevin_noise if kind == "langevin" else brownian_noise
    assert_standard_normal(rebuild(paths, lambda x: chain_forces_numpy(x, K_STIFF)))
    # The check is sensitive: leaving out the force term breaks it.
    wrong = rebuild(paths, lambda x: np.zeros_like(x))
    assert abs(wrong.var() - 1.0) > 10.0 * np.sqrt(2.0 / wrong.size)
    # A second window reuses the same Context and starts where it is told to.
    again = record_paths(cg, start, 40, seed=6)
    np.testing.assert_allclose(again.positions[:, 0], start, rtol=1e-12, atol=1e-12)
    assert_standard_normal(rebuild(again, lambda x: chain_forces_numpy(x, K_STIFF)))


def step_positions(cg, start, velocities, n_steps: int) -> np.ndarray:
    """Positions (n_walkers, n_steps + 1, n_beads, 3) of ``cg`` stepped one step at a time from ``start``."""
    context = cg.context
    context.setPositions(start.reshape(-1, 3))
    context.setVelocities(velocities.reshape(-1, 3))
    frames = [start]
    for _ in range(n_steps):
        cg.integrator.step(1)
        state = context.getState(getPositions=True)
        frames.append(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer).reshape(start.shape))
    return np.stack(frames, axis=1)


def test_per_bead_langevin_is_langevin_middle_and_gives_standard_normal_noise_per_bead(tmp_path, rng):
    from types import SimpleNamespace

    from openmm_dynmatch.openmm.integrators import per_bead_langevin_integrator

    model = export(HarmonicChain(K_STIFF), tmp_path / "stiff.pt", chain_metadata(3))
    start = random_walkers(rng, 16, 3, noise=0.02)
    velocities = 0.5 * rng.standard_normal((16, 3, 3))
    # At zero temperature the scheme is deterministic: with one friction it is LangevinMiddleIntegrator's path.
    reference = create_system(model, 16, platform="Reference")
    reference.integrator.setTemperature(0.0)
    uniform = create_system(model, 16, platform="Reference", bead_friction_per_ps=[1.0, 1.0, 1.0])
    uniform.integrator.setGlobalVariableByName("kT", 0.0)
    np.testing.assert_allclose(step_positions(uniform, start, velocities, 30),
                               step_positions(reference, start, velocities, 30), rtol=0, atol=1e-12)
    # At 300 K with a friction per bead, the noise rebuilt with each bead's own a_i, s_i is standard normal.
    frictions = np.array([0.5, 4.0, 20.0])
    cg = create_system(model, 16, platform="Reference", seed=11, bead_friction_per_ps=frictions.tolist())
    assert isinstance(cg.integrator, openmm.CustomIntegrator)
    assert cg.metadata["bead_friction_per_ps"] == frictions.tolist()
    assert cg.metadata["friction_per_ps"] == pytest.approx(frictions.mean())
    gamma = np.array(cg.integrator.getPerDofVariableByName("gamma"))[:, 0]
    np.testing.assert_allclose(gamma, np.tile(frictions, 16), rtol=1e-15)
    positions = step_positions(cg, start, velocities, 120)

    def rebuilt(per_bead_friction):
        paths = SimpleNamespace(positions=positions, timestep_ps=0.002, velocities=velocities,
                                masses_amu=np.array(chain_metadata(3)["masses_amu"]),
                                friction_per_ps=np.asarray(per_bead_friction)[None, :, None])
        return langevin_noise(paths, lambda x: chain_forces_numpy(x, K_STIFF))

    noise = rebuilt(frictions)
    for bead in range(3):
        assert_standard_normal(noise[:, :, bead])
    # The check sees the frictions: one friction for all beads (their mean) breaks it on the slow bead.
    wrong = rebuilt(np.full(3, frictions.mean()))[:, :, 0]
    assert abs(wrong.var() - 1.0) > 10.0 * np.sqrt(2.0 / wrong.size)
    with pytest.raises(ValueError, match="finite positive"):
        per_bead_langevin_integrator(300.0, [1.0, -2.0], 0.002)


def test_bead_frictions_of_create_system_are_checked_and_brownian_masses_carry_them(chain_model):
    with pytest.raises(ValueError, match="must list 4 finite positive frictions"):
        create_system(chain_model, 2, platform="Reference", bead_friction_per_ps=[1.0, 2.0])
    with pytest.raises(ValueError, match="must list 4 finite positive frictions"):
        create_system(chain_model, 2, platform="Reference", bead_friction_per_ps=[1.0, 2.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="not both"):
        create_system(chain_model, 2, platform="Reference", friction_per_ps=2.0, bead_friction_per_ps=[1.0] * 4)
    frictions = [2.0, 8.0, 8.0, 2.0]
    brownian = create_system(chain_model, 2, platform="Reference", integrator="brownian",
                             bead_friction_per_ps=frictions)
    assert isinstance(brownian.integrator, openmm.BrownianIntegrator)
    assert brownian.integrator.getFriction().value_in_unit(openmm.unit.picosecond**-1) == pytest.approx(5.0)
    masses = np.array([brownian.system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(8)])
    # every bead diffuses with kT / (gamma_i m_i): the integrator's 5/ps times the particle mass
    np.testing.assert_allclose(5.0 * masses, np.tile(np.array(frictions) * [12.0, 13.0, 14.0, 15.0], 2),
                               rtol=1e-12)


def test_one_friction_given_replaces_a_models_per_bead_frictions_in_masses_and_metadata(tmp_path):
    frictions = [2.0, 8.0, 8.0, 2.0]
    model = export(HarmonicChain(800.0), tmp_path / "per_bead.pt",
                   chain_metadata(4, integrator="brownian", friction_per_ps=5.0, bead_friction_per_ps=frictions))
    own = create_system(model, 1, platform="Reference")
    own_masses = [own.system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(4)]
    np.testing.assert_allclose(own_masses, np.array(frictions) * [12.0, 13.0, 14.0, 15.0] / 5.0, rtol=1e-12)
    assert own.metadata["bead_friction_per_ps"] == frictions
    one = create_system(model, 1, platform="Reference", friction_per_ps=3.0)
    assert [one.system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(4)] == [12.0, 13.0,
                                                                                                  14.0, 15.0]
    assert one.metadata["friction_per_ps"] == 3.0 and one.metadata["bead_friction_per_ps"] == [3.0] * 4


def test_recorder_start_velocities(tmp_path, rng):
    model = export(HarmonicChain(K_STIFF), tmp_path / "m.pt", chain_metadata(3))
    cg = create_system(model, 400, platform="Reference", seed=3)
    start = random_walkers(rng, 400, 3, noise=0.02)
    given = rng.standard_normal((400, 3, 3))
    paths = record_paths(cg, start, 1, velocities=given)
    np.testing.assert_allclose(paths.velocities, given, rtol=1e-12, atol=1e-12)
    drawn = record_paths(cg, start, 1, seed=9).velocities
    masses = np.array(chain_metadata(3)["masses_amu"])
    # Maxwell-Boltzmann: each component has variance kT/m.
    variance = (drawn**2).mean(axis=(0, 2))
    np.testing.assert_allclose(variance, KT_300 / masses, rtol=5.0 * np.sqrt(2.0 / 1200))
    np.testing.assert_array_equal(record_paths(cg, start, 1, seed=9).velocities, drawn)
    brownian = create_system(model, 400, platform="Reference", integrator="brownian")
    assert record_paths(brownian, start, 1, seed=9).velocities is None


# --- openmm-ml support (works without openmm-ml installed) --------------------------------------------------

def test_openmmml_impl_adds_the_model_for_a_particle_subset(chain_model, rng):
    from openmm_dynmatch.openmm.openmmml_plugin import DynmatchPotentialImplFactory

    impl = DynmatchPotentialImplFactory().createImpl("dynmatch", modelPath=str(chain_model))
    system = openmm.System()
    for _ in range(6):
        system.addParticle(12.0)
    atoms = [5, 0, 2, 3]  # bead i of the model is particle atoms[i]
    impl.addForces(None, system, atoms, 3)
    assert system.getForce(0).getForceGroup() == 3
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    positions = rng.standard_normal((6, 3))
    positions[atoms] = random_walkers(rng, 1, 4)[0]
    energy, forces = state_of(context, positions[None])
    walker = positions[atoms][None]
    np.testing.assert_allclose(energy, HarmonicChain(800.0)(torch.tensor(walker)).item(), rtol=1e-9)
    np.testing.assert_allclose(forces[0, atoms], chain_forces_numpy(walker, 800.0)[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(forces[0, [1, 4]], 0.0)
    with pytest.raises(ValueError, match="whole number of molecules of 4 beads, got 3"):
        impl.addForces(None, system, [0, 1, 2], 0)
    with pytest.raises(ValueError, match="distinct particle indices in \\[0, 6\\)"):
        impl.addForces(None, system, [0, 1, 2, 9], 0)
    with pytest.raises(ValueError, match="needs modelPath"):
        DynmatchPotentialImplFactory().createImpl("dynmatch")


def test_openmmml_register(chain_model):
    from openmm_dynmatch.openmm import openmmml_plugin

    try:
        from openmmml import MLPotential
    except ImportError:
        with pytest.raises(ImportError, match="openmm-ml is not installed"):
            openmmml_plugin.register()
    else:
        openmmml_plugin.register()
        MLPotential("dynmatch", modelPath=str(chain_model))
        with pytest.raises(ValueError, match="needs modelPath"):
            MLPotential("dynmatch")
