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
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from openmm_dynmatch import estimators
from openmm_dynmatch.config import Config, write_config
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.fileio import atomic_path, torch_save
from openmm_dynmatch.kinetics import roc_auc
from openmm_dynmatch.paths import Paths, windows_from_paths
from openmm_dynmatch.units import kt_kj_per_mol

LOG_FIELDS = (
    "iteration", "phase", "mode", "classifier_loss", "classifier_accuracy", "classifier_auc", "reward_mean",
    "reward_std", "gradient_snr", "ess_fraction", "updates", "blowups", "time_sampling_s", "time_classifier_s",
    "time_estimator_s", "classifier_logit_std", "classifier_collapsed",
)
#: Keys of a dynamic-matching checkpoint (``checkpoint.pt``, :meth:`DynamicMatchingTrainer.state_dict`).
CHECKPOINT_KEYS = ("iteration", "potential", "dynamics", "classifier", "generator_optimizer",
                   "classifier_optimizer", "scheduler", "average", "average_count", "free_positions")


def iteration_rng(seed: int, iteration: int, stream: int = 0) -> np.random.Generator:
    """The numpy generator of one iteration and purpose (``stream``): reproducible and resumable."""
    return np.random.default_rng([int(seed), int(iteration), int(stream)])


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
    sampler : object
        The OpenMM path sampler (``openmm_dynmatch.openmm.sampler.OpenMMSampler``): ``set_model(potential,
        masses_amu, friction_per_ps)``, ``record(start_positions, n_steps, seed) -> Paths`` and
        ``advance(positions, n_steps, seed) -> positions``.
    aa_windows : np.ndarray, shape (n_windows, T+1, N, 3), nm
        Mapped AA training windows.
    masses_amu : np.ndarray, shape (N,), amu
    temperature_k : float
    steps_per_frame : int
        Integration steps between window frames (frame interval / CG time step).
    run_dir : Path
    """

    def __init__(self, config: Config, potential, classifier, dynamics: DynamicsParameters, sampler,
                 aa_windows: np.ndarray, masses_amu, temperature_k: float, steps_per_frame: int, run_dir):
        self.config, self.train_cfg = config, config.train
        self.potential, self.classifier, self.dynamics, self.sampler = potential, classifier, dynamics, sampler
        self.aa_windows = torch.as_tensor(np.asarray(aa_windows), dtype=torch.float64)
        self.masses = torch.as_tensor(np.asarray(masses_amu, dtype=np.float64))
        self.kt = kt_kj_per_mol(temperature_k)
        self.steps_per_frame = int(steps_per_frame)
        self.run_dir = Path(run_dir)
        self.iteration = 0
        self.free_positions: Optional[np.ndarray] = None
        self._build_optimizers()
        self._average, self._average_count = None, 0
        self.collapse = CollapseMonitor()

    # ------------------------------------------------------------------ optimisation state
    def _build_optimizers(self) -> None:
        cfg = self.train_cfg
        betas = (cfg.beta1, 0.999)
        groups = [{"params": [p for p in self.potential.parameters() if p.requires_grad], "lr": cfg.lr_potential}]
        if self.dynamics.log_friction.requires_grad:
            groups.append({"params": [self.dynamics.log_friction], "lr": cfg.lr_friction})
        self.generator_optimizer = torch.optim.Adam(groups, betas=betas)
        self.classifier_optimizer = torch.optim.Adam(self.classifier.parameters(), lr=cfg.lr_classifier,
                                                     betas=(0.5, 0.999))
        decay_start = int(round(cfg.iterations * (1.0 - cfg.decay_last_fraction)))
        span = max(cfg.iterations - decay_start, 1)

        def factor(it: int) -> float:
            return 1.0 if it < decay_start else max(1.0 - (it - decay_start) / span, 0.02)

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.generator_optimizer, factor)

    def _generator_parameters(self):
        return [p for group in self.generator_optimizer.param_groups for p in group["params"]]

    def mode_at(self, iteration: int) -> str:
        """``conditional`` or ``free`` for this iteration, following ``train.mode``."""
        cfg = self.train_cfg
        if cfg.mode != "conditional_then_free":
            return cfg.mode
        switch = cfg.switch_to_free_at if cfg.switch_to_free_at >= 0 else cfg.iterations // 2
        return "free" if iteration >= switch else "conditional"

    # ------------------------------------------------------------------ one iteration
    def sample(self, iteration: int, mode: str):
        """Simulate CG windows with OpenMM; returns (paths, AA windows to compare with)."""
        cfg = self.train_cfg
        rng = iteration_rng(cfg.seed, iteration, 1)
        masses, friction = self.dynamics.openmm_masses_and_friction(self.masses.numpy())
        self.sampler.set_model(self.potential, masses, friction)
        n_steps = (self.aa_windows.shape[1] - 1) * self.steps_per_frame
        picks = rng.integers(0, self.aa_windows.shape[0], size=cfg.walkers)
        aa = self.aa_windows[picks]
        if mode == "conditional":
            starts = aa[:, 0].numpy()
        else:
            if self.free_positions is None:
                self.free_positions = aa[:, 0].numpy().copy()
            self.free_positions = self.sampler.advance(self.free_positions, n_steps, int(rng.integers(2**31)))
            starts = self.free_positions
        paths = self.sampler.record(starts, n_steps, int(rng.integers(2**31)))
        if mode == "free":
            self.free_positions = paths.positions[:, -1].numpy().copy()
        return paths, aa

    def classifier_update(self, aa: torch.Tensor, cg: torch.Tensor) -> dict:
        """``classifier_steps`` Adam steps on AA (1) vs CG (0) windows; returns loss, accuracy, AUC."""
        cfg = self.train_cfg
        dtype = next(self.classifier.parameters()).dtype
        aa, cg = aa.to(dtype), cg.to(dtype)
        for _ in range(cfg.classifier_steps):
            self.classifier_optimizer.zero_grad()
            logits_aa, logits_cg = self.classifier(aa), self.classifier(cg)
            loss = classifier_loss(logits_aa, logits_cg, cfg.label_smoothing)
            if cfg.r1_weight > 0:
                from openmm_dynmatch.models.classifier import r1_penalty

                loss = loss + cfg.r1_weight * r1_penalty(self.classifier, aa)
            loss.backward()
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

    def log_likelihood(self, paths: Paths) -> torch.Tensor:
        """``log P_theta`` of every recorded path, shape (B,), differentiable in potential and friction."""
        force_fn = estimators.potential_force_fn(self.potential, create_graph=True)
        friction = self.dynamics.friction_per_bead()
        dt = self.config.dynamics.timestep_ps
        if self.dynamics.integrator == "langevin":
            return estimators.langevin_middle_log_likelihood(
                paths.positions, paths.velocities, force_fn, self.masses, friction, dt, self.kt)
        return estimators.brownian_log_likelihood(paths.positions, force_fn, self.masses, friction, dt, self.kt)

    def generator_update(self, paths: Paths, mode: str, compute_snr: bool) -> dict:
        """Score-function step(s) on the potential and friction from one batch of paths."""
        cfg = self.train_cfg
        cg = windows_from_paths(paths.positions, self.steps_per_frame)
        with torch.no_grad():
            logits = self.classifier(cg.to(next(self.classifier.parameters()).dtype)).to(torch.float64)
        reward = rewards_from_logits(logits, cfg.reward)
        stats = {"reward_mean": float(reward.mean()), "reward_std": float(reward.std()), "gradient_snr": math.nan,
                 "ess_fraction": 1.0, "updates": 0}
        n_walkers = paths.positions.shape[0]
        if 0 < cfg.estimator_chunk < n_walkers:
            stats.update(self._chunked_generator_update(paths, mode, reward, compute_snr))
            return stats
        log_p_old = None
        for _ in range(cfg.max_reuse):
            log_p = self._path_log_p(paths, mode)
            if log_p_old is None:
                log_p_old = log_p.detach()
                terms = estimators.advantages(reward, cfg.baseline, cfg.normalize_advantages).detach() * log_p
                if compute_snr:
                    stats["gradient_snr"] = self._snr(terms)
                surrogate = terms.mean()
            else:
                _, ess = estimators.importance_weights(log_p, log_p_old)
                stats["ess_fraction"] = ess
                if estimators.needs_resimulation(ess, cfg.ess_threshold):
                    break
                surrogate = estimators.reweighted_surrogate(log_p, log_p_old, reward)
            self.generator_optimizer.zero_grad()
            surrogate.backward()
            torch.nn.utils.clip_grad_norm_(self._generator_parameters(), cfg.grad_clip)
            self.generator_optimizer.step()
            stats["updates"] += 1
        return stats

    def _path_log_p(self, paths: Paths, mode: str) -> torch.Tensor:
        """The log-probability the score function differentiates: the path likelihood, and in free mode also the
        Boltzmann weight of the start frame."""
        log_p = self.log_likelihood(paths)
        if mode == "free":
            beta = 1.0 / self.kt
            log_p = log_p - beta * self.potential(paths.positions[:, 0]).to(torch.float64)
        return log_p

    def _chunked_generator_update(self, paths: Paths, mode: str, reward: torch.Tensor, compute_snr: bool) -> dict:
        """:meth:`generator_update` with the likelihood's graph built for ``train.estimator_chunk`` walkers at a
        time. Every surrogate gradient here is ``sum_j c_j grad log P_j`` with coefficients ``c_j`` that need
        only the values of ``log P`` (advantages / B on the first update; ``w_j (g_j - sum_i w_i g_i)`` for the
        self-normalised reweighted ones), so gradients accumulate chunk by chunk and match the unchunked ones.
        The gradient SNR uses one group per chunk."""
        cfg = self.train_cfg
        n_walkers = paths.positions.shape[0]
        chunks = torch.arange(n_walkers).split(cfg.estimator_chunk)
        params = [p for p in self._generator_parameters() if p.requires_grad]
        stats = {"updates": 0}
        reward = torch.as_tensor(reward).detach().to(torch.float64)
        coefficients = estimators.advantages(reward, cfg.baseline, cfg.normalize_advantages).detach() / n_walkers
        log_p_old = None
        for _ in range(cfg.max_reuse):
            if log_p_old is not None:
                log_p = torch.cat([self._path_log_p(self._subset(paths, c), mode).detach() for c in chunks])
                weights, ess = estimators.importance_weights(log_p, log_p_old)
                stats["ess_fraction"] = ess
                if estimators.needs_resimulation(ess, cfg.ess_threshold):
                    break
                weights = weights.detach()
                coefficients = weights * (reward - (weights * reward).sum())
            self.generator_optimizer.zero_grad()
            values, rows = [], []
            snr_rows = compute_snr and log_p_old is None
            for chunk in chunks:
                if snr_rows:
                    before = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]
                log_p = self._path_log_p(self._subset(paths, chunk), mode)
                (coefficients[chunk] * log_p).sum().backward()
                values.append(log_p.detach())
                if snr_rows:
                    scale = n_walkers / len(chunk)  # the gradient of this chunk's mean
                    rows.append(torch.cat([(scale * ((p.grad if p.grad is not None else 0) - b)).reshape(-1)
                                           for p, b in zip(params, before)]).to(torch.float64))
            if len(rows) >= 2:
                stats["gradient_snr"] = float(estimators.gradient_snr(torch.stack(rows), per_parameter=False))
            if log_p_old is None:
                log_p_old = torch.cat(values)
            torch.nn.utils.clip_grad_norm_(self._generator_parameters(), cfg.grad_clip)
            self.generator_optimizer.step()
            stats["updates"] += 1
        return stats

    @staticmethod
    def _subset(paths: Paths, index: torch.Tensor) -> Paths:
        return Paths(paths.positions[index], paths.velocities[index], paths.blowups)

    def _snr(self, terms: torch.Tensor) -> float:
        n_groups = 4 if terms.numel() >= 8 else 2
        usable = terms[: terms.numel() - terms.numel() % n_groups]
        params = [p for p in self._generator_parameters() if p.requires_grad]
        rows = estimators.grouped_gradients(usable, params, n_groups)
        snr = estimators.gradient_snr(rows, per_parameter=False)
        return float(snr)

    def step(self) -> dict:
        """One training iteration (sampling, classifier, estimator); returns its log row."""
        cfg = self.train_cfg
        it = self.iteration
        mode = self.mode_at(it)
        torch.manual_seed(int(iteration_rng(cfg.seed, it, 0).integers(2**31)))
        t0 = time.perf_counter()
        paths, aa = self.sample(it, mode)
        t1 = time.perf_counter()
        cg = windows_from_paths(paths.positions, self.steps_per_frame)
        row = self.classifier_update(aa, cg)
        t2 = time.perf_counter()
        phase = "warmup" if it < cfg.classifier_warmup else "adversarial"
        if phase == "adversarial":
            row.update(self.generator_update(paths, mode, compute_snr=cfg.snr_every > 0 and it % cfg.snr_every == 0))
            self.scheduler.step()
            self._accumulate_average(it)
        t3 = time.perf_counter()
        row.update({"iteration": it, "phase": phase, "mode": mode, "blowups": paths.blowups,
                    "time_sampling_s": t1 - t0, "time_classifier_s": t2 - t1, "time_estimator_s": t3 - t2})
        row.update(self.dynamics.friction_summary())
        row["classifier_collapsed"] = int(self.collapse.update(row))
        self.iteration += 1
        return row

    # ------------------------------------------------------------------ averaging and checkpoints
    def _accumulate_average(self, iteration: int) -> None:
        start = int(round(self.train_cfg.iterations * (1.0 - self.train_cfg.average_last_fraction)))
        if iteration < start:
            return
        current = {k: v.detach().clone() for k, v in self._generator_state().items()}
        if self._average is None:
            self._average, self._average_count = current, 1
            return
        self._average_count += 1
        for key, value in current.items():
            if value.is_floating_point():
                self._average[key] += (value - self._average[key]) / self._average_count

    def _generator_state(self) -> dict:
        state = {f"potential.{k}": v for k, v in self.potential.state_dict().items()}
        state.update({f"dynamics.{k}": v for k, v in self.dynamics.state_dict().items()})
        return state

    def load_averaged(self) -> None:
        """Replace potential and friction by their average over the last stretch of training (if any)."""
        if self._average is None:
            return
        self.potential.load_state_dict({k[10:]: v for k, v in self._average.items() if k.startswith("potential.")})
        self.dynamics.load_state_dict({k[9:]: v for k, v in self._average.items() if k.startswith("dynamics.")})

    def state_dict(self) -> dict:
        return {
            "iteration": self.iteration, "potential": self.potential.state_dict(),
            "dynamics": self.dynamics.state_dict(), "classifier": self.classifier.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "classifier_optimizer": self.classifier_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "average": self._average,
            "average_count": self._average_count, "free_positions": self.free_positions,
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
        self._average, self._average_count = state["average"], int(state["average_count"])
        self.free_positions = state["free_positions"]

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
