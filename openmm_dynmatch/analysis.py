"""Evaluation of CG models against mapped AA data: features, free energy surfaces, JS divergence, comparison.

Every function returns numbers (arrays, JSON-able dicts) and never plots; :mod:`openmm_dynmatch.report` draws
them. Features (dihedrals, phi/psi from beads, TICA) live in :mod:`openmm_dynmatch.features`, kinetic
observables (MSM timescales, MSD, ACF, ROC-AUC) in :mod:`openmm_dynmatch.kinetics`.
Angles are in radians, lengths in nm, times in ps, free energies in kJ/mol.
"""
from __future__ import annotations

import numpy as np

from . import trajio
from .features import (angles, backbone_phi_psi, bond_graph_terms, default_features, distances,
                       find_backbone_beads, tica_project)
from .kinetics import roc_auc  # noqa: F401  (public here too: the trainer scores classifiers with it)
from .units import kt_kj_per_mol


# ------------------------------------------------------------------------------------- thermodynamics

def shared_edges(*samples, n_bins: int = 60, periodic: bool = False, margin: float = 0.02) -> np.ndarray:
    """Bin edges covering all given sample sets (or ``[-pi, pi]`` for periodic angles).

    Parameters
    ----------
    *samples : np.ndarray, each shape (n_k,)
    n_bins : int
    periodic : bool
        Angles in radians: edges span exactly ``[-pi, pi]``.
    margin : float
        Fraction of the range added on both sides (non-periodic).

    Returns
    -------
    np.ndarray, shape (n_bins + 1,)
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    if periodic:
        return np.linspace(-np.pi, np.pi, n_bins + 1)
    values = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1) for s in samples])
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("samples hold no finite values to bin")
    lo, hi = float(values.min()), float(values.max())
    pad = max(margin * (hi - lo), 1e-6 * max(1.0, abs(lo), abs(hi)))  # constant samples get a finite bin
    return np.linspace(lo - pad, hi + pad, n_bins + 1)


def histogram(samples, edges) -> np.ndarray:
    """Counts of samples on given bin edges (1-D or 2-D).

    Parameters
    ----------
    samples : np.ndarray, shape (n,) or (n, 2)
    edges : np.ndarray, shape (n_bins + 1,), or a pair of them for 2-D

    Returns
    -------
    np.ndarray, shape (n_bins,) or (n_bins_x, n_bins_y), float counts
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        return np.histogram(samples, bins=np.asarray(edges))[0].astype(np.float64)
    if samples.ndim != 2 or samples.shape[1] != 2 or len(edges) != 2:
        raise ValueError(f"2-D samples must have shape (n, 2) with two edge arrays, got {samples.shape}")
    return np.histogram2d(samples[:, 0], samples[:, 1], bins=[np.asarray(e) for e in edges])[0]


def free_energy(counts, temperature_k: float) -> np.ndarray:
    """Free energy ``F = -kT log p`` of a histogram, kJ/mol, shifted so that its minimum is 0.

    Empty bins have no defined free energy and are NaN (shown blank in figures).

    Parameters
    ----------
    counts : np.ndarray, any shape
    temperature_k : float

    Returns
    -------
    np.ndarray, same shape as ``counts``, kJ/mol
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("counts are empty: no samples fall inside the bins")
    p = counts / counts.sum()
    with np.errstate(divide="ignore"):
        f = -kt_kj_per_mol(temperature_k) * np.log(p)
    f[~np.isfinite(f)] = np.nan
    return f - np.nanmin(f)


def js_divergence(p_counts, q_counts, pseudo_count: float = 0.0) -> float:
    """Jensen–Shannon divergence between two histograms on the same bins (natural log, in [0, log 2]).

    ``JS = (KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``; terms with zero probability contribute 0
    (``0 log 0 = 0``), so no pseudo-count is needed: identical histograms give 0 and disjoint ones log 2.
    ``pseudo_count`` (default 0) is added to every bin of both histograms before normalising, to smooth sparse
    histograms on purpose; it pulls the value towards 0.

    Parameters
    ----------
    p_counts, q_counts : np.ndarray, same shape
        Counts (or unnormalised probabilities) per bin.
    pseudo_count : float
    """
    p = np.asarray(p_counts, dtype=np.float64).reshape(-1) + pseudo_count
    q = np.asarray(q_counts, dtype=np.float64).reshape(-1) + pseudo_count
    if p.shape != q.shape:
        raise ValueError(f"histograms must have the same bins, got {p.shape} and {q.shape}")
    if pseudo_count < 0 or p.min() < 0 or q.min() < 0 or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("histograms must be non-negative and not empty, and pseudo_count >= 0")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    return float(0.5 * (_kl_terms(p, m) + _kl_terms(q, m)))


def js_divergence_samples(a, b, edges, pseudo_count: float = 0.0) -> float:
    """Jensen–Shannon divergence between two sample sets histogrammed on the same ``edges`` (1-D or 2-D).

    Parameters
    ----------
    a, b : np.ndarray, shape (n,) or (n, 2)
    edges : bin edges, as for :func:`histogram`
    pseudo_count : float
    """
    return js_divergence(histogram(a, edges), histogram(b, edges), pseudo_count)


def _kl_terms(p, m) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / m[mask])))


# ------------------------------------------------------------------------------------------ comparison

def compare(aa, cg, lags=None, lag_ps=None, backbone="auto", n_bins: int = 60, tica_lag: int = 1,
            n_clusters: int = 20, n_timescales: int = 3, n_bootstrap: int = 20, n_blocks: int = 10,
            seed: int = 0, cluster_method: str = "kmeans", progress: bool = False) -> dict:
    """Compare mapped AA and CG trajectories: FES + JS divergence, MSM timescales, MSD/diffusion, ACF, bonds.

    Parameters
    ----------
    aa, cg : trajio.TrajectoryData or list of them
        Mapped AA and CG trajectories of the same beads at the same frame interval. A file holding several
        walkers (``n_walkers * n_beads`` particles, walker-major) is split into one trajectory per walker, and a
        file holding several independent runs one after the other (``trajectory_lengths`` in its metadata) into
        one trajectory per run: TICA, MSM counts, core transitions, MSD and ACF never join two of them.
    lags : sequence of int, optional
        MSM lag times in frames.
    lag_ps : float, optional
        Lag at which the CG/AA timescale ratio is reported.
    backbone : "auto", dict or None
        Alanine-dipeptide backbone bead indices (see :func:`find_backbone_beads`); ``"auto"`` looks them up by
        name and falls back to TICA coordinates when they are absent; None always uses TICA.
    n_bins : int
        Bins per CV axis of the free energy surfaces.
    tica_lag : int
        TICA lag in frames (TICA is fitted on AA only).
    n_clusters, n_timescales, n_bootstrap, n_blocks, seed, cluster_method, progress
        MSM settings, see :func:`openmm_dynmatch.kinetics.compare_kinetics`.

    Returns
    -------
    dict
        JSON-able: ``info``, ``fes``, ``its``, ``msd``, ``acf``, ``bonds``, ``summary`` (headline scalars).
    """
    from . import kinetics

    info, aa_pos, cg_pos, metadata = _prepare(aa, cg)
    beads = _resolve_backbone(backbone, metadata, aa, info["n_beads"])
    bonds = np.asarray(metadata.get("bonds") or [], dtype=np.int64).reshape(-1, 2)
    aa_feat = [default_features(x, bonds, beads) for x in aa_pos]
    cg_feat = [default_features(x, bonds, beads) for x in cg_pos]
    tica = tica_project(aa_feat, cg_feat, lagtime=tica_lag, dim=2)
    if beads is not None:
        aa_cvs = [backbone_phi_psi(x, beads) for x in aa_pos]
        cg_cvs = [backbone_phi_psi(x, beads) for x in cg_pos]
        info.update(cv_names=["phi", "psi"], cv_units="rad", periodic=[True, True], backbone=beads)
    else:
        aa_cvs, cg_cvs = tica["aa"], tica["cg"]
        info.update(cv_names=[f"tIC{k + 1}" for k in range(aa_cvs[0].shape[1])], cv_units="1",
                    periodic=[False] * aa_cvs[0].shape[1], backbone=None)
    info["tica_timescales_ps"] = tica["timescales_frames"] * info["frame_interval_ps"]
    result = {"info": info,
              "fes": fes_comparison(np.concatenate(aa_cvs), np.concatenate(cg_cvs), info["temperature_k"],
                                    info["cv_names"], info["periodic"], n_bins)}
    result.update(kinetics.compare_kinetics(
        tica["aa"], tica["cg"], aa_pos, cg_pos, aa_cvs, cg_cvs, info["frame_interval_ps"], info["periodic"],
        metadata.get("masses_amu"), lags, lag_ps, n_clusters, n_timescales, n_bootstrap, n_blocks, seed,
        cluster_method, progress))
    result["bonds"] = bonded_distributions(np.concatenate(aa_pos), np.concatenate(cg_pos), bonds, n_bins)
    if beads is not None:
        result["cores"] = psi_core_kinetics(aa_cvs, cg_cvs, info["frame_interval_ps"], n_bootstrap, n_blocks, seed)
        result["mirror"] = {side: mirror_fraction(np.concatenate(cvs)) for side, cvs in (("aa", aa_cvs),
                                                                                      ("cg", cg_cvs))}
    result["summary"] = _summary(result)
    return to_jsonable(result)


def psi_core_kinetics(aa_cvs, cg_cvs, frame_interval_ps: float, n_bootstrap: int = 50, n_blocks: int = 10,
                      seed: int = 0) -> dict:
    """Extended <-> helical transitions of alanine dipeptide counted on psi cores, AA and CG, and the CG/AA
    ratio of their relaxation times (see :mod:`openmm_dynmatch.cores`).

    Parameters
    ----------
    aa_cvs, cg_cvs : list of np.ndarray, each shape (n_frames_k, 2), radians (phi, psi)
    frame_interval_ps : float
    """
    from .cores import ALANINE_PSI_CORES_RAD, alanine_psi_cores, core_set_kinetics

    sides = {name: core_set_kinetics([alanine_psi_cores(x) for x in cvs], frame_interval_ps, 2, n_bootstrap,
                                     n_blocks, seed) for name, cvs in (("aa", aa_cvs), ("cg", cg_cvs))}
    aa_tau, cg_tau = sides["aa"]["relaxation_time_ps"], sides["cg"]["relaxation_time_ps"]
    with np.errstate(all="ignore"):
        ratio = cg_tau / aa_tau if np.isfinite(aa_tau) and aa_tau > 0 else np.nan
    return {**sides, "core_names": list(ALANINE_PSI_CORES_RAD), "ratio": ratio}


def fes_comparison(aa_cvs, cg_cvs, temperature_k: float, cv_names, periodic, n_bins: int = 60) -> dict:
    """Free energy surfaces of AA and CG on shared bins and their JS divergences (2-D and per CV).

    Parameters
    ----------
    aa_cvs, cg_cvs : np.ndarray, shape (n_frames, n_cvs)
        With ``n_cvs >= 2`` the 2-D surface uses the first two.
    temperature_k : float
    cv_names : list of str
    periodic : list of bool
    n_bins : int

    Returns
    -------
    dict
        ``edges`` (list per CV), ``aa_1d``/``cg_1d`` (list of F arrays, kJ/mol), ``js_1d`` (list),
        and for two or more CVs ``aa_2d``/``cg_2d`` (F, kJ/mol, NaN where empty), ``js_2d`` and
        ``js_2d_aa_split_half``: the JS divergence between the first and the second half of the AA frames on
        the same bins, the noise floor of ``js_2d`` at this data length.
    """
    aa_cvs = np.asarray(aa_cvs, dtype=np.float64).reshape(len(aa_cvs), -1)
    cg_cvs = np.asarray(cg_cvs, dtype=np.float64).reshape(len(cg_cvs), -1)
    edges = [shared_edges(aa_cvs[:, k], cg_cvs[:, k], n_bins=n_bins, periodic=periodic[k])
             for k in range(aa_cvs.shape[1])]
    out = {"cv_names": list(cv_names), "edges": edges, "aa_1d": [], "cg_1d": [], "js_1d": []}
    for k, e in enumerate(edges):
        aa_counts, cg_counts = histogram(aa_cvs[:, k], e), histogram(cg_cvs[:, k], e)
        out["aa_1d"].append(free_energy(aa_counts, temperature_k))
        out["cg_1d"].append(free_energy(cg_counts, temperature_k))
        out["js_1d"].append(js_divergence(aa_counts, cg_counts))
    if aa_cvs.shape[1] >= 2:
        aa_counts = histogram(aa_cvs[:, :2], edges[:2])
        cg_counts = histogram(cg_cvs[:, :2], edges[:2])
        half = len(aa_cvs) // 2
        out.update(aa_2d=free_energy(aa_counts, temperature_k), cg_2d=free_energy(cg_counts, temperature_k),
                   js_2d=js_divergence(aa_counts, cg_counts),
                   js_2d_aa_split_half=js_divergence(histogram(aa_cvs[:half, :2], edges[:2]),
                                                     histogram(aa_cvs[half:, :2], edges[:2])))
    return out


def bonded_distributions(aa_positions, cg_positions, bonds, n_bins: int = 60) -> dict:
    """Bond-length and bond-angle histograms of AA and CG on shared bins, with JS divergences.

    Parameters
    ----------
    aa_positions, cg_positions : np.ndarray, shape (n_frames, n_beads, 3), nm
    bonds : array of int, shape (n_bonds, 2)
    n_bins : int

    Returns
    -------
    dict
        ``bonds`` / ``angles`` index lists; ``bond_edges_nm`` and ``bond_density`` (``aa``/``cg`` lists of
        densities, 1/nm); ``bond_js``, ``angle_js``; means ``bond_mean_nm`` and ``angle_mean_rad``.
    """
    n_beads = np.asarray(aa_positions).shape[1]
    terms = bond_graph_terms(bonds, n_beads)
    out = {"bonds": terms["bonds"], "angles": terms["angles"], "bond_edges_nm": [],
           "bond_density": {"aa": [], "cg": []}, "bond_js": [], "angle_js": [],
           "bond_mean_nm": {"aa": [], "cg": []}, "angle_mean_rad": {"aa": [], "cg": []}}
    for kind, index, func in (("bond", terms["bonds"], distances), ("angle", terms["angles"], angles)):
        if not len(index):
            continue
        aa_values, cg_values = func(aa_positions, index), func(cg_positions, index)
        for k in range(len(index)):
            e = shared_edges(aa_values[:, k], cg_values[:, k], n_bins=n_bins)
            aa_counts, cg_counts = histogram(aa_values[:, k], e), histogram(cg_values[:, k], e)
            out[f"{kind}_js"].append(js_divergence(aa_counts, cg_counts))
            key = "bond_mean_nm" if kind == "bond" else "angle_mean_rad"
            out[key]["aa"].append(float(aa_values[:, k].mean()))
            out[key]["cg"].append(float(cg_values[:, k].mean()))
            if kind == "bond":
                width = np.diff(e)
                out["bond_edges_nm"].append(e)
                out["bond_density"]["aa"].append(aa_counts / (aa_counts.sum() * width))
                out["bond_density"]["cg"].append(cg_counts / (cg_counts.sum() * width))
    return out


def to_jsonable(value):
    """Convert numpy arrays/scalars inside dicts and lists to plain Python; NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def _summary(result: dict) -> dict:
    fes, its, msd, acf = result["fes"], result["its"], result["msd"], result["acf"]
    with np.errstate(all="ignore"):
        summary = {
            "js_fes_2d": fes.get("js_2d"),
            "js_fes_2d_aa_split_half": fes.get("js_2d_aa_split_half"),
            "js_fes_1d": dict(zip(fes["cv_names"], fes["js_1d"])),
            "timescale_lag_ps": its["lag_ps"],
            "timescale_ratio": np.asarray(its["ratio"]),
            "timescales_aa_ps": np.asarray(its["aa"]["timescales_ps"])[_lag_row(its)],
            "timescales_cg_ps": np.asarray(its["cg"]["timescales_ps"])[_lag_row(its)],
            "diffusion_com_ratio": msd["cg"]["diffusion_com_nm2_per_ps"] / msd["aa"]["diffusion_com_nm2_per_ps"],
            "diffusion_ratio_per_bead": np.asarray(msd["cg"]["diffusion_nm2_per_ps"])
            / np.asarray(msd["aa"]["diffusion_nm2_per_ps"]),
            "acf_time_ratio": dict(zip(fes["cv_names"], np.asarray(acf["cg"]["integrated_time_ps"])
                                       / np.asarray(acf["aa"]["integrated_time_ps"]))),
            "bond_js_max": max(result["bonds"]["bond_js"], default=None),
            "angle_js_max": max(result["bonds"]["angle_js"], default=None),
        }
        if "cores" in result:
            cores = result["cores"]
            summary.update(core_relaxation_ratio=cores["ratio"],
                           core_relaxation_aa_ps=cores["aa"]["relaxation_time_ps"],
                           core_relaxation_cg_ps=cores["cg"]["relaxation_time_ps"],
                           core_relaxation_cg_bound_ps=cores["cg"]["relaxation_time_bound_ps"],
                           core_transitions_aa=cores["aa"]["n_transitions"],
                           core_transitions_cg=cores["cg"]["n_transitions"],
                           core_memory_ratio_aa=cores["aa"]["memory_ratio"],
                           core_memory_ratio_cg=cores["cg"]["memory_ratio"])
        if "mirror" in result:
            summary.update(phi_positive_fraction_aa=result["mirror"]["aa"],
                           phi_positive_fraction_cg=result["mirror"]["cg"])
    return summary


def mirror_fraction(phi_psi) -> float:
    """Fraction of alanine-dipeptide frames with ``phi > 0``: the left-handed region, where the mirror image of
    the L-peptide's extended and helical basins lies (0.1% of frames in AA data at 300 K). A CG model blind to
    chirality puts more weight there.

    Parameters
    ----------
    phi_psi : np.ndarray, shape (n_frames, 2), rad
    """
    phi_psi = np.asarray(phi_psi, dtype=float).reshape(-1, 2)
    return float(np.mean(phi_psi[:, 0] > 0.0)) if len(phi_psi) else float("nan")


def _lag_row(its: dict) -> int:
    return int(np.argmin(np.abs(np.asarray(its["aa"]["lags_ps"]) - its["lag_ps"])))


def _prepare(aa, cg):
    """Check that AA and CG data are comparable and return per-walker position lists."""
    aa_list = list(aa) if isinstance(aa, (list, tuple)) else [aa]
    cg_list = list(cg) if isinstance(cg, (list, tuple)) else [cg]
    metadata = dict(aa_list[0].metadata)
    names = metadata.get("bead_names") or cg_list[0].metadata.get("bead_names")
    n_beads = len(names) if names else aa_list[0].positions.shape[1]
    for side, items in (("aa", aa_list), ("cg", cg_list)):
        for data in items:
            other = data.metadata.get("bead_names")
            if names and other and list(other) != list(names):
                raise ValueError(f"{side} bead_names {other} differ from the AA bead_names {names}")
            shortest = min(stop - start for start, stop in trajio.trajectory_segments(data.metadata, data.n_frames))
            if data.positions.shape[1] % n_beads or shortest < 2:
                raise ValueError(f"{side} trajectory has {data.positions.shape[1]} particles and "
                                 f"{shortest} frames (shortest run in the file); expected a multiple of "
                                 f"{n_beads} beads and >= 2 frames")
    intervals = {side: [_frame_interval(d) for d in items] for side, items in (("aa", aa_list), ("cg", cg_list))}
    reference = intervals["aa"][0]
    for side, values in intervals.items():
        if not np.allclose(values, reference, rtol=1e-4):
            shown = ", ".join(f"{v:.6g}" for v in values)
            raise ValueError(f"frame intervals differ: AA {reference:.6g} ps, {side} {shown} ps; "
                             f"load the files with strides that give the same interval")
    temperature = metadata.get("temperature_k") or cg_list[0].metadata.get("temperature_k")
    if temperature is None:
        raise ValueError("temperature_k is missing from the metadata of both the AA and the CG trajectory")
    aa_pos = [w for d in aa_list for w in _trajectories(d, n_beads)]
    cg_pos = [w for d in cg_list for w in _trajectories(d, n_beads)]
    if not metadata.get("bonds"):
        metadata["bonds"] = cg_list[0].metadata.get("bonds") or []
    metadata["bead_names"] = names
    info = {"n_beads": int(n_beads), "frame_interval_ps": float(reference), "temperature_k": float(temperature),
            "n_frames_aa": int(sum(len(x) for x in aa_pos)), "n_frames_cg": int(sum(len(x) for x in cg_pos)),
            "n_trajectories_aa": len(aa_pos), "n_trajectories_cg": len(cg_pos), "bead_names": names}
    return info, aa_pos, cg_pos, metadata


def _frame_interval(data) -> float:
    """Frame interval of a trajectory, ps, from its time stamps (so loading strides count), else metadata.

    In a file of several runs each restarts its clock, so the stamps are read within each run (the longest).
    """
    runs = [np.asarray(data.time_ps[a:b]) for a, b in trajio.trajectory_segments(data.metadata, data.n_frames)]
    longest = max(runs, key=len)
    if len(longest) >= 2 and all(np.all(np.diff(t) > 0) for t in runs):
        # 9 significant digits: drops the round-off of summed float32 stamps (0.0999999999970138 -> 0.1)
        return float(f"{(longest[-1] - longest[0]) / (len(longest) - 1):.9g}")
    if data.metadata.get("frame_interval_ps"):
        return float(data.metadata["frame_interval_ps"])
    raise ValueError("cannot tell the frame interval: time_ps is not increasing and frame_interval_ps is missing")


def _trajectories(data, n_beads: int) -> list:
    """Positions of every walker of every independent run stored in ``data``, shape (n_frames_k, n_beads, 3)."""
    segments = trajio.trajectory_segments(data.metadata, data.n_frames)
    return [w for start, stop in segments for w in _walkers(data.positions[start:stop], n_beads)]


def _walkers(positions, n_beads: int) -> list:
    n_walkers = positions.shape[1] // n_beads
    return [positions[:, w * n_beads:(w + 1) * n_beads] for w in range(n_walkers)]


def _resolve_backbone(backbone, metadata, aa, info_beads: int):
    if backbone is None or isinstance(backbone, dict):
        return backbone
    if backbone != "auto":
        raise ValueError(f"backbone must be 'auto', None or a dict of bead indices, got {backbone!r}")
    first = aa[0] if isinstance(aa, (list, tuple)) else aa
    topology = first.topology if getattr(first.topology, "n_atoms", None) == info_beads else None
    try:
        return find_backbone_beads(metadata.get("bead_names"), topology, metadata.get("mapping"))
    except ValueError:
        return None
