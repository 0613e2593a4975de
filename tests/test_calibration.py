"""Calibrated-friction baseline: the friction of OpenMM data made with a known friction is recovered from the
true potential by matching the short-time MSD, for Langevin (low and high friction) and Brownian dynamics."""
import math

import numpy as np
import pytest
import torch

from dimer_toy import boltzmann_dimers
from openmm_dynmatch.calibration import (FrictionCalibration, calibrate_friction, displacement_msd, lag_steps,
                                         set_friction, valid_starts)
from openmm_dynmatch.dynamics import DynamicsParameters
from test_engine import chain_metadata
from toys import HarmonicChain

K_CHAIN, R0_CHAIN, N_BEADS = 800.0, 0.3, 4
BEAD_TYPES = [0, 1, 1, 0]
CASES = {  # name: (integrator, true per-type frictions 1/ps, timestep ps, steps per frame, search bounds 1/ps,
    #         CG walkers); at low friction the MSD depends weakly on it, hence more walkers
    "langevin_low": ("langevin", [2.0, 2.0], 0.004, 50, (0.2, 100.0), 1024),
    "langevin_high": ("langevin", [20.0, 20.0], 0.004, 20, (0.2, 100.0), 512),
    "brownian": ("brownian", [60.0, 180.0], 0.01, 5, (10.0, 2000.0), 256),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def boltzmann_chains(n: int, rng) -> np.ndarray:
    """Exact Boltzmann samples ``(n, N_BEADS, 3)`` nm of the harmonic chain: its bond vectors are independent,
    each distributed like the bond of a harmonic dimer."""
    dimers = boltzmann_dimers(K_CHAIN, R0_CHAIN, n * (N_BEADS - 1), rng)
    bonds = (dimers[:, 1] - dimers[:, 0]).reshape(n, N_BEADS - 1, 3)
    chains = np.concatenate([np.zeros((n, 1, 3)), np.cumsum(bonds, axis=1)], axis=1)
    return chains - chains.mean(axis=1, keepdims=True)


def chain_meta(integrator: str, frictions, timestep_ps: float) -> dict:
    per_bead = [float(frictions[t]) for t in BEAD_TYPES]
    return chain_metadata(N_BEADS, integrator=integrator, timestep_ps=timestep_ps, bead_types=BEAD_TYPES,
                          type_names=["A", "B"], friction_per_ps=float(np.mean(per_bead)),
                          bead_friction_per_ps=per_bead)


def simulate_chain_data(tmp_path, case: str, n_walkers: int = 128, n_frames: int = 100, seed: int = 1):
    """Reference data of the true chain at the true friction, simulated by OpenMM (the package's runner).

    Returns frames ``(n_walkers * n_frames, N, 3)``, the contiguous row ranges (one per walker) and the frame
    interval in ps.
    """
    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.runner import load_walkers, simulate

    integrator, frictions, dt, steps_per_frame, *_ = CASES[case]
    model = export(HarmonicChain(K_CHAIN, R0_CHAIN), tmp_path / f"{case}.pt", chain_meta(integrator, frictions, dt))
    out = tmp_path / f"{case}.h5"
    starts = boltzmann_chains(n_walkers, np.random.default_rng(seed))
    simulate(model, starts, n_walkers, out, n_steps=n_frames * steps_per_frame,
             frame_interval_ps=steps_per_frame * dt, platform="Reference", seed=seed, progress=False)
    walkers = np.concatenate([starts[:, None], load_walkers(out)], axis=1)  # the start frame belongs to the data
    length = walkers.shape[1]
    ranges = [(w * length, (w + 1) * length) for w in range(n_walkers)]
    return walkers.reshape(-1, N_BEADS, 3), ranges, steps_per_frame * dt


def calibrate_case(tmp_path, case: str, start_friction: float, seed: int = 0, data_seed: int = 1):
    """Calibrate the friction of one case from OpenMM data of the true model, starting from ``start_friction``."""
    from openmm_dynmatch.openmm.sampler import OpenMMSampler

    integrator, frictions, dt, _, bounds, n_walkers = CASES[case]
    frames, ranges, interval = simulate_chain_data(tmp_path, case, seed=data_seed)
    ratios = np.asarray(frictions) / frictions[0]
    dynamics = DynamicsParameters(integrator, start_friction, BEAD_TYPES)
    if integrator == "brownian":  # start with the true ratio between the types but the wrong scale
        set_type_frictions(dynamics, start_friction * ratios)
    masses = chain_metadata(N_BEADS)["masses_amu"]
    sampler = OpenMMSampler(chain_meta(integrator, frictions, dt), n_walkers)
    return calibrate_friction(HarmonicChain(K_CHAIN, R0_CHAIN), frames, ranges, interval, masses, dynamics,
                              sampler, bounds_per_ps=bounds, seed=seed)


def set_type_frictions(dynamics, frictions) -> None:
    with torch.no_grad():
        dynamics.log_friction.copy_(torch.log(torch.as_tensor(frictions, dtype=torch.float64)))


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASES))
def test_calibration_recovers_the_friction_of_openmm_data(tmp_path, case):
    integrator, frictions, *_ = CASES[case]
    true_mean = float(np.mean([frictions[t] for t in BEAD_TYPES]))
    result = calibrate_case(tmp_path, case, start_friction=7.0)
    assert result.integrator == integrator and not result.at_bound
    assert abs(result.friction_per_ps / true_mean - 1) < 0.15, (
        f"{case}: calibrated {result.friction_per_ps:.3g}/ps, true {true_mean:.3g}/ps")
    # the factor refers to the starting frictions (Brownian: the mean of 7 and 21 over the beads)
    start_mean = 7.0 if integrator == "langevin" else 14.0
    assert result.factor == pytest.approx(result.friction_per_ps / start_mean, rel=1e-12)
    # the objective can tell: a factor of 2 away from the truth matches clearly worse than the choice
    best = min(row["mismatch"] for row in result.table if row["mismatch"] is not None)
    far = [row["mismatch"] for row in result.table
           if row["mismatch"] is not None and abs(math.log(row["friction_per_ps"] / true_mean)) > math.log(2)]
    assert far and min(far) > 10 * best
    assert FrictionCalibration.from_dict(result.to_dict()) == result


class FreeBrownianSampler:
    """Stands in for the OpenMM sampler: free beads under Brownian dynamics, written out with numpy
    (``dx = sqrt(2 kT dt / (gamma m)) xi``), the same noise for the same seed; exploding below a mobility."""

    def __init__(self, n_walkers: int, timestep_ps: float, masses_amu, min_gamma_m: float):
        self.n_walkers, self.min_gamma_m = n_walkers, min_gamma_m
        self.metadata = {"timestep_ps": timestep_ps, "masses_amu": list(masses_amu)}

    def set_model(self, potential, dynamics):
        friction = dynamics.friction_per_bead().detach().numpy()
        self.gamma_m = np.asarray(self.metadata["masses_amu"]) * friction

    def record(self, start_positions, n_steps, seed):
        from openmm_dynmatch.sampling import Paths

        if self.gamma_m.min() < self.min_gamma_m:
            raise RuntimeError("3 of 3 CG walkers exploded in every one of 4 attempts")
        return Paths(torch.as_tensor(free_brownian(start_positions, n_steps, self.metadata["timestep_ps"],
                                                   self.gamma_m, np.random.default_rng(seed))), None, 0)


def free_brownian(starts, n_steps, timestep_ps, gamma_m, rng) -> np.ndarray:
    """Paths ``(n_walkers, n_steps + 1, n_beads, 3)`` nm of free Brownian beads from ``starts``."""
    from openmm_dynmatch.units import kt_kj_per_mol

    scale = np.sqrt(2 * kt_kj_per_mol(300.0) * timestep_ps / gamma_m)[None, None, :, None]
    steps = rng.standard_normal((len(starts), n_steps) + starts.shape[1:]) * scale
    return np.concatenate([starts[:, None], starts[:, None] + np.cumsum(steps, axis=1)], axis=1)


def test_search_recovers_a_free_diffusion_friction_and_survives_exploding_candidates():
    """MSD = 6 kT t / (gamma m) exactly here, so the friction is recovered to the sampling noise; the frictions at
    which the stand-in sampler explodes are kept in the table without a mismatch and never chosen."""
    masses, truth, dt = np.array([12.0, 16.0, 14.0]), 50.0, 0.01
    data = free_brownian(np.zeros((64, 3, 3)), 200, dt, truth * masses, np.random.default_rng(7))[:, ::5]
    frames = data.reshape(-1, 3, 3)  # 64 trajectories of 41 frames, 0.05 ps apart
    ranges = [(w * 41, (w + 1) * 41) for w in range(64)]
    dynamics = DynamicsParameters("brownian", 10.0, [0, 1, 0])
    sampler = FreeBrownianSampler(256, dt, masses, min_gamma_m=12.0 * 3.0)
    result = calibrate_friction(None, frames, ranges, 0.05, masses, dynamics, sampler, bounds_per_ps=(1.0, 1000.0))
    assert abs(result.friction_per_ps / truth - 1) < 0.05, result.friction_per_ps
    unstable = [row for row in result.table if row["mismatch"] is None]
    assert [row["friction_per_ps"] for row in unstable] == pytest.approx([1.0])
    assert unstable[0]["blowups"] == 256 and unstable[0]["msd_nm2"] is None
    with pytest.raises(ValueError, match="whole number of CG time steps"):
        calibrate_friction(None, frames, ranges, 0.015, masses, dynamics, sampler)


def test_displacement_msd_against_a_loop_with_the_centre_of_mass_removed(rng):
    starts = rng.normal(size=(3, 4, 3))
    later = rng.normal(size=(3, 2, 4, 3))
    masses = np.array([1.0, 2.0, 3.0, 4.0])
    expected = np.zeros(2)
    for w in range(3):
        com0 = (masses[:, None] * starts[w]).sum(0) / masses.sum()
        for k in range(2):
            com = (masses[:, None] * later[w, k]).sum(0) / masses.sum()
            for i in range(4):
                expected[k] += np.sum(((later[w, k, i] - com) - (starts[w, i] - com0)) ** 2) / 12
    np.testing.assert_allclose(displacement_msd(starts, later, masses), expected, rtol=1e-12)
    raw = ((later - starts[:, None]) ** 2).sum(-1).mean(axis=(0, 2))
    np.testing.assert_allclose(displacement_msd(starts, later, masses, remove_com=False), raw, rtol=1e-12)


def test_lags_starts_and_set_friction_validate_and_follow_their_definitions():
    np.testing.assert_array_equal(lag_steps([1, 2, 5], 0.02, 0.004), [5, 10, 25])
    with pytest.raises(ValueError, match="whole number of CG time steps"):
        lag_steps([1, 2], 0.01, 0.004)
    with pytest.raises(ValueError, match="increasing positive integers"):
        lag_steps([2, 1], 0.02, 0.004)
    np.testing.assert_array_equal(valid_starts([(0, 4), (10, 13)], 2), [0, 1, 10])
    with pytest.raises(ValueError, match="longer than the largest lag"):
        valid_starts([(0, 3)], 5)
    dynamics = DynamicsParameters("brownian", 1.0, [0, 1, 1])
    set_type_frictions(dynamics, [2.0, 8.0])
    set_friction(dynamics, 12.0)  # mean over beads 12, the ratio 1:4 between the types kept
    np.testing.assert_allclose(dynamics.friction_per_bead().detach().numpy(), [4.0, 16.0, 16.0])
    with pytest.raises(ValueError, match="friction_per_ps"):
        set_friction(dynamics, 0.0)


# ----------------------------------------------------------------------------------------- training runs
@pytest.mark.integration
def test_run_with_pretrain_friction_writes_the_calibration_and_exports_its_friction(tmp_path):
    """Force matching on Brownian dimer data (true friction 100/ps) started at 30/ps, then the calibration: the
    JSON holds the table and the choice, the exported model and the summary carry that friction, and a resumed
    run reuses the JSON instead of searching again."""
    import json

    import yaml

    from dimer_toy import simulate_dimer_data, write_dimer_data
    from openmm_dynmatch.config import load_config
    from openmm_dynmatch.openmm.export import load_metadata
    from openmm_dynmatch.runs import run_training

    k, r0, friction, dt = 500.0, 0.3, 100.0, 0.02
    _, frames = simulate_dimer_data(tmp_path, "brownian", k, r0, friction, dt, 10 * dt, n_walkers=1, n_frames=400,
                                    seed=5)
    data_path = tmp_path / "dimer_cg.h5"
    write_dimer_data(data_path, frames[0], 10 * dt, k, r0)
    config = {"data": {"cg_path": str(data_path), "window_frames": 4, "n_blocks": 4},
              "potential": {"kind": "none", "dtype": "float64", "prior_trainable": True},
              "dynamics": {"integrator": "brownian", "timestep_ps": dt, "friction_per_ps": 30.0},
              "train": {"objective": "force_matching", "iterations": 10, "probe_windows": 0,
                        "pretrain_friction": "msd", "friction_walkers": 128, "friction_max_lag": 5,
                        "friction_min_per_ps": 10.0, "friction_max_per_ps": 1000.0}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    summary = run_training(load_config(config_path), run_dir, progress=False)
    saved = json.loads((run_dir / "friction_calibration.json").read_text())
    chosen = saved["friction_per_ps"]
    assert [row["stage"] for row in saved["table"]][:7] == ["grid"] * 7 and len(saved["table"]) > 7
    assert saved["lags_ps"] == pytest.approx([0.2, 0.4, 1.0]) and not saved["at_bound"]
    assert chosen == min(saved["table"], key=lambda row: row["mismatch"])["friction_per_ps"]
    assert abs(chosen / friction - 1) < 0.35  # 128 walkers and one 80 ps trajectory: a coarse check only
    assert summary["friction_per_ps"] == pytest.approx(chosen, rel=1e-12)
    assert summary["friction_calibration"]["friction_per_ps"] == chosen
    metadata = load_metadata(summary["model"])
    assert metadata["friction_per_ps"] == pytest.approx(chosen, rel=1e-12)
    # a resumed run takes the friction from the JSON (here edited) rather than searching again
    saved["friction_per_ps"] = 77.0
    (run_dir / "friction_calibration.json").write_text(json.dumps(saved))
    resumed = run_training(load_config(config_path), run_dir, resume=True, progress=False)
    assert resumed["friction_per_ps"] == pytest.approx(77.0, rel=1e-12)


if __name__ == "__main__":  # the known-truth accuracy over several seeds (docs/concepts.md quotes it)
    import argparse
    import tempfile
    import time
    from pathlib import Path

    parser = argparse.ArgumentParser(description="spread of the calibrated friction over data and run seeds")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, (_, true_frictions, *_) in sorted(CASES.items()):
        truth = float(np.mean([true_frictions[t] for t in BEAD_TYPES]))
        errors, seconds = [], []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                found = calibrate_case(Path(folder), name, 7.0, seed=seed, data_seed=seed + 1)
                seconds.append(time.perf_counter() - start)
            errors.append(found.friction_per_ps / truth - 1)
        errors = np.asarray(errors)
        print(f"{name}: true {truth:g}/ps, relative error mean {errors.mean():+.3f}, sd {errors.std(ddof=1):.3f}, "
              f"max |error| {np.abs(errors).max():.3f} over {args.seeds} seeds; {np.mean(seconds):.1f} s per "
              f"calibration (data included)")
