"""Tests of the CG simulation runner, the ``dynmatch simulate`` verb and the plain-OpenMM example script."""
import argparse
import subprocess
import sys
from pathlib import Path

import mdtraj
import numpy as np
import pytest
import torch

from openmm_dynmatch import trajio
from openmm_dynmatch.errors import FileFormatError, UnstableSimulationError
from openmm_dynmatch.openmm.export import export
from openmm_dynmatch.openmm.runner import load_energies, load_walkers, simulate, split_walkers

KT_300 = 0.00831446261815324 * 300.0
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "openmm_script.py"


class Dimer(torch.nn.Module):
    """U = k/2 (r - r0)^2, plus ``trap`` beyond ``r_trap``: 0 = nothing, 1 = NaN energy, 2 = a huge wall."""

    trap: int

    def __init__(self, k: float, r0: float, r_trap: float = 1e9, trap: int = 0):
        super().__init__()
        self.register_buffer("k", torch.tensor(k, dtype=torch.float64))
        self.r0, self.r_trap, self.trap = r0, r_trap, trap

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        x = positions.to(self.k.dtype)
        r = torch.linalg.norm(x[:, 1] - x[:, 0], dim=-1)
        energy = 0.5 * self.k * (r - self.r0) ** 2
        if self.trap == 1:
            energy = torch.where(r > self.r_trap, torch.full_like(energy, float("nan")), energy)
        if self.trap == 2:
            energy = energy + torch.where(r > self.r_trap, 1e9 * (r - self.r_trap), torch.zeros_like(energy))
        return energy


def dimer_metadata(**changes) -> dict:
    meta = {"n_beads": 2, "bead_names": ["A", "B"], "bead_types": [0, 1], "type_names": ["A", "B"],
            "masses_amu": [12.0, 16.0], "temperature_k": 300.0, "integrator": "langevin", "friction_per_ps": 5.0,
            "timestep_ps": 0.002, "cutoff_nm": None, "periodic": False, "bonds": [[0, 1]]}
    meta.update(changes)
    return meta


def dimer_start(r: float) -> np.ndarray:
    return np.array([[[0.0, 0.0, 0.0], [r, 0.0, 0.0]]])


def exact_bond_moments(k: float, r0: float):
    """<r> and <(r - r0)^2> of p(r) ~ r^2 exp(-k (r - r0)^2 / 2kT), r > 0, by quadrature."""
    r = np.linspace(1e-6, r0 + 12.0 * np.sqrt(KT_300 / k), 200001)
    weight = r**2 * np.exp(-0.5 * k * (r - r0) ** 2 / KT_300)
    norm = np.trapezoid(weight, r)
    return np.trapezoid(r * weight, r) / norm, np.trapezoid((r - r0) ** 2 * weight, r) / norm


def test_harmonic_dimer_bond_statistics(tmp_path):
    k, r0 = 500.0, 0.3
    model = export(Dimer(k, r0), tmp_path / "dimer.pt", dimer_metadata())
    out = tmp_path / "cg.h5"
    result = simulate(model, dimer_start(r0), 128, out, n_steps=6000, frame_interval_ps=0.2, platform="Reference",
                      seed=7, progress=False)
    assert result.n_frames == 60 and result.blowups == 0
    walkers = load_walkers(out)
    assert walkers.shape == (128, 60, 2, 3)
    r = np.linalg.norm(walkers[:, 3:, 1] - walkers[:, 3:, 0], axis=-1).ravel()
    mean_r, variance = exact_bond_moments(k, r0)
    n = r.size
    assert abs(r.mean() - mean_r) < 5.0 * np.sqrt(variance / n)
    assert abs(np.mean((r - r0) ** 2) / variance - 1.0) < 5.0 * np.sqrt(2.0 / n)
    # Per-walker energies of every frame are written beside the trajectory and match the model.
    energies = load_energies(out)
    r_all = np.linalg.norm(walkers[:, :, 1] - walkers[:, :, 0], axis=-1).T
    np.testing.assert_allclose(energies, 0.5 * k * (r_all - r0) ** 2, rtol=1e-5, atol=1e-6)
    traj = mdtraj.load(str(out))
    assert traj.n_frames == 60 and traj.topology.n_chains == 128
    np.testing.assert_allclose(traj.time, 0.2 * np.arange(1, 61), rtol=1e-6)
    meta = trajio.read_metadata(out)
    assert meta["n_walkers"] == 128 and meta["frame_interval_ps"] == pytest.approx(0.2) and meta["blowups"] == 0


@pytest.mark.parametrize("trap", [1, 2])
def test_blowups_are_caught_reported_and_never_written(tmp_path, trap, caplog):
    r_trap = 0.45
    model = export(Dimer(20.0, 0.3, r_trap=r_trap, trap=trap), tmp_path / "bad.pt", dimer_metadata())
    out = tmp_path / "cg.h5"
    result = simulate(model, dimer_start(0.3), 16, out, n_steps=600, frame_interval_ps=0.02, platform="Reference",
                      seed=3, progress=False)
    assert result.blowups > 0 and len(result.blowup_events) == result.blowups
    assert "blew up" in caplog.text
    walkers = load_walkers(out)
    assert np.isfinite(walkers).all() and walkers.shape == (16, 60, 2, 3)
    r = np.linalg.norm(walkers[:, :, 1] - walkers[:, :, 0], axis=-1)
    assert r.max() <= r_trap + 1e-6  # a walker beyond the trap is replaced by its last good frame
    assert np.isfinite(load_energies(out)).all()
    meta = trajio.read_metadata(out)
    assert meta["blowups"] == result.blowups and meta["blowup_events"] == result.blowup_events
    with pytest.raises(UnstableSimulationError, match="blew up 1 frames in a row"):
        simulate(model, dimer_start(0.3), 16, tmp_path / "again.h5", n_steps=600, frame_interval_ps=0.02,
                 platform="Reference", seed=3, progress=False, max_restarts=0)


def test_resume_continues_the_same_run(tmp_path):
    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    kwargs = dict(frame_interval_ps=0.02, platform="Reference", seed=5, progress=False, chunk_frames=4)
    simulate(model, dimer_start(0.3), 3, tmp_path / "full.h5", n_steps=200, **kwargs)
    simulate(model, dimer_start(0.3), 3, tmp_path / "part.h5", n_steps=80, **kwargs)
    result = simulate(model, dimer_start(0.3), 3, tmp_path / "part.h5", n_steps=200, resume=True, **kwargs)
    assert result.n_frames == 20
    full, part = load_walkers(tmp_path / "full.h5"), load_walkers(tmp_path / "part.h5")
    assert part.shape == full.shape == (3, 20, 2, 3)
    np.testing.assert_allclose(part, full, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(load_energies(tmp_path / "part.h5"), load_energies(tmp_path / "full.h5"), rtol=1e-6)
    with pytest.raises(ValueError, match="checkpoint .* is of a different run"):
        simulate(model, dimer_start(0.3), 4, tmp_path / "part.h5", n_steps=200, resume=True, **kwargs)
    checkpoint = tmp_path / "part.h5.chk"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # truncated: one error naming the file
    with pytest.raises(FileFormatError, match=r"part\.h5\.chk.*production checkpoint"):
        simulate(model, dimer_start(0.3), 3, tmp_path / "part.h5", n_steps=300, resume=True, **kwargs)


def test_same_seed_same_trajectory_seed_zero_included(tmp_path):
    # OpenMM reads an integrator seed of 0 as "pick one at random": the package seed 0 must not mean that
    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        simulate(model, dimer_start(0.3), 2, tmp_path / f"{name}.h5", n_steps=40, frame_interval_ps=0.02,
                 platform="Reference", seed=seed, progress=False)
        runs[name] = load_walkers(tmp_path / f"{name}.h5")
    np.testing.assert_array_equal(runs["a"], runs["b"])
    assert np.abs(runs["a"] - runs["c"]).max() > 1e-4


def test_split_walkers_gives_each_group_its_walkers_energies_and_starts(tmp_path):
    """Six walkers of one run as three files of two: every group file holds exactly its walkers' frames and
    energies (compared with the whole file), its start frames and the run's seed; the bond-length energy of its
    frames is the model's."""
    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    starts = np.concatenate([dimer_start(r) for r in (0.28, 0.29, 0.30, 0.31, 0.32, 0.33)])
    simulate(model, starts, 6, tmp_path / "all.h5", n_steps=40, frame_interval_ps=0.02, platform="Reference",
             seed=3, progress=False)
    outs = split_walkers(tmp_path / "all.h5", [tmp_path / f"group{k}.h5" for k in range(3)])
    walkers, energies = load_walkers(tmp_path / "all.h5"), load_energies(tmp_path / "all.h5")
    for k, out in enumerate(outs):
        meta = trajio.read_metadata(out)
        assert (meta["n_walkers"], meta["walker_group"], meta["seed"]) == (2, [k, 3], 3)
        assert meta["start_frames"] == [2 * k, 2 * k + 1]
        np.testing.assert_array_equal(load_walkers(out), walkers[2 * k:2 * k + 2])
        np.testing.assert_array_equal(load_energies(out), energies[:, 2 * k:2 * k + 2])
        group = load_walkers(out)
        r = np.linalg.norm(group[:, :, 1] - group[:, :, 0], axis=-1).T  # (frames, walkers)
        # the stored energies are those of the stored positions (float32 positions: 1e-3 kJ/mol)
        np.testing.assert_allclose(load_energies(out), 0.5 * 500.0 * (r - 0.3) ** 2, atol=2e-3)
        assert [a.name for a in mdtraj.load(str(out)).topology.atoms] == ["A", "B"] * 2
    with pytest.raises(ValueError, match="6 walkers, which do not split into 4 equal groups"):
        split_walkers(tmp_path / "all.h5", [tmp_path / f"bad{k}.h5" for k in range(4)])


def test_bad_runner_inputs_raise_clear_errors(tmp_path):
    model = export(Dimer(500.0, 0.3, r_trap=0.5, trap=1), tmp_path / "dimer.pt", dimer_metadata())
    out = tmp_path / "x.h5"
    cases = [
        (dict(n_steps=100, ns=1.0), "give exactly one of ns and n_steps"),
        (dict(n_steps=100, frame_interval_ps=0.003), "frame_interval_ps must be a multiple of the timestep"),
        (dict(n_steps=1, frame_interval_ps=0.02), "n_steps must be an integer of at least one frame"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            simulate(model, dimer_start(0.3), 2, out, platform="Reference", progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"start_positions must have shape \(n_start, 2, 3\), got \(1, 3, 3\)"):
        simulate(model, np.zeros((1, 3, 3)), 2, out, n_steps=100, frame_interval_ps=0.02, platform="Reference", progress=False)
    with pytest.raises(ValueError, match="max_restarts must be a non-negative integer, got -1"):
        simulate(model, dimer_start(0.3), 2, out, n_steps=100, frame_interval_ps=0.02, platform="Reference",
                 progress=False, max_restarts=-1)
    with pytest.raises(ValueError, match=r"non-finite energies for walkers \[1\]"):
        simulate(model, np.concatenate([dimer_start(0.3), dimer_start(0.9)]), 2, out, n_steps=100, frame_interval_ps=0.02,
                 platform="Reference", progress=False)


def test_cli_simulate_and_ns_length(tmp_path):
    from openmm_dynmatch.cli import simulate as simulate_cli

    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata(integrator="brownian"))
    start = tmp_path / "start.h5"
    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    top.add_atom("A", None, residue), top.add_atom("B", None, residue)
    with trajio.TrajectoryWriter(start, top, {}) as writer:
        writer.write(np.concatenate([dimer_start(0.28), dimer_start(0.32)]), [0.0, 1.0])
    parser = argparse.ArgumentParser()
    simulate_cli.add_arguments(parser)
    out = tmp_path / "cg.h5"
    args = parser.parse_args(["--model", str(model), "--walkers", "4", "--ns", "0.0004", "--out", str(out),
                              "--start", str(start), "--platform", "Reference", "--frame-interval-ps", "0.02",
                              "--seed", "2", "--no-progress"])
    assert simulate_cli.run(args) == 0
    meta = trajio.read_metadata(out)
    assert meta["integrator"] == "brownian" and meta["seed"] == 2 and meta["steps_per_frame"] == 10
    assert load_walkers(out).shape == (4, 20, 2, 3)  # 0.4 ps = 200 steps = 20 frames
    # A multi-walker output serves as start frames (every walker of every frame is one start frame).
    again = tmp_path / "again.h5"
    args = parser.parse_args(["--model", str(model), "--walkers", "2", "--steps", "20", "--out", str(again),
                              "--start", str(out), "--frame-interval-ps", "0.02", "--no-progress"])
    assert simulate_cli.run(args) == 0 and load_walkers(again).shape == (2, 2, 2, 3)
    # Time step and friction of the exported model can be overridden (a stability check at half the step).
    other = tmp_path / "other.h5"
    args = parser.parse_args(["--model", str(model), "--walkers", "2", "--steps", "40", "--out", str(other),
                              "--start", str(out), "--frame-interval-ps", "0.02", "--timestep-ps", "0.001",
                              "--friction-per-ps", "7.5", "--no-progress"])
    assert simulate_cli.run(args) == 0
    meta = trajio.read_metadata(other)
    assert meta["timestep_ps"] == 0.001 and meta["friction_per_ps"] == 7.5 and meta["steps_per_frame"] == 20
    assert load_walkers(other).shape == (2, 2, 2, 3)  # 40 steps of 1 fs = 2 frames of 0.02 ps
    three = tmp_path / "three.h5"
    top.add_atom("C", None, residue)
    with trajio.TrajectoryWriter(three, top, {}) as writer:
        writer.write(np.zeros((1, 3, 3)), [0.0])
    args = parser.parse_args(["--model", str(model), "--steps", "20", "--out", str(tmp_path / "new.h5"), "--start",
                              str(three)])
    with pytest.raises(ValueError, match="3 atoms per frame, not a multiple of the model's 2 beads"):
        simulate_cli.run(args)



def _cg_file(path, names, frames) -> Path:
    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    for name in names:
        top.add_atom(name, None, residue)
    with trajio.TrajectoryWriter(path, top, {}) as writer:
        writer.write(frames, np.arange(len(frames), dtype=float))
    return path


def test_start_file_of_another_mapping_is_refused_naming_both_sides(tmp_path):
    """A 4-bead file and a 2-bead model: the old code checked only that 2 divides 4 and cut every frame into two
    fake molecules; the atom names must repeat the model's bead names."""
    from openmm_dynmatch.openmm.runner import load_start_frames

    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    frames = np.concatenate([dimer_start(0.3), dimer_start(0.3) + 1.0], axis=1)  # (1, 4, 3)
    other = _cg_file(tmp_path / "other.h5", ["CA", "CB", "C", "N"], frames)
    with pytest.raises(ValueError, match=r"start file .*other\.h5: atom 0 is 'CA' but bead 0 of the model dimer\.pt is "
                                         r"'A'; the file's atoms \[CA, CB, C, N\] are not the model's beads \[A, B\]"):
        load_start_frames(other, model)
    swapped = _cg_file(tmp_path / "swapped.h5", ["B", "A"], dimer_start(0.3))
    with pytest.raises(ValueError, match="atom 0 is 'B' but bead 0 of the model dimer.pt is 'A'"):
        load_start_frames(swapped, model)
    two = _cg_file(tmp_path / "two.h5", ["A", "B", "A", "B"], frames)  # two molecules per frame: fine
    positions, per_frame = load_start_frames(two, model)
    assert per_frame == 2 and positions.shape == (2, 2, 3)
    np.testing.assert_allclose(positions[1], dimer_start(0.3)[0] + 1.0)
    from openmm_dynmatch.cli import main

    assert main(["simulate", "--model", str(model), "--steps", "20", "--out", str(tmp_path / "x.h5"), "--start",
                 str(other), "--platform", "Reference", "--frame-interval-ps", "0.02", "--threads", "1"]) == 2
    assert not (tmp_path / "x.h5").exists()


def _fail_at_frame(monkeypatch, failing_frame: int):
    from openmm_dynmatch.openmm import runner

    check = runner._BlowupGuard.check

    def failing(self, frame, rng, result):
        if frame >= failing_frame:
            raise RuntimeError(f"injected failure at frame {frame}")
        return check(self, frame, rng, result)

    monkeypatch.setattr(runner._BlowupGuard, "check", failing)


def test_run_aborted_before_its_first_chunk_leaves_no_file_and_keeps_the_earlier_run(tmp_path, monkeypatch):
    """The old code wrote 0-frame .h5 and .energies.h5 files it could not read itself and deleted the earlier
    checkpoint first; the output folder is created."""
    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    kwargs = dict(frame_interval_ps=0.02, platform="Reference", seed=5, progress=False, chunk_frames=4)
    out = tmp_path / "new" / "folder" / "cg.h5"
    with monkeypatch.context() as patch:
        _fail_at_frame(patch, 0)
        with pytest.raises(RuntimeError, match="injected failure at frame 0"):
            simulate(model, dimer_start(0.3), 3, out, n_steps=200, **kwargs)
    assert out.parent.is_dir() and sorted(out.parent.iterdir()) == []
    # A finished run, then a new run over it that fails before its first chunk: the finished one is intact,
    # with its checkpoint, and can still be extended.
    simulate(model, dimer_start(0.3), 3, out, n_steps=80, **kwargs)
    before = {path.name: path.read_bytes() for path in out.parent.iterdir()}
    assert sorted(before) == ["cg.energies.h5", "cg.h5", "cg.h5.chk"]
    with monkeypatch.context() as patch:
        _fail_at_frame(patch, 0)
        with pytest.raises(RuntimeError, match="injected failure"):
            simulate(model, dimer_start(0.3), 3, out, n_steps=200, **{**kwargs, "seed": 6})
    assert {path.name: path.read_bytes() for path in out.parent.iterdir()} == before
    simulate(model, dimer_start(0.3), 3, tmp_path / "full.h5", n_steps=200, **kwargs)
    simulate(model, dimer_start(0.3), 3, out, n_steps=200, resume=True, **kwargs)
    np.testing.assert_allclose(load_walkers(out), load_walkers(tmp_path / "full.h5"), rtol=1e-6, atol=1e-6)


def test_run_interrupted_after_a_chunk_resumes_from_its_partial_files(tmp_path, monkeypatch):
    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    kwargs = dict(frame_interval_ps=0.02, platform="Reference", seed=5, progress=False, chunk_frames=4)
    out = tmp_path / "cg.h5"
    with monkeypatch.context() as patch:
        _fail_at_frame(patch, 9)
        with pytest.raises(RuntimeError, match="injected failure at frame 9"):
            simulate(model, dimer_start(0.3), 3, out, n_steps=200, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("cg")) == \
        ["cg.energies.h5.part", "cg.h5.chk", "cg.h5.part"]  # no output until the run has finished
    assert trajio.count_frames(tmp_path / "cg.h5.part") >= 8
    simulate(model, dimer_start(0.3), 3, tmp_path / "full.h5", n_steps=200, **kwargs)
    simulate(model, dimer_start(0.3), 3, out, n_steps=200, resume=True, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("cg")) == \
        ["cg.energies.h5", "cg.h5", "cg.h5.chk"]
    np.testing.assert_allclose(load_walkers(out), load_walkers(tmp_path / "full.h5"), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(load_energies(out), load_energies(tmp_path / "full.h5"), rtol=1e-6)


def test_cli_simulate_refuses_to_replace_an_earlier_run_unless_overwrite(tmp_path, capsys):
    from openmm_dynmatch.cli import main

    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    out = tmp_path / "cg.h5"
    command = ["simulate", "--model", str(model), "--walkers", "2", "--out", str(out), "--platform", "Reference",
               "--frame-interval-ps", "0.02", "--no-progress", "--threads", "1"]
    assert main(command + ["--steps", "40"]) == 0
    first = load_walkers(out)
    assert main(command + ["--steps", "40", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--out: {out}, {tmp_path / 'cg.energies.h5'}, {out}.chk already exist; pass --overwrite" in err
    assert "--resume to continue or extend that run" in err
    np.testing.assert_array_equal(load_walkers(out), first)
    assert main(command + ["--steps", "80", "--resume"]) == 0  # extends the run
    np.testing.assert_array_equal(load_walkers(out)[:, :4], first)
    assert main(command + ["--steps", "40", "--seed", "1", "--overwrite"]) == 0
    assert load_walkers(out).shape[1] == 4 and np.abs(load_walkers(out) - first).max() > 1e-6
    # --resume without a checkpoint would start a new run over the outputs: refused as well
    Path(str(out) + ".chk").unlink()
    assert main(command + ["--steps", "40", "--resume"]) == 2
    assert "already exist; pass --overwrite" in capsys.readouterr().err

def test_example_script_runs(tmp_path):
    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata())
    out = tmp_path / "cg.dcd"
    done = subprocess.run([sys.executable, str(EXAMPLE), str(model), "--ps", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    top.add_atom("A", None, residue), top.add_atom("B", None, residue)
    traj = mdtraj.load_dcd(str(out), top=top)
    assert traj.n_frames == 50
    r = np.linalg.norm(traj.xyz[:, 1] - traj.xyz[:, 0], axis=-1)
    assert np.all(np.abs(r - 0.3) < 10.0 * np.sqrt(KT_300 / 500.0))


def test_start_frame_indices_spaced_random_and_cyclic():
    from openmm_dynmatch.openmm.runner import start_frame_indices

    # spaced: floor(w * n_frames / n_walkers), written out
    assert start_frame_indices(10, 4).tolist() == [0, 2, 5, 7]
    assert start_frame_indices(1000, 3, "spaced").tolist() == [0, 333, 666]
    assert start_frame_indices(3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]  # fewer frames than walkers: cyclic
    assert start_frame_indices(3, 5, "spaced").tolist() == [0, 0, 1, 1, 2]
    drawn = start_frame_indices(50, 20, "random", seed=3)
    assert len(set(drawn.tolist())) == 20 and drawn.min() >= 0 and drawn.max() < 50  # no repeats
    np.testing.assert_array_equal(drawn, start_frame_indices(50, 20, "random", seed=3))
    assert not np.array_equal(drawn, start_frame_indices(50, 20, "random", seed=4))
    assert not np.array_equal(np.sort(drawn), np.arange(20))  # not simply the first frames
    many = start_frame_indices(4, 10, "random", seed=1)  # more walkers than frames: every frame once per round
    assert sorted(many[:4].tolist()) == sorted(many[4:8].tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"unknown start selection 'first'; available: \['cyclic', 'random', "):
        start_frame_indices(4, 2, "first")
    with pytest.raises(ValueError, match="n_frames must be a positive integer, got 0"):
        start_frame_indices(0, 2)


def test_cli_simulate_start_frames_are_chosen_printed_and_recorded(tmp_path, capsys):
    """Walkers start from the frames named: start frame k of the file is the dimer shifted by k nm along x, and
    after 10 steps each walker is still within 0.1 nm of its start."""
    from openmm_dynmatch.cli import main

    model = export(Dimer(500.0, 0.3), tmp_path / "dimer.pt", dimer_metadata(integrator="brownian",
                                                                            friction_per_ps=50.0))
    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    top.add_atom("A", None, residue), top.add_atom("B", None, residue)
    frames = np.concatenate([dimer_start(0.3) + [k, 0.0, 0.0] for k in range(10)])
    with trajio.TrajectoryWriter(tmp_path / "start.h5", top, {}) as writer:
        writer.write(frames, np.arange(10.0))

    def run(name, *options):
        out = tmp_path / f"{name}.h5"
        assert main(["simulate", "--model", str(model), "--walkers", "4", "--steps", "10", "--out", str(out),
                     "--start", str(tmp_path / "start.h5"), "--platform", "Reference", "--frame-interval-ps",
                     "0.02", "--no-progress", "--threads", "1", *options]) == 0
        started = np.rint(load_walkers(out)[:, 0].mean(axis=1)[:, 0] - 0.15).astype(int).tolist()
        return started, trajio.read_metadata(out), capsys.readouterr().out

    started, meta, printed = run("spaced")
    assert started == meta["start_frames"] == [0, 2, 5, 7] and meta["start_selection"] == "spaced"
    assert f"start frames (spaced over 10 frames of {tmp_path / 'start.h5'}): 0, 2, 5, 7" in printed
    started, meta, printed = run("random", "--start-frames", "random", "--seed", "5")
    assert started == meta["start_frames"] and len(set(started)) == 4 and started != [0, 2, 5, 7]
    assert f"(random over 10 frames of {tmp_path / 'start.h5'}): {', '.join(map(str, started))}" in printed
    again, _, _ = run("again", "--start-frames", "random", "--seed", "5")
    other, _, _ = run("other", "--start-frames", "random", "--seed", "6")
    assert again == started and other != started
    started, meta, _ = run("cyclic", "--start-frames", "cyclic")
    assert started == meta["start_frames"] == [0, 1, 2, 3]


def test_start_frame_description_of_many_walkers_and_multi_walker_files():
    from openmm_dynmatch.cli.simulate import _describe_starts

    line = _describe_starts(list(range(0, 200, 10)), "spaced", 200, 1, "aa.h5")
    assert line == "start frames (spaced over 200 frames of aa.h5): 0, 10, 20, 30, 40, 50, 60, 70, 80, 90, " \
                   "... (8 more), 180, 190"
    line = _describe_starts([0, 5, 7], "cyclic", 8, 4, "cg.h5")
    assert line == "start frame:walker (cyclic over 2 frames x 4 walkers of cg.h5): 0:0, 1:1, 1:3"
