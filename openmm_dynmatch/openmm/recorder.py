"""The training-time path recorder: CG positions at every integration step, in float64 (DESIGN.md section 5).

The path-likelihood estimators (DESIGN.md section 7) rebuild the integrator's noise from the whole path, so
saved frames are not enough: :func:`record_paths` steps the integrator one step at a time and reads the
positions after each step, plus the velocities OpenMM reports at the start of the window (LangevinMiddle's
half-step velocities ``u_0``). One Context is reused across windows (``setPositions``/``setVelocities``);
creating a Context is expensive.

The integrator's random stream is seeded once, when the Context is created (``create_system(seed=...)``);
the ``seed`` of :func:`record_paths` seeds the Maxwell-Boltzmann start velocities. A sequence of windows
recorded from the same Context is therefore reproducible as a whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import openmm
from tqdm.auto import tqdm

from openmm_dynmatch.integrators import get_integrator
from openmm_dynmatch.openmm.integrators import integrator_parameters
from openmm_dynmatch.units import kt_kj_per_mol

_NM = openmm.unit.nanometer
_NM_PER_PS = openmm.unit.nanometer / openmm.unit.picosecond


@dataclass
class RecordedPaths:
    """Paths of ``n_walkers`` walkers recorded at every integration step.

    Attributes
    ----------
    positions : np.ndarray, shape (n_walkers, n_steps + 1, n_beads, 3), nm, float64
        ``positions[:, 0]`` is the start; ``positions[:, k]`` the positions after ``k`` steps.
    velocities : np.ndarray or None, shape (n_walkers, n_beads, 3), nm/ps, float64
        The velocities at the start of the window as OpenMM reports them (LangevinMiddle: half-step
        velocities ``u_0``); None for Brownian dynamics, which has no velocities.
    integrator : str
        ``langevin`` or ``brownian``.
    timestep_ps, friction_per_ps, temperature_k : float
    masses_amu : np.ndarray, shape (n_beads,)
    """

    positions: np.ndarray
    velocities: Optional[np.ndarray]
    integrator: str
    timestep_ps: float
    friction_per_ps: float
    temperature_k: float
    masses_amu: np.ndarray


def maxwell_boltzmann(masses_amu, n_walkers: int, temperature_k: float, seed: Optional[int] = None) -> np.ndarray:
    """Velocities ``(n_walkers, n_beads, 3)`` nm/ps drawn from Maxwell-Boltzmann, each component N(0, kT/m)."""
    masses = np.asarray(masses_amu, dtype=np.float64)
    scale = np.sqrt(kt_kj_per_mol(temperature_k) / masses)[None, :, None]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_walkers, masses.size, 3)) * scale


def record_paths(engine, start_positions, n_steps: int, velocities=None, seed: Optional[int] = None,
                 progress: bool = False) -> RecordedPaths:
    """Run one window per walker and record positions at every step.

    Parameters
    ----------
    engine : CGSystem or openmm.Context
        A :class:`~openmm_dynmatch.openmm.cg_walkers.CGSystem` (its cached Context is used) or a Context whose
        integrator is one of :mod:`openmm_dynmatch.openmm.integrators` (``LangevinMiddleIntegrator``,
        ``BrownianIntegrator``).
    start_positions : array, shape (n_walkers, n_beads, 3), nm
    n_steps : int
        Integration steps per window.
    velocities : array, shape (n_walkers, n_beads, 3), nm/ps, optional
        Start velocities (integrators that need them, e.g. Langevin); default Maxwell-Boltzmann at the
        integrator's temperature, seeded by ``seed``. Ignored (and returned as None) for integrators without
        velocities (Brownian).
    seed : int, optional
        Seed of the Maxwell-Boltzmann draw.
    progress : bool
        Show a progress bar over the steps.

    Returns
    -------
    RecordedPaths
    """
    context = engine.context if hasattr(engine, "context") else engine
    if not isinstance(context, openmm.Context):
        raise ValueError(f"engine must be a CGSystem or an openmm.Context, got {type(engine).__name__}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    kind, timestep, friction, temperature = integrator_parameters(context.getIntegrator())
    system = context.getSystem()
    start = np.asarray(start_positions, dtype=np.float64)
    if start.ndim != 3 or start.shape[2] != 3 or start.shape[0] * start.shape[1] != system.getNumParticles():
        raise ValueError(f"start_positions must have shape (n_walkers, n_beads, 3) with n_walkers * n_beads = "
                         f"{system.getNumParticles()} particles, got {start.shape}")
    n_walkers, n_beads = start.shape[:2]
    masses = np.array([system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(n_beads)])
    context.setPositions(start.reshape(-1, 3))
    start_velocities = None
    if get_integrator(kind).needs_velocities:
        if velocities is None:
            velocities = maxwell_boltzmann(masses, n_walkers, temperature, seed)
        velocities = np.asarray(velocities, dtype=np.float64)
        if velocities.shape != start.shape:
            raise ValueError(f"velocities must have shape {start.shape}, got {velocities.shape}")
        context.setVelocities(velocities.reshape(-1, 3))
        state = context.getState(getVelocities=True)
        start_velocities = state.getVelocities(asNumpy=True).value_in_unit(_NM_PER_PS).reshape(start.shape)
    path = np.empty((n_walkers, n_steps + 1, n_beads, 3), dtype=np.float64)
    path[:, 0] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(_NM).reshape(
        start.shape)
    integrator = context.getIntegrator()
    for k in tqdm(range(1, n_steps + 1), disable=not progress, desc="recording path", leave=False):
        integrator.step(1)
        positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(_NM)
        path[:, k] = positions.reshape(start.shape)
    return RecordedPaths(path, start_velocities, kind, timestep, friction, temperature, masses)

