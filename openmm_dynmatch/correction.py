"""Dihedral correction: Boltzmann-inversion steps that bring the model's distribution of chosen dihedrals to the
data's.

Force matching constrains the mean force, not the balance of basins the force barely sees: on alanine dipeptide the
force-matched models of one data set differ by 1-2 kJ/mol in the extended - helical free energy along psi, and that
difference, not the barriers, sets their rates 1.6-2.2x apart (``benchmarks/fm_spread.py``). One correction step

    U'(x) = U(x) + kT ln(P_model(phi_c) / P_data(phi_c))

per corrected dihedral ``phi_c``, with the log-ratio fitted by a Fourier series of order ``correction_order``
(weighted least squares over :data:`BINS` bins in which both samples hold at least :data:`MIN_COUNT` frames; no
change asked in the others where the fit would put a well there),
moves the model's marginal of ``phi_c`` to the data's; the model's marginal comes from OpenMM runs of the model
itself (walkers started at data frames, a burn-in discarded). Steps repeat on the corrected model (the dihedrals are
coupled to the rest of the molecule, so one step can over- or undershoot). The series live in the prior
(:class:`~openmm_dynmatch.models.prior.PriorPotential`, ``correction_dihedrals``), so the corrected potential is
saved, resumed and exported like any other.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> model, data = rng.vonmises(0.0, 1.0, 20000), rng.vonmises(0.5, 1.0, 20000)
>>> correction_coefficients(model, data, 300.0, order=1).shape
(3,)
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np

from openmm_dynmatch.features import dihedrals, find_backbone_beads
from openmm_dynmatch.units import kt_kj_per_mol

#: Bins of the dihedral histograms over (-pi, pi].
BINS = 36
#: Frames a bin needs in both samples to enter the fit.
MIN_COUNT = 20
#: Weights (in units of the least-sampled fitted bin's) tried in turn for the "no change" condition on bins outside
#: the fit, until the series no longer dips there below its minimum over the fitted bins (0: the plain fit).
EMPTY_BIN_WEIGHTS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: Backbone dihedrals known by name, as backbone bead names of :func:`openmm_dynmatch.features.find_backbone_beads`.
NAMED_DIHEDRALS = {"phi": ("C_ace", "N", "CA", "C"), "psi": ("N", "CA", "C", "N_nme")}


def fourier_basis(angles, order: int) -> np.ndarray:
    """Columns ``1, cos a, sin a, ..., cos(order a), sin(order a)`` at the angles ``a`` (rad): shape
    (n, 2 order + 1)."""
    angles = np.asarray(angles, dtype=float)
    columns = [np.ones_like(angles)]
    for n in range(1, order + 1):
        columns += [np.cos(n * angles), np.sin(n * angles)]
    return np.stack(columns, axis=-1)


def dihedral_counts(angles, bins: int = BINS) -> np.ndarray:
    """Histogram of dihedral angles (rad) over ``bins`` equal bins of (-pi, pi]: counts as floats, shape (bins,)."""
    return np.histogram(np.asarray(angles, dtype=float), np.linspace(-np.pi, np.pi, bins + 1))[0].astype(float)


def correction_coefficients(model_angles, target_angles, temperature_k: float, order: int = 3,
                            min_count: int = MIN_COUNT, bins: int = BINS) -> np.ndarray:
    """Fourier coefficients ``(c0, a1, b1, ..., a_order, b_order)`` (kJ/mol) of ``kT ln(P_model(a) / P_target(a))``.

    Fitted by least squares over ``bins`` bins of (-pi, pi] in which both samples hold at least ``min_count`` angles,
    each bin weighted by the inverse variance of its log-ratio, ``1 / (1/n_model + 1/n_target)``. Where that fit
    dips, on the other bins, below its lowest value on the fitted ones or below zero (a well where neither sample
    goes), those bins add the condition that the series (without ``c0``) be zero there, with the smallest weight of
    :data:`EMPTY_BIN_WEIGHTS` (times the least-sampled fitted bin's) that removes the dip. Adding the series
    (without ``c0``, which changes no force) to the model's energy moves its distribution of ``a`` toward the
    target's.

    Parameters
    ----------
    model_angles, target_angles : array-like, rad
        Samples of one dihedral from the model and from the target (the data).
    temperature_k : float
    order : int
    min_count, bins : int

    Raises
    ------
    ValueError
        If fewer than ``2 order + 1`` bins hold ``min_count`` angles of both samples.
    """
    return fit_counts(dihedral_counts(model_angles, bins), dihedral_counts(target_angles, bins), temperature_k,
                      order, min_count)


def fit_counts(n_model: np.ndarray, n_target: np.ndarray, temperature_k: float, order: int = 3,
               min_count: int = MIN_COUNT) -> np.ndarray:
    """:func:`correction_coefficients` from the two samples' :func:`dihedral_counts`."""
    bins = len(n_model)
    keep = (n_model >= min_count) & (n_target >= min_count)
    if keep.sum() < 2 * order + 1:
        raise ValueError(f"only {int(keep.sum())} of {bins} dihedral bins hold {min_count} angles of both the model's "
                         f"and the data's samples; a series of order {order} needs {2 * order + 1}: sample the model "
                         f"longer (train.correction_ps, train.correction_walkers) or lower train.correction_order")
    p_model, p_target = n_model[keep] / n_model.sum(), n_target[keep] / n_target.sum()
    y = kt_kj_per_mol(temperature_k) * np.log(p_model / p_target)
    weight = np.sqrt(1.0 / (1.0 / n_model[keep] + 1.0 / n_target[keep]))
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    sampled_basis = fourier_basis(centres[keep], order)
    rows = sampled_basis * weight[:, None]
    targets = y * weight
    if keep.all():
        return np.linalg.lstsq(rows, targets, rcond=None)[0]
    # Bins without enough angles: a series fitted to part of the circle can put a deep well where neither sample
    # goes (alanine dipeptide's phi, half of the circle empty: -43 kJ/mol at phi = +70 degrees against +10 to +15
    # on the sampled half, benchmarks/README.md). Where the plain fit dips there below its lowest value on the
    # sampled bins (or below zero), those bins ask for no change (the series without its constant zero), their
    # weight raised step by step until the dip is gone.
    empty = fourier_basis(centres[~keep], order)
    empty[:, 0] = 0.0
    for scale in EMPTY_BIN_WEIGHTS:
        coefficients = np.linalg.lstsq(np.vstack([rows, empty * scale * weight.min()]),
                                       np.concatenate([targets, np.zeros(len(empty))]), rcond=None)[0]
        sampled = sampled_basis[:, 1:] @ coefficients[1:]
        if (empty[:, 1:] @ coefficients[1:]).min() >= min(sampled.min(), 0.0):
            break
    return coefficients


def resolve_dihedrals(entries: Sequence, metadata: dict) -> np.ndarray:
    """Bead quadruplets of the corrected dihedrals: shape (n, 4).

    Parameters
    ----------
    entries : sequence
        Each ``'phi'`` or ``'psi'`` (alanine-dipeptide-style backbone dihedrals, found from the bead names or the
        mapping, :func:`openmm_dynmatch.features.find_backbone_beads`), or four bead indices as a list or as a string
        ``'i-j-k-l'``.
    metadata : dict
        The mapped trajectory's metadata (``bead_names``, ``mapping``, ``n_beads`` or ``masses_amu``).

    Raises
    ------
    ValueError
        Naming the entry that is neither a known name nor four distinct bead indices of the molecule.
    """
    from openmm_dynmatch.config import parse_dihedral_entry
    from openmm_dynmatch.models.graph import validate_quadruplets

    n_beads = int(metadata.get("n_beads") or len(metadata["masses_amu"]))
    quadruplets, backbone = [], None
    for entry in entries:
        parsed = parse_dihedral_entry(entry)
        if isinstance(parsed, list):
            quadruplets.append(parsed)
            continue
        if backbone is None:
            try:
                backbone = find_backbone_beads(metadata.get("bead_names"), None, metadata.get("mapping"))
            except ValueError as err:
                raise ValueError(f"train.correction_dihedrals: '{parsed}' needs the backbone beads of the molecule: "
                                 f"{err}; give the dihedral as four bead indices instead") from err
        quadruplets.append([backbone[name] for name in NAMED_DIHEDRALS[parsed]])
    quadruplets = validate_quadruplets(quadruplets, n_beads, "train.correction_dihedrals")
    if len({tuple(q) for q in quadruplets.tolist()}) != len(quadruplets):
        raise ValueError(f"train.correction_dihedrals: a dihedral is listed twice: {quadruplets.tolist()}")
    return quadruplets


def with_corrections(potential, quadruplets, order: int = 3):
    """A copy of ``potential`` (a :class:`~openmm_dynmatch.models.potential.CGPotential`) whose prior carries empty
    dihedral corrections on ``quadruplets`` (n, 4) of order ``order``, for :func:`correct` to fill; every other
    parameter and buffer is the potential's (corrections it already had are dropped)."""
    from openmm_dynmatch.models.potential import build_potential

    spec = dict(potential.spec)
    spec["prior"] = dict(spec["prior"], correction_dihedrals=np.asarray(quadruplets, dtype=np.int64).tolist(),
                         correction_order=int(order))
    corrected = build_potential(spec)
    state = {k: v for k, v in potential.state_dict().items() if not k.startswith("prior.correction_")}
    missing, unexpected = corrected.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("prior.correction_") for k in missing), (missing, unexpected)
    return corrected


def sample_model(sampler, potential, dynamics, starts, n_samples: int, steps_between: int, burn_in_steps: int,
                 seed: int, progress: Optional[Callable[[int], None]] = None) -> tuple:
    """Configurations of the model from OpenMM runs of ``sampler.n_walkers`` walkers at ``starts`` (B, N, 3) nm.

    After ``burn_in_steps`` steps, ``n_samples`` configurations per walker ``steps_between`` steps apart.

    Returns
    -------
    (np.ndarray, int)
        Configurations of shape ``(n_samples * B, N, 3)`` nm and the count of walkers that blew up (put back at
        their previous positions by the sampler).
    """
    sampler.set_model(potential, dynamics)
    positions, blowups, frames = np.asarray(starts, dtype=np.float64), 0, []
    rng = np.random.default_rng([int(seed), 707])
    if burn_in_steps > 0:
        advanced = sampler.advance(positions, int(burn_in_steps), int(rng.integers(2**31)))
        positions, blowups = advanced.positions, blowups + advanced.blowups
    for _ in range(int(n_samples)):
        advanced = sampler.advance(positions, int(steps_between), int(rng.integers(2**31)))
        positions, blowups = advanced.positions, blowups + advanced.blowups
        frames.append(positions)
        if progress is not None:
            progress(1)
    return np.concatenate(frames), blowups


def free_energy_difference(n_model: np.ndarray, n_target: np.ndarray, temperature_k: float) -> float:
    """Root-mean-square difference (kJ/mol) of the two free-energy profiles ``-kT ln P(a)`` over the bins both
    samples visit, each profile shifted to zero mean there: how far the model's marginal is from the target's.
    ``n_model``, ``n_target``: the samples' :func:`dihedral_counts`."""
    keep = (n_model > 0) & (n_target > 0)
    if not keep.any():
        return float("nan")
    ratio = (n_model[keep] / n_model.sum()) / (n_target[keep] / n_target.sum())
    difference = kt_kj_per_mol(temperature_k) * np.log(ratio)
    return float(np.sqrt(np.mean((difference - difference.mean()) ** 2)))


def correct(potential, dynamics, sampler, data_frames, temperature_k: float, steps: int, n_samples: int,
            steps_between: int, burn_in_steps: int, seed: int, done: Optional[List[dict]] = None,
            on_step: Optional[Callable[[List[dict]], None]] = None, progress: bool = True) -> List[dict]:
    """Correction steps on ``potential.prior``'s corrected dihedrals until ``steps`` are done.

    Every step samples the current model (:func:`sample_model`, walkers started at frames of ``data_frames`` drawn
    with the step's seed), fits :func:`correction_coefficients` of each corrected dihedral against ``data_frames``
    and adds the series (without its constant) to the prior's corrections.

    Parameters
    ----------
    potential : CGPotential
        With a prior that has ``correction_dihedrals``.
    dynamics : DynamicsParameters
        The friction the model is sampled at (the marginals do not depend on it; how fast they converge does).
    sampler : PathSampler
    data_frames : np.ndarray, shape (n_frames, N, 3), nm
    done : list of dict, optional
        Reports of steps already taken (a resumed run): their coefficients are applied again, in order, and only the
        remaining steps run.
    on_step : callable, optional
        Called with the list of reports after every step (to save it).

    Returns
    -------
    list of dict
        Per step: the coefficients (``cos``, ``sin``, ``constant`` per dihedral, kJ/mol), the RMS difference of the
        model's and the data's free-energy profiles of every dihedral before the step, the samples and blow-ups.
    """
    from tqdm.auto import tqdm

    prior = potential.prior
    quadruplets = prior.correction_index.numpy()
    if len(quadruplets) == 0:
        raise ValueError("potential: its prior has no correction_dihedrals to correct")
    order = prior.correction_order
    data_counts = [dihedral_counts(angles) for angles in dihedrals(data_frames, quadruplets).T]
    reports = []
    for report in done or []:
        prior.add_correction(report["cos"], report["sin"])
        reports.append(report)
    for step in range(len(reports), int(steps)):
        rng = np.random.default_rng([int(seed), 808, step])
        n = sampler.n_walkers
        starts = data_frames[rng.choice(len(data_frames), n, replace=len(data_frames) < n)]
        with tqdm(total=int(n_samples), desc=f"dihedral correction {step + 1}/{steps}", unit="sample",
                  disable=not progress, leave=False) as bar:
            frames, blowups = sample_model(sampler, potential, dynamics, starts, n_samples, steps_between,
                                           burn_in_steps, int(rng.integers(2**31)), bar.update)
        model_counts = [dihedral_counts(angles) for angles in dihedrals(frames, quadruplets).T]
        fits = [fit_counts(m, d, temperature_k, order) for m, d in zip(model_counts, data_counts)]
        cos_terms = np.array([fit[1::2] for fit in fits])
        sin_terms = np.array([fit[2::2] for fit in fits])
        prior.add_correction(cos_terms, sin_terms)
        reports.append({
            "step": step, "samples": int(len(frames)), "blowups": int(blowups),
            "dihedrals": quadruplets.tolist(), "cos": cos_terms.tolist(), "sin": sin_terms.tolist(),
            "constant": [float(fit[0]) for fit in fits],
            "profile_rms_before_kj_per_mol": [free_energy_difference(m, d, temperature_k)
                                              for m, d in zip(model_counts, data_counts)]})
        if on_step is not None:
            on_step(reports)
    return reports
