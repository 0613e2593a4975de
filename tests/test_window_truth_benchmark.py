"""The push summary of ``benchmarks/window_truth.py`` against hand-made blocks of game gradients."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pytest  # noqa: E402
from window_truth import run_label, signal_edge  # noqa: E402


def block(friction, gradient, se):
    return {"friction_per_ps": friction, "gradient": gradient, "gradient_se": se}


def test_the_edge_is_the_block_nearest_the_truth_that_pushes_towards_it_by_z_standard_errors():
    truth = 4.0
    blocks = [block(8.0, 0.20, 0.05),    # above, pushes down by 4 se
              block(6.0, 0.02, 0.02),    # above, 1 se: no push
              block(5.0, 0.05, 0.005),   # above, pushes down by 10 se: the nearest push above
              block(4.4, -0.10, 0.01),   # above, but pushes up (away from the truth): not a push towards it
              block(2.0, -0.10, 0.02),   # below, pushes up by 5 se
              block(3.0, 0.10, 0.01),    # below, pushes down (away): not counted
              block(3.6, -0.01, 0.01)]   # below, 1 se: no push
    edge = signal_edge(blocks, truth)
    assert edge["above"] == pytest.approx(5.0 / 4.0)
    assert edge["below"] == pytest.approx(2.0 / 4.0)
    assert edge["z"] == 2.0
    # a stricter z drops the 4-se and 5-se pushes, not the 10-se one
    strict = signal_edge(blocks, truth, z=6.0)
    assert strict["above"] == pytest.approx(5.0 / 4.0) and strict["below"] is None
    assert signal_edge([], truth) == {"above": None, "below": None, "z": 2.0}


def test_runs_from_the_demos_start_keep_science_pys_plain_label():
    assert run_label(10.0, 10.0) == "dm"
    assert run_label(1.0, 10.0) == "dm_from_1"
    assert run_label(2.5, 10.0) == "dm_from_2.5"
