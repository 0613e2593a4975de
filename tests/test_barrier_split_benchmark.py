"""``benchmarks/barrier_split.py``: the TST time along psi against its formula on a known density, and the split of a
psi-core time into equilibrium and dynamics on overdamped dynamics whose answer is known exactly."""
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from barrier_split import dividing_surfaces, ratios, reference, tst_time  # noqa: E402

# -B cos(2 (psi - PSI0)): wells at -0.7 (the helical core, -1.4..0) and 2.44 (the extended core), barrier tops at
# 0.87 and -2.27 (inside the gaps between the cores, science.PSI_GAPS_RAD)
PSI0 = -0.7
GRID = np.linspace(-np.pi, np.pi, 200001)


def energy(psi, height):
    return -height * np.cos(2.0 * (psi - PSI0))


def density(height):
    """Normalised Boltzmann density (kT = 1) on GRID."""
    p = np.exp(-energy(GRID, height))
    return p / np.trapezoid(p, GRID)


def sample(height, n, rng):
    """Independent draws from the density by its inverse cumulative distribution."""
    p = density(height)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(GRID))])
    return np.interp(rng.random(n), cdf / cdf[-1], GRID)


def test_tst_time_is_its_formula_on_a_known_density():
    rng = np.random.default_rng(0)
    height, h = 1.5, 0.1
    psi = sample(height, 2_000_000, rng)
    surfaces = {"a": 0.87, "b": -2.27}
    result = tst_time(psi, surfaces, half_width=h)
    p = density(height)
    rho = {name: np.trapezoid(np.where(np.abs(GRID - s) < h, p, 0.0), GRID) / (2 * h) for name, s in surfaces.items()}
    between = np.trapezoid(np.where((GRID > -2.27) & (GRID < 0.87), p, 0.0), GRID)
    expected = 2.0 / ((rho["a"] + rho["b"]) * (1.0 / between + 1.0 / (1.0 - between)))
    for name in surfaces:
        assert abs(result["density_per_rad"][name] / rho[name] - 1.0) < 0.03
    assert abs(result["fraction_between"] - between) < 0.002
    assert abs(result["tst_time"] / expected - 1.0) < 0.03
    # both tops 1 kT higher over the wells (B + 0.5): the TST time grows as the tops' density falls
    higher = sample(height + 0.5, 2_000_000, rng)
    ratio = tst_time(higher, surfaces, half_width=h)["tst_time"] / result["tst_time"]
    q = density(height + 0.5)
    rho_q = sum(np.trapezoid(np.where(np.abs(GRID - s) < h, q, 0.0), GRID) / (2 * h) for s in surfaces.values())
    assert abs(ratio / ((rho["a"] + rho["b"]) / rho_q) - 1.0) < 0.05
    assert 2.0 < ratio < 3.5  # about e, the wells' density changes too


def test_dividing_surfaces_sit_at_the_barrier_tops():
    psi = sample(1.5, 500_000, np.random.default_rng(1))
    surfaces = dividing_surfaces(psi)
    assert abs(surfaces["via_psi_0.75"] - (PSI0 + math.pi / 2)) < 0.15
    assert abs(surfaces["via_psi_-2.1"] - (PSI0 - math.pi / 2)) < 0.15


def overdamped(height, diffusion, walkers, steps, every, rng, dt=1e-3):
    """Brownian dynamics along psi (kT = 1, D rad^2/ps), frames every ``every`` steps, walkers from the density."""
    psi = sample(height, walkers, rng)
    frames = []
    for step in range(steps):
        force = -2.0 * height * np.sin(2.0 * (psi - PSI0))
        psi = psi + diffusion * force * dt + math.sqrt(2 * diffusion * dt) * rng.standard_normal(walkers)
        psi = np.angle(np.exp(1j * psi))
        if (step + 1) % every == 0:
            frames.append(psi)
    frames = np.asarray(frames).T
    return [np.stack([np.zeros_like(w), w], axis=1) for w in frames]


def test_halving_the_diffusion_doubles_the_dynamical_factor_and_leaves_the_equilibrium():
    # overdamped dynamics at D / 2 is the same dynamics at half speed: every time doubles, the Boltzmann
    # distribution does not change, so the psi-core time ratio is 2, the TST ratio 1 and the dynamical factor 2
    rng = np.random.default_rng(2)
    height, dt, every = 1.5, 1e-3, 50
    data = reference(overdamped(height, 1.0, 1024, 20000, every, rng), every * dt, 300.0)
    model = ratios(overdamped(height, 0.5, 1024, 20000, every, rng), data, kt=1.0)
    # four seeds gave core ratios 1.87-2.06 and TST ratios 0.98-1.06 (the data's TST time 2.5-2.8% relative SE)
    assert abs(model["core_ratio"] - 2.0) < 0.25
    assert abs(model["tst_ratio"] - 1.0) < 0.12
    assert abs(model["dynamical_factor"] - 2.0) < 0.3
    for value in model["surface_free_energy_kj_per_mol"].values():
        assert abs(value) < 0.15  # the same density at each surface: no free-energy difference (kT = 1 here)
