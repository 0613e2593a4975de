"""How ``benchmarks/science.py`` judges its targets over several production seeds: the mean and its standard
error written out again, a production without crossings kept visible, and the comparison with the
calibrated-friction baseline; how it plans its lanes when earlier stages are done; how it judges the AA data
against themselves."""
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pytest  # noqa: E402
from science import (LANE_COSTS, aa_halves, kinetics_with_spread, lane_tasks, main, plateau_ratio,  # noqa: E402
                     production_cost, productions, seed_average, setting_value, targets, training_data_judged,
                     check_reference)
from stages import plan_lanes  # noqa: E402


def test_seed_average_is_the_mean_with_its_standard_error():
    rows = [{"core_relaxation_ratio": v} for v in (1.40, 1.33, 1.31, 0.99)]
    out = seed_average(rows, ["core_relaxation_ratio"])
    mean = (1.40 + 1.33 + 1.31 + 0.99) / 4
    variance = sum((v - mean) ** 2 for v in (1.40, 1.33, 1.31, 0.99)) / 3
    assert math.isclose(out["core_relaxation_ratio"], mean, rel_tol=1e-12)
    assert math.isclose(out["core_relaxation_ratio_sem"], math.sqrt(variance / 4), rel_tol=1e-12)
    assert out["core_relaxation_ratio_per_seed"] == [1.40, 1.33, 1.31, 0.99]


def test_seed_average_of_one_production_has_no_error_and_a_missing_value_is_not_averaged_away():
    one = seed_average([{"x": 1.3}], ["x"])
    assert one["x"] == 1.3 and one["x_sem"] is None
    missing = seed_average([{"x": 1.3}, {"x": None}], ["x"])
    assert missing["x"] is None and missing["x_sem"] is None and missing["x_per_seed"] == [1.3, None]


def _model(msm, core, js=0.05, auc=0.8):
    return {"slowest_timescale_ratio": msm, "core_relaxation_ratio": core, "js_fes_2d": js, "heldout_auc": auc,
            "core_transitions_cg": 10}


def test_targets_compare_dynamic_matching_with_force_matching_and_the_calibrated_baseline():
    models = {"fm": _model(2.1, 2.9, js=0.097, auc=0.93), "fmc": _model(1.6, 2.0), "rem": _model(0.5, 0.8),
              "dm": _model(1.12, 1.20, js=0.057, auc=0.74)}
    t = targets(models, split_half=0.049)
    assert t["msm_dm_within_25pct"] and t["core_dm_within_25pct"]
    assert t["msm_fm_off_by_more"] and t["core_fm_off_by_more"]
    assert t["dm_as_close_as_calibrated_on_both_closer_on_one"] and t["dm_auc_below_fm"]
    assert math.isclose(t["core_dm_relative_error"], 0.20, rel_tol=1e-9)
    assert math.isclose(t["dm_js_minus_fm_js"], 0.057 - 0.097, rel_tol=1e-9)
    # DM closer on the MSM time but farther on the psi-core time than the calibrated baseline: not met
    models["fmc"] = _model(1.6, 1.10)
    assert targets(models, split_half=0.049)["dm_as_close_as_calibrated_on_both_closer_on_one"] is False
    # a ratio that could not be measured leaves the comparison undecided rather than met or missed
    models["fmc"] = _model(1.6, None)
    assert targets(models, split_half=0.049)["dm_as_close_as_calibrated_on_both_closer_on_one"] is None
    assert targets(models, split_half=0.049)["core_dm_minus_fmc_error"] is None


def test_the_difference_from_the_calibrated_baseline_carries_its_standard_error():
    models = {"fm": _model(2.1, 2.9), "fmc": _model(0.98, 1.03), "rem": _model(0.5, 0.8), "dm": _model(0.98, 1.09)}
    models["dm"].update(slowest_timescale_ratio_sem=0.09, core_relaxation_ratio_sem=0.12)
    models["fmc"].update(slowest_timescale_ratio_sem=0.04, core_relaxation_ratio_sem=0.05)
    t = targets(models, split_half=0.049)
    assert math.isclose(t["core_dm_minus_fmc_error"], 0.09 - 0.03, rel_tol=1e-9)
    assert math.isclose(t["core_dm_minus_fmc_error_se"], math.sqrt(0.12**2 + 0.05**2), rel_tol=1e-12)
    assert math.isclose(t["msm_dm_minus_fmc_error"], 0.0, abs_tol=1e-12)
    models["fmc"].pop("slowest_timescale_ratio_sem")  # one production: no standard error, no unit to judge by
    assert targets(models, split_half=0.049)["msm_dm_minus_fmc_error_se"] is None


def test_psi_landscape_reads_the_barriers_and_the_basin_free_energy_of_a_known_potential():
    """Boltzmann samples of psi from U(psi) = a cos(psi) + b cos(2 psi) + c sin(psi): the binned free energy,
    the gap heights and the extended - helical free energy against the same quantities integrated numerically."""
    import numpy as np

    from science import PSI_GAPS_RAD, psi_landscape

    temperature = 300.0
    kt = 0.0083144626 * temperature

    def energy(psi):
        return 3.0 * np.cos(psi) + 4.0 * np.cos(2 * psi) - 2.0 * np.sin(psi)

    grid = np.linspace(-np.pi, np.pi, 360001)[:-1]
    weight = np.exp(-energy(grid) / kt)
    rng = np.random.default_rng(0)
    psi = rng.choice(grid, size=400_000, p=weight / weight.sum())
    angles = np.column_stack([rng.uniform(-np.pi, np.pi, psi.size), psi])
    out = psi_landscape({"known": angles}, temperature)
    edges = np.asarray(out["edges"])
    bins = np.digitize(grid, edges) - 1
    exact = np.array([-kt * np.log(weight[bins == k].mean()) for k in range(len(edges) - 1)])
    exact -= exact.min()
    centres = 0.5 * (edges[1:] + edges[:-1])
    row = out["barriers"]["known"]
    for gap, (low, high) in PSI_GAPS_RAD.items():
        inside = (centres >= low) & (centres <= high)
        assert abs(row[f"barrier_{gap}_kj_per_mol"] - exact[inside].max()) < 0.3, gap
    extended = ((grid > 1.5) & (grid < np.pi)) | ((grid > -np.pi) & (grid < -2.8))
    helical = (grid > -1.4) & (grid < 0.0)
    expected = -kt * np.log(weight[extended].sum() / weight[helical].sum())
    assert abs(row["extended_minus_helical_kj_per_mol"] - expected) < 0.05


class _Parser:
    def error(self, message):
        raise SystemExit(message)


def test_set_reads_booleans_as_words_and_other_values_as_their_setting_type():
    assert setting_value(False, "true", _Parser()) is True and setting_value(True, "False", _Parser()) is False
    assert setting_value(1, "5", _Parser()) == 5 and setting_value(2.0, "10", _Parser()) == 10.0
    with pytest.raises(SystemExit, match="true or false, got 'yes'"):
        setting_value(False, "yes", _Parser())
    with pytest.raises(SystemExit, match="expected a value of type int, got 'five'"):
        setting_value(1, "five", _Parser())


def test_set_items_become_typed_overrides_of_the_settings_the_last_of_a_key_winning():
    from science import DEFAULT, setting_overrides

    overrides = setting_overrides(["frame_step=10", "lr_friction=0.05", "internal_motion=false", "frame_step=3"],
                                  DEFAULT, _Parser())
    assert overrides == {"frame_step": 3, "lr_friction": 0.05, "internal_motion": False}
    assert isinstance(overrides["frame_step"], int) and isinstance(overrides["lr_friction"], float)
    assert setting_overrides([], DEFAULT, _Parser()) == {}
    for item in ("no_such_field=1", "frame_step=", "config_overrides=x"):
        with pytest.raises(SystemExit, match="--set expects KEY=VALUE"):
            setting_overrides([item], DEFAULT, _Parser())


def test_science_refuses_a_bad_set_before_running_anything(capsys):
    with pytest.raises(SystemExit):
        main(["--set", "internal_motion=1"])
    assert "true or false" in capsys.readouterr().err


def test_science_refuses_bad_training_changes_before_running_anything(capsys, tmp_path):
    for argv, message in [(["--train-set", "train.pretrain_average=1.5"], "pretrain_average"),
                          (["--train-set", "potential.bogus=1"], "bogus"),
                          (["--set", "config_overrides=x"], "--train-set")]:
        with pytest.raises(SystemExit):
            main(argv + ["--work-dir", str(tmp_path / "work")])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_config_overrides_change_every_model_and_keep_the_rest():
    """``DemoSettings.config_overrides`` (``--train-set``) apply to force matching (the objective) and to dynamic
    matching (its pre-training) alike; the settings' own fields still set the rest."""
    from dataclasses import replace

    from openmm_dynmatch.demo import demo_config
    from science import DEFAULT

    changed = replace(DEFAULT, config_overrides=("potential.kind=ensemble", "train.pretrain_lr_schedule=cosine"))
    for objective in ("force_matching", "dynamic_matching"):
        plain = demo_config(Path("aa.h5"), DEFAULT, objective, 3)
        config = demo_config(Path("aa.h5"), changed, objective, 3)
        assert config.potential.kind == "ensemble" and plain.potential.kind == "internal_mlp"
        assert config.train.pretrain_lr_schedule == "cosine" and plain.train.pretrain_lr_schedule == "constant"
        assert config.train.seed == 3 and config.data.frame_step == DEFAULT.frame_step
        assert config.train.lr_friction == plain.train.lr_friction == DEFAULT.lr_friction


def test_science_refuses_a_reference_that_shares_the_training_seed_or_cannot_judge_the_data(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--reference", str(tmp_path), "--seed", "1000"])
    assert "--reference-seed must differ from --seed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reference", str(tmp_path), "--reference-replicas", "0"])
    assert "--reference-replicas must be >= 1, got 0" in capsys.readouterr().err
    (tmp_path / "mapped.h5").write_bytes(b"")
    with pytest.raises(SystemExit):
        main(["--reference", str(tmp_path), "--aa-mapped", str(tmp_path / "mapped.h5")])
    assert "cannot judge models trained on --aa-mapped" in capsys.readouterr().err


def test_training_data_are_judged_as_a_model_against_the_reference():
    """Training data that are the reference's random walks stretched twofold diffuse four times as fast: the
    judged COM diffusion ratio is 4 (training over reference, not the other way round)."""
    from openmm_dynmatch.trajio import TrajectoryData

    rng = np.random.default_rng(5)
    walks = np.cumsum(rng.normal(scale=0.05, size=(400, 4, 3)), axis=0).astype(np.float32)
    reference = TrajectoryData(walks, 0.5 * np.arange(400), None, _metadata(4))
    training = TrajectoryData(2.0 * walks, 0.5 * np.arange(400), None, _metadata(4))
    kwargs = dict(lags=[1, 3], n_clusters=5, n_bootstrap=2, n_bins=15, backbone=None)
    out = training_data_judged(reference, training, 0, **kwargs)
    assert out["diffusion_com_ratio"] == pytest.approx(4.0, rel=1e-5)
    assert training_data_judged(reference, reference, 0, **kwargs)["slowest_timescale_ratio"] == pytest.approx(1.0)
    json.dumps(out)


def test_a_reference_made_with_other_sizes_is_refused():
    from dataclasses import replace

    from openmm_dynmatch.trajio import TrajectoryData
    from science import DEFAULT

    settings = replace(DEFAULT, aa_ns=0.02, frame_interval_ps=0.5)  # 40 frames per trajectory
    frames = lambda n, dt: TrajectoryData(np.zeros((n, 4, 3), np.float32), dt * np.arange(n), None,
                                          dict(_metadata(4), frame_interval_ps=dt))
    check_reference(frames(80, 0.5), frames(40, 0.5), settings, 2, "ref")  # 2 x 40 frames: accepted
    with pytest.raises(SystemExit, match="holds 120 frames, expected 80"):
        check_reference(frames(120, 0.5), frames(40, 0.5), settings, 2, "ref")
    with pytest.raises(SystemExit, match="its frames are 0.1 ps apart, the training data's 0.5 ps"):
        check_reference(frames(80, 0.1), frames(40, 0.5), settings, 2, "ref")


def test_plateau_ratio_waits_for_the_aa_timescale_to_level_off():
    # AA's slowest timescale grows with the lag up to 9.35 ps; 95% of it (8.88) is first reached at 2.7 ps
    its = {"aa": {"lags_ps": [0.1, 0.2, 0.4, 0.7, 1.4, 2.7, 5.2, 10.0],
                  "timescales_ps": [[7.84], [8.33], [7.42], [7.35], [8.13], [8.92], [9.07], [9.35]]},
           "cg": {"lags_ps": [0.1, 0.2, 0.4, 0.7, 1.4, 2.7, 5.2, 10.0],
                  "timescales_ps": [[5.0], [5.5], [6.07], [6.1], [6.1], [6.09], [6.0], [5.9]]}}
    out = plateau_ratio(its, 0.4)
    assert out["plateau_lag_ps"] == 2.7
    assert math.isclose(out["slowest_timescale_ratio_plateau"], 6.09 / 8.92, rel_tol=1e-12)
    # levelled off already at the ratio lag: the ratio lag itself
    flat = {side: dict(its[side], timescales_ps=[[9.0]] * 8) for side in its}
    assert plateau_ratio(flat, 0.4)["plateau_lag_ps"] == 0.4
    # lags longer than the timescale do not count (the 5 ns AA halves of the default run: 17.8 ps at a 43.9 ps
    # lag, 166 ps at 500 ps): the largest resolved value is 9.5 ps at 3.8 ps, 95% of it first reached there
    long = {"aa": {"lags_ps": [0.1, 0.3, 1.1, 3.8, 13.0, 43.9, 148.1, 500.0],
                   "timescales_ps": [[8.4], [8.3], [8.5], [9.5], [9.9], [17.8], [68.0], [166.0]]},
            "cg": {"lags_ps": [0.1, 0.3, 1.1, 3.8, 13.0, 43.9, 148.1, 500.0],
                   "timescales_ps": [[8.1], [8.1], [8.8], [10.1], [10.7], [12.4], [58.2], [192.2]]}}
    out = plateau_ratio(long, 0.4)
    assert out["plateau_lag_ps"] == 3.8
    assert math.isclose(out["slowest_timescale_ratio_plateau"], 10.1 / 9.5, rel_tol=1e-12)
    unresolved = {side: dict(long[side], timescales_ps=[[0.05]] * 8) for side in long}
    assert plateau_ratio(unresolved, 0.4) == {"plateau_lag_ps": None, "slowest_timescale_ratio_plateau": None}


def test_lanes_of_a_run_added_to_a_finished_one_spread_its_new_stages(tmp_path):
    """Friction starts added to a finished run: the done models cost nothing, so the two new DM trainings go to
    different lanes (with full costs they would share one: the done DM training would fill the other)."""
    for label in ("fm", "fmc", "rem", "dm"):
        (tmp_path / f"run_{label}").mkdir()
        (tmp_path / f"run_{label}" / "summary.json").write_text("{}")
        for _, target in productions(tmp_path, label, 0, 4):
            target.write_text("")
    (tmp_path / "cg_fm_prior.h5").write_text("")
    costs = lane_tasks(4, [1, 20], [], work=tmp_path)
    assert [costs[("model", label)] for label in ("fm", "fmc", "rem", "dm")] == [0.0] * 4
    assert costs[("model", "dm_from_1")] == LANE_COSTS["dm"] + production_cost(1, False)
    lanes = plan_lanes(costs, 2)
    assert sorted(lane[0][1] for lane in lanes) == ["dm_from_1", "dm_from_20"]
    fresh = plan_lanes(lane_tasks(4, [1, 20], []), 2)
    assert any({("model", "dm_from_1"), ("model", "dm_from_20")} <= set(lane) for lane in fresh)
    # a missing production costs its stage again; a grouped production costs less than separate ones
    (tmp_path / "cg_dm_group2.h5").unlink()
    assert lane_tasks(4, [], [], work=tmp_path)[("model", "dm")] == production_cost(4, False)
    assert production_cost(4, False) < production_cost(4, True) == 4 * LANE_COSTS["production"]


def _metadata(n_beads: int) -> dict:
    return {"temperature_k": 300.0, "frame_interval_ps": 0.5, "bead_names": [f"B{i}" for i in range(n_beads)],
            "bonds": [[i, i + 1] for i in range(n_beads - 1)]}


def _write_runs(path, positions, lengths=None):
    import mdtraj

    from openmm_dynmatch import trajio

    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    meta = _metadata(positions.shape[1])
    for name in meta["bead_names"]:
        top.add_atom(name, None, residue)
    if lengths:
        meta["trajectory_lengths"] = lengths
    with trajio.TrajectoryWriter(path, top, meta) as writer:
        writer.write(positions, 0.5 * np.arange(len(positions)))


def test_aa_halves_compares_the_later_trajectories_with_the_earlier_ones(tmp_path):
    """Two runs in one file: the result is the comparison of the second run with the first, built here from the
    arrays; a file whose two runs are the same frames gives ratios of exactly 1, and a file of one trajectory is
    split at its middle frame."""
    from openmm_dynmatch import analysis
    from openmm_dynmatch.trajio import TrajectoryData

    rng = np.random.default_rng(3)
    runs = [np.cumsum(rng.normal(scale=0.05, size=(300, 4, 3)), axis=0) for _ in range(2)]
    kwargs = dict(lags=[1, 3], n_clusters=5, n_bootstrap=2, n_bins=15, backbone=None)
    _write_runs(tmp_path / "two.h5", np.concatenate(runs), [300, 300])
    out = aa_halves(tmp_path / "two.h5", 0, **kwargs)
    by_hand = [TrajectoryData(x.astype(np.float32), 0.5 * np.arange(300), None, _metadata(4)) for x in runs]
    expected = kinetics_with_spread(analysis.compare(by_hand[0], by_hand[1], seed=0, **kwargs))
    assert out["trajectories"] == 2 and out["split_frame"] == 300 and out["frames"] == [300, 300]
    assert out["slowest_timescale_ratio"] == pytest.approx(expected["slowest_timescale_ratio"], rel=1e-12)
    assert out["diffusion_com_ratio"] == pytest.approx(expected["diffusion_com_ratio"], rel=1e-12)
    assert out["slowest_timescale_ratio"] != pytest.approx(1.0, abs=1e-3)
    json.dumps(out)  # it goes into the science JSON as it is
    _write_runs(tmp_path / "same.h5", np.concatenate([runs[0], runs[0]]), [300, 300])
    same = aa_halves(tmp_path / "same.h5", 0, **kwargs)
    assert same["slowest_timescale_ratio"] == pytest.approx(1.0, rel=1e-12)
    assert same["diffusion_com_ratio"] == pytest.approx(1.0, rel=1e-12)
    _write_runs(tmp_path / "one.h5", np.concatenate([runs[0], runs[0]]))
    one = aa_halves(tmp_path / "one.h5", 0, **kwargs)
    assert one["trajectories"] == 1 and one["split_frame"] == 300
    assert one["slowest_timescale_ratio"] == pytest.approx(1.0, rel=1e-12)
