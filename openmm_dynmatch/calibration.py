"""Calibrated-friction baseline: a potential plus the friction that makes its short-time dynamics match the data.

A potential fitted by force matching or relative entropy says nothing about time; practitioners then pick the
friction by hand until the CG model moves as fast as the mapped AA data. :func:`calibrate_friction` does this
as a 1-D search. The statistic is the mean-square displacement (MSD) of the beads at a few lags of the
short-time regime (e.g. 1, 2, 5 and 10 frame intervals), measured from AA start frames:

- AA: ``MSD_AA(L) = < |x_i(t0 + L) - x_i(t0)|^2 >`` over the beads ``i`` and the start frames ``t0``: every
  frame of the given contiguous ranges that is followed by the largest lag inside its range;
- CG: the same average over OpenMM walkers started at a random subset of those frames ``x(t0)`` (Langevin:
  with Maxwell-Boltzmann velocities) and run for ``L`` frame intervals under the candidate friction.

Both sides start from the same distribution of frames. The AA side uses every start frame rather than only the
walkers' ones: pairing each CG walker with its own AA continuation did not reduce the noise of the difference
(short-time displacements depend on the velocities far more than on the start), while the AA side's own
sampling noise, with as few start frames as walkers, was the larger part of the error of the friction.

The mismatch is ``mean_L (log MSD_CG(L) - log MSD_AA(L))^2``: log space weighs every lag alike, although the
MSD grows by an order of magnitude across them. The molecule's centre of mass (mass-weighted) is removed from
every frame first, so the statistic measures internal motion (conformational change and rotation). The
centre-of-mass diffusion of a single solute carries the wrong friction for the CG model's purpose: in implicit
solvent it feels exactly the AA thermostat's friction, in a periodic box it has finite-size (hydrodynamic)
artefacts, and it is not what a CG model is used for (conformational kinetics). Where one friction drives both
by construction (the known-truth tests), keeping the centre of mass would make the estimate more precise.

The search runs over the logarithm of the friction: a coarse geometric grid, then bounded Brent minimisation
(golden section with parabolic steps) on the bracket around the best grid point. Every candidate uses the same
start frames and the same OpenMM seeds, so the objective is a smooth function of the friction (common random
numbers) and its minimum does not move with the noise of each evaluation.

For Langevin dynamics the searched value is the global friction. For Brownian dynamics it is a common factor on
the per-type frictions of :class:`~openmm_dynmatch.dynamics.DynamicsParameters` (their ratios are kept), and
the value reported is the mean friction over beads, the ``friction_per_ps`` an exported model carries.

This module does not import OpenMM: it takes a sampler (:class:`~openmm_dynmatch.openmm.sampler.OpenMMSampler`
or anything with its ``set_model`` / ``record`` / ``n_walkers`` / ``metadata``).
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import List, Sequence, Tuple

import numpy as np
import torch

from openmm_dynmatch.errors import UnstableSimulationError

DEFAULT_LAGS = (1, 2, 5, 10)
_UNSTABLE_PENALTY = 1e6  # mismatch handed to the optimiser for a friction whose CG walkers exploded


@dataclass
class FrictionCalibration:
    """Result of :func:`calibrate_friction`.

    Attributes
    ----------
    friction_per_ps : float
        Chosen friction, 1/ps (Langevin: the global friction; Brownian: the mean bead friction).
    factor : float
        ``friction_per_ps`` divided by the starting (mean bead) friction of the dynamics parameters.
    integrator : str
    lags_ps : list of float, shape (n_lags,)
    aa_msd_nm2 : list of float, shape (n_lags,)
        AA statistic at the lags, nm^2.
    table : list of dict
        Every friction evaluated, in order: ``friction_per_ps``, ``msd_nm2`` (n_lags,) or None, ``mismatch``
        (None where the walkers exploded), ``blowups`` (walkers re-simulated) and ``stage`` (grid or refine).
    at_bound : bool
        The best friction is the lowest or highest of the grid: the true optimum may lie outside the bounds.
    n_walkers : int
        Start frames (CG walkers) per evaluation.
    remove_com : bool
    """

    friction_per_ps: float
    factor: float
    integrator: str
    lags_ps: List[float]
    aa_msd_nm2: List[float]
    table: List[dict] = field(default_factory=list)
    at_bound: bool = False
    n_walkers: int = 0
    remove_com: bool = True

    def to_dict(self) -> dict:
        """JSON-able dict (the content of ``friction_calibration.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrictionCalibration":
        return cls(**data)

    def summary(self) -> dict:
        """The headline numbers for a run summary: choice, bound flag and the best mismatch."""
        best = min((row["mismatch"] for row in self.table if row["mismatch"] is not None), default=None)
        return {"friction_per_ps": self.friction_per_ps, "factor": self.factor, "at_bound": self.at_bound,
                "mismatch": best, "evaluations": len(self.table)}


def displacement_msd(starts, later, masses_amu, remove_com: bool = True) -> np.ndarray:
    """MSD from start frames, averaged over walkers and beads, optionally of the COM-free positions.

    Parameters
    ----------
    starts : np.ndarray, shape (n_walkers, n_beads, 3), nm
    later : np.ndarray, shape (n_walkers, n_lags, n_beads, 3), nm
        Positions of the same walkers after each lag.
    masses_amu : np.ndarray, shape (n_beads,), amu
        Weights of the centre of mass.
    remove_com : bool
        Subtract each frame's (mass-weighted) centre of mass before taking displacements.

    Returns
    -------
    np.ndarray, shape (n_lags,), nm^2
    """
    starts = np.asarray(starts, dtype=np.float64)
    later = np.asarray(later, dtype=np.float64)
    if starts.ndim != 3 or later.ndim != 4 or later.shape[0] != starts.shape[0] or later.shape[2:] != starts.shape[1:]:
        raise ValueError(f"starts must have shape (n_walkers, n_beads, 3) and later (n_walkers, n_lags, n_beads, "
                         f"3) with the same walkers and beads, got {starts.shape} and {later.shape}")
    weights = np.asarray(masses_amu, dtype=np.float64)
    if weights.shape != starts.shape[1:2]:
        raise ValueError(f"masses_amu must have shape ({starts.shape[1]},), got {weights.shape}")
    if remove_com:
        weights = weights / weights.sum()
        starts = starts - np.einsum("wbx,b->wx", starts, weights)[:, None, :]
        later = later - np.einsum("wlbx,b->wlx", later, weights)[:, :, None, :]
    return np.mean(np.sum((later - starts[:, None]) ** 2, axis=-1), axis=(0, 2))


def lag_series(max_lag: int) -> List[int]:
    """Lags 1, 2, 5, 10, 20, 50, ... up to ``max_lag``, and ``max_lag`` itself (frame intervals)."""
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or max_lag < 1:
        raise ValueError(f"max_lag must be a positive integer, got {max_lag!r}")
    lags = sorted({m * 10**e for e in range(len(str(int(max_lag)))) for m in (1, 2, 5)} | {int(max_lag)})
    return [lag for lag in lags if lag <= max_lag]


def lag_steps(lags: Sequence[int], frame_interval_ps: float, timestep_ps: float) -> np.ndarray:
    """Integration steps of each lag (in frame intervals); each must be a whole number of steps."""
    lags = np.asarray(lags)
    if lags.ndim != 1 or lags.size == 0 or not np.issubdtype(lags.dtype, np.integer) or lags.min() < 1 \
            or np.any(np.diff(lags) <= 0):
        raise ValueError(f"lags must be increasing positive integers (frame intervals), got {lags.tolist()}")
    steps = lags * float(frame_interval_ps) / float(timestep_ps)
    if np.any(np.abs(steps - np.round(steps)) > 1e-6):
        raise ValueError(f"every lag of {frame_interval_ps} ps x {lags.tolist()} must be a whole number of CG "
                         f"time steps ({timestep_ps} ps)")
    return np.round(steps).astype(np.int64)


def valid_starts(ranges, max_lag: int) -> np.ndarray:
    """Frames ``t0`` with ``t0 + max_lag`` inside the same half-open range of contiguous frames."""
    starts = [np.arange(int(a), int(b) - max_lag) for a, b in ranges if int(b) - int(a) > max_lag]
    if not starts:
        raise ValueError(f"no frame range in {[tuple(r) for r in ranges]} is longer than the largest lag "
                         f"({max_lag} frames)")
    return np.concatenate(starts)


def set_friction(dynamics, friction_per_ps: float) -> None:
    """Scale the frictions of ``dynamics`` so their mean over beads is ``friction_per_ps`` (ratios kept)."""
    if not (float(friction_per_ps) > 0 and math.isfinite(float(friction_per_ps))):
        raise ValueError(f"friction_per_ps must be a finite positive number, got {friction_per_ps!r}")
    current = float(dynamics.friction_per_bead().detach().mean())
    with torch.no_grad():
        dynamics.log_friction += math.log(float(friction_per_ps) / current)


def scaled_dynamics(dynamics, factor: float):
    """A copy of ``dynamics`` with every friction multiplied by ``factor`` (not learnable)."""
    scaled = copy.deepcopy(dynamics)
    with torch.no_grad():
        scaled.log_friction += math.log(float(factor))
    scaled.log_friction.requires_grad_(False)
    return scaled


def calibrate_friction(potential, frames, ranges, frame_interval_ps: float, masses_amu, dynamics, sampler,
                       lags: Sequence[int] = DEFAULT_LAGS, bounds_per_ps: Tuple[float, float] = (0.1, 100.0),
                       grid_points: int = 7, log_tolerance: float = 0.02, remove_com: bool = True,
                       max_aa_starts: int = 20000, seed: int = 0) -> FrictionCalibration:
    """Friction whose CG short-time MSD matches the mapped AA data (see the module docstring).

    Parameters
    ----------
    potential : torch.nn.Module
        The CG potential (kept fixed).
    frames : np.ndarray, shape (n_frames, n_beads, 3), nm
        Mapped AA frames, several contiguous pieces concatenated (see ``ranges``).
    ranges : sequence of (start, stop)
        Half-open row ranges of ``frames`` that are contiguous in time (the training blocks).
    frame_interval_ps : float
        Time between consecutive rows of ``frames``.
    masses_amu : np.ndarray, shape (n_beads,), amu
    dynamics : openmm_dynmatch.dynamics.DynamicsParameters
        Integrator kind and starting frictions (Brownian: their ratios are kept); not modified.
    sampler : OpenMMSampler
        Runs ``sampler.n_walkers`` walkers (one per start frame) at the time step of ``sampler.metadata``.
    lags : sequence of int
        Lags in frame intervals; each must be a whole number of CG time steps.
    bounds_per_ps : (float, float)
        Range of the search (of the mean bead friction), 1/ps.
    grid_points : int
        Points of the coarse geometric grid (at least 3).
    log_tolerance : float
        Accuracy of the refinement in log friction (0.02: about 2 %).
    remove_com : bool
        Measure internal motion (default; see the module docstring).
    max_aa_starts : int
        AA start frames of the AA statistic (all valid frames up to this many, drawn at random beyond).
    seed : int
        Seeds the choice of start frames and every OpenMM run (the same for every candidate).

    Returns
    -------
    FrictionCalibration
    """
    from scipy.optimize import minimize_scalar

    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 3 or frames.shape[2] != 3:
        raise ValueError(f"frames must have shape (n_frames, n_beads, 3), got {frames.shape}")
    lo, hi = (float(b) for b in bounds_per_ps)
    if not 0 < lo < hi or not math.isfinite(hi):
        raise ValueError(f"bounds_per_ps must be two increasing positive numbers, got {bounds_per_ps!r}")
    if isinstance(grid_points, bool) or not isinstance(grid_points, int) or grid_points < 3:
        raise ValueError(f"grid_points must be an integer of at least 3, got {grid_points!r}")
    lags = [int(lag) for lag in lags]
    steps = lag_steps(lags, frame_interval_ps, sampler.metadata["timestep_ps"])
    candidates = valid_starts(ranges, max(lags))
    if candidates.max() + max(lags) >= len(frames):
        raise ValueError(f"ranges reach row {candidates.max() + max(lags)} but frames has {len(frames)} rows")
    rng = np.random.default_rng([int(seed), 515])
    chosen = rng.choice(candidates, size=sampler.n_walkers, replace=sampler.n_walkers > candidates.size)
    aa_starts = candidates if candidates.size <= max_aa_starts else rng.choice(candidates, max_aa_starts, False)
    aa_msd = displacement_msd(frames[aa_starts], frames[aa_starts[:, None] + np.asarray(lags)], masses_amu,
                              remove_com)
    base = float(dynamics.friction_per_bead().detach().mean())
    run_seed = int(rng.integers(2**31))
    table: List[dict] = []

    def mismatch(log_friction: float, stage: str) -> float:
        friction = math.exp(log_friction)
        row = {"friction_per_ps": friction, "stage": stage, "msd_nm2": None, "mismatch": None, "blowups": 0}
        table.append(row)
        sampler.set_model(potential, scaled_dynamics(dynamics, friction / base))
        try:
            paths = sampler.record(frames[chosen], int(steps[-1]), seed=run_seed)
        except RuntimeError as err:  # every redraw of some walkers exploded: this friction is unusable
            if "exploded" not in str(err):
                raise
            row["blowups"] = sampler.n_walkers
            return _UNSTABLE_PENALTY
        positions = paths.positions.detach().cpu().numpy() if torch.is_tensor(paths.positions) else paths.positions
        cg_msd = displacement_msd(positions[:, 0], positions[:, steps], masses_amu, remove_com)
        row.update(msd_nm2=cg_msd.tolist(), blowups=int(paths.blowups),
                   mismatch=float(np.mean((np.log(cg_msd) - np.log(aa_msd)) ** 2)))
        return row["mismatch"]

    grid = np.linspace(math.log(lo), math.log(hi), grid_points)
    values = np.array([mismatch(x, "grid") for x in grid])
    best = int(np.argmin(values))
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, grid_points - 1)])
    minimize_scalar(lambda x: mismatch(float(x), "refine"), bounds=bracket, method="bounded",
                    options={"xatol": float(log_tolerance)})
    return _result(table, aa_msd, lags, frame_interval_ps, base, dynamics.integrator, best, grid_points,
                   sampler.n_walkers, remove_com)


def _result(table, aa_msd, lags, frame_interval_ps, base, integrator, best_grid, grid_points, n_walkers,
            remove_com) -> FrictionCalibration:
    scored = [row for row in table if row["mismatch"] is not None]
    if not scored:
        raise UnstableSimulationError("the CG walkers exploded at every friction tried: the potential is unstable at "
                                      "the AA start frames (try a smaller dynamics.timestep_ps or a stiffer prior)")
    choice = min(scored, key=lambda row: row["mismatch"])
    at_bound = best_grid in (0, grid_points - 1)
    if at_bound:
        warnings.warn(f"the calibrated friction {choice['friction_per_ps']:.4g}/ps lies at the edge of the search "
                      f"grid: the best match may be outside the bounds; widen them", RuntimeWarning)
    return FrictionCalibration(
        friction_per_ps=float(choice["friction_per_ps"]), factor=float(choice["friction_per_ps"]) / base,
        integrator=integrator, lags_ps=[lag * float(frame_interval_ps) for lag in lags],
        aa_msd_nm2=[float(v) for v in aa_msd], table=table, at_bound=at_bound, n_walkers=int(n_walkers),
        remove_com=bool(remove_com))
