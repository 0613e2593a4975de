"""One-dimensional free energy profiles along collective variables, and where a potential's energy goes.

The question these answer: along phi and along psi of alanine dipeptide (or any periodic CV), does the CG free
energy follow AA's ``-kT ln p``, and which part of the potential shapes it? Sampled profiles (AA, the prior alone,
the full CG model) are free energies; the energy of one part of a potential averaged in each CV bin over a set of
frames (the network's contribution, the prior's dihedral terms) is not a free energy, but a barrier several times
AA's in such a profile is what a double-counted term looks like.

Example
-------
>>> cv = {"aa": aa_phi_psi, "cg": cg_phi_psi}                  # (n_frames, 2) radians each
>>> prof = free_energy_profiles(cv, 300.0, ["phi", "psi"])
>>> prof["psi"]["free_energy"]["cg"].shape                      # (n_bins,) kJ/mol, minimum 0
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from openmm_dynmatch.analysis import free_energy, histogram


def profile_edges(n_bins: int = 36) -> np.ndarray:
    """Bin edges of a periodic CV in radians, ``(-pi, pi]``, shape ``(n_bins + 1,)``."""
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    return np.linspace(-np.pi, np.pi, n_bins + 1)


def free_energy_profile(values, edges, temperature_k: float) -> np.ndarray:
    """``-kT ln p`` of samples in the bins ``edges``, shifted to minimum 0; NaN in empty bins.

    Parameters
    ----------
    values : array-like, shape (n_samples,)
    edges : array-like, shape (n_bins + 1,)
    temperature_k : float, K

    Returns
    -------
    np.ndarray, shape (n_bins,), kJ/mol
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("values: expected at least one sample, got none")
    return free_energy(histogram(values, edges), temperature_k)


def binned_mean(values, weights, edges) -> np.ndarray:
    """Mean of ``weights`` in each bin of ``values``, shifted to minimum 0; NaN in empty bins.

    Parameters
    ----------
    values : array-like, shape (n_samples,)
        The CV of each sample.
    weights : array-like, shape (n_samples,)
        The quantity averaged, e.g. an energy in kJ/mol.
    edges : array-like, shape (n_bins + 1,)

    Returns
    -------
    np.ndarray, shape (n_bins,)
    """
    values = np.asarray(values, dtype=float).ravel()
    weights = np.asarray(weights, dtype=float).ravel()
    if values.shape != weights.shape:
        raise ValueError(f"values and weights must have the same length, got {values.size} and {weights.size}")
    counts, _ = np.histogram(values, edges)
    sums, _ = np.histogram(values, edges, weights=weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return mean - np.nanmin(mean) if np.isfinite(mean).any() else mean


def free_energy_profiles(cvs: Dict[str, np.ndarray], temperature_k: float, cv_names: Sequence[str],
                         energies: Optional[Dict[str, tuple]] = None, n_bins: int = 36) -> dict:
    """Free energy profiles of sampled CVs and binned energy contributions, one entry per CV.

    Parameters
    ----------
    cvs : dict of label -> np.ndarray, shape (n_frames, n_cvs), rad
        Sampled periodic CVs of each source (AA, CG models).
    temperature_k : float, K
    cv_names : sequence of str, length n_cvs
    energies : dict of label -> (cv_values (n_frames, n_cvs), energy (n_frames,) kJ/mol), optional
        Energy contributions to average per bin over the given frames.
    n_bins : int

    Returns
    -------
    dict
        ``{cv_name: {"edges": (n_bins + 1,), "free_energy": {label: (n_bins,)}, "mean_energy":
        {label: (n_bins,)}}, "temperature_k": ...}``, kJ/mol, each curve shifted to minimum 0.
    """
    edges = profile_edges(n_bins)
    result: dict = {"temperature_k": float(temperature_k)}
    for k, name in enumerate(cv_names):
        entry = {"edges": edges, "free_energy": {}, "mean_energy": {}}
        for label, values in cvs.items():
            entry["free_energy"][label] = free_energy_profile(np.asarray(values)[:, k], edges, temperature_k)
        for label, (values, energy) in (energies or {}).items():
            entry["mean_energy"][label] = binned_mean(np.asarray(values)[:, k], energy, edges)
        result[name] = entry
    return result


def barrier_height(profile, edges, window) -> float:
    """Highest value of a profile between two CV values, relative to the profile's minimum (kJ/mol).

    Parameters
    ----------
    profile : np.ndarray, shape (n_bins,)
    edges : np.ndarray, shape (n_bins + 1,)
    window : (float, float)
        The CV range of the barrier region, rad.
    """
    centres = 0.5 * (np.asarray(edges)[1:] + np.asarray(edges)[:-1])
    inside = (centres >= window[0]) & (centres <= window[1])
    values = np.asarray(profile, dtype=float)[inside]
    return float(np.nanmax(values) - np.nanmin(profile)) if np.isfinite(values).any() else float("nan")
