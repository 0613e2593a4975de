"""Learnable stochastic-dynamics parameters of a CG model (friction / bead diffusion).

How the friction is parameterised comes from the integrator's registry entry
(:mod:`openmm_dynmatch.integrators`):

- one global friction ``gamma`` (1/ps), learned as ``log gamma`` (Langevin, ``LangevinMiddleIntegrator``);
- one friction ``gamma_t`` per bead type, learned as ``log gamma_t`` (Brownian, ``BrownianIntegrator``: in
  overdamped dynamics masses enter only through ``gamma m_i``, the inverse mobility of bead ``i``, so the
  per-type friction is the per-type diffusion knob). The OpenMM adapter realises per-bead frictions with
  OpenMM's single friction (:func:`openmm_dynmatch.openmm.integrators.openmm_masses_and_friction`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from openmm_dynmatch.integrators import get_integrator


class DynamicsParameters(nn.Module):
    """Friction of the CG integrator, learnable through the path likelihood.

    Parameters
    ----------
    integrator : str
        A name of :data:`openmm_dynmatch.integrators.INTEGRATORS`: ``"langevin"`` (one global friction) or
        ``"brownian"`` (one friction per bead type).
    friction_per_ps : float
        Initial friction, 1/ps.
    bead_types : sequence of int, shape (n_beads,)
        Type index of every bead.
    learnable : bool
        Whether the friction is an ``nn.Parameter``.

    Examples
    --------
    >>> dyn = DynamicsParameters("brownian", 5.0, [0, 1, 1, 0])
    >>> dyn.friction_per_bead().tolist()
    [5.0, 5.0, 5.0, 5.0]
    """

    def __init__(self, integrator: str, friction_per_ps: float, bead_types: Sequence[int], learnable: bool = True):
        super().__init__()
        self.per_type = get_integrator(integrator).friction_per_type
        if not (float(friction_per_ps) > 0 and math.isfinite(float(friction_per_ps))):
            raise ValueError(f"friction_per_ps must be a finite positive number, got {friction_per_ps!r}")
        types = torch.as_tensor(np.asarray(bead_types, dtype=np.int64))
        if types.ndim != 1 or types.numel() == 0 or int(types.min()) < 0:
            raise ValueError(f"bead_types must be a non-empty 1-D sequence of non-negative ints, got {bead_types!r}")
        self.integrator = integrator
        self.register_buffer("bead_types", types)
        n_params = int(types.max()) + 1 if self.per_type else 1
        log_friction = torch.full((n_params,), math.log(float(friction_per_ps)), dtype=torch.float64)
        self.log_friction = nn.Parameter(log_friction, requires_grad=learnable)

    def friction_per_bead(self) -> torch.Tensor:
        """Friction of every bead, shape (n_beads,), 1/ps, float64 (differentiable)."""
        friction = torch.exp(self.log_friction)
        if self.per_type:
            return friction[self.bead_types]
        return friction.expand(self.bead_types.numel())

    def friction_summary(self) -> dict:
        """Current friction values for logs: ``{"friction": ...}`` or ``{"friction_t0": ..., ...}``."""
        values = torch.exp(self.log_friction.detach()).tolist()
        if self.per_type:
            return {f"friction_per_ps_type{t}": v for t, v in enumerate(values)}
        return {"friction_per_ps": values[0]}
