"""The ``ensemble`` network kind: the mean energy of its members, its spec refusals, and force matching that fits
each member on its own (the general net contract, forces and OpenMM export included, runs over it in
test_net_contract.py)."""
import copy

import numpy as np
import pytest
import torch

from dimer_toy import boltzmann_dimers, dimer_forces
from openmm_dynmatch.baselines import fitted_parts, train_force_matching
from openmm_dynmatch.estimators import force_matching_loss
from openmm_dynmatch.models.ensemble import EnsembleNet
from openmm_dynmatch.models.potential import CGPotential, build_potential, forces, load_potential, save_potential

K, R0 = 500.0, 0.3


def _ensemble_potential(size=3, n_beads=4, bonds=((0, 1), (1, 2), (2, 3))):
    spec = {"n_beads": n_beads, "bonds": [list(b) for b in bonds], "dtype": "float64",
            "net": {"kind": "ensemble", "member": {"kind": "internal_mlp", "hidden": 8}, "size": size}}
    return build_potential(spec)


def test_energy_and_forces_are_the_mean_of_the_members(rng):
    torch.manual_seed(0)
    potential = _ensemble_potential()
    x = torch.as_tensor(np.cumsum(rng.normal(scale=0.2, size=(6, 4, 3)), axis=1))
    energy, force = forces(potential, x)
    single = [CGPotential(potential.prior, member, dtype="float64") for member in potential.net.members]
    parts = [forces(p, x) for p in single]
    np.testing.assert_allclose(energy.detach(), sum(e for e, _ in parts).detach() / 3, rtol=1e-12)
    # the prior counts once: the mean over members of (prior + member) is prior + mean of members
    np.testing.assert_allclose(force.detach(), sum(f for _, f in parts).detach() / 3, rtol=1e-10, atol=1e-10)
    assert len({float(m(x)[0].detach()) for m in potential.net.members}) == 3  # members start apart


def test_saved_and_loaded_ensemble_gives_the_same_energies(tmp_path, rng):
    potential = _ensemble_potential(size=2)
    save_potential(tmp_path / "p.pt", potential)
    loaded, _ = load_potential(tmp_path / "p.pt")
    x = torch.as_tensor(rng.normal(scale=0.3, size=(5, 4, 3)))
    assert loaded.spec == potential.spec and loaded.spec["net"]["size"] == 2
    np.testing.assert_allclose(loaded(x).detach(), potential(x).detach(), rtol=1e-14)


@pytest.mark.parametrize("member, chiral", [("internal_mlp", True), ("pair_mlp", False)])
def test_an_ensemble_is_chiral_as_its_member(rng, member, chiral):
    """Mirror images (x -> -x) get different energies from an ensemble of chirality-aware members and the same
    energy from one of pair-distance members (docs/models.md, "Chirality"); the prior's dihedrals are not
    fitted here (zero), so only the network can tell them apart."""
    torch.manual_seed(1)
    spec = {"n_beads": 5, "bonds": [[0, 1], [1, 2], [2, 3], [3, 4]], "dtype": "float64",
            "net": {"kind": "ensemble", "member": {"kind": member, "hidden": 8}, "size": 2}}
    potential = build_potential(spec)
    x = torch.as_tensor(np.cumsum(rng.normal(scale=0.2, size=(4, 5, 3)), axis=1))
    gap = (potential(-x) - potential(x)).abs().detach()
    if chiral:
        assert gap.min() > 1e-9 * (1.0 + potential(x).abs().max().item())
    else:
        np.testing.assert_allclose(gap, 0.0, atol=1e-10)


@pytest.mark.parametrize("kwargs, message", [({"size": 0}, "size"), ({"size": True}, "size"),
                                             ({"member": {"kind": "internal_mlp", "n_beads": 4}}, "n_beads"),
                                             ({"member": {"kind": "ensemble"}}, "member of an ensemble")])
def test_bad_ensemble_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EnsembleNet(4, bonds=[[0, 1], [1, 2], [2, 3]], **kwargs)


def test_force_matching_fits_every_member_on_its_own(rng):
    """Written out again: every member, with the prior, fitted by its own Adam on its own minibatches (drawn in
    member order from the loop's generator) ends where the ensemble's members end."""
    frames = boltzmann_dimers(K, R0, 300, rng)
    forces_ = dimer_forces(frames, K, R0)
    torch.manual_seed(3)
    potential = _ensemble_potential(size=2, n_beads=2, bonds=((0, 1),))
    potential.net.fit_scales(torch.as_tensor(frames))
    start, initial = copy.deepcopy(potential), copy.deepcopy(potential)
    assert len(fitted_parts(potential)) == 2 and fitted_parts(start.prior) == [start.prior]
    n, lr, batch, seed = 25, 0.01, 32, 5
    train_force_matching(potential, frames, forces_, iterations=n, lr=lr, batch_size=batch, seed=seed,
                         progress=False)
    alone = [CGPotential(start.prior, member, dtype="float64") for member in start.net.members]
    adams = [torch.optim.Adam([p for p in a.parameters() if p.requires_grad], lr=lr) for a in alone]
    draw = np.random.default_rng([seed, 101])
    x, f = torch.as_tensor(frames), torch.as_tensor(forces_)
    for _ in range(n):
        for model, adam in zip(alone, adams):
            pick = torch.as_tensor(draw.integers(0, len(frames), size=batch))
            adam.zero_grad()
            force_matching_loss(model, x[pick], f[pick]).backward()
            adam.step()
    for fitted, by_hand, first in zip(potential.net.members, start.net.members, initial.net.members):
        for a, b, c in zip(fitted.parameters(), by_hand.parameters(), first.parameters()):
            np.testing.assert_allclose(a.detach(), b.detach(), rtol=1e-5, atol=1e-8)
        assert max(float((a - c).detach().abs().max()) for a, c in zip(fitted.parameters(), first.parameters())) > 1e-3
