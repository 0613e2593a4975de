"""CG paths recorded by a sampler and the windows cut from them: the contract between the trainer, the
estimators and the OpenMM adapter (which fills :class:`Paths`), owned by none of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Paths:
    """CG paths recorded at every integration step.

    Attributes
    ----------
    positions : torch.Tensor, shape (B, n + 1, N, 3), float64, nm
    velocities : torch.Tensor, shape (B, N, 3), float64, nm/ps
        Velocities OpenMM reported at the start of every window (Langevin; zeros for Brownian).
    blowups : int
        Walkers whose windows became non-finite and were redrawn.
    """

    positions: torch.Tensor
    velocities: torch.Tensor
    blowups: int = 0


def windows_from_paths(paths: torch.Tensor, steps_per_frame: int) -> torch.Tensor:
    """Frames every ``steps_per_frame`` integration steps: ``(B, n+1, N, 3) -> (B, T+1, N, 3)``."""
    return paths[:, ::steps_per_frame]
