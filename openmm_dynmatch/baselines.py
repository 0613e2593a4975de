"""Baseline objectives (also used for pre-training): force matching and relative entropy minimisation.

Both fit only the potential; the friction stays what the configuration says. Force matching needs mapped AA
forces (``dynmatch reference --save-forces``, then ``dynmatch map``); relative entropy needs CG samples, drawn
by OpenMM through the sampler (persistent walkers started at AA frames).

Both loops can evaluate the model every ``eval_every`` iterations and write one row per evaluation to a CSV
log (columns :data:`STAGE_LOG_FIELDS`): the mean force-matching loss on a fixed subset of the training frames
and on the validation frames (when forces are known), and the mean minibatch objective since the previous
evaluation. Force matching can stop early on the validation loss (:class:`EarlyStopping`) and then returns
the parameters of its best evaluation; it can also let its learning rate decay to zero (cosine schedule) and
evaluate and return an exponential moving average of its parameters (:class:`ParameterAverage`), which makes the
potential it ends at depend less on the last minibatches.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from openmm_dynmatch import estimators
from openmm_dynmatch.models.potential import CGPotential
from openmm_dynmatch.train import CsvLog

#: Columns of a stage log. Losses are (kJ/mol/nm)^2 except ``batch_loss`` of relative entropy (its surrogate,
#: dimensionless); empty cells where a value does not exist (no forces, no validation frames, no step yet).
STAGE_LOG_FIELDS = ("iteration", "wall_time_s", "batch_loss", "train_force_loss", "validation_force_loss")


@dataclass
class FitHistory:
    """What a force-matching or relative-entropy loop did.

    Attributes
    ----------
    losses : list of float
        The minibatch objective of every iteration done ((kJ/mol/nm)^2 for force matching; the surrogate for
        relative entropy).
    evaluations : list of dict
        One row per evaluation, keys :data:`STAGE_LOG_FIELDS` (NaN where a value does not exist).
    iterations_done : int
        Optimiser steps taken (fewer than asked when training stopped early).
    stopped_early : bool
    best_iteration : int or None
        Iteration of the lowest validation force loss (None without validation forces); with early stopping
        enabled the potential holds the parameters of that iteration on return.
    """

    losses: list = field(default_factory=list)
    evaluations: list = field(default_factory=list)
    iterations_done: int = 0
    stopped_early: bool = False
    best_iteration: Optional[int] = None


class EarlyStopping:
    """Stop when the validation loss has not improved for ``patience`` evaluations in a row.

    An evaluation improves when its loss is finite and strictly below every earlier one. ``patience = 0``
    never stops (the best evaluation is still tracked).

    Examples
    --------
    >>> stopper = EarlyStopping(patience=2)
    >>> [stopper.update(x) for x in (3.0, 2.0, 2.5, 2.1)]
    [False, False, False, True]
    >>> stopper.best_index, stopper.best
    (1, 2.0)
    """

    def __init__(self, patience: int):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer (0: never stop), got {patience!r}")
        self.patience = patience
        self.best: Optional[float] = None
        self.best_index: Optional[int] = None
        self.improved = False
        self.count = 0

    def update(self, loss: float) -> bool:
        """Record the next evaluation's loss; True when training should stop now."""
        loss = float(loss)
        self.improved = math.isfinite(loss) and (self.best is None or loss < self.best)
        if self.improved:
            self.best, self.best_index = loss, self.count
        self.count += 1
        since_best = self.count - 1 - (self.best_index if self.best_index is not None else -1)
        return self.patience > 0 and since_best >= self.patience


#: Learning-rate schedules of force matching: factor on the learning rate after ``it`` of ``n`` iterations.
LR_SCHEDULES = {"constant": lambda it, n: 1.0,
                "cosine": lambda it, n: 0.5 * (1.0 + math.cos(math.pi * min(it, n) / max(n, 1)))}


class ParameterAverage:
    """Exponential moving average of a module's trainable parameters, with a warm-up.

    After step ``t`` (counted from 0) the average moves towards the parameters by ``1 - d_t`` with
    ``d_t = min(decay, (1 + t) / (10 + t))``, so early steps are not dominated by the initial parameters.
    :meth:`swapped` puts the average into the module for the duration of a ``with`` block.

    Examples
    --------
    >>> layer = torch.nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(0.0)
    >>> average = ParameterAverage(layer, decay=0.5)
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(2.0)
    >>> average.update()                      # d_0 = min(0.5, 1 / 10): 90% of the way to the parameters
    >>> with average.swapped():
    ...     print(round(float(layer.weight), 6))
    1.8
    >>> float(layer.weight)
    2.0
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay!r}")
        self.module, self.decay, self.steps = module, float(decay), 0
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]

    def update(self) -> None:
        """Fold the module's current parameters into the average (call after every optimiser step)."""
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        with torch.no_grad():
            for avg, p in zip(self.average, self.params):
                avg.mul_(d).add_(p.detach(), alpha=1.0 - d)
        self.steps += 1

    @contextlib.contextmanager
    def swapped(self):
        """The module holds the averaged parameters inside the block and its own ones again after it."""
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, avg in zip(self.params, self.average):
                p.copy_(avg)
        try:
            yield self.module
        finally:
            with torch.no_grad():
                for p, own in zip(self.params, saved):
                    p.copy_(own)


def mean_force_loss(potential, frames: torch.Tensor, forces: torch.Tensor, chunk: int = 1024) -> float:
    """The force-matching loss ``mean over frames and beads of |F_map - F_theta|^2``, evaluated in chunks.

    Parameters
    ----------
    potential : torch.nn.Module
        ``forward(positions (B, N, 3) nm) -> (B,) kJ/mol``.
    frames : torch.Tensor, shape (n_frames, N, 3), nm
    forces : torch.Tensor, shape (n_frames, N, 3), kJ/mol/nm
        Mapped AA forces.
    chunk : int
        Frames per force evaluation (bounds the memory).

    Returns
    -------
    float
        (kJ/mol/nm)^2; no graph is kept.
    """
    force_fn = estimators.potential_force_fn(potential, create_graph=False)
    total = 0.0
    for start in range(0, frames.shape[0], chunk):
        predicted = force_fn(frames[start:start + chunk])
        total += float((forces[start:start + chunk].to(torch.float64) - predicted).pow(2).sum())
    return total / (frames.shape[0] * frames.shape[1])


class _StageMonitor:
    """Evaluations of one stage: fixed frame subsets, the CSV log, the wall clock."""

    def __init__(self, potential, frames, forces, validation_frames, validation_forces, eval_every: int,
                 eval_frames: int, seed: int, log_path):
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
            raise ValueError(f"eval_every must be a non-negative integer (0: no evaluation), got {eval_every!r}")
        if isinstance(eval_frames, bool) or not isinstance(eval_frames, int) or eval_frames < 1:
            raise ValueError(f"eval_frames must be a positive integer, got {eval_frames!r}")
        self.potential, self.every = potential, eval_every
        self.train = _subset(frames, forces, eval_frames, [int(seed), 404])
        self.validation = _subset(validation_frames, validation_forces, eval_frames, [int(seed), 405])
        self.log = CsvLog(log_path, keep_until=0, fields=STAGE_LOG_FIELDS) if log_path is not None else None
        self.start = time.perf_counter()
        self.rows, self._last = [], 0

    @property
    def has_validation(self) -> bool:
        return self.validation is not None

    def due(self, iteration: int, iterations: int) -> bool:
        return self.every > 0 and (iteration % self.every == 0 or iteration == iterations)

    def evaluate(self, iteration: int, losses: list) -> dict:
        recent = losses[self._last:]
        self._last = len(losses)
        row = {"iteration": iteration, "wall_time_s": time.perf_counter() - self.start,
               "batch_loss": float(np.mean(recent)) if recent else math.nan,
               "train_force_loss": self._loss(self.train), "validation_force_loss": self._loss(self.validation)}
        self.rows.append(row)
        if self.log is not None:
            self.log.write({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
        return row

    def _loss(self, pair) -> float:
        return math.nan if pair is None else mean_force_loss(self.potential, *pair)


def _subset(frames, forces, max_frames: int, seed):
    """At most ``max_frames`` (frames, forces) drawn once without replacement, in time order; None without
    forces."""
    if frames is None or forces is None:
        return None
    frames = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    forces = torch.as_tensor(np.asarray(forces), dtype=torch.float64)
    if frames.shape != forces.shape or frames.ndim != 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames and forces must both have shape (n_frames, n_beads, 3), got "
                         f"{tuple(frames.shape)} and {tuple(forces.shape)}")
    if frames.shape[0] > max_frames:
        pick = torch.as_tensor(np.sort(np.random.default_rng(seed).choice(frames.shape[0], max_frames,
                                                                          replace=False)))
        frames, forces = frames[pick], forces[pick]
    return frames, forces


def fitted_parts(potential) -> list:
    """What force matching fits on its own minibatches: when the potential's network is an ensemble
    (:class:`~openmm_dynmatch.models.ensemble.EnsembleNet`), one :class:`~openmm_dynmatch.models.potential.CGPotential`
    per member, of the potential's prior and that member (sharing their parameters), so every member is an
    independent fit; otherwise the potential itself."""
    members = getattr(getattr(potential, "net", None), "members", None)
    if members is None or not hasattr(potential, "prior"):
        return [potential]
    return [CGPotential(potential.prior, member, dtype=potential.spec["dtype"]) for member in members]


def _adam(potential, lr: float) -> torch.optim.Adam:
    params = [p for p in potential.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the potential has no trainable parameters: use a network (potential.kind) or "
                         "potential.prior_trainable: true")
    return torch.optim.Adam(params, lr=lr)


def train_force_matching(potential, frames, forces, iterations: int, lr: float, batch_size: int, seed: int,
                         progress: bool = True, *, validation_frames=None, validation_forces=None,
                         eval_every: int = 0, patience: int = 0, eval_frames: int = 2048,
                         log_path=None, lr_schedule: str = "constant", average: float = 0.0) -> FitHistory:
    """Fit ``potential`` to mapped AA forces by Adam on ``mean |F_map - F_theta|^2``.

    A potential whose network is an ensemble is fitted member by member (:func:`fitted_parts`): each step draws a
    minibatch per member and minimises the mean of the members' losses, whose parameters are disjoint, so each
    member follows its own fit; evaluations and the early stop judge the ensemble's mean energy.

    Parameters
    ----------
    potential : torch.nn.Module
    frames : np.ndarray, shape (n_frames, n_beads, 3), nm
    forces : np.ndarray, shape (n_frames, n_beads, 3), kJ/mol/nm
        Aggregated AA forces on the beads.
    iterations, batch_size : int
    lr : float
    seed : int
    validation_frames : np.ndarray, shape (n_validation, n_beads, 3), nm, optional
    validation_forces : np.ndarray, shape (n_validation, n_beads, 3), kJ/mol/nm, optional
        Held-out frames and their mapped forces.
    eval_every : int
        Evaluate after every ``eval_every`` iterations, before the first and after the last (0: never).
    patience : int
        Stop when the validation loss has not improved for this many evaluations and restore the parameters
        of the best evaluation (0: run every iteration and keep the final parameters). Needs validation data.
    eval_frames : int
        At most this many training (and validation) frames, a fixed random subset, in each evaluation.
    log_path : str or Path, optional
        CSV log of the evaluations (columns :data:`STAGE_LOG_FIELDS`); an existing file is replaced.
    lr_schedule : {"constant", "cosine"}
        ``cosine``: the learning rate falls from ``lr`` to zero over ``iterations`` (:data:`LR_SCHEDULES`).
    average : float
        Decay per iteration of an exponential moving average of the parameters (:class:`ParameterAverage`;
        0: none). With it, every evaluation, the early stop and the returned potential use the average.

    Returns
    -------
    FitHistory
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: expected one of {sorted(LR_SCHEDULES)}, got {lr_schedule!r}")
    if not 0.0 <= float(average) < 1.0:
        raise ValueError(f"average: expected a decay in [0, 1) (0: no averaging), got {average!r}")
    if forces is None:
        raise ValueError("force matching needs mapped AA forces: run `dynmatch reference --save-forces` and map "
                         "that file (its metadata then says forces_mapped: true)")
    frames = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    forces = torch.as_tensor(np.asarray(forces), dtype=torch.float64)
    if frames.shape != forces.shape:
        raise ValueError(f"frames and forces must have the same shape, got {tuple(frames.shape)} and "
                         f"{tuple(forces.shape)}")
    optimizer = _adam(potential, lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: LR_SCHEDULES[lr_schedule](it, iterations))
    averaged = ParameterAverage(potential, average) if average > 0 else None
    judged = averaged.swapped if averaged is not None else contextlib.nullcontext
    monitor = _StageMonitor(potential, frames, forces, validation_frames, validation_forces, eval_every,
                            eval_frames, seed, log_path)
    stopper = EarlyStopping(patience if monitor.has_validation else 0)
    rng = np.random.default_rng([int(seed), 101])
    parts = fitted_parts(potential)
    history, best_state = FitHistory(), None
    bar = tqdm(total=iterations, desc="force matching", disable=not progress)
    for it in range(iterations + 1):
        if monitor.due(it, iterations):
            with judged():
                history.stopped_early = stopper.update(monitor.evaluate(it, history.losses)["validation_force_loss"])
                if stopper.improved:
                    history.best_iteration = it
                    best_state = {k: v.detach().clone() for k, v in potential.state_dict().items()}
            if history.stopped_early and it < iterations:
                break
        if it == iterations:
            break
        optimizer.zero_grad()
        loss = 0.0
        for part in parts:  # an ensemble's members each on their own minibatch, in turn
            pick = torch.as_tensor(rng.integers(0, frames.shape[0], size=min(batch_size, frames.shape[0])))
            loss = loss + estimators.force_matching_loss(part, frames[pick], forces[pick]) / len(parts)
        loss.backward()
        optimizer.step()
        schedule.step()
        if averaged is not None:
            averaged.update()
        history.losses.append(float(loss.detach()))
        bar.update(1)
    bar.close()
    history.stopped_early = history.stopped_early and it < iterations
    history.iterations_done, history.evaluations = it, monitor.rows
    if stopper.patience > 0 and best_state is not None:
        potential.load_state_dict(best_state)
    elif averaged is not None:
        with judged():
            final = {k: v.detach().clone() for k, v in potential.state_dict().items()}
        potential.load_state_dict(final)
    return history


def train_relative_entropy(potential, frames, sampler, dynamics, kt: float,
                           iterations: int, lr: float, batch_size: int, steps_per_iteration: int, seed: int,
                           progress: bool = True, *, forces=None, validation_frames=None, validation_forces=None,
                           eval_every: int = 0, eval_frames: int = 2048, log_path=None) -> FitHistory:
    """Relative entropy minimisation: Adam on ``beta (mean U(AA) - mean U(CG))``.

    CG samples come from persistent OpenMM walkers (``sampler.n_walkers`` of them, started at AA frames), each
    iteration advanced by ``steps_per_iteration`` steps under the current potential.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, n_beads, 3), nm
        Mapped AA training frames.
    sampler : openmm_dynmatch.sampling.PathSampler
    dynamics : openmm_dynmatch.dynamics.DynamicsParameters
        The friction the CG walkers are simulated with.
    forces, validation_frames, validation_forces : np.ndarray, optional
        Mapped forces of ``frames`` (kJ/mol/nm) and held-out frames (nm) with their forces: the evaluations then
        log the force-matching loss as a diagnostic (relative entropy does not use it and never stops early).
    eval_every, eval_frames, log_path
        As in :func:`train_force_matching`; ``batch_loss`` is the mean surrogate since the last evaluation.

    Returns
    -------
    FitHistory
        ``losses``: the surrogate value of every iteration (its gradient is the relative entropy's gradient).
    """
    frames = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    optimizer = _adam(potential, lr)
    monitor = _StageMonitor(potential, frames, forces, validation_frames, validation_forces, eval_every,
                            eval_frames, seed, log_path)
    stopper = EarlyStopping(0)
    rng = np.random.default_rng([int(seed), 202])
    walkers = frames[rng.integers(0, frames.shape[0], size=sampler.n_walkers)].numpy()
    history = FitHistory()
    bar = tqdm(total=iterations, desc="relative entropy", disable=not progress)
    for it in range(iterations + 1):
        if monitor.due(it, iterations):
            stopper.update(monitor.evaluate(it, history.losses)["validation_force_loss"])
            if stopper.improved:
                history.best_iteration = it
        if it == iterations:
            break
        sampler.set_model(potential, dynamics)
        walkers = sampler.advance(walkers, steps_per_iteration, seed=int(rng.integers(2**31))).positions
        pick = torch.as_tensor(rng.integers(0, frames.shape[0], size=min(batch_size, frames.shape[0])))
        optimizer.zero_grad()
        loss = estimators.relative_entropy_surrogate(potential, frames[pick], torch.as_tensor(walkers), 1.0 / kt)
        loss.backward()
        optimizer.step()
        history.losses.append(float(loss.detach()))
        bar.update(1)
    bar.close()
    history.iterations_done, history.evaluations = iterations, monitor.rows
    return history


def stage_summary(rows: list, iterations: int) -> dict:
    """Headline numbers of a stage log for ``summary.json``.

    Parameters
    ----------
    rows : list of dict
        Evaluation rows (keys :data:`STAGE_LOG_FIELDS`, NaN or None for missing values), in order.
    iterations : int
        The iterations the stage was asked for.

    Returns
    -------
    dict
        ``stopped_at_iteration`` (the last evaluation's), ``stopped_early``, ``evaluations``, and where
        validation forces exist ``best_iteration``, ``best_validation_force_loss`` and
        ``final_validation_force_loss`` ((kJ/mol/nm)^2; None otherwise).
    """
    def number(value) -> float:
        return math.nan if value is None or value == "" else float(value)

    validation = [number(r.get("validation_force_loss")) for r in rows]
    finite = [k for k, v in enumerate(validation) if math.isfinite(v)]
    last = int(number(rows[-1]["iteration"])) if rows else None
    best = min(finite, key=lambda k: validation[k]) if finite else None
    return {"iterations": int(iterations), "evaluations": len(rows), "stopped_at_iteration": last,
            "stopped_early": last is not None and last < iterations,
            "best_iteration": int(number(rows[best]["iteration"])) if best is not None else None,
            "best_validation_force_loss": validation[best] if best is not None else None,
            "final_validation_force_loss": validation[finite[-1]] if finite else None}
