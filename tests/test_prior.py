"""Prior terms against their formulas written out again, forces, numerical safety, Boltzmann inversion."""
import math

import numpy as np
import pytest
import torch

from conftest import tolerance
from toys import central_difference_forces
from openmm_dynmatch.models import PriorPotential, fit_prior, forces
from openmm_dynmatch.models.graph import angle_triplets, dihedral_quadruplets, graph_distances, pair_index
from openmm_dynmatch.units import kt_kj_per_mol

# A branched 6-bead graph: 0-1-2-3-4 with 5 on bead 2.
BONDS = [[0, 1], [1, 2], [2, 3], [3, 4], [2, 5]]


def _np_angle(a, b, c):
    u, v = a - b, c - b
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _np_dihedral(p0, p1, p2, p3):
    """Dihedral from the projections of the outer bonds on the plane normal to the central bond."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    axis = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * axis, -1, keepdims=True) * axis
    w = b2 - np.sum(b2 * axis, -1, keepdims=True) * axis
    return np.arctan2(np.sum(np.cross(axis, v) * w, -1), np.sum(v * w, -1))


@pytest.fixture
def prior_and_params(rng):
    n_ang, n_dih = len(angle_triplets(6, BONDS)), len(dihedral_quadruplets(6, BONDS))
    params = dict(bond_r0_nm=rng.uniform(0.3, 0.4, 5), bond_k=rng.uniform(500, 1500, 5),
                  angle_theta0_rad=rng.uniform(1.5, 2.5, n_ang), angle_k=rng.uniform(20, 80, n_ang),
                  dihedral_k=rng.uniform(0.5, 3.0, (n_dih, 3)), dihedral_phi0_rad=rng.uniform(-3, 3, (n_dih, 3)),
                  repulsion_sigma_nm=0.4, repulsion_epsilon=1.7, repulsion_power=6.0, repulsion_exclude_bonds=2)
    return PriorPotential(6, BONDS, **params), params


def test_graph_terms_of_branched_molecule():
    assert angle_triplets(6, BONDS).tolist() == [[0, 1, 2], [1, 2, 3], [1, 2, 5], [3, 2, 5], [2, 3, 4]]
    assert dihedral_quadruplets(6, BONDS).tolist() == [[0, 1, 2, 3], [0, 1, 2, 5], [1, 2, 3, 4], [5, 2, 3, 4]]
    assert graph_distances(6, BONDS)[0].tolist() == [0, 1, 2, 3, 4, 3]
    assert pair_index(6, BONDS, min_separation=3).T.tolist() == [[0, 3], [0, 4], [0, 5], [1, 4], [4, 5]]


def test_each_term_equals_its_formula(prior_and_params, rng):
    prior, p = prior_and_params
    x = rng.normal(scale=0.4, size=(3, 6, 3))
    terms = prior.energy_terms(torch.as_tensor(x))
    bonds = np.array(BONDS)
    r = np.linalg.norm(x[:, bonds[:, 1]] - x[:, bonds[:, 0]], axis=-1)
    expected_bonds = (0.5 * p["bond_k"] * (r - p["bond_r0_nm"]) ** 2).sum(-1)
    tri = angle_triplets(6, BONDS)
    theta = _np_angle(x[:, tri[:, 0]], x[:, tri[:, 1]], x[:, tri[:, 2]])
    expected_angles = (0.5 * p["angle_k"] * (theta - p["angle_theta0_rad"]) ** 2).sum(-1)
    quad = dihedral_quadruplets(6, BONDS)
    phi = _np_dihedral(*(x[:, quad[:, m]] for m in range(4)))
    expected_dih = np.zeros(3)
    for n in range(1, 4):
        k, phi0 = p["dihedral_k"][:, n - 1], p["dihedral_phi0_rad"][:, n - 1]
        expected_dih += (k * (1 + np.cos(n * phi - phi0))).sum(-1)
    pairs = [(0, 3), (0, 4), (0, 5), (1, 4), (4, 5)]
    expected_rep = sum(1.7 * (0.4 / np.linalg.norm(x[:, i] - x[:, j], axis=-1)) ** 6 for i, j in pairs)
    tol = tolerance(torch.float64)
    for name, expected in [("bonds", expected_bonds), ("angles", expected_angles), ("dihedrals", expected_dih),
                           ("repulsion", expected_rep)]:
        np.testing.assert_allclose(terms[name].numpy(), expected, **tol, err_msg=name)
    total = expected_bonds + expected_angles + expected_dih + expected_rep
    np.testing.assert_allclose(prior(torch.as_tensor(x)).detach().numpy(), total, **tol)


def test_dihedral_sign_convention():
    """A right-handed twist of +60 degrees about the central bond gives phi = +pi/3 (IUPAC)."""
    angle = np.pi / 3
    x = np.array([[[1.0, 0, 0], [0, 0, 0], [0, 0, 1], [np.cos(angle), np.sin(angle), 1]]]) * 0.3
    prior = PriorPotential(4, [[0, 1], [1, 2], [2, 3]], dihedral_k=[1.0], dihedral_phi0_rad=[np.pi / 3])
    # k (1 + cos(phi - phi0)) = 2k exactly at phi = phi0
    np.testing.assert_allclose(prior.energy_terms(torch.as_tensor(x))["dihedrals"].numpy(), [2.0], rtol=1e-12)


@pytest.mark.parametrize("trainable", [False, True])
def test_forces_equal_finite_differences(prior_and_params, rng, trainable):
    _, p = prior_and_params
    prior = PriorPotential(6, BONDS, trainable=trainable, **p)
    x = torch.as_tensor(rng.normal(scale=0.4, size=(2, 6, 3)))
    _, f = forces(prior, x)
    numeric = central_difference_forces(prior, x)
    torch.testing.assert_close(f, numeric, rtol=1e-6, atol=1e-5)
    assert len(list(prior.parameters())) == (6 if trainable else 0)


def test_degenerate_geometries_give_finite_energies_and_forces(prior_and_params):
    prior, _ = prior_and_params
    straight = torch.zeros(1, 6, 3, dtype=torch.float64)
    straight[0, :, 0] = torch.arange(6) * 0.35       # angles of exactly pi, collinear dihedrals
    folded = straight.clone()
    folded[0, 2] = folded[0, 0]                      # angle of exactly 0 at bead 1
    for x in (straight, folded):
        energy, f = forces(prior, x)
        assert torch.isfinite(energy).all() and torch.isfinite(f).all()
    scripted = torch.jit.script(prior)
    torch.testing.assert_close(scripted(straight), prior(straight), **tolerance(torch.float64))


def _sample_harmonic(rng, n, x0, k, kt, jacobian, low, high):
    """Rejection samples of density J(x) exp(-k (x - x0)^2 / 2kT) on [low, high]."""
    out = []
    bound = jacobian(np.linspace(low, high, 2001)).max()
    while sum(len(o) for o in out) < n:
        x = rng.normal(x0, np.sqrt(kt / k), size=4 * n)
        u = rng.uniform(0, bound, size=x.size)
        out.append(x[(x > low) & (x < high) & (u < jacobian(x))])
    return np.concatenate(out)[:n]


def _unit_vectors(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_boltzmann_inversion_recovers_harmonic_bond(rng):
    kt, k, r0 = kt_kj_per_mol(300.0), 2000.0, 0.3
    r = _sample_harmonic(rng, 40000, r0, k, kt, lambda x: x ** 2, 0.0, 1.0)
    positions = np.zeros((r.size, 2, 3))
    positions[:, 1] = r[:, None] * _unit_vectors(rng, r.size)
    prior = fit_prior(positions, [[0, 1]], 300.0)
    fitted = prior.fit_report["bonds"][0]
    assert fitted["r0_nm"] == pytest.approx(r0, abs=2e-3)
    assert fitted["k_kj_per_mol_nm2"] == pytest.approx(k, rel=0.05)
    # without the r^2 Jacobian the minimum would sit at the mean, 2 kT / (k r0) above r0
    assert r.mean() - r0 == pytest.approx(2 * kt / (k * r0), rel=0.2)
    np.testing.assert_allclose(prior.constants()["bond_k"].numpy(), [fitted["k_kj_per_mol_nm2"]])


def test_boltzmann_inversion_recovers_harmonic_angle(rng):
    kt, k, theta0 = kt_kj_per_mol(300.0), 60.0, 1.9
    theta = _sample_harmonic(rng, 40000, theta0, k, kt, np.sin, 0.0, np.pi)
    positions = np.zeros((theta.size, 3, 3))
    positions[:, 0] = [0.35, 0.0, 0.0]
    positions[:, 2, 0] = 0.35 * np.cos(theta)
    positions[:, 2, 1] = 0.35 * np.sin(theta)
    prior = fit_prior(positions, [[0, 1], [1, 2]], 300.0)
    fitted = prior.fit_report["angles"][0]
    assert fitted["beads"] == [0, 1, 2]
    assert fitted["theta0_rad"] == pytest.approx(theta0, abs=0.01)
    assert fitted["k_kj_per_mol_rad2"] == pytest.approx(k, rel=0.05)


def test_boltzmann_inversion_recovers_dihedral_series(rng):
    kt = kt_kj_per_mol(300.0)
    k_true, phi0_true = np.array([1.5, 0.0, 0.8]), np.array([0.7, 0.0, -1.2])

    def energy(phi):
        n = np.arange(1, 4)
        return (k_true * (1 + np.cos(np.outer(phi, n) - phi0_true))).sum(-1)

    phi = rng.uniform(-np.pi, np.pi, 400000)
    keep = rng.uniform(size=phi.size) < np.exp(-energy(phi) / kt)
    phi = phi[keep][:60000]
    positions = np.zeros((phi.size, 4, 3))
    positions[:, 0] = [0.3, 0.0, 0.0]
    positions[:, 2] = [0.0, 0.0, 0.3]
    positions[:, 3, 0] = 0.3 * np.cos(phi)
    positions[:, 3, 1] = 0.3 * np.sin(phi)
    positions[:, 3, 2] = 0.3
    prior = fit_prior(positions, [[0, 1], [1, 2], [2, 3]], 300.0, repulsion=False)
    fitted = prior.fit_report["dihedrals"][0]
    np.testing.assert_allclose(fitted["k_kj_per_mol"], k_true, atol=0.15)
    for n in (0, 2):
        assert np.cos(fitted["phi0_rad"][n] - phi0_true[n]) > np.cos(0.15)


def test_repulsion_sigma_is_low_percentile_of_nonbonded_distances(rng):
    positions = np.cumsum(rng.normal(scale=0.2, size=(500, 6, 3)), axis=1)
    prior = fit_prior(positions, [[i, i + 1] for i in range(5)], 300.0, repulsion_percentile=2.0)
    pairs = [(0, 4), (0, 5), (1, 5)]
    distances = np.concatenate([np.linalg.norm(positions[:, i] - positions[:, j], axis=-1) for i, j in pairs])
    assert prior.fit_report["repulsion"]["sigma_nm"] == pytest.approx(np.percentile(distances, 2.0))
    assert prior.repulsion_index.T.tolist() == [list(p) for p in pairs]


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="positions"):
        fit_prior(np.zeros((10, 3)), [[0, 1]], 300.0)
    with pytest.raises(ValueError, match="bonds"):
        PriorPotential(3, [[0, 3]])
    with pytest.raises(ValueError, match="bond_k"):
        PriorPotential(3, [[0, 1], [1, 2]], bond_k=[1.0, 2.0, 3.0])


ALA2_HEAVY_BONDS = [[0, 1], [1, 2], [1, 3], [3, 4], [4, 5], [4, 6], [6, 7], [6, 8], [8, 9]]


def test_one_dihedral_per_bond_keeps_the_backbone_torsions_of_alanine_dipeptide():
    from openmm_dynmatch.models.graph import dihedral_quadruplets, one_dihedral_per_bond

    every = dihedral_quadruplets(10, ALA2_HEAVY_BONDS).tolist()
    kept = one_dihedral_per_bond(10, ALA2_HEAVY_BONDS).tolist()
    # beads: 0 CH3, 1 C, 2 O, 3 N, 4 CA, 5 CB, 6 C, 7 O, 8 N, 9 CH3 -> phi = C-N-CA-C, psi = N-CA-C-N
    assert [1, 3, 4, 6] in kept and [3, 4, 6, 8] in kept
    central = sorted({(q[1], q[2]) for q in every})
    assert sorted((q[1], q[2]) for q in kept) == central     # exactly one per rotatable bond
    assert len(every) == 10 and len(kept) == 4


def test_prior_dihedral_modes_select_quadruplets(rng):
    positions = np.cumsum(rng.normal(scale=0.15, size=(400, 10, 3)), axis=1)
    counts = {}
    for mode in ("all", "one_per_bond", "none", True, False):
        prior = fit_prior(positions, ALA2_HEAVY_BONDS, 300.0, dihedrals=mode)
        counts[mode] = len(prior.dihedral_index)
        assert prior(torch.as_tensor(positions[:3])).shape == (3,)
    assert counts == {"all": 10, "one_per_bond": 4, "none": 0, True: 10, False: 0}
    with pytest.raises(ValueError, match="dihedrals"):
        fit_prior(positions, ALA2_HEAVY_BONDS, 300.0, dihedrals="some")



def test_trainable_constants_live_at_their_natural_scales(prior_and_params):
    """log k for force constants, thermal-spread units for equilibrium values: a unit step of any parameter
    changes its constant by a comparable relative amount, whatever its physical size."""
    _, p = prior_and_params
    kt = 2.494
    prior = PriorPotential(6, BONDS, trainable=True, scale_kt=kt, **p)
    constants = prior.constants()
    np.testing.assert_allclose(constants["bond_k"].detach().numpy(), np.broadcast_to(p["bond_k"], (len(BONDS),)))
    np.testing.assert_allclose(constants["bond_r0"].detach().numpy(),
                               np.broadcast_to(p["bond_r0_nm"], (len(BONDS),)))
    with torch.no_grad():
        prior.log_bond_k += 0.1
        prior.bond_r0_shift += 1.0
        prior.angle_theta0_shift -= 2.0
    moved = prior.constants()
    np.testing.assert_allclose(moved["bond_k"].detach().numpy() / constants["bond_k"].detach().numpy(),
                               math.exp(0.1))
    np.testing.assert_allclose((moved["bond_r0"] - constants["bond_r0"]).detach().numpy(),
                               np.sqrt(kt / constants["bond_k"].detach().numpy()))
    np.testing.assert_allclose((moved["angle_theta0"] - constants["angle_theta0"]).detach().numpy(),
                               -2.0 * np.sqrt(kt / constants["angle_k"].detach().numpy()))
    # the energy uses the moved constants
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    bonds = torch.tensor(BONDS)
    r = (x[:, bonds[:, 1]] - x[:, bonds[:, 0]]).norm(dim=-1)
    expected = 0.5 * moved["bond_k"].detach() * (r - moved["bond_r0"].detach()) ** 2
    torch.testing.assert_close(prior.bond_energy(x).detach(), expected)
