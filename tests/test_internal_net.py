"""The internal-coordinate network ``internal_mlp``: features, symmetries, forces, scales, files, OpenMM export."""
import numpy as np
import pytest
import torch

from conftest import available_platforms, tolerance
from toys import central_difference_forces
from openmm_dynmatch.models import build_potential, forces, load_potential, save_potential
from openmm_dynmatch.models.internal import InternalMLP

# A branched 6-bead molecule: bead 1 has three neighbours, so angles share a centre and dihedrals share a bond.
N_BEADS = 6
BONDS = [[0, 1], [1, 2], [2, 3], [3, 4], [1, 5]]
PLATFORMS = [p for p in ("Reference", "CPU") if p in available_platforms()]


def _net(dtype=torch.float64, **kwargs) -> InternalMLP:
    net = InternalMLP(N_BEADS, bonds=BONDS, hidden=16, **kwargs).to(dtype)
    with torch.no_grad():  # random, not-small weights so that every feature matters
        for param in net.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return net


def _positions(rng, n_walkers=3) -> torch.Tensor:
    """Random-walk configurations of the molecule, shape (n_walkers, N_BEADS, 3), nm, float64."""
    x = np.zeros((n_walkers, N_BEADS, 3))
    for i, j in BONDS:  # every bond's second bead hangs off its first (BONDS is a tree in this order)
        x[:, j] = x[:, i] + rng.normal(scale=0.22, size=(n_walkers, 3))
    return torch.as_tensor(x)


def _rotation(rng) -> torch.Tensor:
    """Random proper rotation matrix (det +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return torch.as_tensor(q * np.linalg.det(q))


def _features_numpy(x: np.ndarray) -> np.ndarray:
    """The feature vector written out again: 1/r of pairs, cos of angles, cos and sin of IUPAC dihedrals."""
    from openmm_dynmatch.models.graph import angle_triplets, dihedral_quadruplets

    i, j = np.triu_indices(N_BEADS, k=1)
    inverse_r = 1.0 / np.linalg.norm(x[:, j] - x[:, i], axis=-1)
    cosines = []
    for a, b, c in angle_triplets(N_BEADS, BONDS):
        u, v = x[:, a] - x[:, b], x[:, c] - x[:, b]
        cosines.append(np.einsum("wk,wk->w", u, v) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1))
    phis = []
    for a, b, c, d in dihedral_quadruplets(N_BEADS, BONDS):
        b1, b2, b3 = x[:, b] - x[:, a], x[:, c] - x[:, b], x[:, d] - x[:, c]
        m1, m2 = np.cross(b1, b2), np.cross(b2, b3)
        y = np.linalg.norm(b2, axis=-1) * np.einsum("wk,wk->w", b1, m2)
        phis.append(np.arctan2(y, np.einsum("wk,wk->w", m1, m2)))
    phis = np.stack(phis, axis=1)
    return np.concatenate([inverse_r, np.stack(cosines, axis=1), np.cos(phis), np.sin(phis)], axis=1)


def test_features_equal_the_formulas_written_out_again(rng):
    net = InternalMLP(N_BEADS, bonds=BONDS)
    x = _positions(rng, n_walkers=5)
    # 15 pairs; 5 angles (3 about bead 1, 1 each about beads 2 and 3); 3 dihedrals (2 about bond 1-2, 1 about 2-3)
    assert net.n_features == 15 + 5 + 2 * 3
    np.testing.assert_allclose(net.features(x).numpy(), _features_numpy(x.numpy()), rtol=1e-10, atol=1e-12)
    distance_net = InternalMLP(N_BEADS, bonds=BONDS, pair_feature="distance")
    np.testing.assert_allclose(distance_net.features(x)[:, :15].numpy(), 1.0 / _features_numpy(x.numpy())[:, :15],
                               rtol=1e-10)


def test_forces_equal_central_finite_differences(rng):
    net = _net()
    net.fit_scales(_positions(rng, n_walkers=50))
    x = _positions(rng, n_walkers=2)
    _, f = forces(net, x)
    numeric = central_difference_forces(net, x)
    assert f.abs().max() > 1.0  # the forces are not trivially zero
    torch.testing.assert_close(f, numeric, rtol=1e-6, atol=1e-5)


def test_energy_invariant_under_proper_rotations_and_translations(rng):
    net = _net()
    x = _positions(rng, n_walkers=4)
    for _ in range(3):
        moved = x @ _rotation(rng).T + torch.as_tensor(rng.normal(size=3))
        torch.testing.assert_close(net(moved), net(x), rtol=1e-9, atol=1e-9)


def test_mirror_image_has_a_different_energy_through_the_dihedral_sines(rng):
    """U(-x) != U(x) for a generic net; sin phi flips sign, the other features do not."""
    net = _net()
    x = _positions(rng, n_walkers=4)
    n_sin = len(net.dihedrals)
    feats, mirrored = net.features(x), net.features(-x)
    torch.testing.assert_close(mirrored[:, :-n_sin], feats[:, :-n_sin], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mirrored[:, -n_sin:], -feats[:, -n_sin:], rtol=1e-12, atol=1e-12)
    assert (net(-x) - net(x)).abs().min() > 1e-3
    # control: without the weights on the sines the net cannot tell a molecule from its mirror image
    with torch.no_grad():
        net.mlp[0].weight[:, -n_sin:] = 0.0
    torch.testing.assert_close(net(-x), net(x), rtol=1e-12, atol=1e-12)


def test_fit_scales_standardises_the_fitting_data(rng):
    net = _net()
    assert torch.equal(net.feature_mean, torch.zeros(net.n_features, dtype=torch.float64))
    assert torch.equal(net.feature_std, torch.ones(net.n_features, dtype=torch.float64))
    frames = _positions(rng, n_walkers=300).numpy()
    net.fit_scales(frames, chunk_frames=64)  # several chunks, the last one partial
    z = ((net.features(torch.as_tensor(frames)) - net.feature_mean) / net.feature_std).numpy()
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-10)
    # rigid copies of one configuration: every feature is constant, its spread is floored at min_std
    one = frames[:1] @ np.stack([_rotation(rng).numpy() for _ in range(10)]) + rng.normal(size=(10, 1, 3))
    net.fit_scales(torch.as_tensor(one), min_std=1e-3)
    np.testing.assert_allclose(net.feature_mean.numpy(), _features_numpy(frames[:1])[0], rtol=1e-10)
    np.testing.assert_allclose(net.feature_std.numpy(), 1e-3)


def test_float32_model_agrees_with_float64(rng):
    net = _net()
    net.fit_scales(_positions(rng, n_walkers=50))
    single = InternalMLP(N_BEADS, bonds=BONDS, hidden=16).float()
    single.load_state_dict(net.state_dict())  # load_state_dict casts to the float32 buffers and parameters
    x = _positions(rng, n_walkers=4)
    assert single(x).dtype == torch.float32
    torch.testing.assert_close(single(x).double(), net(x), **tolerance(torch.float32))
    torch.testing.assert_close(forces(single, x.float())[1].double(), forces(net, x)[1], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_spec_round_trip_restores_the_fitted_scales(rng, tmp_path, dtype):
    spec = {"n_beads": N_BEADS, "bonds": BONDS, "dtype": dtype,
            "net": {"kind": "internal_mlp", "hidden": 16, "n_layers": 3, "activation": "tanh"}}
    potential = build_potential(spec)
    potential.net.fit_scales(_positions(rng, n_walkers=80))
    save_potential(tmp_path / "potential.pt", potential)
    loaded, _ = load_potential(tmp_path / "potential.pt")
    assert loaded.spec == potential.spec and loaded.spec["net"]["kind"] == "internal_mlp"
    assert not torch.equal(loaded.net.feature_std, torch.ones_like(loaded.net.feature_std))
    torch.testing.assert_close(loaded.net.feature_std, potential.net.feature_std, rtol=0, atol=0)
    x = _positions(rng)
    torch.testing.assert_close(loaded(x), potential(x), rtol=0, atol=0)
    scripted = torch.jit.script(loaded)
    torch.testing.assert_close(scripted(x), potential(x), **tolerance(getattr(torch, dtype)))


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exported_model_in_openmm_gives_the_models_energy_and_forces(rng, tmp_path, platform, dtype):
    import openmm

    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.cg_walkers import create_system
    from test_export import chain_metadata

    potential = build_potential({"n_beads": N_BEADS, "bonds": BONDS, "dtype": dtype,
                                 "prior": {"bond_r0_nm": 0.22, "bond_k": 500.0},
                                 "net": {"kind": "internal_mlp", "hidden": 16}})
    potential.net.fit_scales(_positions(rng, n_walkers=80))
    with torch.no_grad():
        for param in potential.net.parameters():
            param.add_(0.3 * torch.randn_like(param))
    out = export(potential, tmp_path / "model.pt", chain_metadata(N_BEADS, bonds=BONDS))
    n_walkers = 4
    walkers = _positions(rng, n_walkers=n_walkers)
    positions = walkers.clone().requires_grad_(True)
    energy = potential(positions).sum()
    (grad,) = torch.autograd.grad(energy, positions)
    cg = create_system(out, n_walkers, platform=platform)
    cg.context.setPositions(walkers.numpy().reshape(-1, 3))
    state = cg.context.getState(getEnergy=True, getForces=True)
    single = dtype == "float32" or platform != "Reference"
    tol = tolerance(torch.float32 if single else torch.float64)
    np.testing.assert_allclose(state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole),
                               energy.item(), **tol)
    f = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    assert np.abs(f).max() > 1.0
    np.testing.assert_allclose(f.reshape(walkers.shape), -grad.numpy(), rtol=tol["rtol"], atol=10 * tol["atol"])


def test_config_kind_internal_mlp_builds_through_the_run_and_fits_scales(rng):
    from openmm_dynmatch.config import load_config
    from openmm_dynmatch.runs import TrainingData, build_potential_from_config

    frames = _positions(rng, n_walkers=400).numpy()
    meta = {"bonds": BONDS, "bead_types": [0, 1, 1, 1, 0, 2], "type_names": ["A", "B", "C"], "temperature_k": 300.0}
    data = TrainingData(frames=frames, forces=None, windows=None, validation=None, metadata=meta, steps_per_frame=1)
    config = load_config(overrides=["potential.kind=internal_mlp", "potential.dtype=float64"])
    config.potential.net = {"hidden": 8}
    potential = build_potential_from_config(config, data)
    assert isinstance(potential.net, InternalMLP) and potential.net.spec["hidden"] == 8
    feats = _features_numpy(frames)
    np.testing.assert_allclose(potential.net.feature_mean.numpy(), feats.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(potential.net.feature_std.numpy(), feats.std(axis=0), rtol=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_beads": 1}, "n_beads: internal_mlp needs at least 2 beads"),
    ({"pair_feature": "log"}, "pair_feature: expected one of ['inverse', 'distance'], got 'log'"),
    ({"activation": "relu"}, "unknown activation 'relu'"),
    ({"n_layers": 0}, "hidden and n_layers must be >= 1"),
])
def test_bad_arguments_are_rejected(kwargs, message):
    args = {"n_beads": N_BEADS, "bonds": BONDS if kwargs.get("n_beads", N_BEADS) == N_BEADS else None, **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        InternalMLP(**args)


def test_fit_scales_rejects_wrong_shapes_and_non_finite_frames(rng):
    net = InternalMLP(N_BEADS, bonds=BONDS)
    with pytest.raises(ValueError, match=r"positions: expected shape \(n_frames >= 2, 6, 3\), got \(5, 4, 3\)"):
        net.fit_scales(np.zeros((5, 4, 3)))
    with pytest.raises(ValueError, match=r"got \(1, 6, 3\)"):
        net.fit_scales(np.zeros((1, N_BEADS, 3)))
    frames = _positions(rng, n_walkers=5).numpy()
    frames[2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="expected finite coordinates"):
        net.fit_scales(frames)
