"""``benchmarks/fm_spread.py``: the spread over training seeds written out again, the force-matching recipe it
trains (science.py's, with ``--set`` changes checked as a configuration's are), and a work directory trained with
another recipe refused instead of reused."""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pytest  # noqa: E402
from fm_spread import LANDSCAPE, fm_config, landscape_correlation, main, one_seed, spread  # noqa: E402
from openmm_dynmatch.config import write_config  # noqa: E402


def test_spread_is_mean_sample_sd_and_max_over_min():
    out = spread([1.2, None, 2.4, 1.5])
    mean = (1.2 + 2.4 + 1.5) / 3
    sd = math.sqrt(((1.2 - mean) ** 2 + (2.4 - mean) ** 2 + (1.5 - mean) ** 2) / 2)
    assert out["n"] == 3
    assert out["mean"] == pytest.approx(mean, rel=1e-14)
    assert out["sd"] == pytest.approx(sd, rel=1e-14)
    assert out["max_over_min"] == pytest.approx(2.0, rel=1e-14)
    assert spread([None]) == {"n": 0, "mean": None, "sd": None, "max_over_min": None}
    assert spread([1.7])["sd"] is None


def _row(seed, msm, core, barrier, gap):
    return {"seed": seed, "slowest_timescale_ratio": msm, "core_relaxation_ratio": core,
            "psi_landscape": {LANDSCAPE[0]: barrier, LANDSCAPE[1]: barrier + 1.0, LANDSCAPE[2]: gap}}


def test_landscape_correlation_is_pearson_of_the_number_with_the_log_ratio():
    rows = [_row(0, 1.2, 1.5, 10.0, -5.0), _row(1, 2.0, 2.2, 12.5, None), _row(2, 0.9, 1.1, 9.0, -4.0),
            _row(3, None, 1.3, 11.0, -6.0)]
    out = landscape_correlation(rows)
    x, y = [10.0, 12.5, 9.0], [math.log(1.2), math.log(2.0), math.log(0.9)]   # seed 3 has no MSM ratio
    mx, my = sum(x) / 3, sum(y) / 3
    r = (sum((a - mx) * (b - my) for a, b in zip(x, y))
         / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)))
    assert out[f"{LANDSCAPE[0]}_vs_log_slowest_timescale_ratio"] == pytest.approx(r, rel=1e-12)
    assert out[f"{LANDSCAPE[1]}_vs_log_slowest_timescale_ratio"] == pytest.approx(r, rel=1e-12)  # shifted by 1
    # the extended - helical numbers of seeds 0, 2, 3 with their psi-core ratios (seed 1 has none)
    x, y = [-5.0, -4.0, -6.0], [math.log(1.5), math.log(1.1), math.log(1.3)]
    mx, my = sum(x) / 3, sum(y) / 3
    r = (sum((a - mx) * (b - my) for a, b in zip(x, y))
         / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)))
    assert out[f"{LANDSCAPE[2]}_vs_log_core_relaxation_ratio"] == pytest.approx(r, rel=1e-12)
    # fewer than three seeds with both numbers: no correlation
    assert landscape_correlation(rows[:2])[f"{LANDSCAPE[0]}_vs_log_slowest_timescale_ratio"] is None


def test_fm_config_is_science_force_matching_with_the_changes(tmp_path):
    config = fm_config(tmp_path / "aa_mapped.h5", 3, ["train.pretrain_average=0.999",
                                                      "train.pretrain_lr_schedule=cosine"])
    assert config.train.objective == "force_matching" and config.train.seed == 3
    assert config.train.pretrain_average == 0.999 and config.train.pretrain_lr_schedule == "cosine"
    assert config.train.iterations == 1500  # science.py's fm_iterations
    with pytest.raises(ValueError, match="pretrain_average"):
        fm_config(tmp_path / "aa_mapped.h5", 0, ["train.pretrain_average=1.5"])
    with pytest.raises(ValueError, match="pretrain_lr_schedule"):
        fm_config(tmp_path / "aa_mapped.h5", 0, ["train.pretrain_lr_schedule=linear"])


def test_a_run_trained_with_another_recipe_is_refused(tmp_path):
    data = tmp_path / "aa_mapped.h5"
    run = tmp_path / "work" / "run_fm_seed0"
    run.mkdir(parents=True)
    write_config(fm_config(data, 0, []), run / "config.yaml")
    with pytest.raises(SystemExit, match="pretrain_average"):
        one_seed(data, None, tmp_path / "work", 0, ["train.pretrain_average=0.99"], 1, False)


def test_cli_refuses_missing_files_and_bad_settings(tmp_path, capsys):
    data = tmp_path / "aa_mapped.h5"
    data.write_bytes(b"")
    for argv, message in [(["--data", str(tmp_path / "none.h5"), "--reference", str(data)], "--data"),
                          (["--data", str(data), "--reference", str(data), "--productions", "0"], "--productions"),
                          (["--data", str(data), "--reference", str(data), "--seeds", "1", "1"], "--seeds"),
                          (["--data", str(data), "--reference", str(data), "--set", "train.bogus=1"], "bogus")]:
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err
