"""Tests of the reweighting-based gradient estimators against independent calculations.

The integrators are re-implemented here in numpy with analytic harmonic-chain forces and injected noise, in
OpenMM's step order; the estimators (PyTorch, autograd forces) must reproduce the injected noise, the Gaussian
transition densities, and finite-difference derivatives of Monte-Carlo means under common random numbers.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import tolerance
from toys import HarmonicChain as _Chain
from openmm_dynmatch import estimators as est

KT = 2.494339  # kJ/mol, ~300 K
MASSES = np.array([12.0, 14.0, 16.0])  # amu, three beads of a chain
F64 = tolerance(torch.float64)


pytestmark = pytest.mark.usefixtures("one_thread")



def HarmonicChain(k: float, r0: float) -> _Chain:
    """The shared harmonic chain with learnable ``k`` and ``r0`` (the estimators differentiate them)."""
    return _Chain(k, r0, learnable=True)


class HarmonicTrap(torch.nn.Module):
    """Every coordinate tethered: ``U = k/2 sum (x - c)^2``, learnable ``k`` and centre ``c`` (nm)."""

    def __init__(self, k: float, center: float):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(k, dtype=torch.float64))
        self.center = torch.nn.Parameter(torch.tensor(center, dtype=torch.float64))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.k * ((positions.to(torch.float64) - self.center) ** 2).sum(dim=(1, 2))


# ------------------------------------------------------------------------ independent numpy simulators
def chain_forces(x, k, r0):
    """Analytic forces of the harmonic chain, x (B, N, 3) -> (B, N, 3)."""
    bond = x[:, 1:] - x[:, :-1]
    r = np.linalg.norm(bond, axis=-1, keepdims=True)
    pull = k * (r - r0) * bond / r  # force on bead i+1 is -pull, on bead i is +pull
    forces = np.zeros_like(x)
    forces[:, :-1] += pull
    forces[:, 1:] -= pull
    return forces


def simulate_brownian(x0, noise, k, r0, gamma, dt):
    """OpenMM BrownianIntegrator: x += dt/(gamma m) F + sqrt(2 kT dt/(gamma m)) xi."""
    inv = 1.0 / (gamma * MASSES)[:, None]
    path = [x0]
    for k_step in range(noise.shape[1]):
        x = path[-1]
        path.append(x + dt * inv * chain_forces(x, k, r0) + np.sqrt(2 * KT * dt * inv) * noise[:, k_step])
    return np.stack(path, axis=1)


def simulate_langevin_middle(x0, v0, noise, k, r0, gamma, dt):
    """OpenMM LangevinMiddleIntegrator: v += dt F/m; x += dt/2 v; v = a v + sqrt(kT(1-a^2)/m) R; x += dt/2 v."""
    m = MASSES[:, None]
    a = math.exp(-gamma * dt)
    x, v, path = x0.copy(), v0.copy(), [x0]
    for k_step in range(noise.shape[1]):
        v = v + dt * chain_forces(x, k, r0) / m
        x = x + 0.5 * dt * v
        v = a * v + np.sqrt(KT * (1 - a * a) / m) * noise[:, k_step]
        x = x + 0.5 * dt * v
        path.append(x)
    return np.stack(path, axis=1)


def start_frames(rng, n_walkers, bond=0.2):
    """A bent chain with bonds of ``bond`` nm plus a little scatter, shape (B, 3, 3)."""
    base = np.array([[0.0, 0.0, 0.0], [bond, 0.0, 0.0], [bond, bond, 0.0]])
    return base + 0.01 * rng.standard_normal((n_walkers, 3, 3))


def maxwell_boltzmann(rng, n_walkers):
    return rng.standard_normal((n_walkers, 3, 3)) * np.sqrt(KT / MASSES)[:, None]


def end_bond_reward(path):
    """g = mean squared bond length at the window end (nm^2), per walker."""
    end = path[:, -1]
    return (np.linalg.norm(end[:, 1:] - end[:, :-1], axis=-1) ** 2).mean(axis=-1)


BROWNIAN = dict(k=500.0, r0=0.15, gamma=10.0, dt=0.02)
LANGEVIN = dict(k=500.0, r0=0.15, gamma=20.0, dt=0.01)


def torch_path(array):
    return torch.from_numpy(np.ascontiguousarray(array))


def brownian_log_p(path, model, friction, params, **kwargs):
    return est.brownian_log_likelihood(torch_path(path), est.potential_force_fn(model), MASSES, friction,
                                       params["dt"], KT, **kwargs)


def langevin_log_p(path, v0, model, friction, params, **kwargs):
    return est.langevin_middle_log_likelihood(torch_path(path), torch_path(v0), est.potential_force_fn(model),
                                              MASSES, friction, params["dt"], KT, **kwargs)


# ------------------------------------------------------------------ (a), (b): noise and transition densities
@pytest.mark.parametrize("friction", [10.0, np.array([8.0, 10.0, 12.0])])
def test_brownian_noise_and_log_density(rng, friction):
    p = BROWNIAN
    x0, noise = start_frames(rng, 16), rng.standard_normal((16, 6, 3, 3))
    gamma = np.broadcast_to(friction, (3,))
    path = simulate_brownian(x0, noise, p["k"], p["r0"], gamma, p["dt"])
    model = HarmonicChain(p["k"], p["r0"])
    log_p, xi = brownian_log_p(path, model, torch.as_tensor(friction), p, return_noise=True)
    np.testing.assert_allclose(xi.detach().numpy(), noise, rtol=0, atol=1e-10)

    sigma = np.sqrt(2 * KT * p["dt"] / (gamma * MASSES))
    expected = -0.5 * (noise**2).sum(axis=(1, 2, 3)) - 6 * 3 * np.log(sigma).sum()
    np.testing.assert_allclose(log_p.detach().numpy(), expected, **F64)

    # the normalised version is the exact density of x_{1:n}: a product of Gaussian transitions
    mean = path[:, :-1] + p["dt"] / (gamma * MASSES)[:, None] * np.stack(
        [chain_forces(path[:, s], p["k"], p["r0"]) for s in range(6)], axis=1)
    direct = stats.norm.logpdf(path[:, 1:], loc=mean, scale=sigma[:, None]).sum(axis=(1, 2, 3))
    normalized = brownian_log_p(path, model, torch.as_tensor(friction), p, normalized=True)
    np.testing.assert_allclose(normalized.detach().numpy(), direct, rtol=1e-9, atol=1e-7)


def test_langevin_middle_noise_and_log_density(rng):
    p = LANGEVIN
    x0, v0, noise = start_frames(rng, 16), maxwell_boltzmann(rng, 16), rng.standard_normal((16, 8, 3, 3))
    path = simulate_langevin_middle(x0, v0, noise, p["k"], p["r0"], p["gamma"], p["dt"])
    model = HarmonicChain(p["k"], p["r0"])
    log_p, r = langevin_log_p(path, v0, model, p["gamma"], p, return_noise=True)
    np.testing.assert_allclose(r.detach().numpy(), noise, rtol=0, atol=1e-10)

    a = math.exp(-p["gamma"] * p["dt"])
    s = np.sqrt(KT * (1 - a * a) / MASSES)
    expected = -0.5 * (noise**2).sum(axis=(1, 2, 3)) - 8 * 3 * np.log(p["dt"] * s / 2).sum()
    np.testing.assert_allclose(log_p.detach().numpy(), expected, **F64)

    # x_{k+1} | (x_k, u_k) ~ N(x_k + dt/2 (1 + a) w_k, (dt s / 2)^2), u_k rebuilt by replaying the simulator
    direct, u = np.zeros(16), v0
    for step in range(8):
        w = u + p["dt"] * chain_forces(path[:, step], p["k"], p["r0"]) / MASSES[:, None]
        mean = path[:, step] + 0.5 * p["dt"] * (1 + a) * w
        direct += stats.norm.logpdf(path[:, step + 1], mean, 0.5 * p["dt"] * s[:, None]).sum(axis=(1, 2))
        u = a * w + s[:, None] * noise[:, step]
    normalized = langevin_log_p(path, v0, model, p["gamma"], p, normalized=True)
    np.testing.assert_allclose(normalized.detach().numpy(), direct, rtol=1e-9, atol=1e-7)


def test_force_evaluation_chunks_do_not_change_the_result(rng):
    p = BROWNIAN
    path = simulate_brownian(start_frames(rng, 5), rng.standard_normal((5, 4, 3, 3)), p["k"], p["r0"],
                             p["gamma"], p["dt"])
    model = HarmonicChain(p["k"], p["r0"])
    whole = brownian_log_p(path, model, p["gamma"], p)
    chunked = brownian_log_p(path, model, p["gamma"], p, chunk_size=3)
    torch.testing.assert_close(chunked, whole, **F64)


# ------------------------------------------------- (c): score-function gradient == finite differences (CRN)
def reward_of(path):
    """Mean squared end bond length (potential-sensitive) plus squared end displacement (friction-sensitive)."""
    return end_bond_reward(path) + ((path[:, -1] - path[:, 0]) ** 2).sum(axis=(-1, -2))


def score_function_gradient(kind, params, n_steps, rng, n_walkers=10000, n_groups=40):
    """Library estimate of d E[g] / d(k, r0, gamma) and its standard error from groups of walkers.

    Each group's likelihood is built separately (its own autograd graph, so that the per-group backward passes
    cost one full pass together); the advantages use the whole batch.
    """
    x0, v0 = start_frames(rng, n_walkers), maxwell_boltzmann(rng, n_walkers)
    noise = rng.standard_normal((n_walkers, n_steps, 3, 3))
    model = HarmonicChain(params["k"], params["r0"])
    friction = torch.tensor(params["gamma"], dtype=torch.float64, requires_grad=True)
    if kind == "brownian":
        path = simulate_brownian(x0, noise, params["k"], params["r0"], params["gamma"], params["dt"])
    else:
        path = simulate_langevin_middle(x0, v0, noise, params["k"], params["r0"], params["gamma"], params["dt"])
    advantage = est.advantages(torch.from_numpy(reward_of(path)), "mean")
    rows = []
    for group in np.array_split(np.arange(n_walkers), n_groups):
        if kind == "brownian":
            log_p = brownian_log_p(path[group], model, friction, params)
        else:
            log_p = langevin_log_p(path[group], v0[group], model, friction, params)
        grads = torch.autograd.grad((advantage[group] * log_p).mean(), [model.k, model.r0, friction])
        rows.append(torch.stack(grads))
    rows = torch.stack(rows)
    snr = est.gradient_snr(rows)
    return rows.mean(dim=0).numpy(), (rows.mean(dim=0).abs() / snr).numpy()


def finite_difference_gradient(kind, params, n_steps, rng, n_walkers=10000):
    """Central differences of the Monte-Carlo mean of g under common random numbers, with standard errors."""
    x0, v0 = start_frames(rng, n_walkers), maxwell_boltzmann(rng, n_walkers)
    noise = rng.standard_normal((n_walkers, n_steps, 3, 3))
    means, errors = [], []
    for name, h in (("k", 1.0), ("r0", 1e-4), ("gamma", 1e-2)):
        rewards = []
        for sign in (1, -1):
            q = dict(params, **{name: params[name] + sign * h})
            if kind == "brownian":
                path = simulate_brownian(x0, noise, q["k"], q["r0"], q["gamma"], q["dt"])
            else:
                path = simulate_langevin_middle(x0, v0, noise, q["k"], q["r0"], q["gamma"], q["dt"])
            rewards.append(reward_of(path))
        derivative = (rewards[0] - rewards[1]) / (2 * h)
        means.append(derivative.mean())
        errors.append(derivative.std() / math.sqrt(n_walkers))
    return np.array(means), np.array(errors)


@pytest.mark.parametrize("kind, params, n_steps, n_walkers",
                         [("brownian", BROWNIAN, 5, 10000), ("langevin", LANGEVIN, 10, 30000)])
def test_score_function_gradient_matches_finite_differences(rng, kind, params, n_steps, n_walkers):
    """d E[g] / d(k, r0, friction): likelihood-ratio estimate vs central differences with common random numbers."""
    estimate, estimate_error = score_function_gradient(kind, params, n_steps, rng, n_walkers)
    reference, reference_error = finite_difference_gradient(kind, params, n_steps, rng, n_walkers)
    combined = np.hypot(estimate_error, reference_error)
    assert np.all(np.abs(reference) > 5 * combined), (reference, combined)  # the test has power
    assert np.all(np.abs(estimate - reference) < 4 * combined), (estimate, reference, combined)


# ------------------------------------------------------------------------- (d): free-mode start-frame term
def trap_samples(rng, k, center, n_samples):
    """Exact Boltzmann samples of HarmonicTrap: every coordinate ~ N(center, kT / k)."""
    return center + np.sqrt(KT / k) * rng.standard_normal((n_samples, 3, 3))


@pytest.mark.parametrize("baseline, ddof", [("mean", 0), ("loo", 1), ("none", 0)])
def test_thermodynamic_term_is_minus_beta_covariance(rng, baseline, ddof):
    k, center, beta = 100.0, 0.3, 1.0 / KT
    x = trap_samples(rng, k, center, 500)
    model = HarmonicTrap(k, center)
    reward = torch.from_numpy((x**2).sum(axis=(1, 2)))
    surrogate = est.thermodynamic_surrogate(model(torch_path(x)), reward, beta, baseline)
    gradient = torch.stack(torch.autograd.grad(surrogate, [model.k, model.center])).numpy()

    du_dk = 0.5 * ((x - center) ** 2).sum(axis=(1, 2))
    du_dc = -k * (x - center).sum(axis=(1, 2))
    expected = [-beta * np.cov(reward.numpy(), du, ddof=ddof)[0, 1] for du in (du_dk, du_dc)]
    np.testing.assert_allclose(gradient, expected, rtol=1e-9, atol=0)


def test_thermodynamic_term_matches_analytic_derivative(rng):
    """E[sum x^2] = 9 (kT/k + c^2) for 9 coordinates; the estimator's mean agrees within its standard error."""
    k, center, beta, n = 100.0, 0.3, 1.0 / KT, 20000
    x = trap_samples(rng, k, center, n)
    model = HarmonicTrap(k, center)
    reward = torch.from_numpy((x**2).sum(axis=(1, 2)))
    surrogate = est.thermodynamic_surrogate(model(torch_path(x)), reward, beta)
    gradient = torch.stack(torch.autograd.grad(surrogate, [model.k, model.center])).numpy()

    analytic = np.array([-9 * KT / k**2, 18 * center])
    advantage = reward.numpy() - reward.numpy().mean()
    du = np.stack([0.5 * ((x - center) ** 2).sum(axis=(1, 2)), -k * (x - center).sum(axis=(1, 2))])
    error = (-beta * advantage * (du - du.mean(axis=1, keepdims=True))).std(axis=1) / math.sqrt(n)
    assert np.all(np.abs(analytic) > 5 * error)
    assert np.all(np.abs(gradient - analytic) < 4 * error), (gradient, analytic, error)


# --------------------------------------------------------------------------------- (e): sample reuse, ESS
def brownian_batch(rng, n_walkers, n_steps=5):
    p = BROWNIAN
    path = simulate_brownian(start_frames(rng, n_walkers), rng.standard_normal((n_walkers, n_steps, 3, 3)),
                             p["k"], p["r0"], p["gamma"], p["dt"])
    return path, torch.from_numpy(reward_of(path))


def test_importance_weights_uniform_when_parameters_unchanged(rng):
    path, _ = brownian_batch(rng, 64)
    model = HarmonicChain(BROWNIAN["k"], BROWNIAN["r0"])
    log_p_old = brownian_log_p(path, model, BROWNIAN["gamma"], BROWNIAN).detach()
    weights, ess_fraction = est.importance_weights(brownian_log_p(path, model, BROWNIAN["gamma"], BROWNIAN),
                                                   log_p_old)
    torch.testing.assert_close(weights, torch.full((64,), 1 / 64, dtype=torch.float64), **F64)
    assert ess_fraction == pytest.approx(1.0, abs=1e-12)
    assert not est.needs_resimulation(ess_fraction)


def test_importance_weights_and_ess_after_an_update(rng):
    path, reward = brownian_batch(rng, 64)
    old = brownian_log_p(path, HarmonicChain(BROWNIAN["k"], BROWNIAN["r0"]), BROWNIAN["gamma"], BROWNIAN).detach()
    new_model = HarmonicChain(1.3 * BROWNIAN["k"], 1.1 * BROWNIAN["r0"])
    new = brownian_log_p(path, new_model, 0.8 * BROWNIAN["gamma"], BROWNIAN)
    weights, ess_fraction = est.importance_weights(new, old)

    delta = (new.detach() - old).numpy()
    expected = np.exp(delta - delta.max()) / np.exp(delta - delta.max()).sum()
    np.testing.assert_allclose(weights.detach().numpy(), expected, **F64)
    assert ess_fraction == pytest.approx(1.0 / (64 * (expected**2).sum()), rel=1e-12)
    assert ess_fraction < 0.9
    assert est.needs_resimulation(ess_fraction, threshold=min(1.0, ess_fraction + 0.05))
    assert not est.needs_resimulation(ess_fraction, threshold=ess_fraction - 0.05)


def test_reweighted_surrogate_at_old_parameters_is_the_score_function_gradient(rng):
    path, reward = brownian_batch(rng, 256)
    model = HarmonicChain(BROWNIAN["k"], BROWNIAN["r0"])
    log_p = brownian_log_p(path, model, BROWNIAN["gamma"], BROWNIAN)
    reweighted = torch.autograd.grad(est.reweighted_surrogate(log_p, log_p.detach(), reward),
                                     [model.k, model.r0], retain_graph=True)
    plain = torch.autograd.grad(est.score_function_surrogate(log_p, reward, "mean"), [model.k, model.r0])
    torch.testing.assert_close(torch.stack(reweighted), torch.stack(plain), **F64)


def test_reweighted_mean_predicts_a_new_simulation(rng):
    """sum_j w_j g_j from paths of theta_old estimates E_new[g] (checked against a fresh simulation)."""
    path, _ = brownian_batch(rng, 20000)
    reward = torch.from_numpy(end_bond_reward(path))
    p, new_k = BROWNIAN, 1.1 * BROWNIAN["k"]
    old = brownian_log_p(path, HarmonicChain(p["k"], p["r0"]), p["gamma"], p).detach()
    new = brownian_log_p(path, HarmonicChain(new_k, p["r0"]), p["gamma"], p).detach()
    weights, ess_fraction = est.importance_weights(new, old)
    estimate = float(est.reweighted_surrogate(new, old, reward))
    error = float(torch.sqrt((weights**2 * (reward - estimate) ** 2).sum()))

    fresh = simulate_brownian(start_frames(rng, 20000), rng.standard_normal((20000, 5, 3, 3)), new_k, p["r0"],
                              p["gamma"], p["dt"])
    direct = end_bond_reward(fresh)
    combined = math.hypot(error, direct.std() / math.sqrt(20000))
    assert 0.5 < ess_fraction < 1.0
    assert abs(estimate - direct.mean()) < 4 * combined
    assert abs(float(reward.mean()) - direct.mean()) > 4 * combined  # the change of k is visible


# ------------------------------------------------------------------------------ (f), (g): baseline objectives
def chain_frames(rng, n_frames):
    return start_frames(rng, n_frames) + 0.02 * rng.standard_normal((n_frames, 3, 3))


def test_force_matching_loss_zero_at_truth_and_gradient_matches_finite_differences(rng):
    x = chain_frames(rng, 40)
    mapped = chain_forces(x, 500.0, 0.15)
    at_truth = est.force_matching_loss(HarmonicChain(500.0, 0.15), torch_path(x), torch_path(mapped))
    assert float(at_truth.detach()) < 1e-20

    model = HarmonicChain(450.0, 0.16)
    loss = est.force_matching_loss(model, torch_path(x), torch_path(mapped))
    gradient = torch.stack(torch.autograd.grad(loss, [model.k, model.r0])).numpy()

    def written_out(k, r0):
        return ((mapped - chain_forces(x, k, r0)) ** 2).sum(axis=-1).mean()

    assert float(loss.detach()) == pytest.approx(written_out(450.0, 0.16), rel=1e-10)
    fd = [(written_out(450.0 + 1e-3, 0.16) - written_out(450.0 - 1e-3, 0.16)) / 2e-3,
          (written_out(450.0, 0.16 + 1e-6) - written_out(450.0, 0.16 - 1e-6)) / 2e-6]
    np.testing.assert_allclose(gradient, fd, rtol=1e-6)


def test_relative_entropy_gradient_is_beta_times_difference_of_averages(rng):
    aa, cg = torch_path(chain_frames(rng, 30)), torch_path(chain_frames(rng, 50) * 1.1).requires_grad_(True)
    k, r0, beta = 400.0, 0.17, 1.0 / KT
    model = HarmonicChain(k, r0)
    surrogate = est.relative_entropy_surrogate(model, aa, cg, beta)
    gradient = torch.stack(torch.autograd.grad(surrogate, [model.k, model.r0], allow_unused=True)).numpy()

    def du_dtheta(frames):
        r = np.linalg.norm(np.diff(frames.detach().numpy(), axis=1), axis=-1)
        return np.array([(0.5 * (r - r0) ** 2).sum(axis=1).mean(), (-k * (r - r0)).sum(axis=1).mean()])

    np.testing.assert_allclose(gradient, beta * (du_dtheta(aa) - du_dtheta(cg)), rtol=1e-9)
    surrogate = est.relative_entropy_surrogate(model, aa, cg, beta)
    assert not surrogate.requires_grad or torch.autograd.grad(surrogate, cg, allow_unused=True)[0] is None


# ------------------------------------------------------------------------------------------ diagnostics
def test_gradient_snr_written_out(rng):
    samples = rng.normal(loc=[0.5, -2.0, 0.0], scale=[1.0, 3.0, 0.5], size=(30, 3))
    mean, std = samples.mean(axis=0), samples.std(axis=0, ddof=1)
    np.testing.assert_allclose(est.gradient_snr(torch.from_numpy(samples)).numpy(),
                               np.abs(mean) / (std / math.sqrt(30)), rtol=1e-12)
    overall = float(est.gradient_snr(torch.from_numpy(samples), per_parameter=False))
    assert overall == pytest.approx(np.linalg.norm(mean) / math.sqrt((std**2).sum() / 30), rel=1e-12)


def test_evidence_factor_written_out_and_its_two_limits(rng):
    def factor(rows):
        return est.evidence_factor(est.gradient_snr(torch.from_numpy(rows), per_parameter=False))

    samples = rng.normal(loc=[0.5, -2.0, 0.0], scale=[1.0, 3.0, 0.5], size=(8, 3))
    mean, variance = samples.mean(axis=0), samples.var(axis=0, ddof=1) / 8
    expected = max(0.0, 1.0 - variance.sum() / (mean ** 2).sum())
    assert factor(samples) == pytest.approx(expected, rel=1e-12)
    # noise alone: the whole-vector SNR is about 1 (E|m|^2 equals the summed variance of the mean) and the
    # factor about 0, over many parameters; a mean 30 noise norms away: SNR about 30 and the factor about 1
    noise = rng.normal(size=(8, 4000))
    assert float(est.gradient_snr(torch.from_numpy(noise), per_parameter=False)) == pytest.approx(1.0, abs=0.05)
    assert factor(noise) < 0.1
    signal = noise + 30.0 / math.sqrt(8 * 4000) * np.sqrt(4000)   # |mu| = 30 x sqrt(sum var / G)
    assert factor(signal) == pytest.approx(1.0 - 1.0 / 901.0, abs=2e-3)
    assert factor(np.zeros((8, 3))) == 0.0


def test_grouped_gradients_partition_the_surrogate(rng):
    path, reward = brownian_batch(rng, 12)
    model = HarmonicChain(BROWNIAN["k"], BROWNIAN["r0"])
    log_p = brownian_log_p(path, model, BROWNIAN["gamma"], BROWNIAN)
    terms = est.advantages(reward) * log_p
    rows = est.grouped_gradients(terms, [model.k, model.r0], n_groups=4)
    for row, group in zip(rows, np.array_split(np.arange(12), 4)):
        separate = brownian_log_p(path[group], model, BROWNIAN["gamma"], BROWNIAN)
        expected = torch.autograd.grad((est.advantages(reward)[group] * separate).mean(), [model.k, model.r0])
        torch.testing.assert_close(row, torch.stack(expected), **F64)
    full = torch.autograd.grad(est.score_function_surrogate(log_p, reward), [model.k, model.r0])
    torch.testing.assert_close(rows.mean(dim=0), torch.stack(full), **F64)


def test_advantages_written_out():
    reward = torch.tensor([1.0, 2.0, 4.0, 9.0], dtype=torch.float64)
    torch.testing.assert_close(est.advantages(reward, "mean"), reward - 4.0)
    loo = torch.tensor([1 - 5.0, 2 - 14 / 3, 4 - 4.0, 9 - 7 / 3], dtype=torch.float64)
    torch.testing.assert_close(est.advantages(reward, "loo"), loo)
    torch.testing.assert_close(est.advantages(reward, "none"), reward)
    normalized = est.advantages(reward, "mean", normalize=True)
    assert float(normalized.std()) == pytest.approx(1.0, rel=1e-12)


# ----------------------------------------------------------------------------------- boundary errors
def test_clear_errors_at_the_boundary(rng):
    path, reward = brownian_batch(rng, 4)
    force_fn = est.potential_force_fn(HarmonicChain(500.0, 0.15))
    with pytest.raises(ValueError, match="path must be float64"):
        est.brownian_log_likelihood(torch_path(path).float(), force_fn, MASSES, 10.0, 0.02, KT)
    with pytest.raises(ValueError, match=r"masses_amu must be a scalar or have shape \(3,\)"):
        est.brownian_log_likelihood(torch_path(path), force_fn, MASSES[:2], 10.0, 0.02, KT)
    with pytest.raises(ValueError, match="friction_per_ps must be finite and positive"):
        est.brownian_log_likelihood(torch_path(path), force_fn, MASSES, -1.0, 0.02, KT)
    with pytest.raises(ValueError, match="start_velocities must be float64 with shape"):
        est.langevin_middle_log_likelihood(torch_path(path), torch.zeros(4, 2, 3, dtype=torch.float64), force_fn,
                                           MASSES, 10.0, 0.01, KT)
    with pytest.raises(ValueError, match=r"unknown baseline 'median'; available: \['loo', 'mean', 'none'\]"):
        est.advantages(reward, "median")
    with pytest.raises(ValueError, match="log_p must have shape"):
        est.score_function_surrogate(torch.zeros(3, dtype=torch.float64), reward)


# ------------------------------------------- LangevinMiddle: vectorised velocity recursion == a step loop
@pytest.mark.parametrize("gamma, dt, n_steps", [(20.0, 0.01, 7), (0.1, 0.002, 2000), (50.0, 0.005, 2000)])
def test_langevin_middle_vectorised_recursion_matches_a_step_loop(rng, gamma, dt, n_steps):
    """Noise, log-likelihood and its gradients (potential parameters, per-bead friction) equal the plain
    recursion ``w_k = u_k + dt F(x_k)/m; u_{k+1} = 2 (x_{k+1} - x_k)/dt - w_k; R_k = (u_{k+1} - a w_k)/s``
    written out step by step, on short and long (2000-step) paths at small and large friction."""
    n_walkers = 4
    x0, v0 = start_frames(rng, n_walkers), maxwell_boltzmann(rng, n_walkers)
    noise_in = rng.standard_normal((n_walkers, n_steps, 3, 3))
    path = torch_path(simulate_langevin_middle(x0, v0, noise_in, 500.0, 0.15, gamma, dt))
    v0 = torch_path(v0)
    weights = torch.from_numpy(rng.uniform(0.5, 1.5, n_walkers))  # probes every walker's log P
    masses = torch.from_numpy(MASSES)

    def loop_log_p(model, friction):
        a = torch.exp(-friction * dt)[:, None]                            # (3, 1)
        s = torch.sqrt(KT * (1.0 - a**2) / masses[:, None])               # (3, 1)
        forces = est.potential_force_fn(model)(path[:, :-1].reshape(-1, 3, 3)).reshape(n_walkers, n_steps, 3, 3)
        kicks = dt * forces / masses[:, None]
        twice_mean_velocity = 2.0 * (path[:, 1:] - path[:, :-1]) / dt
        u, noise = v0, []
        for kick, twice_mean in zip(kicks.unbind(1), twice_mean_velocity.unbind(1)):
            w = u + kick
            u = twice_mean - w
            noise.append((u - a * w) / s)
        noise = torch.stack(noise, dim=1)
        log_p = -0.5 * noise.pow(2).sum(dim=(1, 2, 3)) - n_steps * 3 * torch.log(0.5 * dt * s).sum()
        return log_p, noise

    results = []
    for vectorised in (True, False):
        model = HarmonicChain(450.0, 0.16)  # not the simulating parameters: generic noise and gradients
        friction = torch.tensor([0.9, 1.0, 1.1], dtype=torch.float64).mul(gamma).requires_grad_(True)
        if vectorised:
            log_p, noise = est.langevin_middle_log_likelihood(path, v0, est.potential_force_fn(model), MASSES,
                                                              friction, dt, KT, return_noise=True)
        else:
            log_p, noise = loop_log_p(model, friction)
        gradients = torch.autograd.grad((weights * log_p).sum(), [model.k, model.r0, friction])
        results.append((log_p.detach(), noise.detach(), gradients))
    (log_p, noise, gradients), (loop_log_p_, loop_noise, loop_gradients) = results

    assert noise.shape == (n_walkers, n_steps, 3, 3)
    np.testing.assert_allclose(noise.numpy(), loop_noise.numpy(), rtol=0, atol=1e-9)  # R ~ N(0, 1)
    torch.testing.assert_close(log_p, loop_log_p_, **F64)
    for name, got, expected in zip(("k", "r0", "friction"), gradients, loop_gradients):
        torch.testing.assert_close(got, expected, **F64, msg=lambda m, name=name: f"d log P / d {name}: {m}")
        assert bool(torch.all(torch.isfinite(got))) and float(got.abs().max()) > 0
