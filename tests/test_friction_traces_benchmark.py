"""``benchmarks/friction_traces.py``'s signal per walker against gradients of known mean and covariance."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from friction_traces import signal_per_walker  # noqa: E402

from openmm_dynmatch.estimators import gradient_snr  # noqa: E402


def test_signal_per_walker_recovers_mean_over_noise_from_batch_snrs(rng):
    # walkers' gradients ~ N(mu, diag(sigma^2)) in 200 dimensions; |mu|^2 / tr(Sigma) = 0.01
    n_walkers, dim = 64, 200
    sigma = rng.uniform(0.5, 2.0, size=dim)
    mu = rng.normal(size=dim)
    mu *= np.sqrt(0.01 * np.sum(sigma ** 2)) / np.linalg.norm(mu)
    snr2 = np.array([float(gradient_snr(torch.as_tensor(mu + sigma * rng.normal(size=(n_walkers, dim))),
                                        per_parameter=False)) ** 2 for _ in range(400)])
    out = signal_per_walker(snr2, n_walkers)
    assert out["snr2_mean"] == pytest.approx(1 + n_walkers * 0.01, abs=4 * out["snr2_se"])
    assert out["signal_per_walker"] == pytest.approx(0.01, rel=0.15)
    assert out["walkers_for_snr2_of_2_at_least"] < 1 / 0.01  # a lower bound of the 100 walkers needed
    noise = signal_per_walker(np.array([float(gradient_snr(torch.as_tensor(sigma * rng.normal(size=(64, dim))),
                                                          per_parameter=False)) ** 2 for _ in range(100)]), 64)
    assert noise["snr2_mean"] == pytest.approx(1.0, abs=0.05)  # noise alone
