"""The crossing and the bead observables of ``benchmarks/coordinate_friction.py`` against formulas."""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from coordinate_friction import bead_msd, matching_friction, pooled  # noqa: E402


def test_a_power_law_ratio_crosses_one_at_its_friction_with_the_error_over_the_slope():
    # CG/AA = (3 / f)^0.7: linear in log-log, so the interpolated crossing is exact; given out of order
    frictions = [8.0, 1.0, 4.0, 2.0]
    log_ratio = [0.7 * math.log(3.0 / f) for f in frictions]
    match = matching_friction(frictions, log_ratio, [0.07] * 4)
    assert match["friction_per_ps"] == pytest.approx(3.0, rel=1e-12)
    assert match["log_se"] == pytest.approx(0.07 / 0.7, rel=1e-12)
    assert matching_friction([1.0, 2.0], [0.3, 0.1], [0.01, 0.01]) == {"friction_per_ps": None, "log_se": None,
                                                                       "cg_is": "above"}
    assert matching_friction([1.0, 2.0], [-0.3, -0.1], [0.01, 0.01])["cg_is"] == "below"


def test_a_rigid_rotation_is_no_internal_motion_and_its_com_free_msd_is_the_chord():
    rng = np.random.default_rng(3)
    molecule = rng.normal(size=(6, 3))
    masses = rng.uniform(1.0, 16.0, size=6)
    molecule -= masses @ molecule / masses.sum()  # centre of mass at the origin
    theta = 0.3
    rotation = np.array([[math.cos(theta), -math.sin(theta), 0.0], [math.sin(theta), math.cos(theta), 0.0],
                         [0.0, 0.0, 1.0]])
    frames = np.stack([molecule, molecule @ rotation.T + [0.5, -0.2, 1.0]])
    out = bead_msd(frames, masses, [1])
    assert out["bead_msd_internal"][0] == pytest.approx(0.0, abs=1e-20)
    # each bead moves on a chord of its circle about z: |d|^2 = 2 r_perp^2 (1 - cos theta)
    chord = 2.0 * np.sum(molecule[:, :2] ** 2, axis=1) * (1.0 - math.cos(theta))
    assert out["bead_msd_com_free"][0] == pytest.approx(chord.mean(), rel=1e-10)
    # internal motion: one bead pulled out of a still molecule moves by what the superposition leaves
    stretched = molecule.copy()
    stretched[0] += [0.1, 0.0, 0.0]
    assert bead_msd(np.stack([molecule, stretched]), masses, [1])["bead_msd_internal"][0] > 0.0
    assert np.isnan(bead_msd(frames, masses, [2])["bead_msd_com_free"][0])


def test_pooled_weights_trajectories_by_length_and_gives_the_standard_error_of_their_scatter():
    values = {"x": np.array([1.0, 3.0, 2.0]).reshape(3, 1, 1)}
    weights = [1.0, 1.0, 2.0]
    means, errors = pooled(values, weights)
    assert means["x"][0, 0] == pytest.approx(2.0)
    variance = (1.0 * 1.0 + 1.0 * 1.0 + 2.0 * 0.0) / 4.0
    assert errors["x"][0, 0] == pytest.approx(math.sqrt(variance) / math.sqrt(2))


def test_per_bead_frictions_come_from_the_report_at_the_lag_asked_and_refuse_beads_without_a_match():
    from per_bead_friction import frictions_from_report

    def bead(matches):
        return {"lags": [{"match": {"friction_per_ps": m}} for m in matches]}

    report = {"lags_ps": [0.1, 0.5], "observables": {"beads_internal": [bead([1.0, 2.5]), bead([3.0, 7.0])]}}
    report["observables"]["beads_internal"][0]["name"] = "0:C"
    report["observables"]["beads_internal"][1]["name"] = "1:O"
    assert frictions_from_report(report, 0.5) == [2.5, 7.0]
    assert frictions_from_report(report, 0.1) == [1.0, 3.0]
    with pytest.raises(ValueError, match="not one of the report's lags"):
        frictions_from_report(report, 0.3)
    report["observables"]["beads_internal"][1]["lags"][1]["match"]["friction_per_ps"] = None
    with pytest.raises(ValueError, match=r"beads \['1:O'\]"):
        frictions_from_report(report, 0.5)


def test_the_lag_spread_is_the_ratio_of_the_extreme_crossings_up_to_the_lag_asked():
    from markov_lags import lag_spread

    lags = [0.1, 0.2, 0.5, 1.0, 1.5]
    matches = {"flat": [2.0, 2.0, 2.0, 2.0, 9.0], "falling": [6.0, None, 3.0, 1.5, 1.0], "sparse": [None, None, 4.0,
                                                                                                     None, 1.0]}
    spread = lag_spread(matches, lags, max_lag_ps=1.0)
    assert spread["flat"] == {"min_per_ps": 2.0, "max_per_ps": 2.0, "max_over_min": 1.0, "lags": 4}
    assert spread["falling"]["max_over_min"] == pytest.approx(4.0)
    assert spread["falling"]["lags"] == 3  # the lag without a crossing is left out, 1.5 ps is beyond the limit
    assert spread["sparse"] is None  # one crossing up to 1 ps says nothing about the spread
    assert lag_spread(matches, lags, max_lag_ps=1.5)["sparse"]["max_over_min"] == pytest.approx(4.0)
