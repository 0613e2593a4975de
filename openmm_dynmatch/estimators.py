"""Reweighting-based gradient estimators of dynamic matching (DESIGN.md section 7).

OpenMM produces the CG paths; nothing here differentiates through it. Instead the path log-likelihood
``log P_theta(x_1..x_n | start)`` of the integrator that produced a recorded path is rebuilt in PyTorch from the
path and the CG forces ``F_theta = -grad U_theta`` (computed with ``create_graph=True``), and gradients of
expected rewards follow from the score-function (likelihood-ratio) identity
``grad E_theta[g] = E_theta[(g - b) grad log P_theta]``.

Two integrators are supported, each reproducing OpenMM's update exactly:

* ``BrownianIntegrator``: ``x_{k+1} = x_k + dt/(gamma m_i) F(x_k) + sqrt(2 kT dt/(gamma m_i)) xi_k``;
* ``LangevinMiddleIntegrator`` (LFMiddle): per step ``v += dt F/m; x += dt/2 v; v = a v + s_i R; x += dt/2 v``
  with ``a = exp(-gamma dt)`` and ``s_i = sqrt(kT (1 - a^2)/m_i)``.

All path likelihoods run in float64 (the noise reconstruction subtracts nearly equal numbers). Units: nm, ps,
amu, kJ/mol; friction in 1/ps. ``kt`` is the thermal energy in kJ/mol (``units.kt_kj_per_mol``).
See ``docs/estimators.md`` for the derivations.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Sequence, Tuple

import torch

from .models.potential import forces as _forces
from .units import positive_float, strip_unit

ForceFn = Callable[[torch.Tensor], torch.Tensor]
BASELINES = ("mean", "loo", "none")


def _as_path(path, name: str = "path") -> torch.Tensor:
    path = torch.as_tensor(path)
    if path.dtype != torch.float64:
        raise ValueError(f"{name} must be float64 (the noise reconstruction subtracts nearly equal numbers); "
                         f"got {path.dtype}")
    if path.ndim != 4 or path.shape[-1] != 3 or path.shape[1] < 2:
        raise ValueError(f"{name} must have shape (n_walkers, n_steps + 1 >= 2, n_beads, 3); got {tuple(path.shape)}")
    return path


def _per_bead(value, n_beads: int, name: str, unit_key: str) -> torch.Tensor:
    """A positive scalar or per-bead value as a float64 tensor of shape (n_beads,), keeping its autograd graph."""
    value = strip_unit(value, unit_key, name)
    tensor = value.to(torch.float64) if torch.is_tensor(value) else torch.as_tensor(value, dtype=torch.float64)
    if tensor.ndim == 0:
        tensor = tensor.expand(n_beads)
    if tensor.shape != (n_beads,):
        raise ValueError(f"{name} must be a scalar or have shape ({n_beads},) (one per bead); "
                         f"got {tuple(tensor.shape)}")
    if not bool(torch.all(torch.isfinite(tensor.detach()) & (tensor.detach() > 0))):
        raise ValueError(f"{name} must be finite and positive in {unit_key}; got {tensor.detach().tolist()}")
    return tensor


def _positive_number(value, name: str) -> float:
    value = value.item() if isinstance(value, torch.Tensor) else value
    if not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number; got {value!r}")
    return float(value)


def potential_force_fn(potential: torch.nn.Module, create_graph: bool = True) -> ForceFn:
    """Build ``force_fn(positions) -> forces`` from a potential module.

    Parameters
    ----------
    potential : torch.nn.Module
        ``forward(positions (B, N, 3) nm) -> energies (B,) kJ/mol``.
    create_graph : bool
        Keep the graph of the forces so that losses built from them can be differentiated with respect to the
        potential's parameters (double backpropagation). Needed for every estimator in this module.

    Returns
    -------
    callable
        ``force_fn(positions: Tensor (M, N, 3) nm) -> Tensor (M, N, 3) kJ/mol/nm``, float64. The positions are
        detached first (no gradient flows back into them); the energy is differentiated with grad mode on, also
        under ``torch.no_grad()``, by :func:`openmm_dynmatch.models.potential.forces`.
    """

    def force_fn(positions: torch.Tensor) -> torch.Tensor:
        _, force = _forces(potential, positions.detach(), create_graph=create_graph)
        return force.to(torch.float64)

    return force_fn


def batched_forces(force_fn: ForceFn, positions: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
    """Forces at every frame of a batch of paths in as few calls of ``force_fn`` as possible.

    Parameters
    ----------
    force_fn : callable
        ``force_fn(x (M, N, 3) nm) -> (M, N, 3) kJ/mol/nm``.
    positions : torch.Tensor, shape (B, n_frames, N, 3), nm
    chunk_size : int, optional
        Largest number of configurations per call (to bound memory); all at once when None.

    Returns
    -------
    torch.Tensor, shape (B, n_frames, N, 3), float64, kJ/mol/nm
    """
    flat = positions.reshape(-1, positions.shape[-2], 3)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size}")
    step = flat.shape[0] if chunk_size is None else int(chunk_size)
    pieces = [force_fn(flat[start:start + step]) for start in range(0, flat.shape[0], step)]
    forces = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0]
    if forces.shape != flat.shape:
        raise ValueError(f"force_fn returned shape {tuple(forces.shape)} for input {tuple(flat.shape)}")
    return forces.to(torch.float64).reshape(positions.shape)


def brownian_log_likelihood(path, force_fn: ForceFn, masses_amu, friction_per_ps, timestep_ps, kt,
                            return_noise: bool = False, normalized: bool = False,
                            chunk_size: Optional[int] = None):
    """Log-likelihood of recorded OpenMM ``BrownianIntegrator`` paths given their start frames.

    OpenMM's step is ``x_{k+1} = x_k + dt/(gamma m_i) F(x_k) + sigma_i xi_k`` with
    ``sigma_i^2 = 2 kT dt/(gamma m_i)`` and ``xi_k ~ N(0, 1)``. The map ``xi_k -> x_{k+1}`` (given ``x_k``) is
    affine with Jacobian ``sigma_i`` per coordinate, so
    ``log P = sum_k -|xi_k(theta)|^2 / 2 - n * 3 * sum_i log sigma_i`` (+ ``-(3 N n / 2) log 2 pi``).

    Parameters
    ----------
    path : torch.Tensor, shape (B, n + 1, N, 3), float64, nm
        Positions at every integration step, the start frame first.
    force_fn : callable
        ``force_fn(x (M, N, 3) nm) -> (M, N, 3) kJ/mol/nm``, differentiable in theta
        (see :func:`potential_force_fn`).
    masses_amu : array or torch.Tensor, shape (N,), amu
    friction_per_ps : float or torch.Tensor, shape () or (N,), 1/ps
        May require grad (learned diffusion ``kT/(gamma m_i)``).
    timestep_ps : float
        Integration step ``dt`` in ps.
    kt : float
        Thermal energy in kJ/mol.
    return_noise : bool
        Also return the reconstructed noise ``xi``, shape (B, n, N, 3).
    normalized : bool
        Add the Gaussian constant so that the result is the exact log-density of ``x_{1:n}``.
    chunk_size : int, optional
        Largest number of configurations per ``force_fn`` call.

    Returns
    -------
    torch.Tensor, shape (B,), float64 (and the noise when ``return_noise``)
    """
    path = _as_path(path)
    n_walkers, n_frames, n_beads, _ = path.shape
    masses = _per_bead(masses_amu, n_beads, "masses_amu", "amu")
    friction = _per_bead(friction_per_ps, n_beads, "friction_per_ps", "1/ps")
    dt = positive_float(timestep_ps, "ps", "timestep_ps")
    kt = positive_float(kt, "kJ/mol", "kt")
    n_steps = n_frames - 1

    inverse_gamma_m = 1.0 / (friction * masses)                     # (N,)
    sigma = torch.sqrt(2.0 * kt * dt * inverse_gamma_m)             # (N,)
    forces = batched_forces(force_fn, path[:, :-1], chunk_size)     # (B, n, N, 3)
    drift = (dt * inverse_gamma_m)[:, None] * forces
    noise = (path[:, 1:] - path[:, :-1] - drift) / sigma[:, None]
    log_p = -0.5 * noise.pow(2).sum(dim=(1, 2, 3)) - n_steps * 3 * torch.log(sigma).sum()
    if normalized:
        log_p = log_p - 0.5 * n_steps * 3 * n_beads * math.log(2.0 * math.pi)
    return (log_p, noise) if return_noise else log_p


def langevin_middle_log_likelihood(path, start_velocities, force_fn: ForceFn, masses_amu, friction_per_ps,
                                   timestep_ps, kt, return_noise: bool = False, normalized: bool = False,
                                   chunk_size: Optional[int] = None):
    """Log-likelihood of recorded OpenMM ``LangevinMiddleIntegrator`` paths given start positions and velocities.

    OpenMM's LFMiddle step from ``(x_k, u_k)`` (``u_k`` the velocity held by the integrator, which is what
    ``State.getVelocities`` reports) is::

        w_k = u_k + dt F(x_k) / m                 # kick
        y_k = x_k + dt/2 w_k                      # half drift
        u_{k+1} = a w_k + s_i R_k                 # O step, a = exp(-gamma dt), s_i = sqrt(kT (1 - a^2)/m_i)
        x_{k+1} = y_k + dt/2 u_{k+1}              # half drift

    Eliminating ``y_k`` gives ``x_{k+1} - x_k = dt/2 (w_k + u_{k+1})``, hence ``u_{k+1} = 2 (x_{k+1} - x_k)/dt - w_k``
    and ``R_k = (u_{k+1} - a w_k) / s_i``: from ``(x_0, u_0)`` and the positions every velocity and every noise
    vector follow exactly (no approximation, only recursion). Given ``(x_k, u_k)``, ``x_{k+1}`` is an affine
    function of ``R_k`` with Jacobian ``dt s_i / 2`` per coordinate, and ``u_{k+1}`` is then determined, so
    ``log P(x_{1:n} | x_0, u_0) = -1/2 sum_k |R_k|^2 - n * 3 * sum_i log(dt s_i / 2)`` (+ Gaussian constant).
    The Jacobian term depends on friction and masses, not on the potential.

    The recursion is evaluated without a loop over steps: with ``d_k = 2 (x_{k+1} - x_k)/dt - dt F(x_k)/m``,
    ``u_k + u_{k+1} = d_k``, hence ``u_k = (-1)^k (u_0 - sum_{j<k} (-1)^j d_j)``, one cumulative sum over the
    step axis. Its partial sums equal ``u_0 - (-1)^k u_k`` and so stay of the size of a velocity: the float64
    rounding of the sum grows like that of the step-by-step recursion (about 1e-12 in ``R`` after 5000 steps at
    0.1/ps), far below the rounding already carried by ``x_{k+1} - x_k`` (about 1e-8 in ``R`` there, for
    positions of a few nm).

    Parameters
    ----------
    path : torch.Tensor, shape (B, n + 1, N, 3), float64, nm
        Positions at every integration step, the start frame first.
    start_velocities : torch.Tensor, shape (B, N, 3), float64, nm/ps
        Velocities reported by OpenMM at the start frame.
    force_fn : callable
        ``force_fn(x (M, N, 3) nm) -> (M, N, 3) kJ/mol/nm``, differentiable in theta.
    masses_amu : array or torch.Tensor, shape (N,), amu
    friction_per_ps : float or torch.Tensor, shape () or (N,), 1/ps
        May require grad.
    timestep_ps : float
    kt : float
        Thermal energy in kJ/mol.
    return_noise : bool
        Also return the reconstructed noise ``R``, shape (B, n, N, 3).
    normalized : bool
        Add the Gaussian constant (exact log-density).
    chunk_size : int, optional
        Largest number of configurations per ``force_fn`` call.

    Returns
    -------
    torch.Tensor, shape (B,), float64 (and the noise when ``return_noise``)
    """
    path = _as_path(path)
    n_walkers, n_frames, n_beads, _ = path.shape
    velocities = torch.as_tensor(start_velocities)
    if velocities.dtype != torch.float64 or velocities.shape != (n_walkers, n_beads, 3):
        raise ValueError(f"start_velocities must be float64 with shape {(n_walkers, n_beads, 3)}; "
                         f"got {velocities.dtype} {tuple(velocities.shape)}")
    masses = _per_bead(masses_amu, n_beads, "masses_amu", "amu")
    friction = _per_bead(friction_per_ps, n_beads, "friction_per_ps", "1/ps")
    dt = positive_float(timestep_ps, "ps", "timestep_ps")
    kt = positive_float(kt, "kJ/mol", "kt")
    n_steps = n_frames - 1

    a = torch.exp(-friction * dt)[:, None]                           # (N, 1)
    s = torch.sqrt(kt * (1.0 - a.squeeze(-1).pow(2)) / masses)       # (N,)
    kicks = batched_forces(force_fn, path[:, :-1], chunk_size) * (dt / masses)[:, None]
    twice_mean_velocity = 2.0 * (path[:, 1:] - path[:, :-1]) / dt   # w_k + u_{k+1}
    # u_k + u_{k+1} = d_k, so (-1)^k u_k = u_0 - sum_{j<k} (-1)^j d_j: all velocities from one cumulative sum
    sign = torch.ones(n_steps, 1, 1, dtype=torch.float64, device=path.device)
    sign[1::2] = -1.0                                                # (-1)^k, (n, 1, 1)
    alternating = torch.cumsum(sign * (twice_mean_velocity - kicks), dim=1)  # sum_{j<=k} (-1)^j d_j
    following = sign * (alternating - velocities[:, None])           # u_{k+1}, k = 0..n-1
    u = torch.cat([velocities[:, None], following[:, :-1]], dim=1)   # u_k, k = 0..n-1, (B, n, N, 3)
    w = u + kicks
    noise = ((twice_mean_velocity - w) - a * w) / s[:, None]
    log_p = -0.5 * noise.pow(2).sum(dim=(1, 2, 3)) - n_steps * 3 * torch.log(0.5 * dt * s).sum()
    if normalized:
        log_p = log_p - 0.5 * n_steps * 3 * n_beads * math.log(2.0 * math.pi)
    return (log_p, noise) if return_noise else log_p


def advantages(reward: torch.Tensor, baseline: str = "mean", normalize: bool = False,
               groups: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Detached advantages ``g - b`` of per-window rewards.

    Parameters
    ----------
    reward : torch.Tensor, shape (B,)
    baseline : {"mean", "loo", "none"}
        Batch mean, leave-one-out mean ``(sum g - g_j)/(B - 1)`` (unbiased), or no baseline.
    normalize : bool
        Divide by the standard deviation of the advantages (changes the gradient's scale, not its direction in
        expectation up to that factor).
    groups : torch.Tensor, shape (B,), int64, optional
        Group label of every window (e.g. the start frame shared by several CG walkers). The mean and
        leave-one-out baselines are then taken within each group, every group needing at least 2 windows; a
        per-start baseline removes the reward variance that comes from the start frame itself.

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    reward = torch.as_tensor(reward).detach()
    if reward.ndim != 1 or reward.shape[0] < 1:
        raise ValueError(f"reward must have shape (n_windows,); got {tuple(reward.shape)}")
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline '{baseline}'; available: {sorted(BASELINES)}")
    if groups is None:
        labels = torch.zeros(reward.shape[0], dtype=torch.long)
    else:
        labels = torch.as_tensor(groups, dtype=torch.long)
        if labels.shape != reward.shape:
            raise ValueError(f"groups must have shape {tuple(reward.shape)} (one label per window); "
                             f"got {tuple(labels.shape)}")
        labels = torch.unique(labels, return_inverse=True)[1]
    n_groups = int(labels.max()) + 1
    sums = torch.zeros(n_groups, dtype=reward.dtype).index_add(0, labels, reward)
    counts = torch.zeros(n_groups, dtype=reward.dtype).index_add(0, labels, torch.ones_like(reward))
    if baseline == "mean":
        advantage = reward - (sums / counts)[labels]
    elif baseline == "loo":
        if bool((counts < 2).any()):
            raise ValueError("baseline 'loo' needs at least 2 windows per group; got a group of 1")
        advantage = reward - (sums[labels] - reward) / (counts[labels] - 1)
    else:
        advantage = reward
    if normalize:
        scale = advantage.std() if advantage.shape[0] > 1 else advantage.new_tensor(1.0)
        advantage = advantage / (scale + torch.finfo(advantage.dtype).eps)
    return advantage


def _check_same_batch(values: torch.Tensor, reward: torch.Tensor, name: str) -> None:
    if values.ndim != 1 or values.shape != torch.as_tensor(reward).shape:
        raise ValueError(f"{name} must have shape (n_windows,) matching reward {tuple(torch.as_tensor(reward).shape)};"
                         f" got {tuple(values.shape)}")


def score_function_surrogate(log_p: torch.Tensor, reward: torch.Tensor, baseline: str = "mean",
                             normalize: bool = False) -> torch.Tensor:
    """Surrogate ``mean[(g - b).detach() * log P]`` whose gradient estimates ``grad E_theta[g]``.

    Parameters
    ----------
    log_p : torch.Tensor, shape (B,)
        Path log-likelihoods (differentiable in theta).
    reward : torch.Tensor, shape (B,)
    baseline, normalize
        See :func:`advantages`.

    Returns
    -------
    torch.Tensor, 0-d. Its gradient estimates ``grad E[g]``: minimise it to lower ``E[g]`` (the trainer does).
    Minimise its negative to raise ``E[g]``.
    """
    _check_same_batch(log_p, reward, "log_p")
    return (advantages(reward, baseline, normalize).to(log_p.dtype) * log_p).mean()


def thermodynamic_surrogate(potential_energy_x0: torch.Tensor, reward: torch.Tensor, beta: float,
                            baseline: str = "mean", normalize: bool = False) -> torch.Tensor:
    """Free-mode start-frame term, ``grad log p_theta(x0) = -beta (grad U(x0) - <grad U>_CG)``.

    The surrogate is ``mean[(g - b).detach() * (-beta) (U(x0) - mean U(x0))]``: the batch mean of ``U`` stands in
    for the canonical average, so the term is exact for any baseline; with the mean baseline its gradient is
    ``-beta Cov(g, grad U)`` (1/B covariance), with the leave-one-out baseline the unbiased covariance.

    Parameters
    ----------
    potential_energy_x0 : torch.Tensor, shape (B,), kJ/mol
        ``U_theta`` at the windows' start frames (Boltzmann samples of the CG model), differentiable in theta.
    reward : torch.Tensor, shape (B,)
    beta : float
        ``1/kT`` in mol/kJ.
    baseline, normalize
        See :func:`advantages`.

    Returns
    -------
    torch.Tensor, 0-d
    """
    _check_same_batch(potential_energy_x0, reward, "potential_energy_x0")
    beta = _positive_number(beta, "beta")
    energy = potential_energy_x0.to(torch.float64)
    centred = energy - energy.mean()
    return (advantages(reward, baseline, normalize).to(torch.float64) * (-beta) * centred).mean()


def importance_weights(log_p_new: torch.Tensor, log_p_old: torch.Tensor) -> Tuple[torch.Tensor, float]:
    """Self-normalised importance weights for reusing paths after a parameter update.

    ``log w_j = log P_new(path_j) - log P_old(path_j)`` (in free mode include ``-beta (U_new - U_old)(x0)`` in both
    arguments' difference, e.g. pass ``log_p - beta * U(x0)``). Weights keep the graph of ``log_p_new`` so that
    ``sum_j w_j g_j`` is a differentiable surrogate (see :func:`reweighted_surrogate`).

    Parameters
    ----------
    log_p_new : torch.Tensor, shape (B,)
    log_p_old : torch.Tensor, shape (B,)
        Detached internally.

    Returns
    -------
    weights : torch.Tensor, shape (B,), summing to 1
    ess_fraction : float
        ``ESS / B`` with ``ESS = 1 / sum w_j^2``; 1 for uniform weights.
    """
    _check_same_batch(log_p_new, log_p_old, "log_p_new")
    log_w = log_p_new.to(torch.float64) - log_p_old.detach().to(torch.float64)
    weights = torch.softmax(log_w, dim=0)
    ess = 1.0 / weights.detach().pow(2).sum()
    return weights, float(ess) / weights.shape[0]


def needs_resimulation(ess_fraction: float, threshold: float = 0.5) -> bool:
    """True when the effective sample size fraction fell below ``threshold`` (then resimulate with OpenMM)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
    return not float(ess_fraction) >= threshold


def reweighted_surrogate(log_p_new: torch.Tensor, log_p_old: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """Self-normalised importance-sampling estimate ``sum_j w_j g_j`` of ``E_new[g]`` from old paths.

    Its gradient is ``sum_j w_j (g_j - sum_i w_i g_i) grad log P_new(path_j)``, the score-function gradient with a
    weighted-mean baseline; at ``theta = theta_old`` it equals that of :func:`score_function_surrogate` with
    ``baseline="mean"``.

    Returns
    -------
    torch.Tensor, 0-d
    """
    weights, _ = importance_weights(log_p_new, log_p_old)
    _check_same_batch(weights, reward, "log_p_new")
    return (weights * torch.as_tensor(reward).detach().to(weights.dtype)).sum()


def force_matching_loss(potential: torch.nn.Module, positions: torch.Tensor,
                        mapped_forces: torch.Tensor) -> torch.Tensor:
    """Force-matching loss ``mean over frames and beads of |F_map - F_theta|^2`` (kJ/mol/nm)^2.

    Parameters
    ----------
    potential : torch.nn.Module
        ``forward(positions (B, N, 3) nm) -> (B,) kJ/mol``.
    positions : torch.Tensor, shape (B, N, 3), nm
        Mapped AA configurations.
    mapped_forces : torch.Tensor, shape (B, N, 3), kJ/mol/nm
        Aggregated AA forces on the beads.

    Returns
    -------
    torch.Tensor, 0-d, float64, differentiable in the potential's parameters.
    """
    positions = torch.as_tensor(positions)
    mapped_forces = torch.as_tensor(mapped_forces)
    if positions.ndim != 3 or positions.shape[-1] != 3 or mapped_forces.shape != positions.shape:
        raise ValueError(f"positions and mapped_forces must both have shape (n_frames, n_beads, 3); "
                         f"got {tuple(positions.shape)} and {tuple(mapped_forces.shape)}")
    forces = potential_force_fn(potential, create_graph=True)(positions)
    return (mapped_forces.to(torch.float64) - forces).pow(2).sum(dim=-1).mean()


def relative_entropy_surrogate(potential: torch.nn.Module, aa_frames: torch.Tensor, cg_frames: torch.Tensor,
                               beta: float) -> torch.Tensor:
    """Relative-entropy surrogate ``beta (mean U(AA) - mean U(CG))``, CG frames taken as detached samples.

    Its gradient is ``beta (<grad U>_AA - <grad U>_CG)``, the gradient of the relative entropy
    ``S_rel = KL(p_AA || p_theta)`` when the CG frames are Boltzmann samples of ``U_theta``.

    Parameters
    ----------
    potential : torch.nn.Module
    aa_frames : torch.Tensor, shape (B_aa, N, 3), nm
        Mapped AA configurations.
    cg_frames : torch.Tensor, shape (B_cg, N, 3), nm
        Configurations sampled from the CG model.
    beta : float
        ``1/kT`` in mol/kJ.

    Returns
    -------
    torch.Tensor, 0-d
    """
    beta = _positive_number(beta, "beta")
    aa_frames, cg_frames = torch.as_tensor(aa_frames), torch.as_tensor(cg_frames)
    for name, frames in (("aa_frames", aa_frames), ("cg_frames", cg_frames)):
        if frames.ndim != 3 or frames.shape[-1] != 3 or frames.shape[0] < 1:
            raise ValueError(f"{name} must have shape (n_frames, n_beads, 3); got {tuple(frames.shape)}")
    if aa_frames.shape[1] != cg_frames.shape[1]:
        raise ValueError(f"aa_frames have {aa_frames.shape[1]} beads but cg_frames have {cg_frames.shape[1]}")
    return beta * (potential(aa_frames).mean() - potential(cg_frames.detach()).mean())


def grouped_gradients(per_window_terms: torch.Tensor, parameters: Sequence[torch.Tensor],
                      n_groups: int) -> torch.Tensor:
    """Gradients of the surrogate restricted to ``n_groups`` equal groups of windows, flattened.

    The surrogate is ``mean_j t_j`` (e.g. ``t_j = (g_j - b) log P_j``); each row is the gradient of one group's
    mean. Their mean is the full gradient (when ``B`` is divisible by ``n_groups``) and their scatter its
    standard error: feed the rows to :func:`gradient_snr`. Each row costs one backward pass through the whole
    shared graph; for many groups, build each group's likelihood in its own call instead (same rows, one pass).

    Parameters
    ----------
    per_window_terms : torch.Tensor, shape (B,)
        Per-window surrogate terms with a graph to ``parameters``.
    parameters : sequence of torch.Tensor
    n_groups : int
        At least 2 and at most ``B``; groups are contiguous slices.

    Returns
    -------
    torch.Tensor, shape (n_groups, n_parameters_total), float64
    """
    parameters, n_windows = list(parameters), per_window_terms.shape[0]
    if not 2 <= n_groups <= n_windows:
        raise ValueError(f"n_groups must be between 2 and the number of windows {n_windows}; got {n_groups}")
    rows = []
    for group in torch.tensor_split(torch.arange(n_windows), n_groups):
        grads = torch.autograd.grad(per_window_terms[group].mean(), parameters, retain_graph=True,
                                    allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).to(torch.float64)
                               for p, g in zip(parameters, grads)]))
    return torch.stack(rows)


def evidence_factor(snr: float) -> float:
    """The fraction of a mean gradient's squared norm that its noise does not explain, ``max(0, 1 - 1/SNR^2)``.

    With ``G`` independent contributions ``g_i`` of mean ``m`` and per-parameter variances ``s_p^2``,
    ``E |m|^2 = |mu|^2 + sum_p s_p^2 / G``: the factor ``1 - (sum_p s_p^2 / G) / |m|^2`` estimates
    ``|mu|^2 / (|mu|^2 + noise^2)``, about 1 where the true gradient ``mu`` stands out of the noise and 0 where
    the mean is noise alone (the SNR is then about 1). It is the positive-part James-Stein shrinkage of ``m``
    towards zero; the trainer scales a step by it (``train.evidence_scaling``).

    Parameters
    ----------
    snr : float
        :func:`gradient_snr` of the whole vector (``per_parameter=False``) from ``G >= 2`` contributions.

    Returns
    -------
    float in [0, 1]
    """
    snr = float(snr)
    if not snr > 0:  # zero gradient (or no noise and no signal): nothing to step
        return 0.0
    return max(0.0, 1.0 - 1.0 / snr ** 2) if math.isfinite(snr) else 1.0


def gradient_snr(per_sample_grads: torch.Tensor, per_parameter: bool = True) -> torch.Tensor:
    """Signal-to-noise ratio of a gradient estimated as the mean of independent contributions.

    Parameters
    ----------
    per_sample_grads : torch.Tensor, shape (G, P)
        ``G >= 2`` independent contributions (per window or per group of windows) of a flattened parameter
        vector (or a parameter group) of size ``P``.
    per_parameter : bool
        If True return ``|mean_p| / (std_p / sqrt(G))`` for each parameter (shape (P,)); otherwise one number
        for the whole vector, ``|mean| / sqrt(sum_p var_p / G)`` (norm of the signal over the rms noise norm).

    Returns
    -------
    torch.Tensor, shape (P,) or 0-d
    """
    grads = torch.as_tensor(per_sample_grads).detach().to(torch.float64)
    if grads.ndim == 1:
        grads = grads[:, None]
    if grads.ndim != 2 or grads.shape[0] < 2:
        raise ValueError(f"per_sample_grads must have shape (n_samples >= 2, n_parameters); got {tuple(grads.shape)}")
    n_samples = grads.shape[0]
    mean = grads.mean(dim=0)
    variance_of_mean = grads.var(dim=0, unbiased=True) / n_samples
    if per_parameter:
        return mean.abs() / variance_of_mean.sqrt()
    return mean.norm() / variance_of_mean.sum().sqrt()
