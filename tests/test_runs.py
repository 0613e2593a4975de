"""Training runs from a configuration, through the library and the CLI: run directory, export, resume,
Brownian per-type frictions in exported models, and the collapse monitor."""
import csv
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from conftest import tolerance
from dimer_toy import MASS_AMU, TEMPERATURE_K, dimer_forces, simulate_dimer_data, write_dimer_data
from openmm_dynmatch import trajio
from openmm_dynmatch.cli import main as cli_main
from openmm_dynmatch.config import load_config
from openmm_dynmatch.data import split_blocks
from openmm_dynmatch.models.potential import load_potential
from openmm_dynmatch.runs import load_trainer, run_training
from openmm_dynmatch.train import CollapseMonitor
from openmm_dynmatch.units import kt_kj_per_mol

K, R0, FRICTION, DT = 500.0, 0.3, 100.0, 0.02


@pytest.fixture(scope="module")
def dimer_file(tmp_path_factory):
    """One 600-frame OpenMM trajectory of the Brownian harmonic dimer in the mapped-data format."""
    folder = tmp_path_factory.mktemp("dimer")
    _, frames = simulate_dimer_data(folder, "brownian", K, R0, FRICTION, DT, 10 * DT, n_walkers=1, n_frames=600,
                                    seed=2)
    path = folder / "dimer_cg.h5"
    write_dimer_data(path, frames[0], 10 * DT, K, R0)
    return path


def _config_file(tmp_path, data_path, **train):
    config = {"data": {"cg_path": str(data_path), "window_frames": 4, "n_blocks": 4},
              "potential": {"kind": "none", "dtype": "float64", "prior_trainable": True},
              "classifier": {"kind": "invariant", "options": {"hidden": 16}},
              "dynamics": {"integrator": "brownian", "timestep_ps": DT, "friction_per_ps": 50.0},
              "train": {"walkers": 16, "iterations": 4, "classifier_warmup": 1, "checkpoint_every": 2, **train}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.integration
def test_force_matching_run_fits_the_prior_and_exports_an_openmm_model(tmp_path, dimer_file):
    import openmm

    from openmm_dynmatch.openmm.cg_walkers import create_system

    config = load_config(_config_file(tmp_path, dimer_file, objective="force_matching", iterations=20,
                                      lr_pretrain=1e-3))
    summary = run_training(config, tmp_path / "run", progress=False)
    potential, metadata = load_potential(summary["potential"])
    assert metadata["integrator"] == "brownian" and metadata["bonds"] == [[0, 1]]
    # the prior fitted to ~80 independent samples of the harmonic bond is near the truth (sd of r is 0.07 nm)
    assert abs(float(potential.prior.constants()["bond_r0"][0].detach()) - R0) < 0.04
    cg = create_system(summary["model"], 3, platform="Reference")
    x = np.random.default_rng(0).normal(scale=0.2, size=(3, 2, 3))
    cg.context.setPositions(x.reshape(-1, 3))
    state = cg.context.getState(getEnergy=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    expected = float(potential(torch.as_tensor(x)).sum().detach())
    torch.testing.assert_close(energy, expected, rtol=1e-6, atol=1e-6)


def _stage_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.integration
def test_force_matching_run_logs_the_validation_loss_stops_on_it_and_draws_curves(tmp_path, dimer_file):
    config = load_config(_config_file(tmp_path, dimer_file, objective="force_matching", iterations=60,
                                      lr_pretrain=0.02, pretrain_eval_every=10, pretrain_patience=1))
    run_dir = tmp_path / "run"
    summary = run_training(config, run_dir, progress=False)
    log = run_dir / "stage0_force_matching.csv"
    rows = _stage_rows(log)
    iterations = [int(r["iteration"]) for r in rows]
    assert iterations == list(range(0, iterations[-1] + 1, 10)) and iterations[-1] <= 60
    validation = np.array([float(r["validation_force_loss"]) for r in rows])
    assert np.all(np.isfinite(validation)) and all(float(r["train_force_loss"]) > 0 for r in rows)
    # the validation frames are the held-out blocks, their forces as recorded (the dimer's exact ones, stored
    # in single precision)
    traj = trajio.load(dimer_file)
    _, val_ranges = split_blocks(traj.n_frames, config.data.validation_fraction, config.data.n_blocks,
                                 config.train.seed)
    frames = np.concatenate([traj.positions[a:b] for a, b in val_ranges])
    forces = np.concatenate([traj.forces[a:b] for a, b in val_ranges])
    np.testing.assert_allclose(forces, dimer_forces(frames, K, R0), rtol=1e-5, atol=1e-3)
    x = torch.as_tensor(frames).requires_grad_(True)
    (gradient,) = torch.autograd.grad(load_potential(summary["potential"])[0](x).sum(), x)
    independent = float(((torch.as_tensor(forces) + gradient) ** 2).sum(-1).mean())
    tol = tolerance(np.float64)
    np.testing.assert_allclose(summary["validation_force_loss"], independent, **tol)
    np.testing.assert_allclose(validation.min(), independent, **tol)  # the best parameters were kept
    stage = summary["stages"][0]
    assert stage["objective"] == "force_matching" and stage["log"] == log.name and stage["iterations"] == 60
    assert stage["stopped_at_iteration"] == iterations[-1] and stage["evaluations"] == len(rows)
    assert stage["best_iteration"] == iterations[int(np.argmin(validation))]
    np.testing.assert_allclose([stage["best_validation_force_loss"], stage["final_validation_force_loss"]],
                               [validation.min(), validation[-1]], **tol)
    # with this seed the validation loss first fails to improve at iteration 30: patience 1 stops there
    assert stage["stopped_early"] and iterations[-1] < 60
    assert iterations[-1] - stage["best_iteration"] == 1 * 10 and validation[-1] > validation.min()
    assert (run_dir / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    # a resumed run reuses the stage and keeps its log
    before = log.read_bytes()
    resumed = run_training(config, run_dir, resume=True, progress=False)
    assert log.read_bytes() == before and resumed["stages"] == summary["stages"]


@pytest.mark.integration
def test_dynamic_matching_run_through_the_cli_writes_log_checkpoint_and_model(tmp_path, dimer_file, capsys):
    config_path = _config_file(tmp_path, dimer_file)
    run_dir = tmp_path / "run"
    assert cli_main(["train", "--config", str(config_path), "--run-dir", str(run_dir), "--no-progress"]) == 0
    log = np.genfromtxt(run_dir / "log.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert list(log["iteration"]) == [0, 1, 2, 3]
    assert set(log["phase"]) == {"warmup", "adversarial"}
    assert np.all(np.isfinite(log["friction_per_ps_type0"]))
    assert load_config(run_dir / "config.yaml") == load_config(config_path)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["iteration"] == 4
    assert (run_dir / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    out = tmp_path / "exported.pt"
    assert cli_main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    assert out.is_file()
    with pytest.raises(ValueError, match="not empty"):
        run_training(load_config(config_path), run_dir, progress=False)
    # resuming a finished run does no further iteration and reproduces the same model
    before = load_potential(run_dir / "potential.pt")[0].state_dict()
    assert cli_main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    after = load_potential(run_dir / "potential.pt")[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the trainer as the last checkpoint left it, with another batch size
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    trainer = load_trainer(run_dir, walkers=8)
    assert trainer.iteration == 4 and trainer.train_cfg.walkers == 8
    assert torch.equal(trainer.dynamics.log_friction.detach(), checkpoint["dynamics"]["log_friction"])
    classifier = trainer.classifier.state_dict()
    assert all(torch.equal(classifier[k], v) for k, v in checkpoint["classifier"].items())
    with pytest.raises(FileNotFoundError, match="checkpoint.pt not found"):
        load_trainer(tmp_path)


@pytest.mark.integration
def test_a_run_with_a_classifier_ensemble_checkpoints_every_member_and_draws_all_anew(tmp_path, dimer_file):
    """``classifier.members: 2`` with new draws at every re-initialisation: the checkpoint holds both members,
    the trainer loaded from it has them, and the draw after the re-initialisation differs from the first."""
    config_path = _config_file(tmp_path, dimer_file, iterations=5, classifier_reset_every=2,
                               classifier_reset_warmup=1, classifier_reset_init="new")
    config = yaml.safe_load(config_path.read_text())
    config["classifier"]["members"] = 2
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    assert cli_main(["train", "--config", str(config_path), "--run-dir", str(run_dir), "--no-progress"]) == 0
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    names = {key.split(".")[1] for key in checkpoint["classifier"] if key.startswith("members.")}
    assert names == {"0", "1"}
    trainer = load_trainer(run_dir)
    assert len(trainer.classifier.members) == 2
    assert all(torch.equal(trainer.classifier.state_dict()[k], v) for k, v in checkpoint["classifier"].items())
    first = checkpoint["classifier_initial"]
    trainer.reset_classifier(3)
    assert any(not torch.equal(first[k], v) for k, v in trainer.classifier.state_dict().items())


@pytest.mark.integration
def test_dynamic_matching_from_a_start_potential_skips_pre_training_and_keeps_that_potential(tmp_path, dimer_file):
    from openmm_dynmatch.models.potential import save_potential

    fixed_prior = {"kind": "pair_mlp", "prior_trainable": False, "net": {"hidden": 8}}
    config = load_config(_config_file(tmp_path, dimer_file, objective="force_matching", iterations=5))
    fm = run_training(replace(config, potential=replace(config.potential, **fixed_prior)), tmp_path / "fm",
                      progress=False)
    start, metadata = load_potential(fm["potential"])
    with torch.no_grad():  # a bond length no fit to these data would give (the data's r0 is 0.3 nm)
        start.prior.bond_r0_ref.fill_(0.45)
    save_potential(tmp_path / "start.pt", start, metadata)
    config = load_config(_config_file(tmp_path, dimer_file, lr_potential=0.0))
    # a start potential whose prior is fixed while the configuration says trainable is refused, naming the key
    with pytest.raises(ValueError, match="prior_trainable is True"):
        run_training(config, tmp_path / "refused", progress=False, start_potential=tmp_path / "start.pt")
    # the prior is fixed and lr_potential is 0: only the friction learns, the potential must come back unchanged
    config = replace(config, potential=replace(config.potential, **fixed_prior))
    summary = run_training(config, tmp_path / "dm", progress=False, start_potential=tmp_path / "start.pt")
    trained = load_potential(summary["potential"])[0].state_dict()
    assert all(torch.equal(trained[k], v) for k, v in start.state_dict().items())
    assert float(start.prior.constants()["bond_r0"][0]) == pytest.approx(0.45)
    assert not list((tmp_path / "dm").glob("stage*"))  # no pre-training stage ran
    log = np.genfromtxt(tmp_path / "dm" / "log.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert log["friction_per_ps_type0"][-1] != pytest.approx(50.0)  # the friction did learn


def test_exported_brownian_model_keeps_per_type_frictions(tmp_path):
    """A model with per-bead frictions diffuses each bead at its own rate in OpenMM: MSD = 6 kT t / (gamma_i m_i)
    for free beads."""
    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.runner import load_walkers, simulate

    class Free(torch.nn.Module):
        def forward(self, positions: torch.Tensor) -> torch.Tensor:
            return 0.0 * positions.sum(dim=(1, 2))

    frictions = [20.0, 80.0]
    meta = {"n_beads": 2, "bead_names": ["A", "B"], "bead_types": [0, 1], "type_names": ["A", "B"],
            "masses_amu": [MASS_AMU, 2 * MASS_AMU], "temperature_k": TEMPERATURE_K, "integrator": "brownian",
            "friction_per_ps": 50.0, "bead_friction_per_ps": frictions, "timestep_ps": 0.01, "cutoff_nm": None,
            "periodic": False, "bonds": [[0, 1]]}
    model = export(Free(), tmp_path / "free.pt", meta)
    out = tmp_path / "free.h5"
    simulate(model, np.zeros((1, 2, 3)), 400, out, n_steps=100, frame_interval_ps=1.0, seed=4, progress=False,
             platform="Reference")
    walkers = load_walkers(out)  # (400, 1, 2, 3): one frame, written after 1 ps
    msd = (walkers[:, -1] ** 2).sum(-1).mean(0)
    kt = kt_kj_per_mol(TEMPERATURE_K)
    expected = 6 * kt * 1.0 / (np.array(frictions) * np.array([MASS_AMU, 2 * MASS_AMU]))
    # 400 walkers: the relative standard error of a 3-D MSD is sqrt(2/3/400) ~ 4%
    np.testing.assert_allclose(msd, expected, rtol=0.16)


def test_collapse_monitor_flags_a_constant_classifier_after_its_patience():
    monitor = CollapseMonitor(patience=3)
    alive = {"classifier_logit_std": 0.3, "classifier_accuracy": 0.56, "classifier_auc": 0.58}
    dead = {"classifier_logit_std": 0.0, "classifier_accuracy": 0.5, "classifier_auc": 0.5}
    assert [monitor.update(alive), monitor.update(dead), monitor.update(dead)] == [False, False, False]
    with pytest.warns(RuntimeWarning, match="constant"):
        assert monitor.update(dead)
    assert not monitor.update(alive)


def test_training_data_of_a_file_with_several_runs_never_joins_them(tmp_path):
    """Windows, training and validation ranges of a file holding three runs stay inside one run each."""
    from openmm_dynmatch import trajio
    from openmm_dynmatch.runs import load_training_data

    lengths = [70, 45, 85]
    frames = np.cumsum(np.random.default_rng(0).normal(scale=0.01, size=(sum(lengths), 2, 3)), axis=0)
    path = tmp_path / "runs.h5"
    write_dimer_data(path, frames, 10 * DT, K, R0)
    with trajio.TrajectoryWriter(path, trajio.load(path).topology, {"trajectory_lengths": lengths}, append=True):
        pass
    owner = np.repeat(np.arange(len(lengths)), lengths)  # run of every frame
    config = load_config(_config_file(tmp_path, path))
    data = load_training_data(config)
    # brute force: a frame starts a window when the window's frames are all in one set of the plain block split
    # (the split without boundaries) and all in one run
    plain_train = split_blocks(sum(lengths), config.data.validation_fraction, config.data.n_blocks,
                               config.train.seed)[0]
    assert any(a < 70 < b or a < 115 < b for a, b in plain_train)  # a run ends inside a training block
    in_train = np.zeros(sum(lengths), dtype=bool)
    for a, b in plain_train:
        in_train[a:b] = True
    span = config.data.window_frames  # frame_step 1, stride 1
    for windows, wanted in ((data.windows, True), (data.validation, False)):
        expected = [s for s in range(sum(lengths) - span + 1) if np.all(in_train[s:s + span] == wanted)
                    and np.all(owner[s:s + span] == owner[s])]
        np.testing.assert_array_equal(windows.starts, expected)
    np.testing.assert_allclose(data.frames, frames[in_train], atol=1e-6)


@pytest.mark.integration
def test_resume_refuses_a_changed_config_naming_the_keys_and_accepts_more_iterations(tmp_path, dimer_file, capsys):
    config_path = _config_file(tmp_path, dimer_file)
    run_dir = tmp_path / "run"
    run_training(load_config(config_path), run_dir, progress=False)
    stored = (run_dir / "config.yaml").read_text()
    changed = load_config(config_path, ["train.seed=3", "dynamics.friction_per_ps=20"])
    with pytest.raises(ValueError) as err:
        run_training(changed, run_dir, resume=True, progress=False)
    message = str(err.value)
    assert "train.seed (0 in the run, 3 now)" in message and "dynamics.friction_per_ps (50.0 in the run" in message
    assert "train.iterations" in message  # what may change
    assert (run_dir / "config.yaml").read_text() == stored  # the run directory still says what ran
    # the same through the command line: one line, the key named
    assert cli_main(["train", "--resume", str(run_dir), "--set", "train.seed=3", "--no-progress"]) == 2
    printed = capsys.readouterr().err.strip()
    assert "\n" not in printed and "train.seed (0 in the run, 3 now)" in printed
    # more iterations is a documented resumable change: training continues where it stopped
    summary = run_training(load_config(config_path, ["train.iterations=6"]), run_dir, resume=True, progress=False)
    log = np.genfromtxt(run_dir / "log.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert list(log["iteration"]) == list(range(6)) and summary["model"].endswith("model.pt")
    assert load_config(run_dir / "config.yaml").train.iterations == 6


def test_a_new_run_that_fails_on_its_data_leaves_nothing_that_blocks_the_rerun(tmp_path, dimer_file):
    run_dir = tmp_path / "run"
    missing = load_config(_config_file(tmp_path, tmp_path / "no_such.h5", objective="force_matching",
                                       iterations=5))
    with pytest.raises(FileNotFoundError, match="no_such.h5"):
        run_training(missing, run_dir, progress=False)
    assert not run_dir.exists()
    # a trajectory without the mapping's metadata
    traj = trajio.load(dimer_file)
    bare = tmp_path / "bare.h5"
    with trajio.TrajectoryWriter(bare, traj.topology, {"temperature_k": TEMPERATURE_K}) as writer:
        writer.write(traj.positions, traj.time_ps)
    with pytest.raises(ValueError, match="lacks metadata 'bead_types'"):
        run_training(load_config(_config_file(tmp_path, bare, objective="force_matching", iterations=5)), run_dir,
                     progress=False)
    assert not run_dir.exists()
    run_dir.mkdir()  # an empty folder is fine too
    fixed = load_config(_config_file(tmp_path, dimer_file, objective="force_matching", iterations=5))
    assert run_training(fixed, run_dir, progress=False)["model"].endswith("model.pt")


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_damaged_checkpoint_is_one_error_naming_the_file(tmp_path, dimer_file, capsys, damage):
    config_path = _config_file(tmp_path, dimer_file)
    run_dir = tmp_path / "run"
    run_training(load_config(config_path), run_dir, progress=False)
    checkpoint = run_dir / "checkpoint.pt"
    if damage == "garbage":
        checkpoint.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    else:
        torch.save({"weights": torch.zeros(3)}, checkpoint)
    with pytest.raises(ValueError, match=f"{checkpoint}: .*training checkpoint.*delete it"):
        run_training(load_config(config_path), run_dir, resume=True, progress=False)
    assert cli_main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    printed = capsys.readouterr().err.strip()
    assert "\n" not in printed and str(checkpoint) in printed and "Traceback" not in printed


def test_damaged_potential_file_is_one_error_naming_the_file(tmp_path):
    from openmm_dynmatch.errors import FileFormatError

    path = tmp_path / "potential.pt"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(FileFormatError, match=f"{path}: cannot read the potential file"):
        load_potential(path)
    torch.save({"spec": {}, "state_dict": {}}, path)
    with pytest.raises(FileFormatError, match=r"not a potential file \(missing \['metadata'\]\)"):
        load_potential(path)


@pytest.mark.parametrize("override, key", [("train.walkers=-4", "config.train.walkers"),
                                           ("dynamics.timestep_ps=0", "config.dynamics.timestep_ps")])
def test_out_of_range_values_are_refused_before_any_work(tmp_path, dimer_file, capsys, override, key):
    run_dir = tmp_path / "run"
    code = cli_main(["train", "--config", str(_config_file(tmp_path, dimer_file)), "--run-dir", str(run_dir),
                     "--set", override, "--no-progress"])
    printed = capsys.readouterr().err.strip()
    assert code == 2 and printed.startswith(f"dynmatch train: error: {key}: expected a value in")
    assert not run_dir.exists()


def test_split_seed_holds_out_the_same_blocks_at_every_training_seed(tmp_path, dimer_file):
    """``data.split_seed`` fixes the validation blocks (those of ``split_blocks`` at that seed) whatever
    ``train.seed`` is; at its default (-1) the training seed chooses them."""
    from openmm_dynmatch.runs import load_training_data

    config = load_config(_config_file(tmp_path, dimer_file))
    positions, d = trajio.load(dimer_file).positions, config.data

    def held_out(seed):
        ranges = split_blocks(len(positions), d.validation_fraction, d.n_blocks, seed)[1]
        return positions[np.concatenate([np.arange(a, b) for a, b in ranges])]

    other = next(s for s in range(1, 10) if held_out(s).shape != held_out(0).shape
                 or not np.allclose(held_out(s), held_out(0)))
    for train_seed in (0, other):
        fixed = replace(config, data=replace(d, split_seed=0), train=replace(config.train, seed=train_seed))
        np.testing.assert_allclose(load_training_data(fixed).validation_frames, held_out(0), atol=1e-6)
    free = replace(config, train=replace(config.train, seed=other))
    np.testing.assert_allclose(load_training_data(free).validation_frames, held_out(other), atol=1e-6)
