"""Learnable stochastic-dynamics parameters of a CG model (friction / bead diffusion).

Langevin (``LangevinMiddleIntegrator``): one global friction ``gamma`` (1/ps), learned as ``log gamma``.

Brownian (``BrownianIntegrator``): in overdamped dynamics masses enter only through ``gamma m_i``, the inverse
mobility of bead ``i`` (diffusion ``D_i = kT / (gamma m_i)``). The per-bead-type knob is therefore a friction
``gamma_t`` per bead type, learned as ``log gamma_t``. OpenMM's integrator has a single friction, so the engine
realises per-type frictions exactly by simulating with friction 1/ps and particle masses ``gamma_i m_i``
(:meth:`DynamicsParameters.openmm_masses_and_friction`); the path likelihood is unchanged by that substitution.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
import torch
from torch import nn

INTEGRATORS = ("langevin", "brownian")


class DynamicsParameters(nn.Module):
    """Friction of the CG integrator, learnable through the path likelihood.

    Parameters
    ----------
    integrator : str
        ``"langevin"`` (one global friction) or ``"brownian"`` (one friction per bead type).
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
        if integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator '{integrator}'; available: {sorted(INTEGRATORS)}")
        if not (float(friction_per_ps) > 0 and math.isfinite(float(friction_per_ps))):
            raise ValueError(f"friction_per_ps must be a finite positive number, got {friction_per_ps!r}")
        types = torch.as_tensor(np.asarray(bead_types, dtype=np.int64))
        if types.ndim != 1 or types.numel() == 0 or int(types.min()) < 0:
            raise ValueError(f"bead_types must be a non-empty 1-D sequence of non-negative ints, got {bead_types!r}")
        self.integrator = integrator
        self.register_buffer("bead_types", types)
        n_params = 1 if integrator == "langevin" else int(types.max()) + 1
        log_friction = torch.full((n_params,), math.log(float(friction_per_ps)), dtype=torch.float64)
        self.log_friction = nn.Parameter(log_friction, requires_grad=learnable)

    def friction_per_bead(self) -> torch.Tensor:
        """Friction of every bead, shape (n_beads,), 1/ps, float64 (differentiable)."""
        friction = torch.exp(self.log_friction)
        if self.integrator == "langevin":
            return friction.expand(self.bead_types.numel())
        return friction[self.bead_types]

    def friction_summary(self) -> dict:
        """Current friction values for logs: ``{"friction": ...}`` or ``{"friction_t0": ..., ...}``."""
        values = torch.exp(self.log_friction.detach()).tolist()
        if self.integrator == "langevin":
            return {"friction_per_ps": values[0]}
        return {f"friction_per_ps_type{t}": v for t, v in enumerate(values)}

    def openmm_masses_and_friction(self, masses_amu) -> Tuple[np.ndarray, float]:
        """Particle masses (amu) and the single friction (1/ps) that make OpenMM simulate these dynamics.

        Langevin: the true masses and the global friction. Brownian: masses ``gamma_i m_i`` with friction 1/ps,
        which gives every bead its own ``gamma_i m_i`` (the only combination Brownian dynamics depends on).
        """
        masses = np.asarray(masses_amu, dtype=np.float64)
        friction = self.friction_per_bead().detach().cpu().numpy()
        if masses.shape != friction.shape:
            raise ValueError(f"masses_amu must have shape {friction.shape}, got {masses.shape}")
        if self.integrator == "langevin":
            return masses, float(friction[0])
        return masses * friction, 1.0
