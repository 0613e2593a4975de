"""Core-set transition kinetics against hand counts and Markov chains with known rates."""
import math

import numpy as np
import pytest

from openmm_dynmatch.analysis import psi_core_kinetics
from openmm_dynmatch.cores import (alanine_psi_cores, core_set_kinetics, milestones, relaxation_times,
                                   transition_counts)


def two_state_chain(p_01: float, p_10: float, n_frames: int, rng) -> np.ndarray:
    """A discrete-time two-state Markov chain with switching probabilities per frame."""
    states = np.empty(n_frames, dtype=np.int64)
    states[0] = 0
    draws = rng.random(n_frames)
    for t in range(1, n_frames):
        leave = p_01 if states[t - 1] == 0 else p_10
        states[t] = 1 - states[t - 1] if draws[t] < leave else states[t - 1]
    return states


def test_milestones_fill_gaps_with_the_last_core():
    labels = np.array([-1, -1, 0, -1, -1, 1, -1, 0, 0, -1])
    np.testing.assert_array_equal(milestones(labels), [-1, -1, 0, 0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(milestones(np.array([], dtype=int)), [])


def test_excursions_that_return_are_not_transitions():
    # 0 -> gap -> 0 (no transition), 0 -> gap -> 1 (one), 1 -> 0 (one); second trajectory starts in a gap
    trajs = [np.array([0, -1, 0, 0, -1, -1, 1, 1, 0]), np.array([-1, 1, 1, -1, 1])]
    counts, frames = transition_counts(trajs, 2)
    np.testing.assert_array_equal(counts, [[0, 1], [1, 0]])
    # committed frames (each frame but the last of a trajectory): traj 1 milestones 0 0 0 0 0 0 1 1 | 0
    np.testing.assert_array_equal(frames, [6, 2 + 3])


def test_two_state_chain_rates_and_relaxation_time(rng):
    p_01, p_10, dt = 0.01, 0.02, 0.5
    chain = two_state_chain(p_01, p_10, 200_000, rng)
    result = core_set_kinetics([chain], dt, n_bootstrap=20)
    assert result["rates_per_ps"][0, 1] == pytest.approx(p_01 / dt, rel=0.06)
    assert result["rates_per_ps"][1, 0] == pytest.approx(p_10 / dt, rel=0.06)
    assert result["relaxation_time_ps"] == pytest.approx(dt / (p_01 + p_10), rel=0.06)
    assert result["populations"][0] == pytest.approx(p_10 / (p_01 + p_10), abs=0.03)
    assert result["lower_ps"] < result["relaxation_time_ps"] < result["upper_ps"]


def test_relaxation_times_of_three_symmetric_states():
    # every rate k: eigenvalues 0, -3k, -3k
    k, time_ps = 0.2, np.array([100.0, 100.0, 100.0])
    counts = k * time_ps[:, None] * (1 - np.eye(3))
    np.testing.assert_allclose(relaxation_times(counts, time_ps), [1 / (3 * k)] * 2, rtol=1e-10)


def test_no_crossing_gives_infinite_relaxation_time():
    trajs = [np.zeros(100, dtype=int), np.zeros(50, dtype=int), np.ones(40, dtype=int)]
    result = core_set_kinetics(trajs, 0.1, n_bootstrap=5)
    assert math.isinf(result["relaxation_time_ps"]) and result["n_transitions"] == 0
    # one transition each way in 14.8 ps (core 0: 99 + 49 frame intervals) and 3.9 ps (core 1) committed
    assert result["relaxation_time_bound_ps"] == pytest.approx(1.0 / (1 / 14.8 + 1 / 3.9))


def test_alanine_psi_cores_by_hand():
    psi = np.array([2.5, 3.1, -3.0, -2.7, -0.8, -1.5, 0.5, 1.0, -0.01])
    labels = alanine_psi_cores(np.stack([np.full_like(psi, -1.5), psi], axis=1))
    np.testing.assert_array_equal(labels, [0, 0, 0, -1, 1, -1, -1, -1, 1])
    with pytest.raises(ValueError, match="phi_psi"):
        alanine_psi_cores(psi)


def test_psi_core_ratio_of_a_twice_faster_process(rng):
    psi_of = np.array([2.5, -0.8])

    def cvs(p, n_walkers, n_frames):
        return [np.stack([np.full(n_frames, -1.5), psi_of[two_state_chain(p, p, n_frames, rng)]], axis=1)
                for _ in range(n_walkers)]

    result = psi_core_kinetics(cvs(0.01, 1, 100_000), cvs(0.02, 20, 5_000), 0.1, n_bootstrap=10)
    assert result["aa"]["relaxation_time_ps"] == pytest.approx(0.1 / 0.02, rel=0.1)
    assert result["ratio"] == pytest.approx(0.5, rel=0.15)
