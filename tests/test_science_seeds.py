"""How ``benchmarks/science_seeds.py`` pools ``science.py`` runs at several seeds: the mean over runs and its
standard error written out again, the runs within 25% counted, the targets counted, and runs judged against
different AA data refused."""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pytest  # noqa: E402
from science_seeds import TRAINING, aggregate, load_runs, main  # noqa: E402

REFERENCE = {"replicas": 8, "seed": 1000, "ns_each": 5.0, "frames": 400000}


def _run(seed, dm, fm, training, met, reference=REFERENCE):
    model = lambda ratios, friction: {"slowest_timescale_ratio": ratios[0], "core_relaxation_ratio": ratios[1],
                                      "friction_per_ps": friction}
    return {"seed": seed, "reference": dict(reference), "aa_halves": {"slowest_timescale_ratio": 1.1},
            "models": {"dm": model(dm, 3.0 + seed), "fm": model(fm, 10.0)},
            "training_aa_vs_reference": {"slowest_timescale_ratio": training[0], "core_relaxation_ratio": training[1]},
            "targets": {"msm_dm_within_25pct": met, "core_dm_relative_error": 0.2, "dm_auc_below_fm": None}}


def test_runs_are_pooled_as_the_mean_over_seeds_with_its_standard_error():
    runs = [_run(0, (0.74, 0.80), (0.97, 1.17), (1.02, 0.95), False), _run(1, (1.09, 1.23), (1.30, 1.54),
                                                                       (0.90, 1.10), True),
            _run(2, (0.90, 1.30), (1.10, 1.40), (1.00, 1.00), True)]
    out = aggregate(runs)
    values = [0.80, 1.23, 1.30]
    mean = sum(values) / 3
    sem = math.sqrt(sum((v - mean) ** 2 for v in values) / 2 / 3)
    dm = out["models"]["dm"]
    assert dm["core_relaxation_ratio"] == pytest.approx(mean, rel=1e-12)
    assert dm["core_relaxation_ratio_sem"] == pytest.approx(sem, rel=1e-12)
    assert dm["core_relaxation_ratio_per_run"] == values
    assert dm["core_relaxation_ratio_runs_within_25pct"] == 2  # 0.80 and 1.23 in, 1.30 out
    assert dm["slowest_timescale_ratio_runs_within_25pct"] == 2  # 0.74 out
    logs = [math.log(v) for v in values]
    log_mean = sum(logs) / 3
    assert dm["core_relaxation_ratio_log_sd"] == pytest.approx(
        math.sqrt(sum((v - log_mean) ** 2 for v in logs) / 2), rel=1e-12)
    assert dm["friction_per_run"] == [3.0, 4.0, 5.0]
    assert out["models"][TRAINING]["slowest_timescale_ratio"] == pytest.approx((1.02 + 0.90 + 1.00) / 3)
    assert out["targets"]["msm_dm_within_25pct"] == {"met": 2, "missed": 1, "undecided": 0}
    assert out["targets"]["dm_auc_below_fm"] == {"met": 0, "missed": 0, "undecided": 3}
    assert "core_dm_relative_error" not in out["targets"]  # a number, not a target


def test_runs_judged_against_different_references_or_sharing_a_seed_are_refused(tmp_path):
    paths = []
    for k, run in enumerate([_run(0, (1, 1), (1, 1), (1, 1), True),
                             _run(1, (1, 1), (1, 1), (1, 1), True, dict(REFERENCE, seed=2000)),
                             _run(0, (1, 1), (1, 1), (1, 1), True)]):
        paths.append(tmp_path / f"run{k}.json")
        paths[-1].write_text(json.dumps(run))
    with pytest.raises(SystemExit, match="different reference AA data"):
        load_runs(paths[:2])
    with pytest.raises(SystemExit, match="two runs share a seed"):
        load_runs([paths[0], paths[2]])
    unjudged = dict(_run(3, (1, 1), (1, 1), (1, 1), True), reference=None)
    (tmp_path / "plain.json").write_text(json.dumps(unjudged))
    with pytest.raises(SystemExit, match="not judged against a reference"):
        load_runs([paths[0], tmp_path / "plain.json"])


def test_science_seeds_writes_its_table_and_figure(tmp_path):
    paths = []
    for seed in (1, 0):
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps(_run(seed, (0.8 + 0.2 * seed, 1.0), (1.2, 1.5), (1.0, 1.0), True)))
    assert main([str(p) for p in paths] + ["--out", str(tmp_path / "seeds.json")]) == 0
    out = json.loads((tmp_path / "seeds.json").read_text())
    assert out["seeds"] == [0, 1] and out["models"]["dm"]["slowest_timescale_ratio_per_run"] == [0.8, 1.0]
    assert (tmp_path / "seeds.png").stat().st_size > 0
