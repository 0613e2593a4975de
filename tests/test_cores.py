"""Core-set transition kinetics against hand counts and Markov chains with known rates."""
import math

import numpy as np
import pytest

from openmm_dynmatch.analysis import psi_core_kinetics
from openmm_dynmatch.cores import (alanine_psi_cores, core_set_kinetics, correlation_time,
                                   milestone_autocorrelation, milestones, relaxation_times, transition_counts)


def two_state_chain(p_01: float, p_10: float, n_frames: int, rng) -> np.ndarray:
    """A discrete-time two-state Markov chain with switching probabilities per frame."""
    states = np.empty(n_frames, dtype=np.int64)
    states[0] = 0
    draws = rng.random(n_frames)
    for t in range(1, n_frames):
        leave = p_01 if states[t - 1] == 0 else p_10
        states[t] = 1 - states[t - 1] if draws[t] < leave else states[t - 1]
    return states


def markov_chain(transitions, n_frames: int, rng) -> np.ndarray:
    """A discrete-time Markov chain from state 0, drawn jump by jump: a geometric stay, then a jump with the
    probabilities of the row's off-diagonal entries."""
    transitions = np.asarray(transitions, dtype=float)
    states, state, filled = np.empty(n_frames, dtype=np.int64), 0, 0
    while filled < n_frames:
        leave = 1.0 - transitions[state, state]
        stay = int(rng.geometric(leave))
        states[filled:filled + stay] = state
        filled += stay
        weights = np.where(np.arange(len(transitions)) == state, 0.0, transitions[state])
        state = int(rng.choice(len(transitions), p=weights / leave))
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
    # both sides jump as two-state Markov chains: their indicators decay with their relaxation times
    assert result["aa"]["memory_ratio"] == pytest.approx(1.0, abs=0.1)
    assert result["cg"]["memory_ratio"] == pytest.approx(1.0, abs=0.15)


def test_correlation_time_of_an_exponential():
    dt, tau = 0.1, 2.345
    acf = np.exp(-np.arange(200) * dt / tau)
    assert correlation_time(acf, dt) == pytest.approx(tau, rel=1e-3)  # linear interpolation between frames
    assert math.isinf(correlation_time(acf[:10], dt))  # never below 1/e within the lags given
    assert math.isnan(correlation_time(np.full(5, np.nan), dt))


def test_indicator_of_a_two_state_chain_decays_with_the_relaxation_time(rng):
    # the indicator of a two-state chain correlates as lambda^k, lambda = 1 - p_01 - p_10: memory ratio 1
    p_01, p_10, dt = 0.004, 0.012, 0.1
    chain = markov_chain([[1 - p_01, p_01], [p_10, 1 - p_10]], 1_000_000, rng)
    acf = milestone_autocorrelation([chain], 0, max_lag=300)
    lam = 1.0 - p_01 - p_10
    np.testing.assert_allclose(acf[[10, 50, 100]], lam ** np.array([10, 50, 100]), atol=0.03)
    result = core_set_kinetics([chain], dt, n_bootstrap=5)
    assert result["indicator_time_ps"] == pytest.approx(-dt / math.log(lam), rel=0.05)
    assert result["memory_ratio"] == pytest.approx((p_01 + p_10) / -math.log(lam), rel=0.06)


def test_memory_ratio_of_a_core_with_two_hidden_states(rng):
    # cores 0 = {E}, 1 = {H1, H2}: H1 is left fast, H2 slowly. The indicator's exact autocorrelation
    # (pi h) P^k h, and the counted rates' exact limits, written out from the transition matrix.
    P = np.array([[0.0, 0.004, 0.002], [0.05, 0.0, 0.001], [0.004, 0.001, 0.0]])
    np.fill_diagonal(P, 1.0 - P.sum(axis=1))
    w, v = np.linalg.eig(P.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1.0))])
    pi /= pi.sum()
    h = np.array([1.0, 0.0, 0.0])
    powers = [np.eye(3)]
    for _ in range(400):
        powers.append(powers[-1] @ P)
    exact_acf = np.array([((pi * h) @ pk @ h - pi[0] ** 2) / (pi[0] * (1 - pi[0])) for pk in powers])
    k_0to1 = P[0, 1] + P[0, 2]
    k_1to0 = (pi[1] * P[1, 0] + pi[2] * P[2, 0]) / (pi[1] + pi[2])
    dt = 0.1
    exact_ratio = correlation_time(exact_acf, dt) / (dt / (k_0to1 + k_1to0))
    assert exact_ratio > 1.5  # the hidden slow state makes the indicator outlive the counted rates

    chain = markov_chain(P, 2_000_000, rng)
    cores = np.where(chain == 0, 0, 1)
    np.testing.assert_allclose(milestone_autocorrelation([cores], 0, max_lag=400)[[20, 100, 200]],
                               exact_acf[[20, 100, 200]], atol=0.03)
    result = core_set_kinetics([cores], dt, n_bootstrap=5)
    assert result["memory_ratio"] == pytest.approx(exact_ratio, rel=0.08)


def test_indicator_autocorrelation_pools_trajectories_without_joining_them():
    # two trajectories, each in one core: 4 frames of indicator 1, 6 of indicator 0 (mean 0.4, variance 0.24).
    # Lag k has 4 - k pairs of (0.6)^2 and 6 - k pairs of (0.4)^2; joining them would add a pair 0.6 * -0.4.
    trajs = [np.array([-1, 0, 0, 0, 0]), np.array([1, 1, 1, 1, -1, 1])]
    k = np.arange(6)
    by_hand = (np.clip(4 - k, 0, None) * 0.36 + (6 - k) * 0.16) / (np.clip(4 - k, 0, None) + 6 - k) / 0.24
    np.testing.assert_allclose(milestone_autocorrelation(trajs, 0), by_hand)
    assert np.isnan(milestone_autocorrelation([np.zeros(10, dtype=int)], 0)).all()  # one core only
    result = core_set_kinetics([np.zeros(10, dtype=int)], 0.1, n_bootstrap=2)
    assert math.isnan(result["memory_ratio"])
