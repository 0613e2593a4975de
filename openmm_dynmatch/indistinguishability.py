"""Indistinguishability of a CG model: ROC-AUC of a freshly trained classifier on held-out windows.

The probe classifier is trained from scratch on training AA windows against CG windows that the model
produced from the same start frames (conditional sampling), then scored on *held-out* AA windows (validation
time blocks) against CG windows started from those. An AUC of 0.5 means the model's windows cannot be told
from AA ones; 1.0 means they always can. The sampler is passed in (OpenMM in practice), so this module needs
no OpenMM import.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from openmm_dynmatch.kinetics import roc_auc
from openmm_dynmatch.models.invariant_classifier import InvariantWindowClassifier
from openmm_dynmatch.sampling import windows_from_paths


def _cg_windows(sampler, potential, dynamics, aa_windows: torch.Tensor, steps_per_frame: int,
                seed: int) -> torch.Tensor:
    """CG windows started at the first frames of ``aa_windows`` (B, T+1, N, 3), same frame spacing."""
    sampler.set_model(potential, dynamics)
    n_steps = (aa_windows.shape[1] - 1) * steps_per_frame
    paths = sampler.record(aa_windows[:, 0].numpy(), n_steps, seed)
    return windows_from_paths(paths.positions, steps_per_frame)


def heldout_auc(sampler, potential, dynamics, train_windows, heldout_windows, steps_per_frame: int,
                training_steps: int = 300, seed: int = 0, hidden: int = 64) -> dict:
    """ROC-AUC of a fresh invariant classifier on held-out AA vs CG windows.

    Parameters
    ----------
    sampler : openmm_dynmatch.sampling.PathSampler
        With ``n_walkers`` equal to the number of windows of each set.
    potential, dynamics : the CG model (potential module and :class:`~openmm_dynmatch.dynamics.DynamicsParameters`)
    train_windows, heldout_windows : array, shape (n_walkers, T+1, N, 3), nm
        AA windows for training the probe and for scoring it.
    steps_per_frame : int
        CG integration steps between window frames.
    training_steps : int
        Full-batch Adam steps of the probe.

    Returns
    -------
    dict
        ``auc`` (held out), ``train_auc`` and ``accuracy`` (held out, threshold 0).
    """
    train_aa = torch.as_tensor(np.asarray(train_windows), dtype=torch.float64)
    test_aa = torch.as_tensor(np.asarray(heldout_windows), dtype=torch.float64)
    if train_aa.shape != test_aa.shape or train_aa.shape[0] != sampler.n_walkers:
        raise ValueError(f"train and held-out windows must both have shape ({sampler.n_walkers}, T+1, N, 3), got "
                         f"{tuple(train_aa.shape)} and {tuple(test_aa.shape)}")
    train_cg = _cg_windows(sampler, potential, dynamics, train_aa, steps_per_frame, seed)
    test_cg = _cg_windows(sampler, potential, dynamics, test_aa, steps_per_frame, seed + 1)
    torch.manual_seed(seed)
    probe = InvariantWindowClassifier(train_aa.shape[2], train_aa.shape[1], hidden=hidden, dtype="float64")
    probe.fit_scales(torch.cat([train_aa, train_cg]))
    optimizer = torch.optim.Adam(probe.parameters(), lr=3e-3)
    windows = torch.cat([train_aa, train_cg])
    labels = torch.cat([torch.ones(len(train_aa)), torch.zeros(len(train_cg))]).to(torch.float64)
    for _ in range(training_steps):
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(probe(windows), labels).backward()
        optimizer.step()
    with torch.no_grad():
        train_scores = probe(windows).numpy()
        test_scores = torch.cat([probe(test_aa), probe(test_cg)]).numpy()
    accuracy = float(np.mean((test_scores > 0) == labels.numpy().astype(bool)))
    return {"auc": roc_auc(test_scores, labels.numpy()), "train_auc": roc_auc(train_scores, labels.numpy()),
            "accuracy": accuracy}
