"""The CG integrators, their OpenMM half: build the ``openmm.Integrator``, read its parameters back, and realise
per-bead frictions with OpenMM's single friction.

Keyed by the names of :mod:`openmm_dynmatch.integrators` (the mathematics half). Every place of the adapter that
needs an integrator (the System builder, the path recorder, the trainer's sampler) goes through this module.

Per-bead frictions: OpenMM's ``LangevinMiddleIntegrator`` and ``BrownianIntegrator`` take one friction. Brownian
dynamics depends on masses only through ``gamma_i m_i`` (bead ``i`` diffuses with ``kT / (gamma_i m_i)``), so any
per-bead friction is realised exactly by the integrator friction ``gamma`` and particle masses
``m_i gamma_i / gamma``; :func:`openmm_masses_and_friction` is the one place that does this substitution.
Langevin dynamics depends on masses and friction separately, so per-bead Langevin frictions need another
integrator: :func:`per_bead_langevin_integrator` writes OpenMM's ``LangevinMiddleIntegrator`` scheme as a
``CustomIntegrator`` with a friction per particle (productions at chosen per-bead frictions; training learns one
Langevin friction).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import openmm

from openmm_dynmatch.integrators import get_integrator
from openmm_dynmatch.units import kt_kj_per_mol, positive_float


@dataclass(frozen=True)
class OpenMMIntegrator:
    """How one integrator of the registry is built and read back in OpenMM.

    Attributes
    ----------
    name : str
        Key of :data:`openmm_dynmatch.integrators.INTEGRATORS`.
    cls : type
        The ``openmm.Integrator`` subclass; built as ``cls(temperature_k, friction_per_ps, timestep_ps)``.
    masses_carry_friction : bool
        Per-bead frictions are realised through the particle masses (only correct where the dynamics depend on
        ``gamma m_i`` alone, i.e. overdamped dynamics).
    """

    name: str
    cls: type
    masses_carry_friction: bool


OPENMM_INTEGRATORS: Dict[str, OpenMMIntegrator] = {
    "langevin": OpenMMIntegrator("langevin", openmm.LangevinMiddleIntegrator, masses_carry_friction=False),
    "brownian": OpenMMIntegrator("brownian", openmm.BrownianIntegrator, masses_carry_friction=True),
}


def register_openmm_integrator(entry: OpenMMIntegrator) -> None:
    """Add the OpenMM half of an integrator registered in :mod:`openmm_dynmatch.integrators`."""
    get_integrator(entry.name)  # the mathematics half must exist
    OPENMM_INTEGRATORS[entry.name] = entry


def openmm_integrator(name: str) -> OpenMMIntegrator:
    """The OpenMM half of integrator ``name``."""
    get_integrator(name)
    if name not in OPENMM_INTEGRATORS:
        raise ValueError(f"integrator '{name}' has no OpenMM implementation; available: {sorted(OPENMM_INTEGRATORS)}")
    return OPENMM_INTEGRATORS[name]


def create_integrator(name: str, temperature_k, friction_per_ps, timestep_ps, seed: Optional[int] = None):
    """The ``openmm.Integrator`` of integrator ``name``.

    Parameters
    ----------
    name : str
        ``langevin`` (``LangevinMiddleIntegrator``), ``brownian`` (``BrownianIntegrator``) or another registered name.
    temperature_k : float or openmm.unit.Quantity, K
    friction_per_ps : float or openmm.unit.Quantity, 1/ps
    timestep_ps : float or openmm.unit.Quantity, ps
    seed : int, optional
        Random number seed of the integrator (0 or None: OpenMM picks one).
    """
    entry = openmm_integrator(name)
    temperature = positive_float(temperature_k, "K", "temperature_k")
    friction = positive_float(friction_per_ps, "1/ps", "friction_per_ps")
    timestep = positive_float(timestep_ps, "ps", "timestep_ps")
    integrator = entry.cls(temperature, friction, timestep)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
            raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}")
        integrator.setRandomNumberSeed(int(seed))
    return integrator


def per_bead_langevin_integrator(temperature_k, particle_friction_per_ps, timestep_ps,
                                 seed: Optional[int] = None) -> openmm.CustomIntegrator:
    """OpenMM's ``LangevinMiddleIntegrator`` scheme with a friction per particle, as a ``CustomIntegrator``.

    Every step, with ``a_i = exp(-gamma_i dt)`` and ``R`` standard normal:
    ``v += dt f / m; x += dt/2 v; v = a_i v + sqrt(kT (1 - a_i^2) / m) R; x += dt/2 v``, the steps of
    ``LangevinMiddleIntegrator`` (LFMiddle) for a System without constraints (CG Systems have none). With one
    friction for all particles it is the same Markov chain as ``LangevinMiddleIntegrator`` (at zero temperature the
    same trajectory); the path likelihood :func:`openmm_dynmatch.estimators.langevin_middle_log_likelihood` takes
    per-bead frictions as they are. The friction of particle ``i`` is the per-dof variable ``gamma``; ``a`` and
    ``b = sqrt(1 - a^2)`` are kept beside it.

    Parameters
    ----------
    temperature_k : float or openmm.unit.Quantity, K
    particle_friction_per_ps : array, shape (n_particles,), 1/ps
        Friction of every particle of the System (repeat one walker's bead frictions for each walker).
    timestep_ps : float or openmm.unit.Quantity, ps
    seed : int, optional
        Random number seed (0 or None: OpenMM picks one).
    """
    temperature = positive_float(temperature_k, "K", "temperature_k")
    timestep = positive_float(timestep_ps, "ps", "timestep_ps")
    friction = np.asarray(particle_friction_per_ps, dtype=np.float64)
    if friction.ndim != 1 or friction.size == 0 or not np.all(np.isfinite(friction) & (friction > 0)):
        raise ValueError(f"particle_friction_per_ps must be a non-empty 1-D array of finite positive frictions "
                         f"(1/ps), got {np.asarray(particle_friction_per_ps).tolist()!r}")
    a = np.exp(-friction * timestep)
    integrator = openmm.CustomIntegrator(timestep)
    integrator.addGlobalVariable("kT", kt_kj_per_mol(temperature))
    for name, values in (("gamma", friction), ("a", a), ("b", np.sqrt(1.0 - a * a))):
        integrator.addPerDofVariable(name, 0.0)
        integrator.setPerDofVariableByName(name, [openmm.Vec3(v, v, v) for v in values.tolist()])
    integrator.addUpdateContextState()
    integrator.addComputePerDof("v", "v + dt*f/m")
    integrator.addComputePerDof("x", "x + 0.5*dt*v")
    integrator.addComputePerDof("v", "a*v + b*sqrt(kT/m)*gaussian")
    integrator.addComputePerDof("x", "x + 0.5*dt*v")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
            raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}")
        integrator.setRandomNumberSeed(int(seed))
    return integrator


def integrator_parameters(integrator) -> Tuple[str, float, float, float]:
    """``(name, timestep_ps, friction_per_ps, temperature_k)`` of an OpenMM integrator of the registry."""
    for entry in OPENMM_INTEGRATORS.values():
        if type(integrator) is entry.cls:
            return (entry.name, integrator.getStepSize().value_in_unit(openmm.unit.picosecond),
                    integrator.getFriction().value_in_unit(openmm.unit.picosecond**-1),
                    integrator.getTemperature().value_in_unit(openmm.unit.kelvin))
    supported = sorted(e.cls.__name__ for e in OPENMM_INTEGRATORS.values())
    raise ValueError(f"unsupported integrator {type(integrator).__name__}; supported: {supported}")


def openmm_masses_and_friction(name: str, masses_amu: Sequence[float], friction_per_ps,
                               integrator_friction_per_ps: Optional[float] = None) -> Tuple[np.ndarray, float]:
    """Particle masses (amu) and the single OpenMM friction (1/ps) that realise per-bead frictions.

    Parameters
    ----------
    name : str
        Integrator name.
    masses_amu : array, shape (N,), amu
        Bead masses.
    friction_per_ps : float or array, shape () or (N,), 1/ps
        Friction of every bead.
    integrator_friction_per_ps : float, optional
        The integrator's friction ``gamma`` to realise them with (default: the beads' mean friction).

    Returns
    -------
    masses : np.ndarray, shape (N,), amu
        The bead masses, or for integrators whose masses carry the friction (Brownian) ``m_i gamma_i / gamma``.
    friction : float, 1/ps
        The integrator's friction ``gamma``.

    Raises
    ------
    ValueError
        When the frictions differ between beads and the integrator cannot realise that (Langevin).
    """
    masses = np.asarray(masses_amu, dtype=np.float64)
    friction = np.broadcast_to(np.asarray(friction_per_ps, dtype=np.float64), masses.shape).copy()
    if masses.ndim != 1 or not np.all(np.isfinite(friction) & (friction > 0)):
        raise ValueError(f"need one mass per bead and finite positive frictions; got masses {masses.shape} and "
                         f"frictions {friction.tolist()}")
    mean = float(friction.mean())
    gamma = mean if integrator_friction_per_ps is None else positive_float(
        integrator_friction_per_ps, "1/ps", "integrator_friction_per_ps")
    if openmm_integrator(name).masses_carry_friction:
        return masses * friction / gamma, gamma
    if not np.allclose(friction, mean, rtol=1e-12, atol=0.0):
        raise ValueError(f"integrator '{name}' has one friction for all particles; got per-bead frictions "
                         f"{friction.tolist()}")
    return masses, gamma

