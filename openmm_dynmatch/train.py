"""Adversarial dynamic-matching training (DESIGN.md section 7) and its run directory.

One iteration of dynamic matching:

1. **sample**: the CG model (current potential and friction) is simulated by OpenMM for ``B`` windows of
   ``n = T * s`` integration steps, every step recorded (``sampler.record``); conditional mode starts them at
   mapped AA frames with Maxwell-Boltzmann velocities, free mode at the states of persistent CG walkers;
2. **classifier**: ``classifier_steps`` updates of the window classifier on AA windows (label 1) against the
   CG windows (label 0);
3. **estimator**: the reward ``g = -logit`` of every CG window, the path log-likelihood ``log P_theta`` rebuilt
   in PyTorch from the recorded paths, and one Adam step on the score-function surrogate (plus the
   thermodynamic start-frame term in free mode); with ``max_reuse > 1`` the same paths serve further updates,
   reweighted, while their effective sample size stays above ``ess_threshold``.

OpenMM is never differentiated. Every random draw of iteration ``i`` comes from generators seeded with
``(seed, i)``, so a resumed run continues exactly.
"""
from __future__ import annotations

import csv
import math
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from openmm_dynmatch import estimators
from openmm_dynmatch.config import Config, write_config
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.fileio import atomic_path, torch_save
from openmm_dynmatch.integrators import path_log_likelihood
from openmm_dynmatch.kinetics import roc_auc
from openmm_dynmatch.models.classifier_ensemble import ClassifierEnsemble
from openmm_dynmatch.sampling import Paths, windows_from_paths
from openmm_dynmatch.units import kt_kj_per_mol
from openmm_dynmatch.updates import UpdateSettings, score_function_update, walkers_per_pass

LOG_FIELDS = (
    "iteration", "phase", "mode", "classifier_loss", "classifier_accuracy", "classifier_auc", "reward_mean",
    "reward_std", "gradient_snr", "ess_fraction", "updates", "blowups", "time_sampling_s", "time_classifier_s",
    "time_estimator_s", "classifier_logit_std", "classifier_collapsed", "friction_crn_gradient", "friction_crn_se",
    "time_friction_runs_s", "step_scale",
)
#: Walker groups from which ``train.evidence_scaling`` estimates a batch's gradient noise.
EVIDENCE_GROUPS = 8
#: Keys of a dynamic-matching checkpoint (``checkpoint.pt``, :meth:`DynamicMatchingTrainer.state_dict`).
CHECKPOINT_KEYS = ("iteration", "potential", "dynamics", "classifier", "generator_optimizer",
                   "classifier_optimizer", "scheduler", "average", "average_count", "free_positions")


def linear_decay(start: int, end: int):
    """Learning-rate factor of a scheduler step count: 1 before ``start``, then falling linearly to 0 at ``end``
    (never below 0.02)."""
    span = max(end - start, 1)
    return lambda step: 1.0 if step < start else max(1.0 - (step - start) / span, 0.02)


def iteration_rng(seed: int, iteration: int, stream: int = 0) -> np.random.Generator:
    """The numpy generator of one iteration and purpose (``stream``): reproducible and resumable."""
    return np.random.default_rng([int(seed), int(iteration), int(stream)])


def draw_windows(pool: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` windows of ``pool`` drawn without replacement, or all of them where ``n`` is 0 or not smaller."""
    if not 0 < n < len(pool):
        return pool
    return pool[torch.as_tensor(rng.choice(len(pool), n, replace=False))]


def rewards_from_logits(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Reward per CG window; the generator minimises its expectation.

    ``neg_logit``: ``g = -l`` (with an optimal classifier ``E_theta[g]`` is the path-space KL divergence up to
    a constant); ``softplus``: the non-saturating ``g = softplus(-l)``.
    """
    if kind == "neg_logit":
        return -logits
    if kind == "softplus":
        return F.softplus(-logits)
    raise ValueError(f"unknown reward '{kind}'; available: ['neg_logit', 'softplus']")


def classifier_loss(logits_aa: torch.Tensor, logits_cg: torch.Tensor, label_smoothing: float = 0.0):
    """Binary cross-entropy of AA (label 1, smoothed to ``1 - label_smoothing``) against CG (label 0)."""
    target_aa = torch.full_like(logits_aa, 1.0 - label_smoothing)
    loss_aa = F.binary_cross_entropy_with_logits(logits_aa, target_aa)
    loss_cg = F.binary_cross_entropy_with_logits(logits_cg, torch.zeros_like(logits_cg))
    return 0.5 * (loss_aa + loss_cg)


def training_loss(classifier: torch.nn.Module, aa: torch.Tensor, cg: torch.Tensor, label_smoothing: float = 0.0,
                  r1_weight: float = 0.0) -> torch.Tensor:
    """What a classifier step minimises: :func:`classifier_loss` (plus ``r1_weight`` times the R1 penalty on the
    AA windows), or for a :class:`ClassifierEnsemble` the sum of every member's, so that each member's gradient is
    the one it would get alone."""
    members = list(classifier.members) if isinstance(classifier, ClassifierEnsemble) else [classifier]
    loss = 0.0
    for member in members:
        loss = loss + classifier_loss(member(aa), member(cg), label_smoothing)
        if r1_weight > 0:
            from openmm_dynmatch.models.classifier import r1_penalty

            loss = loss + r1_weight * r1_penalty(member, aa)
    return loss


class DynamicMatchingTrainer:
    """Dynamic matching of a CG potential and friction against mapped AA windows.

    Parameters
    ----------
    config : Config
    potential : torch.nn.Module
        ``forward(positions (B, N, 3) nm) -> (B,) kJ/mol``.
    classifier : torch.nn.Module
        ``forward(windows (B, T+1, N, 3) nm) -> (B,)`` logits (positive = AA).
    dynamics : DynamicsParameters
    sampler : openmm_dynmatch.sampling.PathSampler
        What simulates the CG model (``set_model(potential, dynamics)``, ``record``, ``advance``; the OpenMM
        one is ``openmm_dynmatch.openmm.sampler.OpenMMSampler``).
    aa_windows : np.ndarray, shape (n_windows, T+1, N, 3), nm
        Mapped AA training windows.
    masses_amu : np.ndarray, shape (N,), amu
    temperature_k : float
    steps_per_frame : int
        Integration steps between window frames (frame interval / CG time step).
    run_dir : Path
    """

    def __init__(self, config: Config, potential, classifier, dynamics: DynamicsParameters, sampler,
                 aa_windows: np.ndarray, masses_amu, temperature_k: float, steps_per_frame: int, run_dir,
                 classifier_factory: Optional[Callable[[], torch.nn.Module]] = None):
        self.config, self.train_cfg = config, config.train
        if config.train.classifier_reset_init == "new" and classifier_factory is None:
            raise ValueError("train.classifier_reset_init 'new' draws a new classifier at every re-initialisation: "
                             "the trainer needs a classifier_factory")
        self.classifier_factory = classifier_factory
        self.potential, self.classifier, self.dynamics, self.sampler = potential, classifier, dynamics, sampler
        # what a re-initialisation returns the classifier to (train.classifier_reset_every)
        self.classifier_initial = {k: v.detach().clone() for k, v in classifier.state_dict().items()}
        self.aa_windows = torch.as_tensor(np.asarray(aa_windows), dtype=torch.float64)
        self.masses = torch.as_tensor(np.asarray(masses_amu, dtype=np.float64))
        self.kt = kt_kj_per_mol(temperature_k)
        self.steps_per_frame = int(steps_per_frame)
        self.run_dir = Path(run_dir)
        self.iteration = 0
        self.free_positions: Optional[np.ndarray] = None
        self._build_optimizers()
        self._average, self._average_count = None, 0
        self.friction_trace = []  # log friction after every friction-phase iteration (train.friction_then: frozen)
        self.replay = []  # the last train.classifier_replay batches of (AA, CG) windows the classifier trains on
        self.collapse = CollapseMonitor()

    # ------------------------------------------------------------------ optimisation state
    def _build_optimizers(self) -> None:
        cfg = self.train_cfg
        betas = (cfg.beta1, 0.999)
        prior = getattr(self.potential, "prior", None)
        physical = {id(p) for p in prior.parameters()} if isinstance(prior, torch.nn.Module) else set()
        trainable = [p for p in self.potential.parameters() if p.requires_grad]
        groups = []
        if cfg.lr_potential > 0:
            groups.append({"params": [p for p in trainable if id(p) not in physical], "lr": cfg.lr_potential})
        if physical:
            groups.append({"params": [p for p in trainable if id(p) in physical], "lr": cfg.lr_prior})
        learns_friction = self.dynamics.log_friction.requires_grad
        friction_sgd = learns_friction and cfg.friction_optimizer == "sgd"
        if learns_friction and not friction_sgd:
            groups.append({"params": [self.dynamics.log_friction], "lr": cfg.lr_friction,
                           "betas": (cfg.beta1, cfg.friction_beta2)})
        if cfg.friction_then == "frozen" and cfg.friction_first == 0:
            raise ValueError("train.friction_then is 'frozen', which needs a friction-only phase first; got "
                             "train.friction_first 0")
        average_start, potential_start = self.average_start(), cfg.classifier_warmup + cfg.friction_first
        potential_phase = cfg.friction_then == "frozen" and potential_start < cfg.iterations
        if potential_phase and average_start < potential_start:
            raise ValueError(f"train.friction_then 'frozen': the parameter average (the last "
                             f"average_last_fraction {cfg.average_last_fraction} of {cfg.iterations} iterations, from "
                             f"iteration {average_start}) must start after the friction phase, which ends at "
                             f"iteration {potential_start} (classifier_warmup + friction_first)")
        for option, needed in (("friction_first", cfg.friction_first > 0), ("friction_optimizer", friction_sgd)):
            if needed and not (learns_friction and cfg.friction_gradient == "crn"):
                raise ValueError(f"train.{option} is {getattr(cfg, option)!r}, which needs a learned friction with "
                                 f"the crn gradient; got dynamics.learn_friction {learns_friction} and "
                                 f"train.friction_gradient {cfg.friction_gradient!r}")
        if not any(group["params"] for group in groups) and not friction_sgd:
            raise ValueError("dynamic matching has nothing to learn: train.lr_potential is 0, the prior is not "
                             "trainable (potential.prior_trainable) and dynamics.learn_friction is false")
        self.generator_optimizer = torch.optim.Adam(groups or [{"params": []}], betas=betas)
        self.friction_optimizer = (torch.optim.SGD([self.dynamics.log_friction], lr=cfg.lr_friction)
                                   if friction_sgd else None)
        self.classifier_optimizer = self._new_classifier_optimizer()
        # the schedules count generator updates, the iterations that are not classifier-only ones (the warm-up
        # and the warm-ups after every re-initialisation of the classifier), so they end at the last update
        def decaying_over(updates: int):
            return linear_decay(int(round(updates * (1.0 - cfg.decay_last_fraction))), updates)

        factor = friction_factor = decaying_over(self.generator_updates_before(cfg.iterations))
        if potential_phase:
            # the friction's own schedule ends with the friction phase: it decays over the phase's last
            # decay_last_fraction of updates, so the value it is frozen at is an annealed one
            friction_factor = decaying_over(self.generator_updates_before(potential_start))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.generator_optimizer, [
            friction_factor if any(p is self.dynamics.log_friction for p in group["params"]) else factor
            for group in self.generator_optimizer.param_groups])
        self.friction_scheduler = (torch.optim.lr_scheduler.LambdaLR(self.friction_optimizer, friction_factor)
                                   if friction_sgd else None)

    def _new_classifier_optimizer(self) -> torch.optim.Adam:
        return torch.optim.Adam(self.classifier.parameters(), lr=self.train_cfg.lr_classifier, betas=(0.5, 0.999))

    def reset_classifier(self, iteration: int) -> None:
        """The classifier re-initialised, with a fresh Adam state and no replayed batches: back at its initial
        parameters, or (``train.classifier_reset_init: new``) at new ones drawn by ``classifier_factory`` from a
        seed of ``iteration`` (reproducible and resumable; the global random state is left as it was)."""
        if self.train_cfg.classifier_reset_init == "new":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(iteration_rng(self.train_cfg.seed, iteration, 4).integers(2**31)))
                self.classifier.load_state_dict(self.classifier_factory().state_dict())
        else:
            self.classifier.load_state_dict(self.classifier_initial)
        self.classifier_optimizer = self._new_classifier_optimizer()
        self.replay = []

    def since_classifier_reset(self, iteration: int) -> int:
        """Iterations since the classifier's last re-initialisation (0 at the re-initialisation) while
        ``iteration`` is one of the classifier-only iterations that follow it (``train.classifier_reset_every``),
        else -1. After the warm-up the iterations run in cycles of ``classifier_reset_every`` generator iterations
        and then ``classifier_reset_warmup`` classifier-only ones."""
        cfg = self.train_cfg
        if cfg.classifier_reset_every <= 0 or iteration < cfg.classifier_warmup:
            return -1
        position = (iteration - cfg.classifier_warmup) % (cfg.classifier_reset_every + cfg.classifier_reset_warmup)
        return position - cfg.classifier_reset_every if position >= cfg.classifier_reset_every else -1

    def generator_updates_before(self, iteration: int) -> int:
        """Generator updates among the iterations before ``iteration``: those whose phase is not ``warmup``."""
        return sum(self.phase_at(it) != "warmup" for it in range(iteration))

    def mode_at(self, iteration: int) -> str:
        """``conditional`` or ``free`` for this iteration, following ``train.mode``."""
        cfg = self.train_cfg
        if cfg.mode != "conditional_then_free":
            return cfg.mode
        switch = cfg.switch_to_free_at if cfg.switch_to_free_at >= 0 else cfg.iterations // 2
        return "free" if iteration >= switch else "conditional"

    # ------------------------------------------------------------------ one iteration
    def sample(self, iteration: int, mode: str):
        """Simulate CG windows with OpenMM; returns (paths, AA windows to compare with).

        Conditional mode with ``train.walkers_per_start = k``: every start frame (that of every k-th AA window
        drawn) launches k CG walkers, whose shared start lets the estimator's baseline be formed per start.
        """
        cfg = self.train_cfg
        rng = iteration_rng(cfg.seed, iteration, 1)
        self.sampler.set_model(self.potential, self.dynamics)
        n_steps = (self.aa_windows.shape[1] - 1) * self.steps_per_frame
        picks = rng.integers(0, self.aa_windows.shape[0], size=cfg.walkers)
        aa = self.aa_windows[picks]
        blowups = 0
        if mode == "conditional":
            k = cfg.walkers_per_start
            starts = aa[::k, 0].repeat_interleave(k, dim=0)[:cfg.walkers].numpy()
        else:
            if self.free_positions is None:
                self.free_positions = aa[:, 0].numpy().copy()
            advanced = self.sampler.advance(self.free_positions, n_steps, int(rng.integers(2**31)))
            self.free_positions, blowups = advanced.positions, advanced.blowups
            starts = self.free_positions
        paths = self.sampler.record(starts, n_steps, int(rng.integers(2**31)))
        paths.blowups += blowups
        if mode == "free":
            self.free_positions = paths.positions[:, -1].numpy().copy()
        return paths, aa

    def start_groups(self, mode: str) -> Optional[torch.Tensor]:
        """The start-frame group of every walker (conditional mode with several walkers per start), else None."""
        k = self.train_cfg.walkers_per_start
        if mode != "conditional" or k == 1:
            return None
        return torch.arange(self.train_cfg.walkers) // k

    def classifier_update(self, aa: torch.Tensor, cg: torch.Tensor) -> dict:
        """``classifier_steps`` Adam steps on AA (1) vs CG (0) windows, those of this batch and of the
        ``train.classifier_replay - 1`` batches before it (all of them, or ``train.classifier_batch`` of each kind
        drawn afresh for every step); returns loss, accuracy and AUC on this batch."""
        cfg = self.train_cfg
        dtype = next(self.classifier.parameters()).dtype
        aa, cg = aa.to(dtype), cg.to(dtype)
        self.replay = (self.replay + [(aa, cg)])[-cfg.classifier_replay:]
        pool_aa = torch.cat([pair[0] for pair in self.replay])
        pool_cg = torch.cat([pair[1] for pair in self.replay])
        rng = iteration_rng(cfg.seed, self.iteration, 2)
        for _ in range(cfg.classifier_steps):
            train_aa, train_cg = (draw_windows(pool, cfg.classifier_batch, rng) for pool in (pool_aa, pool_cg))
            self.classifier_optimizer.zero_grad()
            training_loss(self.classifier, train_aa, train_cg, cfg.label_smoothing, cfg.r1_weight).backward()
            self.classifier_optimizer.step()
        with torch.no_grad():
            logits_aa, logits_cg = self.classifier(aa), self.classifier(cg)
            loss = classifier_loss(logits_aa, logits_cg, cfg.label_smoothing)
        accuracy = 0.5 * ((logits_aa > 0).double().mean() + (logits_cg <= 0).double().mean())
        spread = float(torch.cat([logits_aa, logits_cg]).double().std())
        scores = np.concatenate([logits_aa.double().numpy(), logits_cg.double().numpy()])
        labels = np.concatenate([np.ones(len(logits_aa)), np.zeros(len(logits_cg))])
        return {"classifier_loss": float(loss), "classifier_accuracy": float(accuracy),
                "classifier_auc": roc_auc(scores, labels), "classifier_logit_std": spread}

    @property
    def friction_by_crn(self) -> bool:
        """Whether the friction learns and its gradient comes from common random numbers, not the likelihood."""
        return self.dynamics.log_friction.requires_grad and self.train_cfg.friction_gradient == "crn"

    def log_likelihood(self, paths: Paths) -> torch.Tensor:
        """``log P_theta`` of every recorded path, shape (B,), differentiable in the potential, and in the friction
        unless its gradient comes from common random numbers."""
        force_fn = estimators.potential_force_fn(self.potential, create_graph=True)
        friction = self.dynamics.friction_per_bead()
        if self.friction_by_crn:
            friction = friction.detach()
        return path_log_likelihood(self.dynamics.integrator, paths.positions, paths.velocities, force_fn,
                                   self.masses, friction, self.config.dynamics.timestep_ps, self.kt)

    def path_log_p(self, paths: Paths, mode: str) -> torch.Tensor:
        """The log-probability the score function differentiates: the path likelihood, and in free mode also the
        Boltzmann weight of the start frame."""
        log_p = self.log_likelihood(paths)
        if mode == "free":
            beta = 1.0 / self.kt
            log_p = log_p - beta * self.potential(paths.positions[:, 0]).to(torch.float64)
        return log_p

    def update_settings(self, paths: Paths) -> UpdateSettings:
        """How the generator update treats ``paths`` (their shape sets the automatic estimator chunk)."""
        cfg = self.train_cfg
        chunk = walkers_per_pass(cfg.estimator_chunk, *paths.positions.shape[1:3])
        return UpdateSettings(baseline=cfg.baseline, normalize=cfg.normalize_advantages, chunk=chunk,
                              max_reuse=cfg.max_reuse, ess_threshold=cfg.ess_threshold, grad_clip=cfg.grad_clip,
                              evidence_groups=EVIDENCE_GROUPS if cfg.evidence_scaling else 0)

    def phase_at(self, iteration: int) -> str:
        """``warmup`` (the classifier alone learns), ``friction`` (the friction alone joins it,
        ``train.friction_first``), then ``adversarial`` (potential and friction) or, with ``train.friction_then:
        frozen``, ``potential`` (the potential alone, at the friction the friction phase settled on). While the
        friction learns, the classifier-only iterations after every re-initialisation of the classifier
        (``train.classifier_reset_every``) are ``warmup`` too."""
        cfg = self.train_cfg
        if iteration < cfg.classifier_warmup:
            return "warmup"
        if iteration < cfg.classifier_warmup + cfg.friction_first:
            phase = "friction"
        else:
            phase = "potential" if cfg.friction_then == "frozen" else "adversarial"
        return "warmup" if phase != "potential" and self.since_classifier_reset(iteration) >= 0 else phase

    def freeze_friction(self) -> None:
        """Set log friction to its mean over the last ``train.average_last_fraction`` of the friction phase
        (at least one iteration), the value it keeps while the potential alone learns."""
        if not self.friction_trace:
            raise RuntimeError("freeze_friction: no friction-phase iteration has been recorded")
        tail = max(int(round(self.train_cfg.average_last_fraction * len(self.friction_trace))), 1)
        with torch.no_grad():
            self.dynamics.log_friction.copy_(torch.stack(self.friction_trace[-tail:]).mean(dim=0))

    def generator_update(self, paths: Paths, mode: str, compute_snr: bool, friction_only: bool = False,
                         frozen_friction: bool = False) -> dict:
        """Score-function step(s) on the potential and friction from one batch of paths
        (:func:`openmm_dynmatch.updates.score_function_update`); with ``friction_only`` one step of the friction
        alone (its optimiser, Adam or SGD) from its common-random-number gradient; with ``frozen_friction`` the
        potential's steps alone (no friction gradient, the friction is a constant of the path likelihood)."""
        reward = self.window_rewards(paths)
        stats = {"reward_mean": float(reward.mean()), "reward_std": float(reward.std())}
        given = None
        if self.friction_by_crn and not frozen_friction:
            start = time.perf_counter()
            gradient, crn_stats = self.friction_crn_gradient(paths.positions[:, 0].numpy(),
                                                             paths.positions.shape[1] - 1)
            stats.update(crn_stats, time_friction_runs_s=time.perf_counter() - start)
            if self.friction_optimizer is not None:
                self._step_with(self.friction_optimizer, gradient)
            else:
                given = [(self.dynamics.log_friction, gradient)]
        if friction_only:
            if given:
                self._step_with(self.generator_optimizer, gradient)
            else:  # the friction has its own optimiser: a step in which nothing moves keeps the schedule in order
                self.generator_optimizer.zero_grad()
                self.generator_optimizer.step()
            stats["updates"] = 1
            return stats
        log_friction = self.dynamics.log_friction
        learns = log_friction.requires_grad
        log_friction.requires_grad_(learns and not frozen_friction)
        try:
            stats.update(score_function_update(lambda index: self.path_log_p(paths.subset(index), mode), reward,
                                               self.generator_optimizer, self.update_settings(paths), compute_snr,
                                               self.start_groups(mode), given))
        finally:
            log_friction.requires_grad_(learns)
        return stats

    def _step_with(self, optimizer: torch.optim.Optimizer, friction_gradient: torch.Tensor) -> None:
        """One step of ``optimizer`` with ``friction_gradient`` as the gradient of log friction (and no other)."""
        optimizer.zero_grad()
        self.dynamics.log_friction.grad = friction_gradient.detach().to(self.dynamics.log_friction.dtype).clone()
        optimizer.step()

    def window_rewards(self, paths: Paths) -> torch.Tensor:
        """Reward of every CG window of ``paths`` under the current classifier, shape (B,), float64."""
        cg = windows_from_paths(paths.positions, self.steps_per_frame)
        with torch.no_grad():
            logits = self.classifier(cg.to(next(self.classifier.parameters()).dtype)).to(torch.float64)
        return rewards_from_logits(logits, self.train_cfg.reward)

    def friction_crn_gradient(self, starts: np.ndarray, n_steps: int) -> tuple:
        """Gradient of the mean reward with respect to ``log friction`` by common random numbers.

        Two extra OpenMM runs of the batch, from the same ``starts`` with the same seed (so the same velocities and
        noise), at ``log gamma + h Delta`` and ``log gamma - h Delta`` with ``h = train.friction_crn_step`` and
        ``Delta`` a random sign per friction parameter (simultaneous perturbation; with one friction it is the
        central difference). The estimate ``Delta (mean g+ - mean g-) / (2 h)`` is unbiased up to ``O(h^2)``, and
        because both runs share their noise the difference of a walker's rewards is small: on alanine dipeptide
        its standard error was 86x smaller than the score function's at equal walkers (docs/estimators.md).

        Returns ``(gradient like log_friction, {"friction_crn_gradient": ..., "friction_crn_se": ...})``: the
        estimate for the first friction (the only one of Langevin dynamics) and its standard error over walkers.
        """
        cfg = self.train_cfg
        rng = iteration_rng(cfg.seed, self.iteration, 3)
        log_friction = self.dynamics.log_friction
        delta = torch.as_tensor(rng.choice([-1.0, 1.0], size=log_friction.shape[0]), dtype=log_friction.dtype)
        seed, h = int(rng.integers(2**31)), cfg.friction_crn_step
        rewards = []
        original = log_friction.detach().clone()
        try:
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    log_friction.copy_(original + sign * h * delta)
                self.sampler.set_model(self.potential, self.dynamics)
                rewards.append(self.window_rewards(self.sampler.record(starts, n_steps, seed)))
        finally:
            with torch.no_grad():
                log_friction.copy_(original)
        slope = (rewards[0] - rewards[1]) / (2.0 * h)
        n = slope.shape[0]
        se = float(slope.std() / math.sqrt(n)) if n > 1 else float("nan")
        gradient = delta * slope.mean()
        return gradient, {"friction_crn_gradient": float(gradient[0]), "friction_crn_se": se}

    def step(self) -> dict:
        """One training iteration (sampling, classifier, estimator); returns its log row."""
        cfg = self.train_cfg
        it = self.iteration
        mode = self.mode_at(it)
        torch.manual_seed(int(iteration_rng(cfg.seed, it, 0).integers(2**31)))
        phase = self.phase_at(it)
        if phase == "potential" and it == cfg.classifier_warmup + cfg.friction_first:
            self.freeze_friction()
        if phase == "warmup" and self.since_classifier_reset(it) == 0:
            self.reset_classifier(it)
        t0 = time.perf_counter()
        paths, aa = self.sample(it, mode)
        t1 = time.perf_counter()
        cg = windows_from_paths(paths.positions, self.steps_per_frame)
        row, t_classifier, t_estimator = {}, 0.0, 0.0
        for part in (("classifier", "generator") if cfg.reward_windows == "seen" else ("generator", "classifier")):
            start = time.perf_counter()
            if part == "classifier":
                row.update(self.classifier_update(aa, cg))
                t_classifier = time.perf_counter() - start
            elif phase != "warmup":
                row.update(self.generator_update(paths, mode, compute_snr=cfg.snr_every > 0 and it % cfg.snr_every == 0,
                                                 friction_only=phase == "friction",
                                                 frozen_friction=phase == "potential"))
                self.scheduler.step()
                if self.friction_scheduler is not None:
                    self.friction_scheduler.step()
                self._accumulate_average(it)
                if phase == "friction" and cfg.friction_then == "frozen":
                    self.friction_trace.append(self.dynamics.log_friction.detach().clone())
                t_estimator = time.perf_counter() - start - row.get("time_friction_runs_s", 0.0)
        row.update({"iteration": it, "phase": phase, "mode": mode, "blowups": paths.blowups,
                    "time_sampling_s": t1 - t0, "time_classifier_s": t_classifier, "time_estimator_s": t_estimator})
        row.update(self.dynamics.friction_summary())
        row["classifier_collapsed"] = int(self.collapse.update(row))
        self.iteration += 1
        return row

    # ------------------------------------------------------------------ averaging and checkpoints
    def average_start(self) -> int:
        """The first iteration whose parameters enter the average (``train.average_last_fraction``)."""
        return int(round(self.train_cfg.iterations * (1.0 - self.train_cfg.average_last_fraction)))

    def _accumulate_average(self, iteration: int) -> None:
        if iteration < self.average_start():
            return
        current = self.generator_state()
        if self._average is None:
            self._average, self._average_count = current, 1
            return
        self._average_count += 1
        for key, value in current.items():
            if value.is_floating_point():
                self._average[key] += (value - self._average[key]) / self._average_count

    def generator_state(self) -> dict:
        """A copy of the potential's and the dynamics' parameters, keys ``potential.*`` and ``dynamics.*``."""
        state = {f"potential.{k}": v for k, v in self.potential.state_dict().items()}
        state.update({f"dynamics.{k}": v for k, v in self.dynamics.state_dict().items()})
        return {k: v.detach().clone() for k, v in state.items()}

    def load_averaged(self, average: Optional[dict] = None) -> None:
        """Replace potential and friction by their average over the last stretch of training (if any), or by
        ``average``, a state of the form :meth:`generator_state` returns (e.g. a mean of several)."""
        average = self._average if average is None else average
        if average is None:
            return
        self.potential.load_state_dict({k[10:]: v for k, v in average.items() if k.startswith("potential.")})
        self.dynamics.load_state_dict({k[9:]: v for k, v in average.items() if k.startswith("dynamics.")})

    def state_dict(self) -> dict:
        return {
            "iteration": self.iteration, "potential": self.potential.state_dict(),
            "dynamics": self.dynamics.state_dict(), "classifier": self.classifier.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "classifier_optimizer": self.classifier_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "average": self._average,
            "friction_optimizer": None if self.friction_optimizer is None else self.friction_optimizer.state_dict(),
            "friction_scheduler": None if self.friction_scheduler is None else self.friction_scheduler.state_dict(),
            "average_count": self._average_count, "free_positions": self.free_positions,
            "friction_trace": self.friction_trace, "classifier_replay": self.replay,
            "classifier_initial": self.classifier_initial,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the trainer from :meth:`state_dict` (the keys :data:`CHECKPOINT_KEYS`)."""
        self.iteration = int(state["iteration"])
        self.potential.load_state_dict(state["potential"])
        self.dynamics.load_state_dict(state["dynamics"])
        self.classifier.load_state_dict(state["classifier"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.classifier_optimizer.load_state_dict(state["classifier_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.friction_optimizer is not None:  # checkpoints written before friction_optimizer have none
            if state.get("friction_optimizer") is None:
                raise KeyError("friction_optimizer: the checkpoint holds no sgd friction optimizer")
            self.friction_optimizer.load_state_dict(state["friction_optimizer"])
            self.friction_scheduler.load_state_dict(state["friction_scheduler"])
        self._average, self._average_count = state["average"], int(state["average_count"])
        self.free_positions = state["free_positions"]
        self.friction_trace = list(state.get("friction_trace", []))  # checkpoints written before it have none
        self.replay = list(state.get("classifier_replay", []))  # nor the classifier's earlier batches
        if "classifier_initial" in state:  # nor what a re-initialisation returns the classifier to
            self.classifier_initial = state["classifier_initial"]

    def save_checkpoint(self) -> Path:
        path = self.run_dir / "checkpoint.pt"
        torch_save(self.state_dict(), path)
        return path

    def run(self, progress: bool = True) -> None:
        """Iterate until ``train.iterations``, logging to ``log.csv`` and checkpointing atomically."""
        cfg = self.train_cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_config(self.config, self.run_dir / "config.yaml")
        log = CsvLog(self.run_dir / "log.csv", keep_until=self.iteration)
        board = TensorBoardLog(self.run_dir / "tensorboard") if cfg.tensorboard else None
        bar = tqdm(total=cfg.iterations, initial=self.iteration, desc="dynamic matching", disable=not progress)
        while self.iteration < cfg.iterations:
            row = self.step()
            log.write(row)
            if board is not None:
                board.write(row)
            bar.update(1)
            bar.set_postfix(acc=f"{row['classifier_accuracy']:.3f}", **{
                k[:8]: f"{v:.3g}" for k, v in row.items() if k.startswith("friction")})
            if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                self.save_checkpoint()
        bar.close()


class CollapseMonitor:
    """Detects the classifier collapse of DESIGN.md section 7: a constant output (accuracy exactly 0.5, no
    spread of logits), which starves the generator of gradient and freezes it at a biased point.

    ``update(row)`` returns True while the classifier has been constant for ``patience`` iterations in a row,
    and warns once when that first happens.
    """

    def __init__(self, patience: int = 10, tolerance: float = 1e-6):
        self.patience, self.tolerance = patience, tolerance
        self.streak, self.warned = 0, False

    def update(self, row: dict) -> bool:
        constant = row["classifier_logit_std"] < self.tolerance or row["classifier_accuracy"] == 0.5 and \
            row["classifier_auc"] == 0.5
        self.streak = self.streak + 1 if constant else 0
        collapsed = self.streak >= self.patience
        if collapsed and not self.warned:
            warnings.warn(f"the classifier has output a constant for {self.streak} iterations (accuracy 0.5, "
                          "logit spread ~0): the generator receives no signal. Lower the classifier's weight "
                          "decay or learning rate, use label smoothing instead of strong regularisation, or "
                          "restart from a fresh classifier.", RuntimeWarning, stacklevel=2)
            self.warned = True
        return collapsed


class TensorBoardLog:
    """Mirror of the CSV log as TensorBoard scalars (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError("train.tensorboard needs TensorBoard: pip install tensorboard") from err
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def write(self, row: dict) -> None:
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "iteration" and math.isfinite(value):
                self.writer.add_scalar(key, value, row["iteration"])
        self.writer.flush()


class CsvLog:
    """Append-only CSV training log that survives resumes (rows past ``keep_until`` are dropped).

    Columns are ``fields`` in their order, then any other key of the first row written, sorted.
    """

    def __init__(self, path, keep_until: int, fields: tuple = LOG_FIELDS):
        self.path = Path(path)
        self.order = tuple(fields)
        self.fields = None
        rows = []
        if self.path.exists() and keep_until > 0:
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.fields = reader.fieldnames
                rows = [r for r in reader if int(r["iteration"]) < keep_until]
        if self.fields is not None:
            with atomic_path(self.path) as tmp:
                with open(tmp, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=self.fields)
                    writer.writeheader()
                    writer.writerows(rows)
        elif self.path.exists():
            self.path.unlink()

    def write(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(self.order) + sorted(k for k in row if k not in self.order)
            with open(self.path, "w", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.fields).writeheader()
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields, restval="").writerow(
                {k: row.get(k, "") for k in self.fields})
