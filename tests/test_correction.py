"""The dihedral correction (openmm_dynmatch.correction): the Fourier fit of the log-ratio of two angle distributions
recovers a known series; the prior's correction terms add that series (energy against the numpy dihedral, forces
against finite differences, the same in TorchScript and in OpenMM); one correction step with OpenMM sampling
recovers a known dihedral energy of a chain whose dihedral marginal is known exactly; and a training run applies,
saves, resumes and exports the correction."""
import json
import math

import numpy as np
import pytest
import torch
import yaml

from openmm_dynmatch import trajio
from openmm_dynmatch.config import load_config
from openmm_dynmatch.correction import (BINS, correct, correction_coefficients, dihedral_counts, free_energy_difference,
                                        resolve_dihedrals, with_corrections)
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.features import dihedrals
from openmm_dynmatch.models.potential import CGPotential, build_net, build_potential, load_potential, save_potential
from openmm_dynmatch.models.prior import fit_prior
from openmm_dynmatch.runs import run_training
from openmm_dynmatch.sampling import build_sampler
from openmm_dynmatch.units import kt_kj_per_mol
from toys import central_difference_forces

SERIES = np.array([0.0, 1.5, -0.7, 0.4, 0.9, -0.3, 0.2])   # c0, a1, b1, a2, b2, a3, b3 (kJ/mol)
TEMPERATURE_K = 300.0
CHAIN = {"r0": 0.38, "k_bond": 4000.0, "theta0": 1.9, "k_angle": 150.0}
# the dihedral energy of the chain's "data": 2 cos(phi) + 1 sin(2 phi) kJ/mol
CHAIN_SERIES = np.array([0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0])


def series(angles, coefficients):
    """``sum_n a_n cos(n x) + b_n sin(n x)`` written out again from the coefficient layout (c0, a1, b1, ...)."""
    out = np.zeros_like(angles)
    for n in range(1, (len(coefficients) - 1) // 2 + 1):
        out += coefficients[2 * n - 1] * np.cos(n * angles) + coefficients[2 * n] * np.sin(n * angles)
    return out


def binned_samples(log_density, total=10**7):
    """Bin centres repeated in proportion to ``exp(log_density)``: a histogram with known bin probabilities."""
    centres = -np.pi + (np.arange(BINS) + 0.5) * 2 * np.pi / BINS
    p = np.exp(log_density(centres))
    return np.repeat(centres, np.round(total * p / p.sum()).astype(int))


def test_fit_recovers_the_log_ratio_of_two_known_distributions():
    kt = kt_kj_per_mol(TEMPERATURE_K)
    target_energy = lambda x: 2.0 * np.cos(x - 1.0)                        # noqa: E731
    model_energy = lambda x: target_energy(x) - series(x, SERIES)          # model = target - S
    fitted = correction_coefficients(binned_samples(lambda x: -model_energy(x) / kt),
                                     binned_samples(lambda x: -target_energy(x) / kt), TEMPERATURE_K, order=3,
                                     min_count=1)
    # kT ln(P_model / P_target) = S + const: the fitted series is S (the constant is free)
    np.testing.assert_allclose(fitted[1:], SERIES[1:], atol=2e-4)


def test_a_fit_over_half_the_circle_puts_no_well_where_neither_sample_goes():
    # Data in one well on phi < 0 and nothing on phi > 0 (as alanine dipeptide's phi); the model differs by a
    # series of 4th and 5th order, which an order-3 fit can only follow on half the circle. The plain fit does,
    # and dips more than 1 kJ/mol below its sampled range in the empty half.
    kt = kt_kj_per_mol(TEMPERATURE_K)
    target_energy = lambda x: np.where(x < 0, 6.0 * (1.0 - np.cos(x + 1.6)), np.inf)   # noqa: E731
    truth = lambda x: 1.5 * np.cos(4 * x + 0.3) + 0.5 * np.sin(5 * x)                    # noqa: E731
    model = binned_samples(lambda x: -(target_energy(x) - truth(x)) / kt, 10**6)
    target = binned_samples(lambda x: -target_energy(x) / kt, 10**6)
    edges = np.linspace(-np.pi, np.pi, BINS + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    counts = np.histogram(model, edges)[0], np.histogram(target, edges)[0]
    sampled = (counts[0] >= 20) & (counts[1] >= 20)
    assert sampled.sum() == 18 and not sampled[centres > 0].any()
    weights = 1.0 / (1.0 / counts[0][sampled] + 1.0 / counts[1][sampled])

    def check(coefficients):
        fitted = series(centres, coefficients)
        error = fitted[sampled] - truth(centres[sampled])
        error -= np.average(error, weights=weights)  # the constant is free
        rms = math.sqrt(np.average(error ** 2, weights=weights))
        return rms, fitted[~sampled].min() - min(fitted[sampled].min(), 0.0)

    plain = np.linalg.lstsq(
        np.sqrt(weights)[:, None] * np.stack([np.ones(18)] + [f(n * centres[sampled]) for n in (1, 2, 3)
                                                               for f in (np.cos, np.sin)], axis=1),
        np.sqrt(weights) * kt * np.log(counts[0][sampled] / counts[0].sum() / (counts[1][sampled] / counts[1].sum())),
        rcond=None)[0]
    plain_rms, plain_dip = check(plain)
    assert plain_rms < 0.1 and plain_dip < -1.0
    rms, dip = check(correction_coefficients(model, target, TEMPERATURE_K, order=3))
    assert dip >= -1e-9                                  # no well in the empty half
    truth_rms = math.sqrt(np.average((truth(centres[sampled]) - np.average(truth(centres[sampled]),
                                                                             weights=weights)) ** 2, weights=weights))
    assert rms < 0.15 * truth_rms                        # and the sampled half still followed
    # a circle sampled everywhere keeps the plain fit
    both = binned_samples(lambda x: -2.0 * np.cos(x) / kt), binned_samples(lambda x: -np.cos(x - 1.0) / kt)
    np.testing.assert_allclose(correction_coefficients(*both, TEMPERATURE_K, order=3, min_count=1)[1:3],
                               [-2.0 + np.cos(1.0), np.sin(1.0)], atol=2e-3)


def test_too_few_populated_bins_are_refused_with_what_to_change():
    angles = np.full(1000, 0.3)
    with pytest.raises(ValueError, match="bins hold 20 angles.*train.correction_ps"):
        correction_coefficients(angles, angles, TEMPERATURE_K, order=3)


def test_profile_distance_of_a_cosine_tilt_is_its_rms():
    # P_model / P_target = exp(a cos x / kT) on every bin: the profiles differ by a cos x + const, and over 36 equal
    # bins the mean of cos^2 is exactly 1/2, so the RMS distance is a / sqrt(2)
    kt, a = kt_kj_per_mol(TEMPERATURE_K), 1.7
    target = dihedral_counts(binned_samples(lambda x: 0.0 * x))
    model = dihedral_counts(binned_samples(lambda x: a * np.cos(x) / kt))
    assert target.shape == (BINS,) and target.sum() == pytest.approx(10**7, abs=BINS)
    assert free_energy_difference(model, target, TEMPERATURE_K) == pytest.approx(a / np.sqrt(2), rel=1e-4)
    assert free_energy_difference(target, target, TEMPERATURE_K) == pytest.approx(0.0, abs=1e-12)


def _five_bead_potential(corrections=None):
    torch.manual_seed(0)
    spec = {"n_beads": 5, "bonds": [[0, 1], [1, 2], [2, 3], [3, 4]], "dtype": "float64",
            "prior": {"bonds": [[0, 1], [1, 2], [2, 3], [3, 4]], "angle_k": 50.0, "angle_theta0_rad": 2.0,
                      "correction_dihedrals": corrections, "correction_order": 3},
            "net": {"kind": "internal_mlp", "hidden": 8}}
    return build_potential(spec)


def _coefficients_as_terms(coefficients):
    return np.array([coefficients[1::2]]), np.array([coefficients[2::2]])


def test_prior_correction_adds_the_series_in_its_dihedral_with_matching_forces(rng):
    quad = [1, 2, 3, 4]
    base = _five_bead_potential()
    potential = with_corrections(base, [quad], order=3)
    x = torch.as_tensor(np.cumsum(rng.normal(scale=0.2, size=(16, 5, 3)), axis=1))
    torch.testing.assert_close(potential(x), base(x), rtol=0, atol=0)     # empty corrections add nothing
    potential.prior.add_correction(*_coefficients_as_terms(SERIES))
    expected = base(x).detach().numpy() + series(dihedrals(x.numpy(), [quad])[:, 0], SERIES)
    np.testing.assert_allclose(potential(x).detach().numpy(), expected, rtol=1e-10, atol=1e-10)
    scripted = torch.jit.script(potential)
    np.testing.assert_allclose(scripted(x).detach().numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(potential.prior.energy_terms(x)["dihedral_correction"].detach().numpy(),
                               series(dihedrals(x.numpy(), [quad])[:, 0], SERIES), rtol=1e-10, atol=1e-10)
    x.requires_grad_(True)
    analytic = -torch.autograd.grad(potential(x).sum(), x)[0]
    numeric = central_difference_forces(lambda y: potential(y), x.detach())
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-6)


def test_add_correction_refuses_a_wrong_shape():
    potential = with_corrections(_five_bead_potential(), [[0, 1, 2, 3], [1, 2, 3, 4]], order=2)
    with pytest.raises(ValueError, match=r"cos_terms: expected shape \(2, 2\)"):
        potential.prior.add_correction(np.zeros((1, 2)), np.zeros((2, 2)))


def test_saved_corrections_come_back_and_files_written_before_corrections_load(tmp_path):
    potential = _five_bead_potential([[1, 2, 3, 4]])
    potential.prior.add_correction(*_coefficients_as_terms(SERIES))
    save_potential(tmp_path / "corrected.pt", potential)
    loaded = load_potential(tmp_path / "corrected.pt")[0]
    torch.testing.assert_close(loaded.prior.correction_sin, potential.prior.correction_sin, rtol=0, atol=0)
    # a file of an earlier version: no correction keys in its spec or state dict
    plain = _five_bead_potential()
    spec = json.loads(json.dumps(plain.spec))
    for key in ("correction_dihedrals", "correction_order"):
        del spec["prior"][key]
    state = {k: v for k, v in plain.state_dict().items() if "correction" not in k}
    torch.save({"spec": spec, "state_dict": state, "metadata": {}}, tmp_path / "old.pt")
    old = load_potential(tmp_path / "old.pt")[0]
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(old(x), plain(x), rtol=0, atol=0)


def test_named_and_indexed_dihedrals_resolve_and_bad_entries_are_named():
    meta = {"n_beads": 5, "bead_names": ["ACE1-C", "ALA2-N", "ALA2-CA", "ALA2-C", "NME3-N"]}
    assert resolve_dihedrals(["phi", "psi", "0-1-2-4", [4, 3, 2, 1]], meta).tolist() == [
        [0, 1, 2, 3], [1, 2, 3, 4], [0, 1, 2, 4], [4, 3, 2, 1]]
    with pytest.raises(ValueError, match="'omega'"):
        resolve_dihedrals(["omega"], meta)
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        resolve_dihedrals(["0-1-2-7"], meta)
    with pytest.raises(ValueError, match="listed twice"):
        resolve_dihedrals(["psi", "1-2-3-4"], meta)
    with pytest.raises(ValueError, match="'phi' needs the backbone beads"):
        resolve_dihedrals(["phi"], {"n_beads": 4, "bead_names": ["A", "B", "C", "D"]})


def test_config_refuses_a_malformed_dihedral_entry_naming_the_key():
    with pytest.raises(ValueError, match=r"train.correction_dihedrals\[1\].*got 'chi'"):
        load_config(overrides=["train.correction_dihedrals=[psi, chi]"])
    assert load_config(overrides=["train.correction_dihedrals=[psi, 0-1-2-3]"]).train.correction_dihedrals == [
        "psi", "0-1-2-3"]


def chain_data(n: int, rng) -> tuple:
    """Exact Boltzmann samples (n, 4, 3) nm and their dihedral angles (n,) of a 4-bead chain with harmonic bonds
    and angles and the dihedral energy ``CHAIN_SERIES``: the internal coordinates are independent with densities
    ``r^2 exp(-U_b/kT)``, ``sin(theta) exp(-U_a/kT)`` and ``exp(-V(phi)/kT)`` (drawn by rejection), placed in space
    bead by bead."""
    kt = kt_kj_per_mol(TEMPERATURE_K)

    def draw(proposal, accept):
        out = np.zeros(0)
        while out.size < 3 * n:
            x = proposal(4 * 3 * n)
            out = np.concatenate([out, x[rng.random(x.size) < accept(x)]])
        return out[:3 * n]

    sigma_r, sigma_a = math.sqrt(kt / CHAIN["k_bond"]), math.sqrt(kt / CHAIN["k_angle"])
    r_max = CHAIN["r0"] + 6 * sigma_r
    r = draw(lambda m: rng.normal(CHAIN["r0"], sigma_r, m), lambda x: (x / r_max) ** 2).reshape(n, 3)
    theta = draw(lambda m: rng.normal(CHAIN["theta0"], sigma_a, m), lambda x: np.clip(np.sin(x), 0, 1))
    theta = theta[: 2 * n].reshape(n, 2)
    v_min = -np.abs(CHAIN_SERIES[1:]).sum()
    phi = draw(lambda m: rng.uniform(-np.pi, np.pi, m),
               lambda x: np.exp(-(series(x, CHAIN_SERIES) - v_min) / kt))[:n]
    x = np.zeros((n, 4, 3))
    x[:, 1, 0] = r[:, 0]
    # bead 2 in the xy plane at angle theta_1 about bead 1
    x[:, 2] = x[:, 1] + r[:, 1, None] * np.stack([-np.cos(theta[:, 0]), np.sin(theta[:, 0]), np.zeros(n)], axis=1)
    b1, b2 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 1]
    e2 = b2 / np.linalg.norm(b2, axis=1, keepdims=True)
    normal = np.cross(b1, b2)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    in_plane = np.cross(normal, e2)
    # bead 3: angle theta_2 at bead 2, rotated by phi about the 1-2 bond (phi = 0: cis to bead 0)
    direction = (-np.cos(theta[:, 1, None]) * e2 + np.sin(theta[:, 1, None]) * (
        np.cos(phi)[:, None] * in_plane + np.sin(phi)[:, None] * normal))
    x[:, 3] = x[:, 2] + r[:, 2, None] * direction
    return x, phi


def test_chain_data_have_the_intended_dihedral(rng):
    x, phi = chain_data(4000, rng)
    np.testing.assert_allclose(dihedrals(x, [[0, 1, 2, 3]])[:, 0], phi, atol=1e-9)   # the prior's convention
    grid = np.linspace(-np.pi, np.pi, 2001)
    weights = np.exp(-series(grid, CHAIN_SERIES) / kt_kj_per_mol(TEMPERATURE_K))
    assert abs(np.cos(phi).mean() - np.sum(np.cos(grid) * weights) / weights.sum()) < 0.05


def _chain_metadata(frame_interval_ps: float) -> dict:
    return {"n_beads": 4, "bead_names": ["A", "B", "C", "D"], "bead_types": [0, 0, 0, 0], "type_names": ["A"],
            "masses_amu": [12.0] * 4, "temperature_k": TEMPERATURE_K, "integrator": "langevin",
            "friction_per_ps": 10.0, "timestep_ps": 0.002, "cutoff_nm": None, "periodic": False,
            "bonds": [[0, 1], [1, 2], [2, 3]], "frame_interval_ps": frame_interval_ps}


@pytest.mark.integration
def test_one_step_sampled_in_openmm_recovers_the_dihedral_energy_of_the_data(rng):
    """A prior Boltzmann-inverted without dihedral terms has a flat dihedral marginal (the chain's internal
    coordinates are independent), so one step must add the data's dihedral energy V: kT ln(1 / exp(-V/kT)) = V."""
    data = chain_data(20000, rng)[0]
    meta = _chain_metadata(0.5)
    prior = fit_prior(data, meta["bonds"], TEMPERATURE_K, dihedrals="none", correction_dihedrals=[[0, 1, 2, 3]])
    net = build_net({"kind": "none", "n_beads": 4, "bonds": meta["bonds"]})
    potential = CGPotential(prior, net, dtype="float64")
    dynamics = DynamicsParameters("langevin", 10.0, meta["bead_types"], learnable=False)
    sampler = build_sampler("local", meta, 64)
    reports = correct(potential, dynamics, sampler, data, TEMPERATURE_K, steps=1, n_samples=150, steps_between=250,
                      burn_in_steps=1000, seed=3, progress=False)
    cos, sin = potential.prior.correction_cos.numpy()[0], potential.prior.correction_sin.numpy()[0]
    np.testing.assert_allclose(cos, CHAIN_SERIES[1::2], atol=0.3)
    np.testing.assert_allclose(sin, CHAIN_SERIES[2::2], atol=0.3)
    assert reports[0]["samples"] == 150 * 64 and reports[0]["blowups"] == 0
    assert reports[0]["profile_rms_before_kj_per_mol"][0] > 1.0      # a flat profile against V (RMS ~1.6 kJ/mol)


def _chain_truth():
    """The chain's energy as a prior: ``k_n (1 + cos(n phi - phi0_n))`` with ``k = (2, 1)``, ``phi0 = (0, pi/2)`` is
    ``2 cos(phi) + 1 sin(2 phi)`` plus a constant."""
    from openmm_dynmatch.models.prior import PriorPotential

    return PriorPotential(4, [[0, 1], [1, 2], [2, 3]], bond_r0_nm=CHAIN["r0"], bond_k=CHAIN["k_bond"],
                          angle_theta0_rad=CHAIN["theta0"], angle_k=CHAIN["k_angle"], dihedral_k=[[2.0, 1.0]],
                          dihedral_phi0_rad=[[0.0, math.pi / 2]])


def _write_chain_data(path, frames: np.ndarray) -> None:
    import mdtraj

    x = torch.as_tensor(frames, dtype=torch.float64).requires_grad_(True)
    forces = -torch.autograd.grad(_chain_truth()(x).sum(), x)[0].numpy()
    top = mdtraj.Topology()
    residue = top.add_residue("CHN", top.add_chain())
    atoms = [top.add_atom(name, mdtraj.element.carbon, residue) for name in "ABCD"]
    for a, b in zip(atoms[:-1], atoms[1:]):
        top.add_bond(a, b)
    meta = {key: value for key, value in _chain_metadata(0.5).items()
            if key in ("temperature_k", "frame_interval_ps", "masses_amu", "bead_names", "bead_types", "type_names",
                       "bonds")}
    meta.update(forces_mapped=True, timestep_ps=0.5)
    with trajio.TrajectoryWriter(path, top, meta) as writer:
        writer.write(frames, np.arange(len(frames)) * 0.5, forces=forces)


@pytest.mark.integration
def test_training_run_corrects_saves_resumes_after_an_interruption_and_exports(tmp_path, rng, monkeypatch):
    import openmm

    import openmm_dynmatch.correction as correction
    from openmm_dynmatch.openmm.cg_walkers import create_system

    data_path = tmp_path / "chain.h5"
    _write_chain_data(data_path, chain_data(2000, rng)[0])
    config = {"data": {"cg_path": str(data_path), "window_frames": 3, "n_blocks": 4},
              "potential": {"kind": "none", "dtype": "float64", "prior_trainable": True, "prior_dihedrals": "none"},
              "dynamics": {"timestep_ps": 0.002, "friction_per_ps": 10.0},
              "train": {"objective": "force_matching", "iterations": 5, "probe_windows": 0,
                        "correction_dihedrals": ["0-1-2-3"], "correction_steps": 2, "correction_order": 1,
                        "correction_walkers": 16, "correction_ps": 20.0, "correction_burn_in_ps": 1.0}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    config = load_config(tmp_path / "config.yaml")
    run_dir = tmp_path / "run"
    real_sample = correction.sample_model
    calls = []

    def interrupted_after_one_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("stopped during the second correction step")
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(correction, "sample_model", interrupted_after_one_step)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, run_dir, progress=False)
    first = json.loads((run_dir / "dihedral_correction.json").read_text())["steps"]
    assert len(first) == 1 and not (run_dir / "potential.pt").exists()
    calls.clear()
    summary = run_training(config, run_dir, resume=True, progress=False)
    assert len(calls) == 1                                   # the first step was applied again, not sampled again
    steps = json.loads((run_dir / "dihedral_correction.json").read_text())["steps"]
    assert steps[0] == first[0] and len(steps) == 2 and summary["dihedral_correction"]["steps"] == 2
    potential = load_potential(run_dir / "potential.pt")[0]
    np.testing.assert_allclose(potential.prior.correction_cos.numpy(), np.add(steps[0]["cos"], steps[1]["cos"]),
                               rtol=1e-12)
    np.testing.assert_allclose(potential.prior.correction_sin.numpy(), np.add(steps[0]["sin"], steps[1]["sin"]),
                               rtol=1e-12)
    # the prior has no dihedral terms, so the corrections carry the data's dihedral energy, 2 cos phi at order 1
    # (sign and size only: 16 walkers of 20 ps; the recovery itself is tested above)
    assert 0.5 < potential.prior.correction_cos.numpy()[0, 0] < 3.5
    cg = create_system(summary["model"], 3, platform="Reference")
    x = chain_data(3, rng)[0]
    cg.context.setPositions(x.reshape(-1, 3))
    energy = cg.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    np.testing.assert_allclose(energy, float(potential(torch.as_tensor(x)).sum().detach()), rtol=1e-6)
