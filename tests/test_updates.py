"""The generator update against the score-function formulas written out again: same gradient for every chunk
size, per-start baselines, reweighted reuse and the gradient SNR."""
import math

import pytest
import torch

from openmm_dynmatch.updates import UpdateSettings, automatic_chunk, score_function_update

B = 12


def _problem(seed=0):
    """Samples ``y_j`` of a Gaussian ``log P_j = -|y_j - theta|^2 / 2`` and rewards ``g_j``."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(B, 2, generator=gen, dtype=torch.float64)
    reward = torch.randn(B, generator=gen, dtype=torch.float64)
    return y, reward


def _step(y, reward, settings, groups=None, compute_snr=False):
    """Run the update with SGD (lr 1) so that the parameter change is minus the summed gradients."""
    theta = torch.nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))
    optimizer = torch.optim.SGD([theta], lr=1.0)
    calls = []

    def log_p_of(index):
        calls.append(index.numel())
        return -0.5 * (y[index] - theta).pow(2).sum(-1)

    stats = score_function_update(log_p_of, reward, optimizer, settings, compute_snr, groups)
    return theta.detach(), stats, calls


def _first_gradient(y, reward, theta, baseline="mean", groups=None):
    """``mean_j (g_j - b_j) grad log P_j`` with ``grad log P_j = y_j - theta``, the baseline written out."""
    gradient = torch.zeros(2, dtype=torch.float64)
    for j in range(B):
        peers = [i for i in range(B) if (groups is None or groups[i] == groups[j])]
        if baseline == "mean":
            b = sum(float(reward[i]) for i in peers) / len(peers)
        else:
            b = sum(float(reward[i]) for i in peers if i != j) / (len(peers) - 1)
        gradient += (float(reward[j]) - b) * (y[j] - theta) / B
    return gradient


@pytest.mark.parametrize("chunk", [0, 1, 5, B])
def test_gradient_is_the_score_function_formula_for_every_chunk_size(chunk):
    y, reward = _problem()
    theta0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    theta, stats, calls = _step(y, reward, UpdateSettings(chunk=chunk, grad_clip=1e9))
    torch.testing.assert_close(theta0 - theta, _first_gradient(y, reward, theta0), rtol=1e-12, atol=1e-14)
    assert stats["updates"] == 1 and sum(calls) == B
    assert max(calls) <= (B if chunk == 0 else chunk) and len(calls) == (1 if chunk == 0 else math.ceil(B / chunk))


def test_per_start_leave_one_out_baseline_uses_only_the_walkers_of_the_same_start():
    y, reward = _problem(1)
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    theta0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    theta, _, _ = _step(y, reward, UpdateSettings(baseline="loo", grad_clip=1e9), groups=groups)
    expected = _first_gradient(y, reward, theta0, "loo", groups.tolist())
    torch.testing.assert_close(theta0 - theta, expected, rtol=1e-12, atol=1e-14)
    # a reward that depends only on the start frame gives no gradient with a per-start baseline
    per_start = groups.to(torch.float64) * 3.0
    theta, _, _ = _step(y, per_start, UpdateSettings(baseline="loo", grad_clip=1e9), groups=groups)
    torch.testing.assert_close(theta, theta0, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="at least 2 windows per group"):
        _step(y, reward, UpdateSettings(baseline="loo"), groups=torch.arange(B))


@pytest.mark.parametrize("chunk", [0, 5])
def test_reuse_takes_the_self_normalised_reweighted_gradient(chunk):
    y, reward = _problem(2)
    theta0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    theta, stats, _ = _step(y, reward, UpdateSettings(chunk=chunk, max_reuse=2, ess_threshold=1e-9, grad_clip=1e9))
    theta1 = theta0 - _first_gradient(y, reward, theta0)
    log_w = [-0.5 * float((y[j] - theta1).pow(2).sum()) + 0.5 * float((y[j] - theta0).pow(2).sum()) for j in range(B)]
    top = max(log_w)
    w = [math.exp(v - top) for v in log_w]
    w = [v / sum(w) for v in w]
    weighted_mean = sum(wj * float(gj) for wj, gj in zip(w, reward))
    second = sum(w[j] * (float(reward[j]) - weighted_mean) * (y[j] - theta1) for j in range(B))
    torch.testing.assert_close(theta, theta1 - second, rtol=1e-10, atol=1e-13)
    assert stats["updates"] == 2
    assert stats["ess_fraction"] == pytest.approx(1.0 / sum(v * v for v in w) / B, rel=1e-10)


def test_reuse_stops_when_the_effective_sample_size_collapses():
    y, reward = _problem(3)
    _, stats, _ = _step(10 * y, 10 * reward, UpdateSettings(max_reuse=5, ess_threshold=0.99, grad_clip=1e9))
    assert stats["updates"] < 5 and stats["ess_fraction"] < 0.99


def test_snr_is_formed_from_four_walker_groups_written_out_again():
    y, reward = _problem(4)
    theta0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    _, stats, calls = _step(y, reward, UpdateSettings(grad_clip=1e9), compute_snr=True)
    assert calls == [3, 3, 3, 3]
    b = float(reward.mean())
    rows = torch.stack([sum((float(reward[j]) - b) * (y[j] - theta0) for j in range(g, g + 3)) / 3
                        for g in range(0, B, 3)])
    mean, variance_of_mean = rows.mean(0), rows.var(0, unbiased=True) / 4
    assert stats["gradient_snr"] == pytest.approx(float(mean.norm() / variance_of_mean.sum().sqrt()), rel=1e-10)


def test_evidence_scaling_steps_adam_by_the_james_stein_factor_of_eight_groups_and_spares_the_given_gradient():
    """Adam's first step is ``lr g / |g|`` per coordinate; with ``evidence_groups`` 8 it is multiplied by
    ``max(0, 1 - 1/SNR^2)`` of eight walker groups (written out again), the friction's given step is not, and
    the optimizer's learning rate is back to its value afterwards."""
    y, noise = _problem(5)
    reward = y[:, 0] + 0.5 * noise   # the first coordinate carries a signal, the second only noise
    theta0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    theta = torch.nn.Parameter(theta0.clone())
    friction = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    lr = 0.01
    optimizer = torch.optim.Adam([{"params": [theta]}, {"params": [friction]}], lr=lr, betas=(0.5, 0.999))
    calls = []

    def log_p_of(index):
        calls.append(index.numel())
        return -0.5 * (y[index] - theta).pow(2).sum(-1)

    stats = score_function_update(log_p_of, reward, optimizer, UpdateSettings(grad_clip=1e9, evidence_groups=8),
                                  False, None, [(friction, torch.tensor([3.0], dtype=torch.float64))])
    assert len(calls) == 8 and sum(calls) == B
    b = float(reward.mean())
    rows, start = [], 0
    for size in calls:
        members = range(start, start + size)
        rows.append(sum((float(reward[j]) - b) * (y[j] - theta0) for j in members) / size)
        start += size
    rows = torch.stack(rows)
    mean, variance_of_mean = rows.mean(0), rows.var(0, unbiased=True) / 8
    factor = max(0.0, 1.0 - float(variance_of_mean.sum() / mean.pow(2).sum()))
    assert stats["step_scale"] == pytest.approx(factor, rel=1e-10)
    assert 0.0 < factor < 1.0   # this problem has some signal and some noise: both parts of the formula count
    gradient = _first_gradient(y, reward, theta0)
    torch.testing.assert_close(theta.detach(), theta0 - lr * factor * gradient / (gradient.abs() + 1e-8),
                               rtol=1e-9, atol=1e-12)
    assert float(friction.detach()) == pytest.approx(1.0 - lr, rel=1e-9)   # Adam's unscaled first step
    assert [group["lr"] for group in optimizer.param_groups] == [lr, lr]


def test_without_evidence_scaling_the_step_scale_is_one_and_no_groups_are_formed():
    y, reward = _problem(5)
    _, stats, calls = _step(y, reward, UpdateSettings(grad_clip=1e9))
    assert stats["step_scale"] == 1.0 and calls == [B]


@pytest.mark.parametrize("others", [True, False])
def test_given_gradients_replace_the_score_function_and_escape_the_clip(others):
    """A parameter with a given gradient is stepped with exactly that gradient, is left out of the clip norm, and
    the other parameters keep their score-function gradient; with nothing else to learn no likelihood is built."""
    y, reward = _problem(3)
    theta = torch.nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))
    friction = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = torch.optim.SGD([theta, friction] if others else [friction], lr=1.0)
    calls = []

    def log_p_of(index):
        calls.append(index.numel())
        return -0.5 * (y[index] - theta).pow(2).sum(-1) + 0.0 * friction.sum()

    given, clip = torch.tensor([250.0], dtype=torch.float64), 1e-3   # far above the clip: it must not be scaled
    score_function_update(log_p_of, reward, optimizer, UpdateSettings(grad_clip=clip), False, None,
                          [(friction, given)])
    assert float(friction.detach()) == pytest.approx(1.0 - 250.0)
    if others:
        start = torch.tensor([0.3, -0.2], dtype=torch.float64)
        gradient = _first_gradient(y, reward, start)
        assert gradient.norm() > 10 * clip
        torch.testing.assert_close(theta.detach(), start - gradient * clip / (gradient.norm() + 1e-6))
    else:
        assert calls == [] and theta.grad is None


@pytest.mark.parametrize("frames, beads, expected", [(51, 10, 16), (11, 200, 1), (11, 100, 1), (11, 50, 2),
                                                     (11, 22, 15), (751, 10, 1), (51, 2, 400)])
def test_automatic_chunk_keeps_walkers_frames_and_squared_beads_within_the_budget(frames, beads, expected):
    # the budget is 16 walkers of 51 recorded frames at 10 beads; the largest count within it, at least one
    assert automatic_chunk(frames, beads) == expected
    assert expected == 1 or expected * frames * beads**2 <= 16 * 51 * 100 < (expected + 1) * frames * beads**2


def test_the_trainer_resolves_the_automatic_chunk_from_the_paths_and_keeps_an_explicit_one():
    from types import SimpleNamespace

    from openmm_dynmatch.config import TrainConfig
    from openmm_dynmatch.train import DynamicMatchingTrainer

    paths = SimpleNamespace(positions=torch.zeros(64, 51, 10, 3))
    for setting, expected in ((-1, 16), (0, 0), (5, 5)):
        trainer = SimpleNamespace(train_cfg=TrainConfig(estimator_chunk=setting))
        assert DynamicMatchingTrainer.update_settings(trainer, paths).chunk == expected
