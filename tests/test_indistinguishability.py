"""Held-out AUC probe: ~0.5 for the true model, near 1 for a model with the wrong friction."""
import numpy as np
import pytest

from dimer_toy import HarmonicDimer, dimer_metadata, simulate_dimer_data
from openmm_dynmatch.data import make_windows
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.indistinguishability import heldout_auc
from openmm_dynmatch.openmm.sampler import OpenMMSampler

K, R0, FRICTION, DT, STEPS_PER_FRAME = 500.0, 0.3, 100.0, 0.02, 10


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    _, frames = simulate_dimer_data(folder, "brownian", K, R0, FRICTION, DT, STEPS_PER_FRAME * DT, n_walkers=64,
                                    n_frames=60, seed=8)
    all_windows = np.concatenate([make_windows(f, 5, stride=5) for f in frames])
    rng = np.random.default_rng(0)
    picks = rng.permutation(len(all_windows))[:600]
    return all_windows[picks[:300]], all_windows[picks[300:]]


@pytest.mark.parametrize("friction_factor, low, high", [(1.0, 0.35, 0.65), (5.0, 0.9, 1.0)])
def test_probe_auc_tells_wrong_dynamics_from_right(windows, friction_factor, low, high):
    train, heldout = windows
    sampler = OpenMMSampler(dimer_metadata("brownian", FRICTION, DT), n_walkers=len(train))
    dynamics = DynamicsParameters("brownian", FRICTION * friction_factor, [0, 0])
    result = heldout_auc(sampler, HarmonicDimer(K, R0), dynamics, train, heldout,
                         STEPS_PER_FRAME, training_steps=200, seed=1)
    assert low <= result["auc"] <= high, result


def test_probe_rejects_mismatched_window_sets(windows):
    train, heldout = windows
    sampler = OpenMMSampler(dimer_metadata("brownian", FRICTION, DT), n_walkers=len(train))
    with pytest.raises(ValueError, match="held-out windows"):
        heldout_auc(sampler, HarmonicDimer(K, R0), DynamicsParameters("brownian", FRICTION, [0, 0]),
                    train, heldout[:10], STEPS_PER_FRAME)
