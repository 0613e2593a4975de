"""CG potentials: symmetries, forces, batching, TorchScript, second derivatives, save/load."""
import numpy as np
import pytest
import torch

from conftest import tolerance
from toys import central_difference_forces
from openmm_dynmatch.models import build_potential, fit_prior, forces, load_potential, save_potential

N_BEADS = 5
BONDS = [[i, i + 1] for i in range(N_BEADS - 1)]
TYPES = [0, 1, 1, 2, 0]
NETS = {
    "pair_mlp": {"kind": "pair_mlp", "hidden": 16, "n_basis": 8},
    "schnet": {"kind": "schnet", "hidden": 8, "n_basis": 8},
    "equivariant": {"kind": "equivariant", "mul": 4, "n_layers": 2, "radial_hidden": 8, "n_basis": 6},
}
# a weight on the distance-dependent path of each network
PROBE_PARAMETER = {"pair_mlp": "net.first.weight", "schnet": "net.filters.0.0.weight",
                   "equivariant": "net.blocks.0.radial.0.weight"}
PRIOR = {"bond_r0_nm": 0.38, "bond_k": 300.0, "angle_theta0_rad": 2.0, "angle_k": 20.0,
         "dihedral_k": [0.5, 0.3], "dihedral_phi0_rad": [0.2, -1.0], "repulsion_sigma_nm": 0.3,
         "repulsion_exclude_bonds": 2}


def _potential(kind, prior=True, dtype="float64", bead_types=TYPES):
    spec = {"n_beads": N_BEADS, "bonds": BONDS, "dtype": dtype, "bead_types": bead_types,
            "prior": PRIOR if prior else None, "net": NETS[kind]}
    potential = build_potential(spec)
    with torch.no_grad():  # random, not-small weights so that every term matters
        for param in potential.net.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return potential


def _positions(rng, n_walkers=3):
    chain = np.cumsum(rng.normal(scale=0.25, size=(n_walkers, N_BEADS, 3)), axis=1)
    return torch.as_tensor(chain)


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return torch.as_tensor(q * np.linalg.det(q))


@pytest.mark.parametrize("kind", sorted(NETS))
def test_energy_invariant_under_rotation_and_translation(kind, rng):
    potential = _potential(kind)
    x = _positions(rng)
    moved = x @ _rotation(rng).T + torch.as_tensor(rng.normal(size=3))
    torch.testing.assert_close(potential(moved), potential(x), rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_net_consistent_under_bead_relabelling(kind, rng):
    """Relabelling beads together with their types leaves the network energy unchanged."""
    perm = np.array([3, 0, 4, 1, 2])
    net = _potential(kind, prior=False).net
    permuted = _potential(kind, prior=False, bead_types=[TYPES[p] for p in perm]).net
    permuted.load_state_dict(dict(net.named_parameters()), strict=False)
    x = _positions(rng)
    torch.testing.assert_close(permuted(x[:, perm]), net(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_forces_equal_central_finite_differences(kind, rng):
    potential = _potential(kind)
    x = _positions(rng, n_walkers=2)
    _, f = forces(potential, x)
    numeric = central_difference_forces(potential, x)
    torch.testing.assert_close(f, numeric, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_batched_equals_per_walker_and_scripted_equals_eager(kind, rng):
    potential = _potential(kind)
    x = _positions(rng, n_walkers=4)
    energies, f = forces(potential, x)
    for w in range(4):
        e_w, f_w = forces(potential, x[w:w + 1])
        torch.testing.assert_close(e_w, energies[w:w + 1], **tolerance(torch.float64))
        torch.testing.assert_close(f_w, f[w:w + 1], **tolerance(torch.float64))
    scripted = torch.jit.script(potential)
    e_s, f_s = forces(scripted, x)
    torch.testing.assert_close(e_s, energies, **tolerance(torch.float64))
    torch.testing.assert_close(f_s, f, **tolerance(torch.float64))
    # float32 input is cast to the model dtype on entry
    torch.testing.assert_close(scripted(x.float()), potential(x.float()), **tolerance(torch.float64))


@pytest.mark.parametrize("kind", sorted(NETS))
def test_force_derivative_wrt_parameter_equals_finite_difference(kind, rng):
    """d/d(theta) of a projection of the forces, by double backward, vs central differences in theta."""
    potential = torch.jit.script(_potential(kind))
    x = _positions(rng, n_walkers=2)
    direction = torch.as_tensor(rng.normal(size=x.shape))
    name = PROBE_PARAMETER[kind]
    param = dict(potential.named_parameters())[name]
    _, f = forces(potential, x, create_graph=True)
    (grad,) = torch.autograd.grad((f * direction).sum(), param)
    index = (1, 2)
    h = 1e-6
    with torch.no_grad():
        param[index] += h
    f_plus = (forces(potential, x)[1] * direction).sum()
    with torch.no_grad():
        param[index] -= 2 * h
    f_minus = (forces(potential, x)[1] * direction).sum()
    with torch.no_grad():
        param[index] += h
    numeric = (f_plus - f_minus) / (2 * h)
    assert grad[index].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-6), name


@pytest.mark.parametrize("kind", sorted(NETS))
def test_save_load_round_trip_gives_identical_outputs(kind, rng, tmp_path):
    positions = _positions(rng, n_walkers=200).numpy()
    prior = fit_prior(positions, BONDS, 300.0, trainable=True, repulsion_exclude_bonds=2)
    spec = {"n_beads": N_BEADS, "bonds": BONDS, "dtype": "float64", "bead_types": TYPES,
            "prior": {k: v for k, v in prior.spec.items() if k not in ("n_beads", "dtype")}, "net": NETS[kind]}
    potential = build_potential(spec)
    with torch.no_grad():
        for param in potential.parameters():
            param.add_(0.1 * torch.randn_like(param))  # trained values differ from those in the spec
    save_potential(tmp_path / "potential.pt", potential, {"temperature_k": 300.0})
    loaded, metadata = load_potential(tmp_path / "potential.pt")
    x = _positions(rng)
    assert metadata == {"temperature_k": 300.0}
    assert loaded.spec == potential.spec
    torch.testing.assert_close(loaded(x), potential(x), rtol=0, atol=0)


def test_pair_terms_vanish_beyond_the_cutoff():
    potential = build_potential({"n_beads": 2, "dtype": "float64",
                                 "net": {"kind": "pair_mlp", "cutoff_nm": 0.8}})
    x = torch.zeros(2, 2, 3, dtype=torch.float64)
    x[0, 1, 0], x[1, 1, 0] = 0.81, 3.0
    energies, f = forces(potential, x)
    assert energies.abs().max().item() == 0.0 and f.abs().max().item() == 0.0


def test_invalid_specs_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown net kind 'gnn'"):
        build_potential({"n_beads": 3, "net": {"kind": "gnn"}})
    with pytest.raises(ValueError, match="unknown keys"):
        build_potential({"n_beads": 3, "net": {"kind": "pair_mlp", "width": 3}})
    with pytest.raises(ValueError, match="unknown keys"):
        build_potential({"n_beads": 3, "size": 1})
    with pytest.raises(ValueError, match="bead_types"):
        build_potential({"n_beads": 3, "bead_types": [0, 1]})
    potential = build_potential({"n_beads": 3})
    with pytest.raises(ValueError, match="positions"):
        potential(torch.zeros(2, 4, 3))
