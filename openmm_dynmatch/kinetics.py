"""Kinetic observables of trajectories: MSM implied timescales, MSD and diffusion, autocorrelation, ROC-AUC.

Every function returns numbers (arrays or JSON-able dicts) and never plots; :mod:`openmm_dynmatch.report`
draws them. Times are in ps, lengths in nm. Markov state models come from ``deeptime``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


# ----------------------------------------------------------------------------------------------- clustering

def discretize(aa_features, cg_features=None, n_clusters: int = 20, method: str = "kmeans",
               dmin: Optional[float] = None, seed: int = 0):
    """Cluster AA features and assign AA and CG frames to the same cluster centres.

    Parameters
    ----------
    aa_features : np.ndarray, shape (n_aa_frames, n_features)
        Features used to place the cluster centres (e.g. TICA coordinates of the mapped AA data).
    cg_features : np.ndarray, shape (n_cg_frames, n_features), optional
        Assigned to the AA centres (nearest centre, Euclidean).
    n_clusters : int
        Number of k-means centres (``method="kmeans"``) or the maximum number of centres (``"regspace"``).
    method : {"kmeans", "regspace"}
    dmin : float, optional
        Minimum distance between regular-space centres; default: 0.5 of the features' mean standard deviation.
    seed : int
        Seed of the k-means++ initialisation.

    Returns
    -------
    dict
        ``centers`` (n_centres, n_features), ``aa`` and ``cg`` discrete trajectories (int arrays; ``cg`` is
        None without ``cg_features``).
    """
    from deeptime.clustering import KMeans, RegularSpace

    aa_features = _as_2d(aa_features, "aa_features")
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
    if method == "kmeans":
        estimator = KMeans(n_clusters=min(n_clusters, len(aa_features)), init_strategy="kmeans++",
                           fixed_seed=int(seed), n_jobs=1, max_iter=200)
    elif method == "regspace":
        if dmin is None:
            dmin = 0.5 * float(np.mean(aa_features.std(axis=0)))
        estimator = RegularSpace(dmin=float(dmin), max_centers=n_clusters, n_jobs=1)
    else:
        raise ValueError(f"unknown clustering method '{method}'; available: {sorted(['kmeans', 'regspace'])}")
    model = estimator.fit(np.ascontiguousarray(aa_features)).fetch_model()
    aa = model.transform(np.ascontiguousarray(aa_features)).astype(np.int64)
    cg = None
    if cg_features is not None:
        cg_features = _as_2d(cg_features, "cg_features")
        if cg_features.shape[1] != aa_features.shape[1]:
            raise ValueError(f"cg_features must have {aa_features.shape[1]} features like aa_features, "
                             f"got {cg_features.shape[1]}")
        cg = model.transform(np.ascontiguousarray(cg_features)).astype(np.int64)
    return {"centers": np.asarray(model.cluster_centers), "aa": aa, "cg": cg}


# ---------------------------------------------------------------------------------------- implied timescales

def fit_msm(dtrajs, lag: int, n_states: Optional[int] = None):
    """Reversible maximum-likelihood MSM at one lag on the largest connected set of the sliding-window counts.

    Parameters
    ----------
    dtrajs : sequence of np.ndarray of int, each shape (n_frames_k,)
        Trajectories not longer than ``lag`` frames are left out.
    lag : int
        Lag time in frames.
    n_states : int, optional
        Total number of discrete states.

    Returns
    -------
    deeptime MarkovStateModel or None
        None when no trajectory is longer than the lag or the connected set has fewer than two states. Its
        ``count_model.state_symbols`` maps its states back to the discrete states.
    """
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    usable = [np.asarray(d, dtype=np.int64) for d in dtrajs if len(d) > lag]
    if not usable:
        return None
    counts = TransitionCountEstimator(lagtime=int(lag), count_mode="sliding", n_states=n_states).fit(usable)
    submodel = counts.fetch_model().submodel_largest()
    if submodel.n_states < 2:
        return None
    return MaximumLikelihoodMSM(reversible=True).fit(submodel).fetch_model()


def msm_timescales(dtrajs, lag: int, n_timescales: int = 3, n_states: Optional[int] = None) -> np.ndarray:
    """Implied timescales of a reversible maximum-likelihood MSM at one lag, in frames.

    The MSM is estimated on the largest connected set of the sliding-window count matrix.

    Parameters
    ----------
    dtrajs : sequence of np.ndarray of int, each shape (n_frames_k,)
    lag : int
        Lag time in frames.
    n_timescales : int
        Number of timescales returned (slowest first); missing ones are NaN.
    n_states : int, optional
        Total number of discrete states.

    Returns
    -------
    np.ndarray, shape (n_timescales,), frames
    """
    out = np.full(n_timescales, np.nan)
    msm = fit_msm(dtrajs, lag, n_states)
    if msm is None:
        return out
    timescales = np.sort(np.real(msm.timescales()))[::-1]
    n = min(n_timescales, len(timescales))
    out[:n] = timescales[:n]
    return out


def bootstrap_blocks(trajectories, n_blocks: int) -> list:
    """Contiguous blocks for a bootstrap: each trajectory cut into ``ceil(n_blocks / n_trajectories)`` pieces,
    so that many short walkers stay whole and one long trajectory gives ``n_blocks`` blocks."""
    pieces = max(1, int(np.ceil(int(n_blocks) / len(trajectories))))
    return [block for t in trajectories for block in np.array_split(np.asarray(t), pieces) if len(block)]


def implied_timescales(dtrajs, lags: Sequence[int], frame_interval_ps: float, n_timescales: int = 3,
                       n_bootstrap: int = 20, n_blocks: int = 10, seed: int = 0, progress: bool = False) -> dict:
    """Implied timescales versus lag time, with bootstrap error bars over trajectory blocks.

    The trajectories are cut into at least ``n_blocks`` contiguous blocks in all (each trajectory into
    ``ceil(n_blocks / n_trajectories)``, so many short walkers stay whole); a bootstrap sample draws as many
    blocks with replacement and estimates the MSM on them as independent trajectories (sliding counts within a
    block).

    Parameters
    ----------
    dtrajs : np.ndarray of int or sequence of them, each shape (n_frames_k,)
    lags : sequence of int
        Lag times in frames.
    frame_interval_ps : float
        Time between frames, ps.
    n_timescales : int
    n_bootstrap : int
        Number of bootstrap samples (0: no error bars, ``std`` is NaN).
    n_blocks : int
        Minimum number of bootstrap blocks over all trajectories.
    seed : int
    progress : bool
        Show a progress bar over the bootstrap samples.

    Returns
    -------
    dict
        ``lags_ps`` (n_lags,), ``timescales_ps`` (n_lags, n_timescales) from all data, ``std_ps``,
        ``lower_ps`` / ``upper_ps`` (16th/84th bootstrap percentiles), all in ps.
    """
    dtrajs = [np.asarray(dtrajs, dtype=np.int64)] if np.ndim(dtrajs[0]) == 0 else \
        [np.asarray(d, dtype=np.int64) for d in dtrajs]
    lags = [int(lag) for lag in lags]
    if not lags or min(lags) < 1:
        raise ValueError(f"lags must be positive integers (frames), got {lags}")
    n_states = int(max(d.max() for d in dtrajs)) + 1
    blocks = bootstrap_blocks(dtrajs, n_blocks)
    rng = np.random.default_rng(seed)
    samples = [rng.integers(len(blocks), size=len(blocks)) for _ in range(int(n_bootstrap))]
    full = np.stack([msm_timescales(dtrajs, lag, n_timescales, n_states) for lag in lags])
    boot = np.full((len(samples), len(lags), n_timescales), np.nan)
    from tqdm.auto import tqdm

    for b, sample in enumerate(tqdm(samples, desc="MSM bootstrap", disable=not progress, leave=False)):
        chosen = [blocks[i] for i in sample]
        for j, lag in enumerate(lags):
            boot[b, j] = msm_timescales(chosen, lag, n_timescales, n_states)
    scale = float(frame_interval_ps)
    result = {"lags_ps": np.asarray(lags, dtype=float) * scale, "timescales_ps": full * scale}
    with np.errstate(all="ignore"), _ignore_nan_warnings():
        result["std_ps"] = np.nanstd(boot, axis=0) * scale if samples else np.full_like(full, np.nan)
        result["lower_ps"] = np.nanpercentile(boot, 16, axis=0) * scale if samples else full * scale
        result["upper_ps"] = np.nanpercentile(boot, 84, axis=0) * scale if samples else full * scale
    return result


def timescale_ratio(cg_its: dict, aa_its: dict, lag_ps: float) -> np.ndarray:
    """Ratio CG/AA of the implied timescales at the lag closest to ``lag_ps``.

    Parameters
    ----------
    cg_its, aa_its : dict
        Results of :func:`implied_timescales` on the same lags.
    lag_ps : float

    Returns
    -------
    np.ndarray, shape (n_timescales,)
    """
    if not np.allclose(cg_its["lags_ps"], aa_its["lags_ps"]):
        raise ValueError("cg_its and aa_its must be computed on the same lags")
    j = int(np.argmin(np.abs(np.asarray(aa_its["lags_ps"]) - lag_ps)))
    with np.errstate(all="ignore"):
        return np.asarray(cg_its["timescales_ps"][j]) / np.asarray(aa_its["timescales_ps"][j])


# ------------------------------------------------------------------------------------------ MSD, diffusion

def mean_squared_displacement(positions, frame_interval_ps: float, max_lag: Optional[int] = None,
                              remove_com: bool = False, masses=None, n_lags: int = 60) -> dict:
    """Mean-squared displacement per bead and of the centre of mass, averaged over time origins.

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, n_beads, 3), nm
        Unwrapped positions.
    frame_interval_ps : float
    max_lag : int, optional
        Largest lag in frames; default ``n_frames // 4``.
    remove_com : bool
        Subtract the molecule's centre of mass from every frame before the per-bead MSD (internal motion).
    masses : np.ndarray, shape (n_beads,), amu, optional
        Weights of the centre of mass; equal masses when omitted.
    n_lags : int
        Number of lags evaluated, spread evenly from 1 to ``max_lag`` (all lags when ``max_lag <= n_lags``).

    Returns
    -------
    dict
        ``time_ps`` (n_lags,), ``msd_nm2`` (n_lags, n_beads) and ``msd_com_nm2`` (n_lags,).
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f"positions must have shape (n_frames, n_beads, 3), got {positions.shape}")
    n_frames, n_beads = positions.shape[:2]
    max_lag = max(1, n_frames // 4) if max_lag is None else int(max_lag)
    if not 1 <= max_lag < n_frames:
        raise ValueError(f"max_lag must be between 1 and n_frames - 1 = {n_frames - 1}, got {max_lag}")
    weights = np.ones(n_beads) if masses is None else np.asarray(masses, dtype=np.float64)
    if weights.shape != (n_beads,):
        raise ValueError(f"masses must have shape ({n_beads},), got {weights.shape}")
    com = np.einsum("fbx,b->fx", positions, weights / weights.sum())
    beads = positions - com[:, None, :] if remove_com else positions
    lags = np.unique(np.round(np.linspace(1, max_lag, min(max_lag, int(n_lags)))).astype(np.int64))
    msd = squared_displacements(beads.reshape(n_frames, -1), lags).reshape(len(lags), n_beads, 3).sum(-1)
    msd_com = squared_displacements(com, lags).sum(-1)
    return {"time_ps": lags * float(frame_interval_ps), "msd_nm2": msd, "msd_com_nm2": msd_com}


def squared_displacements(series, lags) -> np.ndarray:
    """Mean over time origins of ``(x[t + m] - x[t])^2`` for every column of ``series`` and every lag ``m``.

    All lags at once in O(n log n) per column: with ``S(m) = sum_t x[t] x[t + m]`` (an FFT autocorrelation) and
    running sums of ``x^2``, the sum over the ``n - m`` origins is ``sum_{t >= m} x^2 + sum_{t < n - m} x^2 - 2 S(m)``.
    Each column's mean is removed first (a constant shift changes no displacement) to keep the cancellation small.

    Parameters
    ----------
    series : np.ndarray, shape (n_frames, n_columns)
    lags : array of int, each in ``[1, n_frames - 1]``

    Returns
    -------
    np.ndarray, shape (len(lags), n_columns)
    """
    x = np.asarray(series, dtype=np.float64)
    lags = np.asarray(lags, dtype=np.int64)
    n = x.shape[0]
    if lags.size and (lags.min() < 1 or lags.max() >= n):
        raise ValueError(f"lags must lie in [1, {n - 1}], got {lags.min()}..{lags.max()}")
    x = x - x.mean(axis=0)
    running = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x * x, axis=0)])  # running[k] = sum_{t<k}
    products = lagged_products(x, n)
    total = running[n] - running[lags] + running[n - lags] - 2.0 * products[lags]
    return np.maximum(total, 0.0) / (n - lags)[:, None]


def lagged_products(x: np.ndarray, n_lags: int) -> np.ndarray:
    """``sum_t x[t] x[t + m]`` over the ``n - m`` origins, for every column of ``x`` (n_frames, n_columns) and
    ``m = 0 .. n_lags - 1``, shape (n_lags, n_columns): one FFT per column, zero-padded to a power of two of at
    least ``2 n`` so that no product wraps around."""
    size = 1 << int(np.ceil(np.log2(2 * x.shape[0])))
    spectrum = np.fft.rfft(x, n=size, axis=0)
    return np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[:n_lags]


def diffusion_coefficient(time_ps, msd_nm2, fit_range=(0.1, 0.5)):
    """Diffusion coefficient from the linear regime of an MSD, ``MSD = 6 D t + c`` (3-D).

    Parameters
    ----------
    time_ps : np.ndarray, shape (n_lags,), ps
    msd_nm2 : np.ndarray, shape (n_lags,) or (n_lags, n_series), nm^2
    fit_range : (float, float)
        Fractions of the largest lag delimiting the fitted window (by default 10%–50%).

    Returns
    -------
    float or np.ndarray, shape (n_series,), nm^2/ps
    """
    time_ps = np.asarray(time_ps, dtype=np.float64)
    msd = np.asarray(msd_nm2, dtype=np.float64)
    lo, hi = fit_range
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"fit_range must satisfy 0 <= lo < hi <= 1, got {fit_range}")
    mask = (time_ps >= lo * time_ps[-1]) & (time_ps <= hi * time_ps[-1])
    if mask.sum() < 2:
        mask = np.ones_like(time_ps, dtype=bool)
    slope = np.polyfit(time_ps[mask], msd[mask], 1)[0]
    return slope / 6.0


# ------------------------------------------------------------------------------------------ autocorrelation

def autocorrelation(series, max_lag: Optional[int] = None) -> np.ndarray:
    """Normalised autocorrelation function (FFT), averaged over time origins.

    For a vector series the covariances of the components are summed before normalising, so that the
    unit-circle embedding ``(cos theta, sin theta)`` of an angle gives a periodic-safe ACF.

    Parameters
    ----------
    series : np.ndarray, shape (n_frames,) or (n_frames, n_components)
    max_lag : int, optional
        Largest lag in frames (default ``n_frames // 2``).

    Returns
    -------
    np.ndarray, shape (max_lag + 1,)
        ``acf[0] == 1``.
    """
    x = np.asarray(series, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"series must have shape (n_frames,) or (n_frames, n_components), got {x.shape}")
    n = x.shape[0]
    max_lag = n // 2 if max_lag is None else min(int(max_lag), n - 1)
    x = x - x.mean(axis=0)
    cov = lagged_products(x, max_lag + 1).sum(axis=1)
    cov /= (n - np.arange(max_lag + 1))
    if cov[0] <= 0:
        raise ValueError("series has zero variance; its autocorrelation is undefined")
    return cov / cov[0]


def integrated_time(acf, frame_interval_ps: float) -> float:
    """Integrated autocorrelation time, ps: trapezoidal integral of the ACF up to its first zero crossing.

    Parameters
    ----------
    acf : np.ndarray, shape (n_lags + 1,)
        Normalised ACF starting at lag 0.
    frame_interval_ps : float
    """
    acf = np.asarray(acf, dtype=np.float64)
    negative = np.nonzero(acf <= 0)[0]
    stop = int(negative[0]) if negative.size else len(acf)
    window = acf[:stop]
    if len(window) < 2:
        return 0.5 * float(frame_interval_ps)
    return float(frame_interval_ps) * float(np.trapezoid(window))


# ------------------------------------------------------------------------------------------------ ROC-AUC

def roc_auc(scores, labels) -> float:
    """Area under the ROC curve via the Mann–Whitney U statistic (ties count one half).

    Parameters
    ----------
    scores : np.ndarray, shape (n,)
        Higher means "more likely positive".
    labels : np.ndarray, shape (n,)
        1/True for positives, 0/False for negatives.

    Returns
    -------
    float
        0.5 means the scores cannot tell the classes apart.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels must have the same length, got {scores.shape} and {labels.shape}")
    if not np.all(np.isin(labels, [0, 1])):
        raise ValueError("labels must be 0/1 or boolean")
    positive = labels.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"labels need both classes, got {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(scores)  # average ranks for ties
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# ------------------------------------------------------------------------------------- AA vs CG kinetics

def default_lags(n_frames: int, n_lags: int = 8) -> list:
    """Roughly geometric lag times (frames) from 1 to a tenth of the shortest trajectory."""
    top = max(1, int(n_frames) // 10)
    return sorted({int(round(v)) for v in np.geomspace(1, top, n_lags)})


def compare_kinetics(aa_coords, cg_coords, aa_positions, cg_positions, aa_cvs, cg_cvs, frame_interval_ps: float,
                     periodic=(), masses=None, lags=None, lag_ps=None, n_clusters: int = 20,
                     n_timescales: int = 3, n_bootstrap: int = 20, n_blocks: int = 10, seed: int = 0,
                     cluster_method: str = "kmeans", progress: bool = False) -> dict:
    """MSM timescales, MSD/diffusion and CV autocorrelations of AA and CG trajectories on equal terms.

    Parameters
    ----------
    aa_coords, cg_coords : list of np.ndarray, each shape (n_frames_k, n_dims)
        Coordinates clustered for the MSM (e.g. TICA); the centres are fitted on AA only.
    aa_positions, cg_positions : list of np.ndarray, each shape (n_frames_k, n_beads, 3), nm
    aa_cvs, cg_cvs : list of np.ndarray, each shape (n_frames_k, n_cvs)
        Collective variables whose ACFs are compared.
    frame_interval_ps : float
    periodic : sequence of bool, shape (n_cvs,)
        Angle CVs (radians): their ACF uses ``(cos, sin)``.
    masses : np.ndarray, shape (n_beads,), amu, optional
    lags : sequence of int, optional
        MSM lags in frames (default :func:`default_lags`).
    lag_ps : float, optional
        Lag at which the CG/AA timescale ratio is reported (default: the lag a third into ``lags``).
    n_clusters, n_timescales, n_bootstrap, n_blocks, seed
        See :func:`discretize` and :func:`implied_timescales`.
    cluster_method : {"kmeans", "regspace"}
    progress : bool
        Progress bars over the MSM bootstrap.

    Returns
    -------
    dict with keys ``its``, ``msd``, ``acf`` (arrays inside).
    """
    n_min = min(len(x) for x in list(aa_coords) + list(cg_coords))
    lags = default_lags(n_min) if lags is None else [int(v) for v in lags]
    states = discretize(np.concatenate(aa_coords), np.concatenate(cg_coords), n_clusters, cluster_method,
                        seed=seed)
    aa_dtrajs = np.split(states["aa"], np.cumsum([len(x) for x in aa_coords])[:-1])
    cg_dtrajs = np.split(states["cg"], np.cumsum([len(x) for x in cg_coords])[:-1])
    its_args = dict(frame_interval_ps=frame_interval_ps, n_timescales=n_timescales,
                    n_bootstrap=n_bootstrap, n_blocks=n_blocks, seed=seed, progress=progress)
    its = {"aa": implied_timescales(aa_dtrajs, lags, **its_args),
           "cg": implied_timescales(cg_dtrajs, lags, **its_args),
           "n_states": int(len(states["centers"]))}
    lag_ps = float(lags[len(lags) // 3] * frame_interval_ps) if lag_ps is None else float(lag_ps)
    j = int(np.argmin(np.abs(its["aa"]["lags_ps"] - lag_ps)))  # nearest computed lag
    its["lag_ps"] = float(its["aa"]["lags_ps"][j])
    its["ratio"] = timescale_ratio(its["cg"], its["aa"], its["lag_ps"])
    msd = {"aa": _mean_msd(aa_positions, frame_interval_ps, masses, n_min),
           "cg": _mean_msd(cg_positions, frame_interval_ps, masses, n_min)}
    acf = {"aa": _mean_acfs(aa_cvs, periodic, frame_interval_ps, n_min),
           "cg": _mean_acfs(cg_cvs, periodic, frame_interval_ps, n_min)}
    return {"its": its, "msd": msd, "acf": acf}


def _mean_msd(trajectories, frame_interval_ps, masses, n_min) -> dict:
    """Frame-weighted mean MSD over trajectories, raw and with the COM removed, plus diffusion constants."""
    max_lag = max(1, n_min // 4)
    weights = np.array([len(x) - max_lag / 2.0 for x in trajectories], dtype=np.float64)
    weights /= weights.sum()
    raw = [mean_squared_displacement(x, frame_interval_ps, max_lag, False, masses) for x in trajectories]
    internal = [mean_squared_displacement(x, frame_interval_ps, max_lag, True, masses) for x in trajectories]
    out = {"time_ps": raw[0]["time_ps"],
           "msd_nm2": sum(w * r["msd_nm2"] for w, r in zip(weights, raw)),
           "msd_com_nm2": sum(w * r["msd_com_nm2"] for w, r in zip(weights, raw)),
           "msd_internal_nm2": sum(w * r["msd_nm2"] for w, r in zip(weights, internal))}
    out["diffusion_nm2_per_ps"] = diffusion_coefficient(out["time_ps"], out["msd_nm2"])
    out["diffusion_com_nm2_per_ps"] = float(diffusion_coefficient(out["time_ps"], out["msd_com_nm2"]))
    out["diffusion_internal_nm2_per_ps"] = diffusion_coefficient(out["time_ps"], out["msd_internal_nm2"])
    return out


def _mean_acfs(cv_trajectories, periodic, frame_interval_ps, n_min, max_points: int = 300) -> dict:
    """Frame-weighted mean ACF of every CV over trajectories (kept at ``max_points`` lags) and its integrated
    time (from all lags)."""
    max_lag = max(1, n_min // 4)
    n_cvs = cv_trajectories[0].shape[1]
    periodic = list(periodic) + [False] * (n_cvs - len(periodic))
    weights = np.array([len(x) for x in cv_trajectories], dtype=np.float64)
    weights /= weights.sum()
    keep = np.unique(np.round(np.linspace(0, max_lag, min(max_lag + 1, max_points))).astype(np.int64))
    acfs, times = [], []
    for k in range(n_cvs):
        series = [np.column_stack([np.cos(x[:, k]), np.sin(x[:, k])]) if periodic[k] else x[:, k]
                  for x in cv_trajectories]
        acf = sum(w * autocorrelation(s, max_lag) for w, s in zip(weights, series))
        acfs.append(acf[keep])
        times.append(integrated_time(acf, frame_interval_ps))
    return {"time_ps": keep * float(frame_interval_ps), "acf": np.stack(acfs),
            "integrated_time_ps": np.asarray(times)}


# ---------------------------------------------------------------------------------------------- helpers

def _as_2d(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    array = array[:, None] if array.ndim == 1 else array
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (n_frames, n_features), got {array.shape}")
    return array


class _ignore_nan_warnings:
    def __enter__(self):
        import warnings

        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        self._catcher.__exit__(*exc)
