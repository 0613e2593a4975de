"""Core-set (milestoning) transition kinetics: rates and relaxation times counted from barrier crossings.

An MSM built on clusters of many short CG walkers can lose the slow process altogether: when few walkers cross
the barrier, the largest connected set holds one basin and the "slowest" implied timescale becomes a fast
intra-basin one, or the few crossings make it enormous. Counting committed transitions between cores stays
meaningful down to a handful of crossings and says how many there were.

Each frame gets the core it is in (``-1`` between cores); milestoning gives every frame the last core visited,
frames before the first core are dropped. With ``N_ab`` committed transitions ``a -> b`` and ``T_a`` the time
spent committed to ``a``, the rate is ``k_ab = N_ab / T_a``; the relaxation times are ``-1 / lambda`` for the
non-zero eigenvalues ``lambda`` of the rate matrix (for two cores ``1 / (k_ab + k_ba)``).

The same milestoned trajectory gives a second time: the correlation time of the indicator "last core visited
is ``a``", where its autocorrelation falls to ``1/e``. For a process that jumps between two cores as a Markov
chain the two agree (the indicator's autocorrelation is ``exp(-t / tau)`` with ``tau`` the relaxation time); their
ratio, the *memory ratio*, says how far the crossings are from that: above 1 when the indicator decorrelates
more slowly than the counted rates imply (dwell times more spread than exponential, hidden slow states within a
core). A Markovian CG model with one state per core has a memory ratio near 1 and cannot match both times of
data whose ratio is not.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# psi windows (radians) of the two backbone basins of alanine dipeptide, with a margin to the barriers:
# extended (beta / PII, psi near +-pi and 2.5) and helical (alpha_R / alpha_L side, psi near -0.8).
ALANINE_PSI_CORES_RAD = {"extended": ((1.5, np.pi), (-np.pi, -2.8)), "helical": ((-1.4, 0.0),)}


def alanine_psi_cores(phi_psi) -> np.ndarray:
    """Core labels of alanine-dipeptide frames from psi: 0 extended, 1 helical, -1 between.

    Parameters
    ----------
    phi_psi : np.ndarray, shape (n_frames, 2), radians

    Returns
    -------
    np.ndarray of int, shape (n_frames,)
    """
    angles = np.asarray(phi_psi, dtype=float)
    if angles.ndim != 2 or angles.shape[1] != 2:
        raise ValueError(f"phi_psi must have shape (n_frames, 2), got {angles.shape}")
    psi = angles[:, 1]
    labels = np.full(len(psi), -1, dtype=np.int64)
    for label, windows in enumerate(ALANINE_PSI_CORES_RAD.values()):
        for low, high in windows:
            labels[(psi >= low) & (psi <= high)] = label
    return labels


def milestones(core_labels) -> np.ndarray:
    """The last core visited at every frame (``-1`` before the first core is reached).

    Parameters
    ----------
    core_labels : np.ndarray of int, shape (n_frames,)
        Core index per frame, negative between cores.
    """
    labels = np.asarray(core_labels, dtype=np.int64)
    index = np.where(labels >= 0, np.arange(len(labels)), -1)
    last = np.maximum.accumulate(index) if len(index) else index
    return np.where(last >= 0, labels[np.maximum(last, 0)], -1)


def transition_counts(core_trajs, n_cores: int) -> tuple:
    """Committed transitions and frames committed to each core, summed over trajectories.

    Returns
    -------
    counts : np.ndarray, shape (n_cores, n_cores)
        ``counts[a, b]``: transitions ``a -> b`` (diagonal zero).
    frames : np.ndarray, shape (n_cores,)
        Frame intervals spent committed to each core (the last frame of a trajectory does not count).
    """
    counts = np.zeros((n_cores, n_cores))
    frames = np.zeros(n_cores)
    for labels in core_trajs:
        m = milestones(labels)
        if len(m) < 2:
            continue
        before, after = m[:-1], m[1:]
        valid = before >= 0
        frames += np.bincount(before[valid], minlength=n_cores)[:n_cores]
        moved = valid & (after != before)
        np.add.at(counts, (before[moved], after[moved]), 1.0)
    return counts, frames


def relaxation_times(counts, time_ps) -> np.ndarray:
    """Relaxation times (ps, slowest first) of the rate matrix ``k_ab = counts_ab / time_a``.

    ``inf`` where the cores are not connected both ways (no transitions out of a core visited).
    """
    counts, time_ps = np.asarray(counts, dtype=float), np.asarray(time_ps, dtype=float)
    n = len(time_ps)
    visited = time_ps > 0
    if visited.sum() < 2:
        return np.full(max(n - 1, 1), np.inf)
    rates = np.zeros((n, n))
    rates[visited] = counts[visited] / time_ps[visited, None]
    np.fill_diagonal(rates, 0.0)
    np.fill_diagonal(rates, -rates.sum(axis=1))
    eigenvalues = np.sort(np.real(np.linalg.eigvals(rates[np.ix_(visited, visited)])))[::-1]
    slow = -eigenvalues[1:]
    with np.errstate(divide="ignore"):
        return np.where(slow > 1e-12 * max(np.abs(eigenvalues).max(), 1e-300), 1.0 / slow, np.inf)


def milestone_autocorrelation(core_trajs: Sequence, core: int = 0, max_lag: int | None = None) -> np.ndarray:
    """Normalised autocorrelation of the indicator "last core visited is ``core``", pooled over trajectories.

    Frames before a trajectory's first core are dropped; the mean and variance are those of all frames kept, and
    lag ``k`` averages the products of every trajectory's pairs ``k`` frames apart (a trajectory shorter than
    ``k + 1`` frames adds none).

    Parameters
    ----------
    core_trajs : sequence of np.ndarray of int, each shape (n_frames_k,)
        Core labels per frame (``-1`` between cores).
    core : int
    max_lag : int, optional
        Largest lag in frames; default: the longest kept trajectory's length minus one.

    Returns
    -------
    np.ndarray, shape (max_lag + 1,)
        ``acf[0] == 1``; NaN everywhere when the indicator never changes (one core only, or none).
    """
    series = []
    for labels in core_trajs:
        m = milestones(labels)
        series.append((m[m >= 0] == int(core)).astype(np.float64))
    series = [h for h in series if len(h)]
    longest = max((len(h) for h in series), default=1)
    max_lag = longest - 1 if max_lag is None else min(int(max_lag), longest - 1)
    if not series:
        return np.full(max_lag + 1, np.nan)
    pooled = np.concatenate(series)
    mean, variance = pooled.mean(), pooled.var()
    if variance <= 0:
        return np.full(max_lag + 1, np.nan)
    from .kinetics import lagged_products

    sums, pairs = np.zeros(max_lag + 1), np.zeros(max_lag + 1)
    for h in series:
        n = len(h)
        products = lagged_products((h - mean)[:, None], min(n, max_lag + 1))[:, 0]
        sums[:len(products)] += products
        pairs[:len(products)] += n - np.arange(len(products))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, sums / np.maximum(pairs, 1) / variance, np.nan)


def correlation_time(acf, frame_interval_ps: float) -> float:
    """Lag (ps) at which an autocorrelation first falls below ``1/e``, interpolated linearly between frames.

    ``inf`` when it stays above within the lags given, NaN when ``acf`` is undefined (NaN at lag 0).
    """
    acf = np.asarray(acf, dtype=float)
    if not acf.size or not np.isfinite(acf[0]):
        return float("nan")
    below = np.flatnonzero(acf < np.exp(-1.0))
    if not below.size:
        return float("inf")
    k = int(below[0])
    a, b = acf[k - 1], acf[k]
    return float((k - 1 + (a - np.exp(-1.0)) / (a - b)) * frame_interval_ps)


def core_set_kinetics(core_trajs: Sequence, frame_interval_ps: float, n_cores: int = 2, n_bootstrap: int = 50,
                      n_blocks: int = 10, seed: int = 0) -> dict:
    """Transition counts, rates, populations and the slowest relaxation time between cores, with bootstrap.

    Parameters
    ----------
    core_trajs : sequence of np.ndarray of int, each shape (n_frames_k,)
        Core labels per frame (``-1`` between cores), one array per trajectory.
    frame_interval_ps : float
    n_cores : int
    n_bootstrap, n_blocks, seed
        Bootstrap over trajectory blocks, as :func:`openmm_dynmatch.kinetics.implied_timescales` does.

    Returns
    -------
    dict
        ``transitions`` (n_cores, n_cores), ``time_ps`` (n_cores,), ``rates_per_ps`` (n_cores, n_cores),
        ``populations`` (n_cores,) committed-time fractions, ``relaxation_time_ps`` (slowest; inf when a core
        was never left or never reached), ``relaxation_time_bound_ps`` (the same with one more transition
        each way: finite, and a lower bound of the relaxation time when few or none were seen), ``lower_ps`` /
        ``upper_ps`` (16th/84th bootstrap percentiles), ``n_transitions`` (all committed transitions), and for
        two cores ``indicator_time_ps`` (:func:`correlation_time` of the indicator of core 0) and
        ``memory_ratio`` (``indicator_time_ps / relaxation_time_ps``; 1 for a two-state Markov chain), NaN for
        more cores.
    """
    from .kinetics import bootstrap_blocks

    trajs = [np.asarray(t, dtype=np.int64) for t in core_trajs]
    dt = float(frame_interval_ps)
    counts, frames = transition_counts(trajs, n_cores)
    time_ps = frames * dt
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(time_ps[:, None] > 0, counts / time_ps[:, None], 0.0)
    blocks = bootstrap_blocks(trajs, n_blocks)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(int(n_bootstrap)):
        sample = [blocks[i] for i in rng.integers(len(blocks), size=len(blocks))]
        c, f = transition_counts(sample, n_cores)
        boot.append(relaxation_times(c, f * dt)[0])
    boot = np.asarray(boot, dtype=float)
    with np.errstate(invalid="ignore"):  # samples without crossings are inf; percentiles between them are too
        lower, upper = (float(np.percentile(boot, q)) if boot.size else np.nan for q in (16, 84))
    total = time_ps.sum()
    relaxation = float(relaxation_times(counts, time_ps)[0])
    indicator_time = correlation_time(milestone_autocorrelation(trajs, 0), dt) if n_cores == 2 else float("nan")
    finite = np.isfinite(indicator_time) and np.isfinite(relaxation) and relaxation > 0
    memory_ratio = indicator_time / relaxation if finite else float("nan")
    return {"transitions": counts, "time_ps": time_ps, "rates_per_ps": rates,
            "populations": time_ps / total if total > 0 else np.full(n_cores, np.nan),
            "relaxation_time_ps": relaxation,
            "relaxation_time_bound_ps": float(relaxation_times(counts + 1.0 - np.eye(n_cores), time_ps)[0]),
            "lower_ps": lower, "upper_ps": upper,
            "n_transitions": int(counts.sum()), "indicator_time_ps": indicator_time, "memory_ratio": memory_ratio}
