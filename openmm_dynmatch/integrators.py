"""The CG integrators, their mathematics half: one registry entry per OpenMM integrator the trainer can learn.

An entry says what the estimators and the dynamics parameters need to know about an integrator:

- its path log-likelihood (the exact density of OpenMM's update, :mod:`openmm_dynmatch.estimators`);
- whether a path needs its start velocities (LangevinMiddle: yes, the half-step velocities OpenMM reports;
  Brownian: no, the integrator has no velocities);
- how the friction is parameterised: one global friction (Langevin) or one per bead type (Brownian, where
  masses only enter through ``gamma m_i``).

The OpenMM half (building the ``openmm.Integrator``, reading its parameters back, realising per-bead frictions
with OpenMM's single friction) is :mod:`openmm_dynmatch.openmm.integrators`; both halves are keyed by the same
names. A new integrator is one :class:`Integrator` here (its likelihood written in ``estimators``) and one entry
there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch

from openmm_dynmatch import estimators


@dataclass(frozen=True)
class Integrator:
    """The mathematics of one CG integrator.

    Attributes
    ----------
    name : str
        Registry key and the value of ``dynamics.integrator`` / the exported model's ``integrator``.
    openmm_class : str
        Name of the OpenMM integrator class it reproduces.
    needs_velocities : bool
        Whether the path likelihood needs the velocities at the start of every window.
    friction_per_type : bool
        One learnable friction per bead type (True) or one global friction (False).
    log_likelihood : callable
        ``log_likelihood(positions (B, n+1, N, 3), start_velocities (B, N, 3) or None, force_fn,
        masses_amu (N,), friction_per_ps (N,), timestep_ps, kt) -> (B,)`` float64, differentiable in the
        force field and the friction.
    description : str
        One line for documentation and ``--help``.
    """

    name: str
    openmm_class: str
    needs_velocities: bool
    friction_per_type: bool
    log_likelihood: Callable
    description: str = ""


def _langevin_log_likelihood(positions, start_velocities, force_fn, masses_amu, friction_per_ps, timestep_ps, kt):
    return estimators.langevin_middle_log_likelihood(positions, start_velocities, force_fn, masses_amu,
                                                     friction_per_ps, timestep_ps, kt)


def _brownian_log_likelihood(positions, start_velocities, force_fn, masses_amu, friction_per_ps, timestep_ps, kt):
    return estimators.brownian_log_likelihood(positions, force_fn, masses_amu, friction_per_ps, timestep_ps, kt)


INTEGRATORS: Dict[str, Integrator] = {}
#: The integrator of the all-atom reference runs (``dynmatch reference``).
AA_INTEGRATOR = "langevin"


def register_integrator(integrator: Integrator) -> None:
    """Add (or replace) an integrator; its OpenMM half needs an entry of the same name in
    :mod:`openmm_dynmatch.openmm.integrators` before it can be simulated."""
    if not isinstance(integrator, Integrator):
        raise ValueError(f"integrator must be an Integrator, got {type(integrator).__name__}")
    INTEGRATORS[integrator.name] = integrator


def get_integrator(name: str) -> Integrator:
    """The registered integrator ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in INTEGRATORS:
        raise ValueError(f"unknown integrator '{name}'; available: {sorted(INTEGRATORS)}")
    return INTEGRATORS[name]


def integrator_names() -> tuple:
    """Names of the registered integrators, in registration order."""
    return tuple(INTEGRATORS)


def path_log_likelihood(name: str, positions: torch.Tensor, start_velocities: Optional[torch.Tensor], force_fn,
                        masses_amu, friction_per_ps, timestep_ps: float, kt: float) -> torch.Tensor:
    """``log P(x_1..x_n | start)`` of recorded paths under integrator ``name`` (see :class:`Integrator`)."""
    integrator = get_integrator(name)
    velocities = start_velocities if integrator.needs_velocities else None
    return integrator.log_likelihood(positions, velocities, force_fn, masses_amu, friction_per_ps, timestep_ps, kt)


register_integrator(Integrator(
    "langevin", "LangevinMiddleIntegrator", needs_velocities=True, friction_per_type=False,
    log_likelihood=_langevin_log_likelihood,
    description="underdamped Langevin (LFMiddle splitting), one global friction"))
register_integrator(Integrator(
    "brownian", "BrownianIntegrator", needs_velocities=False, friction_per_type=True,
    log_likelihood=_brownian_log_likelihood,
    description="overdamped Brownian dynamics, one friction (bead diffusion) per bead type"))
