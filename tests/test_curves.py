"""Training curves of a run directory and their place in the analysis report (`dynmatch analyze --cg-run`)."""
import argparse
import json
import math

import numpy as np
import pytest

from openmm_dynmatch import trajio
from openmm_dynmatch.curves import plot_training_curves, read_log, report_training, stage_logs
from openmm_dynmatch.fileio import write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))


def _fm_run(folder, with_dm: bool):
    """A run directory as run_training leaves it: a force-matching stage log (and log.csv) plus summary.json."""
    folder.mkdir()
    _write_csv(folder / "stage0_force_matching.csv",
               ["iteration", "wall_time_s", "batch_loss", "train_force_loss", "validation_force_loss"],
               [[0, 0.0, "", 190.0, 191.0], [10, 0.1, 60.0, 48.0, 49.5], [20, 0.2, 33.0, 24.4, 26.9],
                [30, 0.3, 23.5, 24.5, 27.1]])
    summary = {"objective": "dynamic_matching" if with_dm else "force_matching", "friction_per_ps": 10.0,
               "validation_force_loss": 26.9, "heldout_auc": {"after": {"auc": 0.61}},
               "stages": [{"objective": "force_matching", "iterations": 60, "stopped_at_iteration": 30,
                           "best_iteration": 20, "best_validation_force_loss": 26.9, "evaluations": 4}]}
    if with_dm:
        iterations = np.arange(40)
        _write_csv(folder / "log.csv",
                   ["iteration", "phase", "classifier_accuracy", "classifier_auc", "reward_mean", "reward_std",
                    "gradient_snr", "friction_per_ps"],
                   [[i, "warmup" if i < 5 else "adversarial", 0.5 + 0.2 * np.exp(-i / 10), 0.55, -0.1, 0.3,
                     "" if i % 10 else 0.8, 10.0 * (1 + i / 40)] for i in iterations])
        summary["heldout_auc"]["before"] = {"auc": 0.9}
    write_json(folder / "summary.json", summary)
    return folder


def test_read_log_gives_float_columns_with_nan_for_empty_cells(tmp_path):
    run = _fm_run(tmp_path / "run", with_dm=True)
    stage = read_log(run / "stage0_force_matching.csv")
    np.testing.assert_array_equal(stage["iteration"], [0, 10, 20, 30])
    assert math.isnan(stage["batch_loss"][0]) and stage["batch_loss"][1] == 60.0
    log = read_log(run / "log.csv")
    assert log["phase"].dtype == object and log["phase"][0] == "warmup"
    assert np.isnan(log["gradient_snr"]).sum() == 36
    assert read_log(run / "stage0_force_matching.csv", as_rows=True)[2]["validation_force_loss"] == 26.9
    assert [(i, name) for i, name, _ in stage_logs(run)] == [(0, "force_matching")]


@pytest.mark.parametrize("with_dm", [False, True])
def test_training_curves_figure_is_written(tmp_path, with_dm):
    run = _fm_run(tmp_path / "run", with_dm)
    out = plot_training_curves(run, tmp_path / "curves.png")
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10000
    # an empty run directory still gets a figure (that says so)
    (tmp_path / "empty").mkdir()
    assert plot_training_curves(tmp_path / "empty", tmp_path / "empty.png").read_bytes().startswith(PNG_MAGIC)


def test_report_training_checks_its_arguments(tmp_path):
    run = _fm_run(tmp_path / "run", with_dm=False)
    labels = {"cg": "CG", "baseline": "FM"}
    with pytest.raises(ValueError, match=r"unknown keys \['aa'\]"):
        report_training({"aa": run}, labels, tmp_path)
    with pytest.raises(ValueError, match="is not a directory"):
        report_training({"cg": tmp_path / "missing"}, labels, tmp_path)


def _dimer_file(path, stiffness, rng):
    import mdtraj

    bond = np.empty(300)
    x = 0.3
    for t in range(300):
        x += -stiffness * (x - 0.3) + 0.01 * rng.normal()
        bond[t] = x
    positions = np.zeros((300, 2, 3))
    positions[:, 1, 0] = bond
    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    a, b = (top.add_atom(name, mdtraj.element.carbon, residue) for name in ("A", "B"))
    top.add_bond(a, b)
    meta = {"temperature_k": 300.0, "timestep_ps": 0.002, "frame_interval_ps": 0.5, "masses_amu": [12.0] * 2,
            "bead_names": ["A", "B"], "bead_types": [0, 0], "type_names": ["C"], "bonds": [[0, 1]]}
    with trajio.TrajectoryWriter(path, top, meta) as writer:
        writer.write(positions, np.arange(300) * 0.5)
    return path


@pytest.mark.integration
def test_analyze_shows_the_training_curves_of_the_run_directories(tmp_path, capsys):
    from openmm_dynmatch.cli import analyze

    rng = np.random.default_rng(3)
    aa, cg = _dimer_file(tmp_path / "aa.h5", 0.05, rng), _dimer_file(tmp_path / "cg.h5", 0.2, rng)
    dm_run, fm_run = _fm_run(tmp_path / "run_dm", with_dm=True), _fm_run(tmp_path / "run_fm", with_dm=False)
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    out = tmp_path / "report"
    args = parser.parse_args(["--aa", str(aa), "--cg", str(cg), "--cg-baseline", str(cg), "--out", str(out),
                              "--cg-run", str(dm_run), "--baseline-run", str(fm_run), "--lag", "1", "2",
                              "--clusters", "3", "--bootstrap", "2", "--bins", "20", "--no-progress",
                              "--label-cg", "dynamic matching", "--label-baseline", "force matching"])
    assert analyze.run(args) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["cg"]["figure"] == "training_cg.png"
    assert metrics["training"]["baseline"]["summary"]["stages"][0]["best_validation_force_loss"] == 26.9
    for key in ("cg", "baseline"):
        assert (out / f"training_{key}.png").read_bytes().startswith(PNG_MAGIC)
    text = (out / "report.md").read_text()
    training = text[text.index("## Training"):]
    assert "](training_cg.png)" in training and "](training_baseline.png)" in training
    assert "| dynamic matching | dynamic_matching | force matching: 30 / 60, 26.9 (20) | 26.9 | 0.9 → 0.61 |" \
        in training
    assert "| force matching | force_matching | force matching: 30 / 60, 26.9 (20) | 26.9 | 0.61 |" in training
