"""1-D free energy profiles and binned energies along CVs, against formulas written out again."""
import numpy as np
import pytest

from openmm_dynmatch.profiles import (barrier_height, binned_mean, free_energy_profile, free_energy_profiles,
                                      profile_edges)
from openmm_dynmatch.units import kt_kj_per_mol


def test_profile_of_a_von_mises_sample_is_its_energy(rng):
    # p(x) ~ exp(k cos x): F(x) = -kT k cos x + const, so F(0) - F(pi) = -2 kT k
    kt, k = kt_kj_per_mol(300.0), 2.0
    x = rng.vonmises(0.0, k, size=400000)
    edges = profile_edges(24)
    profile = free_energy_profile(x, edges, 300.0)
    centres = 0.5 * (edges[1:] + edges[:-1])
    expected = -kt * k * np.cos(centres)
    # bin averages of exp(k cos x) differ from the centre value by O(bin^2); the tolerance covers it
    np.testing.assert_allclose(profile - profile.min(), expected - expected.min(), atol=0.1 * kt)
    assert np.nanmin(profile) == 0.0


def test_empty_bins_are_nan_and_empty_input_is_refused():
    profile = free_energy_profile([0.1, 0.2, 0.15], profile_edges(4), 300.0)
    assert np.isnan(profile).sum() == 3 and np.nanmin(profile) == 0.0
    with pytest.raises(ValueError, match="at least one sample"):
        free_energy_profile([], profile_edges(4), 300.0)


def test_binned_mean_and_barrier(rng):
    values = rng.uniform(-np.pi, np.pi, 5000)
    weights = 3.0 * np.sin(values) ** 2
    edges = profile_edges(10)
    mean = binned_mean(values, weights, edges)
    index = np.digitize(values, edges) - 1
    direct = np.array([weights[index == b].mean() for b in range(10)])
    np.testing.assert_allclose(mean, direct - direct.min())
    assert barrier_height(mean, edges, (0.0, np.pi)) == pytest.approx(np.max(mean[5:]) - np.min(mean))
    with pytest.raises(ValueError, match="same length"):
        binned_mean(values, weights[:-1], edges)


def test_profiles_of_several_sources_and_contributions(rng):
    cvs = {"a": rng.uniform(-np.pi, np.pi, (1000, 2)), "b": rng.uniform(-1.0, 1.0, (1000, 2))}
    energy = rng.normal(size=1000)
    result = free_energy_profiles(cvs, 300.0, ["phi", "psi"], energies={"u": (cvs["a"], energy)}, n_bins=12)
    for k, name in enumerate(["phi", "psi"]):
        entry = result[name]
        np.testing.assert_allclose(entry["free_energy"]["b"],
                                   free_energy_profile(cvs["b"][:, k], entry["edges"], 300.0))
        np.testing.assert_allclose(entry["mean_energy"]["u"], binned_mean(cvs["a"][:, k], energy, entry["edges"]))
