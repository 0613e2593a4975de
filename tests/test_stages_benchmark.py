"""``benchmarks/stages.py``: lanes of about equal cost, timings kept when processes share a work directory, and
a failing lane reported after the others finished."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pytest  # noqa: E402
from stages import StageClock, plan_lanes, run_lanes  # noqa: E402


def test_lanes_take_the_longest_task_first_and_the_least_loaded_lane():
    costs = {"dm": 90, "dm_from_1": 94, "fmc": 16, "rem": 16, "fm": 13}
    lanes = plan_lanes(costs, 2)
    # by hand: dm_from_1 -> A (94); dm -> B (90); fmc -> B (106); rem -> A (110); fm -> B (119)
    assert lanes == [["dm_from_1", "rem"], ["dm", "fmc", "fm"]]
    assert plan_lanes(costs, 1) == [["dm_from_1", "dm", "fmc", "rem", "fm"]]
    assert len(plan_lanes({"a": 1.0}, 4)) == 1  # no empty lanes
    with pytest.raises(ValueError, match="jobs"):
        plan_lanes(costs, 0)


def _time_stages(lane, work):
    clock = StageClock(Path(work))
    for k in range(lane[1]):
        clock.run(f"{lane[0]}_{k}", False, sum, [k])


def test_processes_sharing_a_work_directory_keep_each_others_timings(tmp_path):
    run_lanes(_time_stages, [("a", 30), ("b", 30), ("c", 30)], str(tmp_path))
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert sorted(timings) == sorted(f"{name}_{k}" for name in "abc" for k in range(30))


def _fail_one(lane, work):
    if lane == "bad":
        raise ValueError("broken stage")
    (Path(work) / f"{lane}.done").write_text("ok")


def test_a_failing_lane_is_raised_after_the_others_finished(tmp_path):
    with pytest.raises(RuntimeError, match="1 of 2 stage lanes failed, first the lane bad: broken stage"):
        run_lanes(_fail_one, ["bad", "good"], str(tmp_path))
    assert (tmp_path / "good.done").read_text() == "ok"


def test_a_reused_stage_keeps_the_time_it_took_when_it_ran(tmp_path):
    (tmp_path / "timings.json").write_text(json.dumps({"train_s": 123.0}))
    clock = StageClock(tmp_path)
    assert clock.run("train_s", True, sum, [1, 2]) == 3
    assert json.loads((tmp_path / "timings.json").read_text()) == {"train_s": 123.0}


def test_the_timings_of_this_run_leave_out_stages_recorded_by_other_runs(tmp_path):
    (tmp_path / "timings.json").write_text(json.dumps({"train_s": 123.0, "train_from_1_s": 900.0}))
    clock = StageClock(tmp_path)
    clock.run("train_s", True, sum, [1])
    clock.run("production_s", False, sum, [2])
    clock.run("train_s", True, sum, [1])
    assert list(clock.this_run()) == ["train_s", "production_s"] and clock.this_run()["train_s"] == 123.0
    assert sorted(json.loads((tmp_path / "timings.json").read_text())) == ["production_s", "train_from_1_s",
                                                                           "train_s"]
