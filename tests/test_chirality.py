"""Chirality: with ``chiral=True`` the window classifiers are invariant under proper rotations and translations
but tell a window from its mirror image; with ``chiral=False`` they are invariant under reflections too."""
import numpy as np
import pytest
import torch
from conftest import tolerance
from test_classifier import TINY, random_rotation, random_windows, train_classifier

from openmm_dynmatch.kinetics import roc_auc
from openmm_dynmatch.models.classifier import WindowClassifier, build_classifier, displacement_rms
from openmm_dynmatch.models.invariant_classifier import InvariantWindowClassifier

MIRROR = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)   # x -> -x


def make_classifier(kind, chiral, **options):
    if kind == "invariant":
        return InvariantWindowClassifier(4, 4, hidden=32, dtype="float64", chiral=chiral)
    return WindowClassifier([0, 1, 1, 2], dtype="float64", chiral=chiral, **{**TINY, **options})


KINDS = [("invariant", {}), ("equivariant", {}), ("equivariant", dict(frame_only=True)),
         ("equivariant", dict(n_layers=2, cutoff_nm=0.8, lmax=2))]


@pytest.mark.parametrize("kind, options", KINDS)
def test_invariant_to_proper_rotations_and_translations(rng, kind, options):
    clf = make_classifier(kind, True, **options)
    windows = random_windows(rng)
    logits = clf(windows)
    for _ in range(2):
        rot, shift = random_rotation(rng, proper=True), torch.tensor(rng.normal(size=3))
        torch.testing.assert_close(clf(windows @ rot.T + shift), logits, **tolerance(torch.float64))


@pytest.mark.parametrize("kind, options", KINDS)
def test_mirror_image_is_seen_only_when_chiral(rng, kind, options):
    windows = random_windows(rng)
    chiral = make_classifier(kind, True, **options)
    # inversion and a mirror plane are both improper: each is a rotation times the other
    for mirrored in (-windows, windows * MIRROR):
        gap = (chiral(mirrored) - chiral(windows)).abs()
        assert gap.min() > 1e-9 * (1.0 + chiral(windows).abs().max())
    achiral = make_classifier(kind, False, **options)
    torch.testing.assert_close(achiral(-windows), achiral(windows), **tolerance(torch.float64))
    torch.testing.assert_close(achiral(windows * MIRROR), achiral(windows), **tolerance(torch.float64))


def test_chiral_option_survives_the_spec(rng):
    windows = random_windows(rng)
    for chiral in (True, False):
        clf = make_classifier("equivariant", chiral)
        again = build_classifier(clf.spec)
        assert again.spec["chiral"] is chiral
        again.load_state_dict(clf.state_dict())
        torch.testing.assert_close(again(windows), clf(windows), **tolerance(torch.float64))
        inv = make_classifier("invariant", chiral)
        inv.fit_scales(windows)
        inv_again = InvariantWindowClassifier(**{k: v for k, v in inv.spec.items() if k != "kind"})
        inv_again.load_state_dict(inv.state_dict())
        torch.testing.assert_close(inv_again(windows), inv(windows), **tolerance(torch.float64))
    with pytest.raises(ValueError, match="hidden_vectors >= 3"):
        WindowClassifier([0, 1], hidden_vectors=2, chiral=True)


def dihedral_deg(positions):
    """IUPAC dihedral of beads 0-1-2-3, degrees, from ``positions`` (..., 4, 3)."""
    b1, b2, b3 = (positions[..., k + 1, :] - positions[..., k, :] for k in range(3))
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    return np.degrees(np.arctan2(np.linalg.norm(b2, axis=-1) * (b1 * n2).sum(-1), (n1 * n2).sum(-1)))


def chiral_chain_windows(n_windows, seed, n_frames=4, bond_nm=0.38, dihedral=60.0, spread=15.0, step_nm=0.01):
    """Windows (n, n_frames, 4, 3) nm of a 4-bead chain whose dihedral is ``dihedral +- spread`` degrees.

    Frame 0 is built from bond length, bond angles (105 +- 5 degrees) and the dihedral, then randomly rotated
    (proper rotation) and shifted; later frames add independent Gaussian displacements of ``step_nm`` per axis.
    """
    rng = np.random.default_rng(seed)
    angle = np.radians(rng.normal(105.0, 5.0, size=(n_windows, 2)))
    phi = np.radians(rng.normal(dihedral, spread, size=n_windows))
    x = np.zeros((n_windows, 4, 3))
    x[:, 1, 0] = bond_nm
    x[:, 2, 0] = bond_nm * (1.0 - np.cos(angle[:, 0]))
    x[:, 2, 1] = bond_nm * np.sin(angle[:, 0])
    axis = (x[:, 2] - x[:, 1]) / bond_nm
    normal = np.cross(x[:, 1] - x[:, 0], axis)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    local = [-np.cos(angle[:, 1]), np.sin(angle[:, 1]) * np.cos(phi), np.sin(angle[:, 1]) * np.sin(phi)]
    x[:, 3] = x[:, 2] + bond_nm * sum(c[:, None] * e for c, e in zip(local, (axis, np.cross(normal, axis), normal)))
    rotations = np.stack([random_rotation(rng).numpy() for _ in range(n_windows)])
    x = np.einsum("nij,nbj->nbi", rotations, x) + rng.normal(size=(n_windows, 1, 3))
    steps = step_nm * rng.normal(size=(n_windows, n_frames, 4, 3))
    steps[:, 0] = 0.0
    return torch.tensor(x[:, None] + np.cumsum(steps, axis=1))


def test_toy_generator_has_the_requested_handedness():
    windows = chiral_chain_windows(500, seed=0).numpy()
    angles = dihedral_deg(windows)
    assert abs(np.mean(angles) - 60.0) < 3.0 and np.mean(angles > 0) > 0.99
    assert np.mean(dihedral_deg(windows * MIRROR.numpy())) == pytest.approx(-np.mean(angles))


def _chiral_vs_mirror(n_windows, seed):
    """Windows of the chiral chain (label 1) and mirror images of an independent set (label 0)."""
    chiral = chiral_chain_windows(n_windows, seed)
    mirror = chiral_chain_windows(n_windows, seed + 1000) * MIRROR
    return torch.cat([chiral, mirror]), torch.cat([torch.ones(n_windows), torch.zeros(n_windows)])


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["invariant", "equivariant"])
def test_learns_to_tell_a_chiral_chain_from_its_mirror_image(kind):
    train_x, train_y = _chiral_vs_mirror(100, seed=1)
    test_x, test_y = _chiral_vs_mirror(200, seed=2)
    if kind == "invariant":
        clf = InvariantWindowClassifier(4, 4, hidden=32, dtype="float64")
        clf.fit_scales(train_x)
    else:
        clf = WindowClassifier([0, 1, 1, 0], displacement_scale_nm=displacement_rms(train_x), **TINY)
    train_classifier(clf, train_x, train_y, steps=150)
    with torch.no_grad():
        auc = roc_auc(clf(test_x).double().numpy(), test_y.numpy())
    assert auc > 0.95   # with chiral=False the two classes have the same law of features: AUC ~ 0.5
