"""Tests of the trajectory-window classifier: invariances, time-reversal sensitivity, R1 penalty, overfit check."""
import math

import numpy as np
import pytest
import torch
from conftest import tolerance

from openmm_dynmatch.models.classifier import WindowClassifier, build_classifier, displacement_rms, r1_penalty

KT_KJ_PER_MOL = 0.00831446261815324 * 300.0

# A small architecture that trains in a couple of seconds on one core.
TINY = dict(embed_dim=4, hidden_scalars=8, hidden_vectors=4, n_layers=1, radial_hidden=8, n_basis=6,
            temporal_channels=16, temporal_layers=1, head_hidden=16)


def random_rotation(rng, proper=True):
    """Random orthogonal 3x3 matrix from a QR decomposition (det +1, or -1 when ``proper`` is False)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if not proper:
        q = -q
    return torch.tensor(q)


def random_windows(rng, batch=5, n_frames=4, n_beads=4, dtype=torch.float64):
    """Chain-like windows: beads ~0.3 nm apart, displacements ~0.03 nm per frame, shape (batch, n_frames, n_beads, 3)."""
    start = np.cumsum(0.3 * rng.normal(size=(batch, 1, n_beads, 3)) / math.sqrt(3), axis=2)
    steps = 0.03 * rng.normal(size=(batch, n_frames, n_beads, 3))
    steps[:, 0] = 0.0
    return torch.tensor(start + np.cumsum(steps, axis=1), dtype=dtype)


def simulate_chain(n_walkers, n_beads, n_frames, stride, dt_ps, diffusion_nm2_per_ps, seed, drive_kj_per_mol_nm=0.0,
                   k_kj_per_mol_nm2=500.0, r0_nm=0.3, burn_in_steps=300):
    """Euler-Maruyama Brownian dynamics of harmonic bead chains; returns windows (n_walkers, n_frames, n_beads, 3) nm.

    ``x <- x + D/kT F dt + sqrt(2 D dt) xi``, bonds ``k/2 (|r_{i+1} - r_i| - r0)^2``. With ``drive_kj_per_mol_nm``
    bead 0 is pulled by a constant force along a random direction per walker (a non-equilibrium steady state:
    the other beads trail behind it); without it the dynamics is reversible. Frames are every ``stride`` steps
    after ``burn_in_steps``.
    """
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n_walkers, 1, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    x = np.arange(n_beads)[None, :, None] * r0_nm * axis + 0.02 * rng.normal(size=(n_walkers, n_beads, 3))
    pull = rng.normal(size=(n_walkers, 3))
    pull *= drive_kj_per_mol_nm / np.linalg.norm(pull, axis=-1, keepdims=True)
    mobility_dt = diffusion_nm2_per_ps / KT_KJ_PER_MOL * dt_ps
    noise = math.sqrt(2.0 * diffusion_nm2_per_ps * dt_ps)
    frames = []
    for step in range(burn_in_steps + (n_frames - 1) * stride + 1):
        if step >= burn_in_steps and (step - burn_in_steps) % stride == 0:
            frames.append(x.copy())
        bond = x[:, 1:] - x[:, :-1]
        length = np.linalg.norm(bond, axis=-1, keepdims=True)
        f_bond = -k_kj_per_mol_nm2 * (length - r0_nm) * bond / length
        force = np.zeros_like(x)
        force[:, 1:] += f_bond
        force[:, :-1] -= f_bond
        force[:, 0] += pull
        x = x + mobility_dt * force + noise * rng.normal(size=x.shape)
    return torch.tensor(np.stack(frames, axis=1))


def train_classifier(clf, windows, labels, steps, lr=3e-3):
    """Full-batch Adam on the binary cross-entropy."""
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(clf(windows), labels.to(clf.dtype)).backward()
        opt.step()
    return clf


def accuracy(clf, windows, labels):
    with torch.no_grad():
        return float(((clf(windows) > 0).double() == labels.double()).double().mean())


def roc_auc(scores_pos, scores_neg):
    """Mann-Whitney ROC-AUC: P(score_pos > score_neg) + 0.5 P(tie), over all pairs."""
    pos = np.asarray(scores_pos)[:, None]
    neg = np.asarray(scores_neg)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


@pytest.mark.parametrize("options", [dict(), dict(cutoff_nm=0.6, lmax=2), dict(frame_only=True)])
def test_invariant_to_rotation_reflection_translation(rng, options):
    clf = WindowClassifier([0, 1, 1, 2], dtype="float64", chiral=False, **TINY, **options)
    windows = random_windows(rng)
    logits = clf(windows)
    for proper in (True, False):
        rot = random_rotation(rng, proper)
        shift = torch.tensor(rng.normal(size=3))
        torch.testing.assert_close(clf(windows @ rot.T + shift), logits, **tolerance(torch.float64))


def test_batch_order_and_independence(rng):
    clf = WindowClassifier([0, 1, 0], dtype="float64", **TINY)
    windows = random_windows(rng, batch=7, n_beads=3)
    logits = clf(windows)
    perm = torch.tensor(rng.permutation(7))
    torch.testing.assert_close(clf(windows[perm]), logits[perm], **tolerance(torch.float64))
    one_by_one = torch.stack([clf(windows[i:i + 1])[0] for i in range(7)])
    torch.testing.assert_close(one_by_one, logits, **tolerance(torch.float64))


def test_bead_relabelling(rng):
    types = [0, 1, 2, 1, 0]
    clf = WindowClassifier(types, dtype="float64", **TINY)
    perm = rng.permutation(5)
    relabelled = WindowClassifier([types[p] for p in perm], dtype="float64", **TINY)
    weights = {k: v for k, v in clf.state_dict().items() if k != "bead_types"}
    relabelled.load_state_dict(weights, strict=False)
    assert relabelled.bead_types.tolist() == [types[p] for p in perm]
    windows = random_windows(rng, n_beads=5)
    torch.testing.assert_close(relabelled(windows[:, :, perm]), clf(windows), **tolerance(torch.float64))


def test_time_order_matters_except_in_frame_only_mode(rng):
    windows = random_windows(rng, n_frames=5)
    frame_only = WindowClassifier([0, 1, 1, 0], frame_only=True, dtype="float64", **TINY)
    shuffled = windows[:, torch.tensor(rng.permutation(5))]
    torch.testing.assert_close(frame_only(shuffled), frame_only(windows), **tolerance(torch.float64))
    torch.testing.assert_close(frame_only(windows.flip(1)), frame_only(windows), **tolerance(torch.float64))
    # T = 0 (one configuration per window) is valid; a window of repeated frames scores as its single frame
    single = windows[:, :1]
    torch.testing.assert_close(frame_only(single.expand(-1, 4, -1, -1)), frame_only(single),
                               **tolerance(torch.float64))
    dynamic = WindowClassifier([0, 1, 1, 0], dtype="float64", **TINY)
    assert (dynamic(windows.flip(1)) - dynamic(windows)).abs().max() > 1e-6


def test_gradients_reach_every_parameter(rng):
    clf = WindowClassifier([0, 1, 2], spectral_norm=True, **TINY)
    windows = random_windows(rng, n_beads=3, dtype=torch.float32)
    clf(windows).pow(2).sum().backward()
    for name, param in clf.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_r1_penalty_matches_finite_differences(rng):
    clf = WindowClassifier([0, 1, 1], cutoff_nm=1.0, dtype="float64", **TINY)
    windows = random_windows(rng, batch=2, n_frames=3, n_beads=3)
    penalty = r1_penalty(clf, windows)
    h = 1e-5
    squared = torch.zeros(2, dtype=torch.float64)
    flat = windows.reshape(2, -1)
    with torch.no_grad():
        for k in range(flat.shape[1]):
            step = torch.zeros_like(flat)
            step[:, k] = h
            plus = clf((flat + step).reshape(windows.shape))
            minus = clf((flat - step).reshape(windows.shape))
            squared += ((plus - minus) / (2 * h)) ** 2
    torch.testing.assert_close(penalty, squared.mean(), rtol=1e-6, atol=1e-8)
    # create_graph=True: the penalty is differentiable in the parameters (checked against finite differences)
    weight = clf.head[0].weight
    (grad,) = torch.autograd.grad(penalty, weight)
    with torch.no_grad():
        weight[0, 0] += h
    up = r1_penalty(clf, windows).detach()
    with torch.no_grad():
        weight[0, 0] -= 2 * h
    down = r1_penalty(clf, windows).detach()
    torch.testing.assert_close(grad[0, 0], (up - down) / (2 * h), rtol=1e-5, atol=1e-8)


def test_float32_matches_float64(rng):
    clf64 = WindowClassifier([0, 1, 1, 2], dtype="float64", **TINY)
    clf32 = WindowClassifier([0, 1, 1, 2], dtype="float32", **TINY)
    clf32.load_state_dict(clf64.state_dict())
    windows = random_windows(rng)
    out32 = clf32(windows)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), clf64(windows), **tolerance(torch.float32))


def test_cutoff_decouples_distant_groups(rng):
    clf = WindowClassifier([0, 1, 0, 1], cutoff_nm=0.5, dtype="float64", **TINY)
    windows = random_windows(rng, n_beads=4)
    windows[:, :, 2:] += torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)
    moved = windows.clone()
    moved[:, :, 2:] += torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(clf(moved), clf(windows), **tolerance(torch.float64))
    no_cutoff = WindowClassifier([0, 1, 0, 1], r_max_nm=5.0, dtype="float64", **TINY)
    assert (no_cutoff(moved) - no_cutoff(windows)).abs().max() > 1e-6


def test_spectral_norm_bounds_layers(rng):
    clf = WindowClassifier([0, 1, 2], spectral_norm=True, **TINY)
    windows = random_windows(rng, n_beads=3, dtype=torch.float32)
    for _ in range(20):  # power iterations run in training mode
        clf(windows)
    for layer in [*clf.temporal, clf.head[0], clf.head[2]]:
        matrix = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        assert abs(float(torch.linalg.matrix_norm(matrix, ord=2)) - 1.0) < 0.02


def test_spec_roundtrip_and_errors(rng):
    clf = WindowClassifier([0, 1, 1], cutoff_nm=0.8, dtype="float64", **TINY)
    rebuilt = build_classifier(clf.spec)
    rebuilt.load_state_dict(clf.state_dict())
    windows = random_windows(rng, n_beads=3)
    torch.testing.assert_close(rebuilt(windows), clf(windows), **tolerance(torch.float64))
    with pytest.raises(ValueError, match="unknown classifier spec keys"):
        build_classifier({**clf.spec, "depth": 3})
    with pytest.raises(ValueError, match="n_beads=3"):
        clf(windows[:, :, :2])
    with pytest.raises(ValueError, match="at least 2 frame"):
        clf(windows[:, :1])
    with pytest.raises(ValueError, match="unknown dtype"):
        WindowClassifier([0, 1], dtype="float16")


def test_displacement_rms(rng):
    windows = random_windows(rng)
    expected = np.sqrt(np.mean(np.diff(windows.numpy(), axis=1) ** 2))
    assert displacement_rms(windows) == pytest.approx(expected, rel=1e-12)


def _forward_vs_reversed(windows):
    return torch.cat([windows, windows.flip(1)]), torch.cat([torch.ones(len(windows)), torch.zeros(len(windows))])


@pytest.mark.integration
@pytest.mark.parametrize("drive, driven", [(200.0, True), (0.0, False)])
def test_detects_time_reversal_only_out_of_equilibrium(drive, driven):
    kwargs = dict(n_beads=3, n_frames=5, stride=10, dt_ps=0.002, diffusion_nm2_per_ps=0.05,
                  drive_kj_per_mol_nm=drive)
    train_x, train_y = _forward_vs_reversed(simulate_chain(200, seed=1, **kwargs))
    test_x, test_y = _forward_vs_reversed(simulate_chain(400, seed=2, **kwargs))
    clf = WindowClassifier([0, 1, 1], displacement_scale_nm=displacement_rms(train_x), **TINY)
    train_classifier(clf, train_x, train_y, steps=150)
    held_out = accuracy(clf, test_x, test_y)
    if driven:
        assert held_out > 0.9
    else:  # W and its reversal have the same law: expected accuracy 0.5, std <= 0.025 on 400 pairs
        assert held_out < 0.6


@pytest.mark.integration
def test_overfit_separates_aa_from_too_fast_diffusion():
    kwargs = dict(n_beads=5, n_frames=5, stride=10, dt_ps=0.002)
    aa_train = simulate_chain(150, diffusion_nm2_per_ps=0.02, seed=11, **kwargs)
    cg_train = simulate_chain(150, diffusion_nm2_per_ps=0.10, seed=12, **kwargs)
    aa_test = simulate_chain(200, diffusion_nm2_per_ps=0.02, seed=13, **kwargs)
    cg_test = simulate_chain(200, diffusion_nm2_per_ps=0.10, seed=14, **kwargs)
    train_x = torch.cat([aa_train, cg_train])
    train_y = torch.cat([torch.ones(150), torch.zeros(150)])
    clf = WindowClassifier(np.zeros(5, dtype=int), displacement_scale_nm=displacement_rms(train_x), **TINY)
    train_classifier(clf, train_x, train_y, steps=60)
    with torch.no_grad():
        auc = roc_auc(clf(aa_test).numpy(), clf(cg_test).numpy())
    assert auc > 0.95
