"""Baseline objectives (also used for pre-training): force matching and relative entropy minimisation.

Both fit only the potential; the friction stays what the configuration says. Force matching needs mapped AA
forces (``dynmatch reference --save-forces``, then ``dynmatch map``); relative entropy needs CG samples, drawn
by OpenMM through the sampler (persistent walkers started at AA frames).
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from openmm_dynmatch import estimators


def _adam(potential, lr: float) -> torch.optim.Adam:
    params = [p for p in potential.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the potential has no trainable parameters: use a network (potential.kind) or "
                         "potential.prior_trainable: true")
    return torch.optim.Adam(params, lr=lr)


def train_force_matching(potential, frames, forces, iterations: int, lr: float, batch_size: int, seed: int,
                         progress: bool = True) -> list:
    """Fit ``potential`` to mapped AA forces by Adam on ``mean |F_map - F_theta|^2``.

    Parameters
    ----------
    potential : torch.nn.Module
    frames : np.ndarray, shape (n_frames, n_beads, 3), nm
    forces : np.ndarray, shape (n_frames, n_beads, 3), kJ/mol/nm
        Aggregated AA forces on the beads.
    iterations, batch_size : int
    lr : float
    seed : int

    Returns
    -------
    list of float
        The loss of every iteration, (kJ/mol/nm)^2.
    """
    if forces is None:
        raise ValueError("force matching needs mapped AA forces: run `dynmatch reference --save-forces` and map "
                         "that file (its metadata then says forces_mapped: true)")
    frames = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    forces = torch.as_tensor(np.asarray(forces), dtype=torch.float64)
    if frames.shape != forces.shape:
        raise ValueError(f"frames and forces must have the same shape, got {tuple(frames.shape)} and "
                         f"{tuple(forces.shape)}")
    optimizer = _adam(potential, lr)
    rng = np.random.default_rng([int(seed), 101])
    losses = []
    for _ in tqdm(range(iterations), desc="force matching", disable=not progress):
        pick = torch.as_tensor(rng.integers(0, frames.shape[0], size=min(batch_size, frames.shape[0])))
        optimizer.zero_grad()
        loss = estimators.force_matching_loss(potential, frames[pick], forces[pick])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def train_relative_entropy(potential, frames, sampler, masses_amu, friction_per_ps: float, kt: float,
                           iterations: int, lr: float, batch_size: int, steps_per_iteration: int, seed: int,
                           progress: bool = True) -> list:
    """Relative entropy minimisation: Adam on ``beta (mean U(AA) - mean U(CG))``.

    CG samples come from persistent OpenMM walkers (``sampler.n_walkers`` of them, started at AA frames), each
    iteration advanced by ``steps_per_iteration`` steps under the current potential.

    Returns
    -------
    list of float
        The surrogate value of every iteration (its gradient is the relative entropy's gradient).
    """
    frames = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    optimizer = _adam(potential, lr)
    rng = np.random.default_rng([int(seed), 202])
    walkers = frames[rng.integers(0, frames.shape[0], size=sampler.n_walkers)].numpy()
    history = []
    for it in tqdm(range(iterations), desc="relative entropy", disable=not progress):
        sampler.set_model(potential, masses_amu, friction_per_ps)
        walkers = sampler.advance(walkers, steps_per_iteration, seed=int(rng.integers(2**31)))
        pick = torch.as_tensor(rng.integers(0, frames.shape[0], size=min(batch_size, frames.shape[0])))
        optimizer.zero_grad()
        loss = estimators.relative_entropy_surrogate(potential, frames[pick], torch.as_tensor(walkers), 1.0 / kt)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    return history
