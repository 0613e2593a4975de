"""``benchmarks/psi_correction.py``: the Fourier fit of the log-ratio of two psi distributions recovers a known
series, and the corrected potential adds that series in the dihedral (computed again with the feature code)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from psi_correction import BINS, PsiCorrected, correction_coefficients  # noqa: E402
from openmm_dynmatch.features import dihedrals  # noqa: E402
from openmm_dynmatch.models.potential import build_potential  # noqa: E402
from openmm_dynmatch.units import kt_kj_per_mol  # noqa: E402

SERIES = np.array([0.0, 1.5, -0.7, 0.4, 0.9, -0.3, 0.2])   # c0, a1, b1, a2, b2, a3, b3 (kJ/mol)


def series(psi, coefficients):
    out = np.zeros_like(psi)
    for n in range(1, (len(coefficients) - 1) // 2 + 1):
        out += coefficients[2 * n - 1] * np.cos(n * psi) + coefficients[2 * n] * np.sin(n * psi)
    return out


def samples(log_density, total=10**7):
    """Bin centres repeated in proportion to ``exp(log_density)``: a histogram with known bin probabilities."""
    centres = -np.pi + (np.arange(BINS) + 0.5) * 2 * np.pi / BINS
    p = np.exp(log_density(centres))
    return np.repeat(centres, np.round(total * p / p.sum()).astype(int))


def test_fit_recovers_the_log_ratio_of_two_known_distributions():
    kt = kt_kj_per_mol(300.0)
    target_energy = lambda psi: 2.0 * np.cos(psi - 1.0)                        # noqa: E731
    model_energy = lambda psi: target_energy(psi) - series(psi, SERIES)       # model = target - S
    psi_model = samples(lambda psi: -model_energy(psi) / kt)
    psi_target = samples(lambda psi: -target_energy(psi) / kt)
    fitted = correction_coefficients(psi_model, psi_target, 300.0, order=3, min_count=1)
    # kT ln(P_model / P_target) = S + const: the fitted series is S (the constant is free)
    np.testing.assert_allclose(fitted[1:], SERIES[1:], atol=2e-4)


def test_too_few_populated_bins_are_refused():
    psi = np.full(1000, 0.3)
    with pytest.raises(ValueError, match="psi bins"):
        correction_coefficients(psi, psi, 300.0, order=3)


def test_corrected_potential_adds_the_series_in_the_dihedral(rng):
    torch.manual_seed(0)
    spec = {"n_beads": 5, "bonds": [[0, 1], [1, 2], [2, 3], [3, 4]], "dtype": "float64",
            "net": {"kind": "internal_mlp", "hidden": 8}}
    potential = build_potential(spec)
    quad = [1, 2, 3, 4]
    corrected = torch.jit.script(PsiCorrected(potential, quad, SERIES, torch.float64))
    x = np.cumsum(rng.normal(scale=0.2, size=(16, 5, 3)), axis=1)
    psi = dihedrals(x, [quad])[:, 0]
    expected = potential(torch.as_tensor(x)).detach().numpy() + series(psi, SERIES)
    np.testing.assert_allclose(corrected(torch.as_tensor(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-10)
