"""``benchmarks/classifier_friction.py`` and the landscape fit of ``benchmarks/friction_gradient.py``."""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from classifier_friction import parse_variant, variant_config  # noqa: E402
from friction_gradient import landscape_fit  # noqa: E402

from openmm_dynmatch.config import Config  # noqa: E402


def test_landscape_fit_recovers_each_walkers_quadratic_in_log_friction():
    """Walker j's rewards are ``a_j + b_j x + c_j x^2`` exactly (x = ln factor), so the fit returns the mean of
    ``b_j`` and of ``2 c_j`` with their standard errors over walkers, written out again here."""
    rng = np.random.default_rng(0)
    factors = [0.7, 0.85, 1.0, 1.18, 1.4]
    a, b, c = rng.normal(size=50), rng.normal(0.2, 0.5, size=50), rng.normal(-0.1, 0.3, size=50)
    rewards = [a + b * math.log(f) + c * math.log(f) ** 2 for f in factors]
    fit = landscape_fit(factors, rewards)
    assert fit["slope"] == pytest.approx(b.mean()) and fit["curvature"] == pytest.approx(2 * c.mean())
    assert fit["slope_se"] == pytest.approx(b.std() / math.sqrt(50))
    assert fit["curvature_se"] == pytest.approx(2 * c.std() / math.sqrt(50))
    assert landscape_fit([0.8, 1.0], rewards[:2]) is None


def test_a_variant_is_a_classifier_only_schedule_at_the_given_friction():
    config = variant_config(Config(), {"walkers": "256", "classifier_replay": "4"}, friction=4.3, iterations=60,
                            seed=1)
    assert config.dynamics.friction_per_ps == 4.3
    assert (config.train.iterations, config.train.classifier_warmup, config.train.seed) == (60, 60, 1)
    assert (config.train.walkers, config.train.classifier_replay) == (256, 4)


@pytest.mark.parametrize("words, message", [([], "needs a name"), (["w", "walkers"], "KEY=VALUE"),
                                            (["w", "nonsense=3"], "KEY=VALUE")])
def test_a_malformed_variant_is_refused_by_name(words, message):
    with pytest.raises(ValueError, match=message):
        parse_variant(words)


def test_zero_crossing_of_fresh_slopes_and_its_standard_error():
    """Exact points on a line in log friction give its zero; the standard error equals the delta method written
    out again from the weighted least-squares covariance ``(X^T W X)^-1`` of the uncentred line."""
    from best_response import zero_crossing

    frictions, se = np.array([1.6, 2.4, 3.7, 5.2]), np.array([0.04, 0.05, 0.04, 0.045])
    slopes = 0.2 * (np.log(frictions) - math.log(2.5))
    fit = zero_crossing(frictions, slopes, se)
    assert fit["zero_per_ps"] == pytest.approx(2.5)
    assert fit["slope_per_log_friction"] == pytest.approx(0.2)
    design = np.stack([np.ones(4), np.log(frictions)], axis=1)
    covariance = np.linalg.inv(design.T @ np.diag(1 / se ** 2) @ design)
    c, d = -0.2 * math.log(2.5), 0.2   # slope = c + d ln(friction): zero at -c/d
    gradient = np.array([-1 / d, c / d ** 2])
    assert fit["zero_log_se"] == pytest.approx(math.sqrt(gradient @ covariance @ gradient))
    assert fit["zero_log_se_scaled"] == pytest.approx(fit["zero_log_se"])   # chi^2 of exact points is 0 < 1
    assert zero_crossing(frictions, -slopes, se)["zero_per_ps"] is None   # falling line: nothing to return to
    with pytest.raises(ValueError, match="two or more frictions"):
        zero_crossing([3.0, 3.0], [0.1, 0.2], [0.05, 0.05])


def test_the_first_step_of_the_friction_search_is_newton_with_a_prior_clipped_to_its_bounds():
    from refine_friction import newton_step

    assert newton_step(0.1, 0.2, 0.3, 1.0) == pytest.approx(-0.5)     # positive slope: lower the friction
    assert newton_step(-0.02, 0.2, 0.3, 1.0) == pytest.approx(0.3)    # too small a step to fit a line: at least 0.3
    assert newton_step(0.5, 0.2, 0.3, 1.0) == pytest.approx(-1.0)     # at most 1.0
    assert newton_step(0.0, 0.2, 0.3, 1.0) == pytest.approx(-0.3)


def test_the_next_friction_is_the_zero_of_the_line_through_two_points_or_a_newton_step():
    """Two points fix the line, so its zero is the linear interpolation in log friction, written out again; beyond
    the step bound it is clipped; a falling line falls back to the Newton step from the flatter point."""
    from refine_friction import next_friction

    points = [{"friction_per_ps": 6.0, "slope": 0.18, "slope_se": 0.04},
              {"friction_per_ps": 4.0, "slope": 0.12, "slope_se": 0.04}]
    x1, x2 = math.log(6.0), math.log(4.0)
    zero = x2 - 0.12 * (x1 - x2) / (0.18 - 0.12)
    assert next_friction(points, 0.2, 0.3, 2.0) == pytest.approx(math.exp(zero))
    assert next_friction(points, 0.2, 0.3, 0.5) == pytest.approx(4.0 * math.exp(-0.5))
    falling = [dict(points[0], slope=0.05), dict(points[1], slope=0.12)]
    assert next_friction(falling, 0.2, 0.3, 1.0) == pytest.approx(6.0 * math.exp(-0.3))
    assert next_friction(points[:1], 0.2, 0.3, 1.0) == pytest.approx(6.0 * math.exp(-0.9))


def test_a_search_is_continued_only_with_the_settings_it_was_begun_with(tmp_path):
    """Nothing saved, or the same settings read back from JSON: no difference; another start and seed: both named
    with their saved and given values."""
    from refine_friction import check_resume

    search = {"start_per_ps": 6.19, "seed": 0, "factors": [0.7, 1.0, 1.4], "overrides": {"walkers": "256"}}
    saved = tmp_path / "search.json"
    assert check_resume(saved, search) == []
    saved.write_text(json.dumps(search))
    assert check_resume(saved, dict(search)) == []
    assert check_resume(saved, dict(search, start_per_ps=2.5, seed=1)) == ["start_per_ps: 6.19 -> 2.5",
                                                                          "seed: 0 -> 1"]


def test_fresh_points_come_from_classifier_friction_and_refine_friction_results(tmp_path):

    from best_response import fresh_points

    fit = {"slope": 0.12, "slope_se": 0.04}
    (tmp_path / "cf.json").write_text(json.dumps({"benchmark": "classifier_friction", "results": [
        {"friction_per_ps": 4.0, "variant": "w256b64", "seed": 0, "landscape_fit": fit}]}))
    (tmp_path / "rf.json").write_text(json.dumps({"benchmark": "refine_friction", "fresh": [
        {"friction_per_ps": 2.5, "variant": "refine", "seed": 0, "slope": -0.01, "slope_se": 0.03, "wall_s": 1.0}]}))
    points = fresh_points([tmp_path / "cf.json", tmp_path / "rf.json"])
    assert [(p["friction_per_ps"], p["slope"], p["source"]) for p in points] == [(2.5, -0.01, "rf.json"),
                                                                                 (4.0, 0.12, "cf.json")]
    assert len(fresh_points([tmp_path / "cf.json", tmp_path / "rf.json"], variants=["refine"])) == 1
    (tmp_path / "other.json").write_text(json.dumps({"benchmark": "science"}))
    with pytest.raises(SystemExit, match="not a classifier_friction.py or refine_friction.py result"):
        fresh_points([tmp_path / "other.json"])


def test_the_zeros_standard_error_grows_with_the_scatter_of_the_points_beyond_their_errors():
    """Points off the line by +-3 standard errors: chi^2 per degree of freedom written out again, and the scaled
    standard error is the plain one times its square root."""
    from best_response import zero_crossing

    frictions, se = np.array([2.0, 2.0, 6.0, 6.0]), np.full(4, 0.01)
    slopes = 0.2 * (np.log(frictions) - math.log(3.0)) + np.array([0.03, -0.03, 0.03, -0.03])
    fit = zero_crossing(frictions, slopes, se)
    assert fit["zero_per_ps"] == pytest.approx(3.0)
    assert fit["chi2_per_dof"] == pytest.approx(4 * 3.0 ** 2 / 2)
    assert fit["zero_log_se_scaled"] == pytest.approx(fit["zero_log_se"] * math.sqrt(18.0))
