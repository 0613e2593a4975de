"""AA reference MD: temperature, read-back, exact resumption, input validation, the CLI verb."""
import argparse
import json

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402

from conftest import available_platforms  # noqa: E402
from openmm_dynmatch import trajio  # noqa: E402
from openmm_dynmatch.openmm import aa_systems, reference  # noqa: E402

BOLTZMANN = 0.00831446261815324  # kJ/mol/K
AA_KEYS = ("temperature_k", "timestep_ps", "frame_interval_ps", "masses_amu", "system", "integrator",
           "friction_per_ps", "seed", "platform", "steps_per_frame")
CPU_PLATFORMS = [name for name in available_platforms() if name in ("Reference", "CPU")]


class Interrupted(Exception):
    pass


def _ala2_run(path, ns=0.006, **kwargs):
    options = dict(platform="Reference", equilibration_ps=0.5, chunk_frames=10, progress=False, seed=11)
    options.update(kwargs)
    return reference.run_reference("alanine-dipeptide-implicit", path, ns, 0.1, **options)


@pytest.fixture(scope="module")
def ala2_long(tmp_path_factory):
    """50 ps of implicit-solvent alanine dipeptide, 500 frames 0.1 ps apart."""
    path = tmp_path_factory.mktemp("ala2") / "ala2.h5"
    reference.run_reference("alanine-dipeptide-implicit", path, 0.05, 0.1, platform="Reference",
                            equilibration_ps=2.0, seed=5, chunk_frames=250, progress=False)
    return trajio.load(path)


def _degrees_of_freedom(system):
    """3 N - constraints - 3 when centre-of-mass motion is removed, counted here from the System."""
    removes_com = any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    return 3 * system.getNumParticles() - system.getNumConstraints() - (3 if removes_com else 0)


def test_kinetic_temperature_matches_target(ala2_long):
    aa = aa_systems.get_system("alanine-dipeptide-implicit")
    masses = np.array([aa.system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(aa.n_atoms)])
    n_dof = _degrees_of_freedom(aa.system)
    assert ala2_long.metadata["n_dof"] == n_dof == 3 * 22 - 12  # no CMMotionRemover in implicit solvent
    kinetic = 0.5 * np.einsum("i,fij->f", masses, ala2_long.velocities**2)
    temperature = 2.0 * kinetic / (n_dof * BOLTZMANN)
    blocks = temperature.reshape(10, -1).mean(axis=1)  # 5 ps blocks, longer than the velocity memory
    standard_error = blocks.std(ddof=1) / np.sqrt(len(blocks))
    # the check has teeth: the error is not far above that of independent frames, T sqrt(2 / n_dof) / sqrt(n)
    assert standard_error < 4.0 * 300.0 * np.sqrt(2.0 / n_dof) / np.sqrt(len(temperature))
    assert abs(temperature.mean() - 300.0) < 4.0 * standard_error
    # a wrong count of degrees of freedom (no constraints subtracted) would be clearly off
    assert abs(2.0 * kinetic.mean() / ((3 * 22 - 3) * BOLTZMANN) - 300.0) > 4.0 * standard_error


def test_metadata_and_times(ala2_long):
    metadata = ala2_long.metadata
    assert set(AA_KEYS) <= set(metadata)
    aa = aa_systems.get_system("alanine-dipeptide-implicit")
    np.testing.assert_allclose(metadata["masses_amu"], aa.masses_amu())
    assert metadata["steps_per_frame"] == round(0.1 / 0.002) == 50
    assert (metadata["system"], metadata["platform"], metadata["seed"]) == ("alanine-dipeptide-implicit",
                                                                            "Reference", 5)
    assert ala2_long.n_frames == 500
    np.testing.assert_allclose(ala2_long.time_ps, 0.1 * np.arange(1, 501), rtol=1e-6)


@pytest.mark.parametrize("platform", CPU_PLATFORMS)
def test_file_holds_what_the_context_had(tmp_path, platform):
    """Positions, velocities, forces and box read back equal the Context's state at the chunk ends."""
    seen = {}

    def grab(frames_on_disk, context):
        state = context.getState(getPositions=True, getVelocities=True, getForces=True)
        seen[frames_on_disk] = [state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                                state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond),
                                state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
                                state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)]

    toy = aa_systems.get_system("lj-dimer-solvent", n_solvent=60)
    path = reference.run_reference(toy, tmp_path / "toy.h5", 0.002, 0.2, platform=platform, equilibration_ps=0.2,
                                   chunk_frames=4, save_forces=True, progress=False, on_chunk=grab)
    data = trajio.load(path)
    assert sorted(seen) == [4, 8, 10] and data.n_frames == 10
    for frames, (positions, velocities, forces, box) in seen.items():
        np.testing.assert_allclose(data.positions[frames - 1], positions, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(data.velocities[frames - 1], velocities, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(data.forces[frames - 1], forces, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(data.box_vectors[frames - 1], box, rtol=1e-6)
    assert data.metadata["platform"] == platform and data.metadata["periodic"]


def test_interrupted_run_resumes_exactly(tmp_path):
    whole = trajio.load(_ala2_run(tmp_path / "whole.h5"))
    out = tmp_path / "pieces.h5"
    part, checkpoint = tmp_path / "pieces.h5.part", tmp_path / "pieces.h5.chk"

    def stop_after_two_chunks(frames_on_disk, context):
        if frames_on_disk == 20:
            raise Interrupted

    with pytest.raises(Interrupted):
        _ala2_run(out, on_chunk=stop_after_two_chunks)
    assert not out.exists() and part.exists() and checkpoint.exists()
    assert trajio.count_frames(part) == 20
    stored = json.loads(checkpoint.read_text())
    assert (stored["frames_on_disk"], stored["platform"]) == (20, "Reference")
    # frames written after the last checkpoint (a crash before it was saved) must be dropped on resume
    with trajio.TrajectoryWriter(part, whole.topology, {}, append=True) as writer:
        writer.write(np.zeros((3, 22, 3)), [9.0, 9.1, 9.2], velocities=np.zeros((3, 22, 3)))
    assert trajio.count_frames(part) == 23
    resumed = trajio.load(_ala2_run(out))
    assert not part.exists() and not checkpoint.exists()
    assert resumed.n_frames == whole.n_frames == 60
    np.testing.assert_array_equal(resumed.positions, whole.positions)
    np.testing.assert_array_equal(resumed.velocities, whole.velocities)
    np.testing.assert_array_equal(resumed.time_ps, whole.time_ps)


def test_interrupted_run_can_be_extended(tmp_path):
    """Resuming with a larger ns continues the same trajectory to the new length."""
    whole = trajio.load(_ala2_run(tmp_path / "whole.h5", ns=0.004))
    out = tmp_path / "short.h5"

    def stop(frames_on_disk, context):
        raise Interrupted

    with pytest.raises(Interrupted):
        _ala2_run(out, ns=0.002, on_chunk=stop)
    extended = trajio.load(_ala2_run(out, ns=0.004))
    assert extended.n_frames == 40 and extended.metadata["n_frames"] == 40
    np.testing.assert_array_equal(extended.positions, whole.positions)


def test_resume_rejects_changed_settings_and_reuses_finished_files(tmp_path):
    out = tmp_path / "run.h5"

    def stop(frames_on_disk, context):
        raise Interrupted

    with pytest.raises(Interrupted):
        _ala2_run(out, ns=0.003, on_chunk=stop)
    with pytest.raises(ValueError, match="temperature_k"):
        _ala2_run(out, ns=0.003, temperature_k=310.0)
    with pytest.raises(ValueError, match="platform"):
        _ala2_run(out, ns=0.003, platform="CPU" if "CPU" in CPU_PLATFORMS else "Nope")
    _ala2_run(out, ns=0.003)
    first = trajio.load(out)
    _ala2_run(out, ns=0.003)  # already complete: returned as it is
    np.testing.assert_array_equal(trajio.load(out).positions, first.positions)
    with pytest.raises(ValueError, match="frames"):
        _ala2_run(out, ns=0.004)
    _ala2_run(out, ns=0.002, resume=False)
    assert trajio.count_frames(out) == 20


def test_same_seed_same_trajectory_other_seed_differs(tmp_path):
    first = trajio.load(_ala2_run(tmp_path / "a.h5", ns=0.002, seed=3))
    again = trajio.load(_ala2_run(tmp_path / "b.h5", ns=0.002, seed=3))
    other = trajio.load(_ala2_run(tmp_path / "c.h5", ns=0.002, seed=4))
    np.testing.assert_array_equal(first.positions, again.positions)
    assert not np.allclose(first.positions, other.positions)


@pytest.mark.parametrize("argument, value, pattern", [
    ("ns", 0.0, "ns"), ("ns", -1.0, "ns"), ("ns", 0.00015, "ns must be a positive whole multiple"),
    ("frame_interval_ps", 0.0, "frame_interval_ps"), ("frame_interval_ps", 0.003, "frame_interval_ps"),
    ("timestep_ps", -0.002, "timestep_ps"), ("temperature_k", 0.0, "temperature_k"),
    ("friction_per_ps", -1.0, "friction_per_ps"), ("equilibration_ps", -1.0, "equilibration_ps"),
    ("seed", -1, "seed"), ("chunk_frames", 0, "chunk_frames"), ("platform", "NoSuchPlatform", "platform"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(tmp_path, argument, value, pattern):
    arguments = dict(ns=0.001, frame_interval_ps=0.1, timestep_ps=0.002, progress=False)
    arguments[argument] = value
    ns, frame_interval = arguments.pop("ns"), arguments.pop("frame_interval_ps")
    with pytest.raises(ValueError, match=pattern):
        reference.run_reference("alanine-dipeptide-implicit", tmp_path / "x.h5", ns, frame_interval, **arguments)
    assert not (tmp_path / "x.h5").exists()


def test_unknown_system_and_quantities(tmp_path):
    with pytest.raises(ValueError, match="unknown system 'nope'"):
        reference.run_reference("nope", tmp_path / "x.h5", 0.001, 0.1, progress=False)
    path = reference.run_reference("alanine-dipeptide-implicit", tmp_path / "q.h5", 1.0 * unit.picosecond,
                                   100.0 * unit.femtosecond, platform="Reference", equilibration_ps=0.0,
                                   progress=False)
    assert trajio.count_frames(path) == 10


def test_throughput_report_and_platform_choice():
    result = reference.measure_throughput("alanine-dipeptide-implicit", "Reference", 200)
    assert result["n_steps"] == 200 and result["n_atoms"] == 22
    assert result["steps_per_s"] == pytest.approx(200 / result["seconds"])
    assert result["ns_per_day"] == pytest.approx(result["steps_per_s"] * 0.002 * 86400 / 1000)
    assert reference.fastest_platform("alanine-dipeptide-implicit") in available_platforms()
    with pytest.raises(ValueError, match="n_steps"):
        reference.measure_throughput("alanine-dipeptide-implicit", "Reference", 0)


def test_cli_verb_runs_and_reports(tmp_path, capsys):
    from openmm_dynmatch.cli import reference as verb

    parser = argparse.ArgumentParser()
    verb.add_arguments(parser)
    out = tmp_path / "cli.h5"
    args = parser.parse_args(["--system", "alanine-dipeptide-implicit", "--ns", "0.001", "--frame-interval-ps",
                              "0.1", "--out", str(out), "--platform", "Reference", "--seed", "2", "--save-forces",
                              "--equilibration-ps", "0.1", "--quiet"])
    assert verb.run(args) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "steps/s" in printed
    data = trajio.load(out)
    assert data.n_frames == 10 and data.forces is not None and data.metadata["seed"] == 2


# ------------------------------------------------------------------------------------------- replicas

def test_replicas_are_independent_seeded_runs_with_one_topology(tmp_path):
    out = tmp_path / "aa.h5"
    paths = _ala2_run(out, ns=0.002, replicas=3)
    assert paths == [tmp_path / "aa.r0.h5", tmp_path / "aa.r1.h5", tmp_path / "aa.r2.h5"] and not out.exists()
    runs = [trajio.load(path) for path in paths]
    # seeds: replica 0 the given one, the others from numpy's SeedSequence of (seed, replica), written out here
    expected = [11] + [int(np.random.SeedSequence([11, i]).generate_state(1, dtype=np.uint32)[0]) for i in (1, 2)]
    assert [run.metadata["seed"] for run in runs] == expected and len(set(expected)) == 3
    assert [run.metadata["replica"] for run in runs] == [0, 1, 2]
    assert {run.metadata["replica_base_seed"] for run in runs} == {11}
    assert all(run.topology == runs[0].topology and run.n_frames == 20 for run in runs)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.allclose(runs[a].velocities[0], runs[b].velocities[0])
            assert not np.allclose(runs[a].positions[-1], runs[b].positions[-1], atol=0.02)
    # each replica is exactly the single run of its seed (replica 0: the run of the given seed itself)
    for i in (0, 2):
        single = trajio.load(_ala2_run(tmp_path / f"single{i}.h5", ns=0.002, seed=expected[i]))
        np.testing.assert_array_equal(single.positions, runs[i].positions)
    assert reference.replica_paths(out, 1) == [out] and reference.replica_paths(tmp_path / "x", 2)[1].name == "x.r1"
    with pytest.raises(ValueError, match="replicas must be a positive integer, got 0"):
        _ala2_run(out, replicas=0)


def test_one_replica_of_a_run_is_the_replica_the_whole_run_makes(tmp_path):
    """Replicas made one at a time (as parallel processes make them) equal those of the whole run, file for file."""
    whole = _ala2_run(tmp_path / "whole" / "aa.h5", ns=0.002, replicas=3)
    out = tmp_path / "parts" / "aa.h5"
    assert _ala2_run(out, ns=0.002, replicas=3, only_replica=2) == [tmp_path / "parts" / "aa.r2.h5"]
    assert not (tmp_path / "parts" / "aa.r0.h5").exists()
    parts = _ala2_run(out, ns=0.002, replicas=3)  # the others now; replica 2 is found finished and kept
    for path, expected in zip(parts, whole):
        one, other = trajio.load(path), trajio.load(expected)
        np.testing.assert_array_equal(one.positions, other.positions)
        assert one.metadata["seed"] == other.metadata["seed"] and one.metadata["replica"] == other.metadata["replica"]
    for bad in (3, -1, True):
        with pytest.raises(ValueError, match="only_replica must be a replica index in"):
            _ala2_run(out, ns=0.002, replicas=3, only_replica=bad)
    with pytest.raises(ValueError, match="with replicas 1"):
        _ala2_run(tmp_path / "single.h5", ns=0.002, only_replica=0)


def test_interrupted_replicas_resume_exactly(tmp_path):
    whole = [trajio.load(path) for path in _ala2_run(tmp_path / "whole.h5", ns=0.003, replicas=3)]
    out, chunks = tmp_path / "aa.h5", []

    def stop_inside_the_second_replica(frames_on_disk, context):
        chunks.append(frames_on_disk)
        if len(chunks) == 5:  # 3 chunks of 10 frames per replica: replica 1 after 20 frames
            raise Interrupted

    with pytest.raises(Interrupted):
        _ala2_run(out, ns=0.003, replicas=3, on_chunk=stop_inside_the_second_replica)
    r0, r1, r2 = (tmp_path / f"aa.r{i}.h5" for i in range(3))
    assert r0.exists() and not r1.exists() and not r2.exists()
    assert trajio.count_frames(tmp_path / "aa.r1.h5.part") == 20
    chunks.clear()
    paths = _ala2_run(out, ns=0.003, replicas=3, on_chunk=lambda frames, context: chunks.append(frames))
    # frames on disk after each chunk: replica 0 kept as it is, replica 1 continued from 20 to 30 frames,
    # replica 2 run whole
    assert chunks == [30, 10, 20, 30]
    for path, expected in zip(paths, whole):
        resumed = trajio.load(path)
        np.testing.assert_array_equal(resumed.positions, expected.positions)
        np.testing.assert_array_equal(resumed.velocities, expected.velocities)
    assert not (tmp_path / "aa.r1.h5.part").exists() and not (tmp_path / "aa.r1.h5.chk").exists()


def test_cli_replicas(tmp_path, capsys):
    from openmm_dynmatch.cli import main

    code = main(["reference", "--system", "alanine-dipeptide-implicit", "--ns", "0.001", "--frame-interval-ps", "0.1",
                 "--out", str(tmp_path / "aa.h5"), "--platform", "Reference", "--seed", "4", "--replicas", "2",
                 "--equilibration-ps", "0.1", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"to {tmp_path / 'aa.r0.h5'} (seed 4)" in printed and str(tmp_path / "aa.r1.h5") in printed
    assert [trajio.count_frames(tmp_path / f"aa.r{i}.h5") for i in range(2)] == [10, 10]


@pytest.mark.parametrize("damage", ["garbage", "foreign", "truncated", "bad_state"])
def test_damaged_checkpoint_is_one_error_naming_the_file_and_the_fix(tmp_path, damage, capsys):
    from openmm_dynmatch.errors import FileFormatError

    out = tmp_path / "run.h5"
    checkpoint = tmp_path / "run.h5.chk"

    def stop(frames_on_disk, context):
        raise Interrupted

    with pytest.raises(Interrupted):
        _ala2_run(out, ns=0.003, on_chunk=stop)
    text = checkpoint.read_text()
    stored = json.loads(text)
    damaged = {"garbage": "\x00\x01 not json", "foreign": json.dumps({"frames": "twenty"}),
               "truncated": text[:len(text) // 2],
               "bad_state": json.dumps({**stored, "openmm_checkpoint": "bm90IGEgc3RhdGU="})}[damage]
    checkpoint.write_text(damaged)
    with pytest.raises(FileFormatError) as err:
        _ala2_run(out, ns=0.003)
    message = str(err.value)
    assert message.startswith(f"{checkpoint}: ") and "\n" not in message
    assert "resume=False" in message and "--no-resume" in message
    # the fix works: starting over ignores the damaged checkpoint
    _ala2_run(out, ns=0.003, resume=False)
    assert trajio.count_frames(out) == 30


def test_resume_messages_give_the_library_and_the_command_line_spelling(tmp_path):
    out = tmp_path / "run.h5"
    _ala2_run(out, ns=0.002)
    with pytest.raises(ValueError, match=r"resume=False \(`dynmatch reference --no-resume`\)"):
        _ala2_run(out, ns=0.003)
