"""The sampler contract: what the trainer asks of whatever simulates the CG model, owned by neither side.

The trainer (:mod:`openmm_dynmatch.train`), the relative-entropy and calibration stages and the
indistinguishability probe talk to a :class:`PathSampler`; the OpenMM adapter provides one
(:class:`openmm_dynmatch.openmm.sampler.OpenMMSampler`, kind ``local``). A sampler is chosen from the config
(``train.sampler``) through :data:`SAMPLERS`, so a distributed sampler is one more entry.

Paths are recorded at every integration step (the path likelihoods rebuild the integrator's noise from them);
:func:`windows_from_paths` cuts the classifier's windows out of them. A walker has *blown up* when its positions
become non-finite or it moves farther than :data:`MAX_STEP_NM` per integration step (:func:`blown_up`): samplers
redraw or reset such walkers and report how many they met.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Protocol, Union, runtime_checkable

import numpy as np
import torch

#: Largest distance (nm) a bead may move in one integration step before its walker counts as blown up.
MAX_STEP_NM = 1.0


@dataclass
class Paths:
    """CG paths recorded at every integration step.

    Attributes
    ----------
    positions : torch.Tensor, shape (B, n + 1, N, 3), float64, nm
    velocities : torch.Tensor, shape (B, N, 3), float64, nm/ps
        Velocities at the start of every window, as the integrator holds them (Langevin; zeros for integrators
        without velocities).
    blowups : int
        Walkers whose windows blew up (:func:`blown_up`) and were redrawn.
    """

    positions: torch.Tensor
    velocities: torch.Tensor
    blowups: int = 0

    def subset(self, index) -> "Paths":
        """The paths of walkers ``index`` (the blow-up count is the batch's)."""
        return Paths(self.positions[index], self.velocities[index], self.blowups)


@dataclass
class Advanced:
    """Walkers after :meth:`PathSampler.advance`.

    Attributes
    ----------
    positions : np.ndarray, shape (B, N, 3), float64, nm
    blowups : int
        Walkers that blew up and were put back at their start positions.
    """

    positions: np.ndarray
    blowups: int = 0


@runtime_checkable
class PathSampler(Protocol):
    """What the trainer needs from a CG simulator.

    Attributes
    ----------
    n_walkers : int
        Walkers per call (every call takes and returns exactly this many).
    metadata : dict
        The exported-model metadata of the CG molecule (bead masses, temperature, integrator, time step).
    """

    n_walkers: int
    metadata: dict

    def set_model(self, potential: torch.nn.Module, dynamics) -> None:
        """Simulate ``potential`` with the friction of ``dynamics``
        (:class:`~openmm_dynmatch.dynamics.DynamicsParameters`) from the next call on."""

    def record(self, start_positions, n_steps: int, seed: int) -> Paths:
        """Windows of ``n_steps`` integration steps from ``start_positions`` (B, N, 3) nm, every step recorded;
        blown-up walkers are redrawn and counted in ``Paths.blowups``."""

    def advance(self, positions, n_steps: int, seed: int) -> Advanced:
        """Continue walkers at ``positions`` (B, N, 3) nm for ``n_steps`` steps without recording."""


def blown_up(before: np.ndarray, after: np.ndarray, n_steps: int = 1) -> np.ndarray:
    """Walkers (axis 0) that blew up between two configurations ``n_steps`` integration steps apart.

    Parameters
    ----------
    before, after : np.ndarray, shape (B, ..., 3), nm
    n_steps : int
        Integration steps between them.

    Returns
    -------
    np.ndarray of bool, shape (B,)
        Non-finite ``after`` or a coordinate that moved more than ``MAX_STEP_NM * n_steps``.
    """
    after = np.asarray(after, dtype=np.float64)
    axes = tuple(range(1, after.ndim))
    finite = np.isfinite(after).all(axis=axes)
    with np.errstate(invalid="ignore"):
        moved = np.abs(after - np.asarray(before, dtype=np.float64)).max(axis=axes)
        return ~finite | (moved > MAX_STEP_NM * n_steps)


def path_blown_up(positions: np.ndarray) -> np.ndarray:
    """Walkers of recorded paths ``(B, n+1, N, 3)`` nm that blew up at any step (:func:`blown_up` per step)."""
    positions = np.asarray(positions, dtype=np.float64)
    return blown_up(positions[:, :-1], positions[:, 1:])


def windows_from_paths(paths: torch.Tensor, steps_per_frame: int) -> torch.Tensor:
    """Frames every ``steps_per_frame`` integration steps: ``(B, n+1, N, 3) -> (B, T+1, N, 3)``."""
    return paths[:, ::steps_per_frame]


#: Sampler kinds: a class (or ``"module:Class"``, imported on use) built as
#: ``cls(metadata, n_walkers, platform=..., workdir=...)``.
SAMPLERS: Dict[str, Union[type, str]] = {"local": "openmm_dynmatch.openmm.sampler:OpenMMSampler"}


def register_sampler(kind: str, sampler_class) -> None:
    """Add a sampler kind (selectable as ``train.sampler``)."""
    SAMPLERS[kind] = sampler_class


def sampler_class(kind: str) -> type:
    """The class of sampler ``kind``."""
    from openmm_dynmatch.models.registry import resolve

    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler '{kind}'; available: {sorted(SAMPLERS)}")
    return resolve(SAMPLERS[kind])


def build_sampler(kind: str, metadata: dict, n_walkers: int, platform: str = "Reference", workdir=None):
    """A sampler of kind ``kind`` for the CG molecule of ``metadata`` (see :data:`SAMPLERS`)."""
    return sampler_class(kind)(metadata, n_walkers, platform=platform, workdir=workdir)
