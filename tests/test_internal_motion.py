"""Tests of windows without rigid-body motion (classifier.internal_motion)."""
import numpy as np
import pytest
import torch
from test_classifier import TINY, random_rotation, random_windows

from openmm_dynmatch.models.internal_motion import (InternalMotionClassifier, remove_rigid_body_motion,
                                                    superposition)
from openmm_dynmatch.models.registry import build_classifier_for


def rigidly_moved(window, rng, proper=True):
    """Every frame of ``window`` (T+1, N, 3) rotated about its centroid and shifted by its own random rigid move."""
    frames = []
    for frame in window:
        rotation = random_rotation(rng, proper)
        centre = frame.mean(dim=0)
        frames.append((frame - centre) @ rotation.T + centre + torch.tensor(rng.normal(size=3)))
    return torch.stack(frames)


def pair_distances(windows):
    return torch.cdist(windows.flatten(0, 1), windows.flatten(0, 1))


def test_superposition_recovers_a_known_rotation():
    rng = np.random.default_rng(0)
    reference = torch.tensor(rng.normal(size=(3, 7, 3)))
    rotations = torch.stack([random_rotation(rng) for _ in range(3)])
    moving = reference @ rotations + torch.tensor(rng.normal(size=(3, 1, 3)))
    # moving = reference R (+ shift), so the row-vector rotation that maps moving back onto reference is R^T
    np.testing.assert_allclose(superposition(moving, reference).numpy(), rotations.transpose(1, 2).numpy(),
                               atol=1e-10)
    assert torch.allclose(torch.linalg.det(superposition(moving, reference)), torch.ones(3, dtype=torch.float64))


def test_rigid_motion_alone_is_removed_entirely():
    rng = np.random.default_rng(1)
    still = random_windows(rng, batch=1, n_frames=1, n_beads=6)[0, 0]
    window = rigidly_moved(still.expand(5, -1, -1).clone(), rng)
    out = remove_rigid_body_motion(window[None])[0]
    np.testing.assert_allclose(out.numpy(), window[0].expand_as(out).numpy(), atol=1e-10)


def test_internal_motion_and_the_first_frame_are_kept():
    rng = np.random.default_rng(2)
    windows = random_windows(rng, batch=4, n_frames=5, n_beads=6)
    out = remove_rigid_body_motion(windows)
    np.testing.assert_allclose(out[:, 0].numpy(), windows[:, 0].numpy())
    np.testing.assert_allclose(pair_distances(out).numpy(), pair_distances(windows).numpy(), atol=1e-10)
    # each frame now sits where no rigid move brings it closer to the previous one: its centroid is frame 0's
    np.testing.assert_allclose(out.mean(dim=2).numpy(), windows[:, :1].mean(dim=2).expand(-1, 5, -1).numpy(),
                               atol=1e-10)


@pytest.mark.parametrize("proper", [True, False])
def test_equivariant_under_rotations_translations_and_reflections(proper):
    rng = np.random.default_rng(3)
    windows = random_windows(rng, batch=3, n_frames=4, n_beads=5)
    q, shift = random_rotation(rng, proper), torch.tensor(rng.normal(size=3))
    np.testing.assert_allclose(remove_rigid_body_motion(windows @ q.T + shift).numpy(),
                               (remove_rigid_body_motion(windows) @ q.T + shift).numpy(), atol=1e-10)


def test_wrapped_classifier_is_blind_to_rigid_moves_of_single_frames_but_not_to_mirror_images():
    rng = np.random.default_rng(4)
    clf = build_classifier_for("equivariant", [0, 1, 1, 0, 2], 4, TINY, dtype="float64", internal_motion=True)
    assert isinstance(clf, InternalMotionClassifier) and clf.spec["internal_motion"]
    windows = random_windows(rng, batch=3, n_frames=4, n_beads=5)
    moved = torch.stack([rigidly_moved(w, rng) for w in windows])
    torch.testing.assert_close(clf(moved), clf(windows), atol=1e-9, rtol=1e-7)
    plain = build_classifier_for("equivariant", [0, 1, 1, 0, 2], 4, TINY, dtype="float64")
    assert not torch.allclose(plain(moved), plain(windows), atol=1e-6)
    assert not torch.allclose(clf(-windows), clf(windows), atol=1e-6)  # chiral: the mirror image differs


def test_wrapped_invariant_classifier_scales_come_from_superposed_windows():
    rng = np.random.default_rng(5)
    windows = random_windows(rng, batch=64, n_frames=4, n_beads=5)
    moved = torch.stack([rigidly_moved(w, rng) for w in windows])
    clf = build_classifier_for("invariant", [0, 1, 1, 0, 2], 4, dtype="float64", scale_windows=moved,
                               internal_motion=True)
    reference = build_classifier_for("invariant", [0, 1, 1, 0, 2], 4, dtype="float64",
                                     scale_windows=remove_rigid_body_motion(moved))
    torch.testing.assert_close(clf.classifier.feature_scale, reference.feature_scale)


def test_rejects_windows_that_cannot_be_superposed():
    with pytest.raises(ValueError, match="n_beads >= 3"):
        remove_rigid_body_motion(torch.zeros(2, 3, 2, 3))


def test_the_demo_setting_reaches_the_training_config(tmp_path):
    from dataclasses import replace

    from openmm_dynmatch.demo import QUICK, demo_config

    assert not demo_config(tmp_path / "cg.h5", QUICK, "dynamic_matching", 0).classifier.internal_motion
    config = demo_config(tmp_path / "cg.h5", replace(QUICK, internal_motion=True), "dynamic_matching", 0)
    assert config.classifier.internal_motion
    assert (config.train.friction_first, config.train.friction_optimizer, config.train.lr_friction) == (0, "adam", 0.05)
    assert config.train.friction_then == "joint"
    config = demo_config(tmp_path / "cg.h5", replace(QUICK, friction_first=7, friction_optimizer="sgd",
                                                     lr_friction=0.15, friction_then="frozen"), "dynamic_matching", 0)
    assert (config.train.friction_first, config.train.friction_optimizer, config.train.lr_friction) == (7, "sgd", 0.15)
    assert config.train.friction_then == "frozen"


def test_a_molecule_too_small_to_superpose_is_refused_when_the_classifier_is_built():
    with pytest.raises(ValueError, match="internal_motion needs at least 3 beads"):
        build_classifier_for("invariant", [0, 0], 4, internal_motion=True)
