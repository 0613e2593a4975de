"""The generator update of dynamic matching: score-function gradients accumulated walker chunk by chunk.

Every gradient this module forms is ``sum_j c_j grad log P_j`` over the sampled walkers ``j``, with coefficients
``c_j`` that need only the *values* of the rewards and log-probabilities:

- first update on fresh paths: ``c_j = A_j / B`` with the advantages ``A_j = g_j - b_j``
  (:func:`openmm_dynmatch.estimators.advantages`): the gradient of
  :func:`~openmm_dynmatch.estimators.score_function_surrogate`;
- further updates on the same paths (``max_reuse > 1``): ``c_j = w_j (g_j - sum_i w_i g_i)`` with the
  self-normalised importance weights ``w`` of the new parameters against those that produced the paths: the
  gradient of :func:`~openmm_dynmatch.estimators.reweighted_surrogate`; the paths are resimulated once the
  effective sample size falls below the threshold.

``log P_j`` is whatever the caller's ``log_p_of`` returns: the path likelihood of the integrator
(:func:`openmm_dynmatch.integrators.path_log_likelihood`) in conditional mode, plus ``-beta U(x_0)`` in free mode
(the thermodynamic start-frame term, :func:`~openmm_dynmatch.estimators.thermodynamic_surrogate`). Because the
coefficients are fixed before any backward pass, the graph of ``log P`` is built for ``chunk`` walkers at a time
and the gradient is the same for every chunk size: memory is bounded, the mathematics is one path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from openmm_dynmatch import estimators

LogProbability = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class UpdateSettings:
    """How :func:`score_function_update` forms and applies its gradients.

    Attributes
    ----------
    baseline : {"mean", "loo", "none"}
        Baseline of the advantages (see :func:`~openmm_dynmatch.estimators.advantages`).
    normalize : bool
        Divide the advantages by their standard deviation.
    chunk : int
        Walkers per backward pass (0: all at once; a negative value is not allowed here, the trainer resolves
        ``train.estimator_chunk: -1`` with :func:`automatic_chunk`). The gradient does not depend on it.
    max_reuse : int
        Updates per batch of paths (reweighted after the first).
    ess_threshold : float
        Stop reusing the paths when the effective sample size fraction falls below this.
    grad_clip : float
        Gradient-norm clip of every update.
    evidence_groups : int
        0: steps as the optimizer makes them. Otherwise the gradient is also formed in at least this many walker
        groups and the learning rate of every parameter group the score function drives is scaled, for this
        batch's steps, by :func:`~openmm_dynmatch.estimators.evidence_factor` of those groups' SNR: a step is taken in
        proportion to the evidence that the batch's gradient is more than noise. The optimizer still sees the
        unscaled gradient, so Adam's moment estimates are unchanged; a given gradient (the friction's) is not
        scaled.
    """

    baseline: str = "mean"
    normalize: bool = False
    chunk: int = 0
    max_reuse: int = 1
    ess_threshold: float = 0.5
    grad_clip: float = 10.0
    evidence_groups: int = 0


AUTO_CHUNK_BUDGET = 16 * 51 * 10**2  # walkers x recorded frames x beads^2 per backward pass (16 x 50 steps, 10 beads)


def automatic_chunk(n_frames: int, n_beads: int) -> int:
    """Walkers per backward pass of the path likelihood when ``train.estimator_chunk`` is -1: as many as keep
    ``walkers x n_frames x n_beads^2`` (the size of the forces' graph for a pair network) within
    :data:`AUTO_CHUNK_BUDGET`, at least one. Smaller graphs were faster as well as smaller
    (``benchmarks/training.py``): the budget is 16 walkers of 50 steps at 10 beads, the fastest measured there,
    and one walker of 10 steps at 100 and 200 beads, where one pass of all four took twice as long."""
    return max(1, AUTO_CHUNK_BUDGET // (n_frames * n_beads * n_beads))


def walkers_per_pass(setting: int, n_frames: int, n_beads: int) -> int:
    """The ``chunk`` of :class:`UpdateSettings` for a ``train.estimator_chunk`` setting: the setting itself when
    >= 0 (0: all walkers at once), :func:`automatic_chunk` of the paths' shape when -1."""
    return setting if setting >= 0 else automatic_chunk(n_frames, n_beads)


def _chunks(n_walkers: int, chunk: int, at_least: int) -> List[torch.Tensor]:
    """Contiguous index chunks of at most ``chunk`` walkers (all when 0), at least ``at_least`` of them."""
    size = n_walkers if chunk <= 0 else min(chunk, n_walkers)
    n_chunks = max(-(-n_walkers // size), min(at_least, n_walkers))
    return [c for c in torch.tensor_split(torch.arange(n_walkers), n_chunks) if c.numel() > 0]


def accumulate_gradient(log_p_of: LogProbability, coefficients: torch.Tensor, chunks: Sequence[torch.Tensor],
                        parameters: Sequence[torch.Tensor], per_chunk: bool = False):
    """Add ``sum_j c_j grad log P_j`` to the ``.grad`` of ``parameters``, one backward pass per chunk.

    Parameters
    ----------
    log_p_of : callable
        ``log_p_of(index (k,) int64) -> (k,)``: the log-probabilities of those walkers, differentiable.
    coefficients : torch.Tensor, shape (B,)
        Detached coefficients ``c_j``.
    chunks : sequence of torch.Tensor
        Index chunks covering ``range(B)`` once.
    parameters : sequence of torch.Tensor
        The parameters whose gradients are accumulated (those requiring grad).
    per_chunk : bool
        Also return every chunk's contribution scaled to the gradient of that chunk alone, flattened.

    Returns
    -------
    log_p : torch.Tensor, shape (B,)
        The detached values of ``log P``.
    rows : torch.Tensor, shape (n_chunks, n_parameters), or None
        With ``per_chunk``: ``(B / k) * sum_{j in chunk} c_j grad log P_j`` for each chunk of size ``k``.
    """
    n_walkers = coefficients.shape[0]
    values, rows = torch.empty(n_walkers, dtype=torch.float64), []
    for chunk in chunks:
        before = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in parameters] if per_chunk else None
        log_p = log_p_of(chunk)
        (coefficients[chunk].to(log_p.dtype) * log_p).sum().backward()
        values[chunk] = log_p.detach().to(torch.float64)
        if per_chunk:
            scale = n_walkers / chunk.numel()
            rows.append(torch.cat([(scale * ((torch.zeros_like(p) if p.grad is None else p.grad) - b)).reshape(-1)
                                   for p, b in zip(parameters, before)]).to(torch.float64))
    return values, (torch.stack(rows) if per_chunk else None)


def score_function_update(log_p_of: LogProbability, reward: torch.Tensor, optimizer: torch.optim.Optimizer,
                          settings: UpdateSettings, compute_snr: bool = False,
                          groups: Optional[torch.Tensor] = None,
                          given_gradients: Optional[Sequence[Tuple[torch.Tensor, torch.Tensor]]] = None) -> dict:
    """One batch of paths: the score-function step and, with ``max_reuse > 1``, reweighted steps on the same paths.

    Parameters
    ----------
    log_p_of : callable
        ``log_p_of(index) -> log P`` of those walkers (differentiable in the optimizer's parameters).
    reward : torch.Tensor, shape (B,)
        Reward of every walker's window; the update lowers its expectation.
    optimizer : torch.optim.Optimizer
        Holds the generator's parameters; its ``step`` is called once per update.
    settings : UpdateSettings
    compute_snr : bool
        Estimate the gradient's signal-to-noise ratio on the first update from at least 4 walker groups
        (:func:`~openmm_dynmatch.estimators.gradient_snr`).
    groups : torch.Tensor, shape (B,), int64, optional
        Start-frame index of every walker when several walkers share a start (conditional mode): the baseline
        is then formed within each group (:func:`~openmm_dynmatch.estimators.advantages`).
    given_gradients : sequence of (parameter, gradient), optional
        Parameters of the optimizer whose gradient another estimator supplies (the friction's common-random-number
        difference, :meth:`openmm_dynmatch.train.DynamicMatchingTrainer.friction_crn_gradient`): their
        score-function gradient is discarded and left out of the clip norm, and every update steps them with the
        given one; when no other parameter learns, no path likelihood is evaluated.

    Returns
    -------
    dict
        ``updates`` (steps taken), ``ess_fraction`` (of the last reweighting, 1 without reuse),
        ``gradient_snr`` (NaN unless computed) and ``step_scale`` (the evidence factor the score-function
        parameters' steps were scaled by; 1 without ``settings.evidence_groups``).
    """
    reward = torch.as_tensor(reward).detach().to(torch.float64)
    n_walkers = reward.shape[0]
    given = list(given_gradients or [])
    given_ids = {id(p) for p, _ in given}
    parameters = [p for group in optimizer.param_groups for p in group["params"]
                  if p.requires_grad and id(p) not in given_ids]
    coefficients = estimators.advantages(reward, settings.baseline, settings.normalize, groups) / n_walkers
    stats = {"updates": 0, "ess_fraction": 1.0, "gradient_snr": float("nan"), "step_scale": 1.0}
    if not parameters:  # every parameter has its gradient given: no path likelihood to differentiate
        optimizer.zero_grad()
        for parameter, gradient in given:
            parameter.grad = gradient.detach().to(parameter.dtype).clone()
        optimizer.step()
        stats["updates"] = 1
        return stats
    log_p_old = None
    for _ in range(settings.max_reuse):
        if log_p_old is not None:
            with torch.no_grad():
                log_p = torch.cat([log_p_of(c).detach().to(torch.float64) for c in _chunks(n_walkers, settings.chunk, 1)])
            weights, ess = estimators.importance_weights(log_p, log_p_old)
            stats["ess_fraction"] = ess
            if estimators.needs_resimulation(ess, settings.ess_threshold):
                break
            coefficients = weights * (reward - (weights * reward).sum())
        first = log_p_old is None
        evidence = settings.evidence_groups > 0 and first and n_walkers >= 2
        snr = (compute_snr or evidence) and first and n_walkers >= 2
        groups_needed = max(4 if snr else 1, settings.evidence_groups if evidence else 1)
        chunks = _chunks(n_walkers, settings.chunk, groups_needed)
        optimizer.zero_grad()
        values, rows = accumulate_gradient(log_p_of, coefficients.detach(), chunks, parameters, per_chunk=snr)
        if rows is not None and rows.shape[0] >= 2:
            stats["gradient_snr"] = float(estimators.gradient_snr(rows, per_parameter=False))
            if evidence:
                stats["step_scale"] = estimators.evidence_factor(stats["gradient_snr"])
        if first:
            log_p_old = values
        torch.nn.utils.clip_grad_norm_(parameters, settings.grad_clip)
        for parameter, gradient in given:
            parameter.grad = gradient.detach().to(parameter.dtype).clone()
        _step_scaled(optimizer, {id(p) for p in parameters}, stats["step_scale"])
        stats["updates"] += 1
    return stats


def _step_scaled(optimizer: torch.optim.Optimizer, scaled_ids: set, scale: float) -> None:
    """``optimizer.step()`` with the learning rate of every parameter group holding a parameter in ``scaled_ids``
    multiplied by ``scale`` for this step only (the scheduler's rates are restored afterwards)."""
    if scale == 1.0:
        optimizer.step()
        return
    saved = [group["lr"] for group in optimizer.param_groups]
    try:
        for group in optimizer.param_groups:
            if any(id(p) in scaled_ids for p in group["params"]):
                group["lr"] = group["lr"] * scale
        optimizer.step()
    finally:
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr
