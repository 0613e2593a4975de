"""Import of data that is already coarse-grained: round trip, training on it, validation errors, `dynmatch import`."""
import re

import mdtraj
import numpy as np
import pytest
import yaml
from openmm import unit

from openmm_dynmatch import trajio
from openmm_dynmatch.cgdata import import_cg, import_cg_files, read_cg_input, read_metadata_yaml
from openmm_dynmatch.cli import main

N_BEADS = 3
META = {"masses_amu": [12.0, 14.0, 16.0], "bonds": [[0, 1], [1, 2]], "temperature_k": 300.0,
        "frame_interval_ps": 0.5}


def _runs(rng, lengths=(9, 6)):
    positions = [np.cumsum(rng.normal(scale=0.05, size=(n, N_BEADS, 3)), axis=0) for n in lengths]
    forces = [rng.normal(scale=100.0, size=(n, N_BEADS, 3)) for n in lengths]
    return positions, forces


def _stored(array):
    """What the file holds of a float64 array (float32 on disk)."""
    return np.asarray(array, dtype=np.float32).astype(np.float64)


def test_round_trip_of_two_trajectories_with_forces(tmp_path, rng):
    positions, forces = _runs(rng)
    out = import_cg(positions, tmp_path / "cg.h5", forces=forces, bead_names=["N", "CA", "C"], bead_types=[0, 1, 0],
                    type_names=["backbone", "alpha"], timestep_ps=0.002, **META)
    data = trajio.load(out)
    np.testing.assert_array_equal(data.positions, _stored(np.concatenate(positions)))
    np.testing.assert_array_equal(data.forces, _stored(np.concatenate(forces)))
    np.testing.assert_allclose(data.time_ps, np.r_[0.5 * np.arange(9), 0.5 * np.arange(6)])
    assert data.segments == [(0, 9), (9, 15)]
    assert data.metadata == {**META, "bead_names": ["N", "CA", "C"], "bead_types": [0, 1, 0],
                             "type_names": ["backbone", "alpha"], "timestep_ps": 0.002, "trajectory_lengths": [9, 6],
                             "forces_mapped": True, "source": "import"}
    assert [atom.name for atom in data.topology.atoms] == ["N", "CA", "C"]
    assert [(a.index, b.index) for a, b in data.topology.bonds] == [(0, 1), (1, 2)]


def test_defaults_units_and_bond_normalisation(tmp_path, rng):
    positions, _ = _runs(rng, (4,))
    out = import_cg(positions[0] * 10 * unit.angstrom, tmp_path / "cg.h5", masses_amu=[12.0, 14.0, 16.0] * unit.dalton,
                    bonds=[[2, 1], "0-1", [1, 0]], temperature_k=300 * unit.kelvin,
                    frame_interval_ps=1 * unit.femtosecond)
    data = trajio.load(out)
    np.testing.assert_allclose(data.positions, positions[0], rtol=1e-6)
    meta = data.metadata
    assert meta["bead_names"] == ["B0", "B1", "B2"] and meta["bead_types"] == [0, 0, 0] and meta["type_names"] == ["T0"]
    assert meta["bonds"] == [[0, 1], [1, 2]] and meta["timestep_ps"] is None and meta["forces_mapped"] is False
    assert meta["trajectory_lengths"] == [4] and meta["frame_interval_ps"] == pytest.approx(0.001)
    assert data.forces is None


def test_training_windows_never_join_the_imported_trajectories(tmp_path, rng):
    from openmm_dynmatch.config import load_config
    from openmm_dynmatch.runs import load_training_data

    lengths = (40, 25)
    positions, forces = _runs(rng, lengths)
    out = import_cg(positions, tmp_path / "cg.h5", forces=forces, **META)
    config = {"data": {"cg_path": str(out), "window_frames": 4, "n_blocks": 4},
              "dynamics": {"integrator": "brownian", "timestep_ps": 0.05}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    data = load_training_data(load_config(tmp_path / "config.yaml"))
    assert data.steps_per_frame == 10 and data.forces is not None
    owner = np.repeat([0, 1], lengths)  # trajectory of every frame
    starts = np.concatenate([data.windows.starts, data.validation.starts])
    assert len(starts) > 0
    assert np.all(owner[starts] == owner[starts + 3]), "a window spans both trajectories"
    for start in (lengths[0] - 3, lengths[0] - 2, lengths[0] - 1):  # would fit were it one trajectory
        assert start not in starts
    frames = np.concatenate(positions)
    np.testing.assert_allclose(data.windows[0].numpy(), frames[data.windows.starts[0] + np.arange(4)], atol=1e-6)


def _call(tmp_path, rng, **change):
    positions, forces = _runs(rng)
    kwargs = {**META, "forces": forces, **change}
    return import_cg(kwargs.pop("trajectories", positions), tmp_path / "cg.h5", **kwargs)


NAN = np.full((5, N_BEADS, 3), np.nan)
BAD = [  # (argument changed, value, what the message says after the argument's name)
    ("trajectories", np.zeros((5, N_BEADS)), "must have shape (n_frames, n_beads, 3)"),
    ("trajectories", [], "must be an array (n_frames, n_beads, 3) or a non-empty sequence"),
    ("trajectories", np.zeros((1, N_BEADS, 3)), "must have at least 2 frames"),
    ("trajectories", [np.zeros((4, N_BEADS, 3)), np.zeros((4, 2, 3))], "[1] must have shape (n_frames, 3, 3)"),
    ("trajectories", [np.zeros((4, N_BEADS, 3)), NAN], "[1] must hold finite values"),
    ("trajectories", [np.zeros((4, N_BEADS, 3)), "frames"], "[1] must be numbers in nm"),
    ("forces", [np.zeros((9, N_BEADS, 3))], "must hold one array per trajectory (2), got 1"),
    ("forces", [np.zeros((9, N_BEADS, 3)), np.zeros((5, N_BEADS, 3))], "[1] must have the shape of its positions"),
    ("forces", [np.zeros((9, N_BEADS, 3)), np.full((6, N_BEADS, 3), np.inf)], "[1] must hold finite values"),
    ("masses_amu", [12.0, 14.0], "must hold one mass per bead, shape (3,)"),
    ("masses_amu", None, "must hold one mass per bead"),
    ("masses_amu", [12.0, 0.0, 16.0], "must be finite positive masses in amu"),
    ("masses_amu", [12.0, np.nan, 16.0], "must be finite positive masses in amu"),
    ("bonds", [[0, 3]], "must be pairs of distinct bead indices in 0..2, got [[0, 3]]"),
    ("bonds", [[1, 1]], "must be pairs of distinct bead indices"),
    ("bonds", [[-1, 0]], "must be pairs of distinct bead indices"),
    ("bonds", [0, 1], "must be pairs of integer bead indices, shape (n_bonds, 2)"),
    ("bonds", [[0.5, 1.0]], "must be pairs of integer bead indices"),
    ("bonds", ["0_1"], ": expected a bond written I-J"),
    ("bonds", None, "must be pairs of bead indices"),
    ("temperature_k", 0.0, "must be a finite positive number in K"),
    ("temperature_k", float("nan"), "must be a finite positive number in K"),
    ("temperature_k", 1.0 * unit.nanometer, ": expected a quantity compatible with K"),
    ("frame_interval_ps", -0.5, "must be a finite positive number in ps"),
    ("timestep_ps", 0.0, "must be a finite positive number in ps"),
    ("bead_names", ["A", "B"], "must hold 3 names, one per bead, got 2"),
    ("bead_names", "ABC", "must be a list of non-empty strings"),
    ("bead_names", ["A", 2, "C"], "must be a list of non-empty strings"),
    ("bead_types", [0, 1], "must hold one non-negative integer type per bead"),
    ("bead_types", [0, -1, 0], "must hold one non-negative integer type per bead"),
    ("bead_types", [0.0, 1.0, 0.0], "must hold one non-negative integer type per bead"),
    ("type_names", ["only"], "must name every bead type 0..1 (at least 2 names), got 1"),
    ("topology", mdtraj.Topology(), "must have one atom per bead (3), got 0"),
]


@pytest.mark.parametrize("argument, value, expected", BAD, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(BAD)])
def test_every_invalid_argument_is_named_in_the_error(tmp_path, rng, argument, value, expected):
    change = {argument: value}
    if argument in ("bead_types", "type_names"):
        change = {"bead_types": [0, 1, 0], "type_names": ["only"], **change}
    message = argument + ("" if expected[0] in "[:" else " ") + expected  # "name[1] ...", "name: ...", "name ..."
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        _call(tmp_path, rng, **change)
    assert not list(tmp_path.iterdir()), "a failed import left a file"


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path, rng):
    out = tmp_path / "cg.h5"
    out.write_bytes(b"an earlier result")
    with pytest.raises(FileExistsError, match="out_path: .*cg.h5 already exists; pass overwrite=True"):
        _call(tmp_path, rng)
    assert out.read_bytes() == b"an earlier result"
    _call(tmp_path, rng, overwrite=True)
    assert trajio.count_frames(out) == 15 and type(trajio.count_frames(out)) is int  # JSON-safe


def _write_npz(path, positions, forces=None, numbered=False):
    if numbered:
        arrays = {f"positions_{i}": p for i, p in enumerate(positions)}
        arrays.update({f"forces_{i}": f for i, f in enumerate(forces or [])})
    else:
        arrays = {"positions": positions[0], **({"forces": forces[0]} if forces else {})}
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays, expected", [
    ({"positions": 0, "positions_0": 0}, "give either 'positions' or 'positions_0'"),
    ({"positions_0": 0, "positions_2": 0}, "numbered from 0 without gaps"),
    ({"coords": 0}, "expected an array 'positions'"),
    ({"positions": 0, "box": 0}, "unknown arrays ['box']"),
    ({"positions_0": 0, "positions_1": 0, "forces_1": 0}, "forces must be given for every trajectory or none"),
])
def test_npz_inputs_are_checked(tmp_path, arrays, expected):
    path = tmp_path / "in.npz"
    np.savez(path, **{key: np.zeros((3, N_BEADS, 3)) for key in arrays})
    with pytest.raises(ValueError, match=re.escape(expected)):
        read_cg_input(path)


def test_cli_imports_npz_files_with_yaml_metadata_and_flags_overriding_it(tmp_path, rng, capsys):
    positions, forces = _runs(rng, (5, 7, 6))
    one = _write_npz(tmp_path / "one.npz", positions[:1], forces[:1])
    two = _write_npz(tmp_path / "two.npz", positions[1:], forces[1:], numbered=True)
    meta = tmp_path / "meta.yaml"
    meta.write_text(yaml.safe_dump({"temperature_k": 350.0, "frame_interval_ps": 0.2, "masses_amu": [1.0, 2.0, 3.0],
                                    "bonds": ["0-1"], "bead_names": ["A", "B", "C"]}))
    out = tmp_path / "cg.h5"
    assert main(["import", str(one), str(two), "--metadata", str(meta), "--temperature-k", "300",
                 "--bonds", "0-1", "1-2", "--bead-types", "0", "1", "1", "--out", str(out), "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"{out}: 3 trajectories (5, 7, 6 frames), 18 frames, 3 beads, with forces"
    data = trajio.load(out)
    assert data.metadata["temperature_k"] == 300.0 and data.metadata["frame_interval_ps"] == 0.2
    assert data.metadata["bonds"] == [[0, 1], [1, 2]] and data.metadata["bead_names"] == ["A", "B", "C"]
    assert data.metadata["bead_types"] == [0, 1, 1] and data.metadata["type_names"] == ["T0", "T1"]
    assert data.segments == [(0, 5), (5, 12), (12, 18)]
    np.testing.assert_array_equal(data.forces, _stored(np.concatenate(forces)))


def test_cli_reports_all_missing_metadata_in_one_line(tmp_path, rng, capsys):
    positions, _ = _runs(rng, (5,))
    path = _write_npz(tmp_path / "in.npz", positions)
    out = tmp_path / "cg.h5"
    assert main(["import", str(path), "--masses-amu", "1", "2", "3", "--out", str(out), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("dynmatch import: error: missing metadata: bonds, temperature_k, frame_interval_ps; give "
                          "them in --metadata or as flags (--bonds, --temperature-k, --frame-interval-ps)")
    assert not out.exists()


def test_cli_refuses_an_existing_output_and_unknown_yaml_keys(tmp_path, rng, capsys):
    positions, _ = _runs(rng, (5,))
    path = _write_npz(tmp_path / "in.npz", positions)
    meta = tmp_path / "meta.yaml"
    meta.write_text(yaml.safe_dump({**META, "temperature": 300}))
    out = tmp_path / "cg.h5"
    command = ["import", str(path), "--metadata", str(meta), "--out", str(out), "--threads", "1"]
    assert main(command) == 2
    assert "unknown metadata keys ['temperature']; known: ['bead_names'" in capsys.readouterr().err
    meta.write_text(yaml.safe_dump(META))
    out.write_bytes(b"an earlier result")
    assert main(command) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier result"
    assert main(command + ["--overwrite"]) == 0
    assert trajio.count_frames(out) == 5
    assert read_metadata_yaml(meta) == META


def test_mdtraj_input_takes_bead_names_and_bonds_from_its_topology(tmp_path, rng):
    positions, _ = _runs(rng, (6,))
    topology = mdtraj.Topology()
    chain = topology.add_chain()
    atoms = [topology.add_atom(name, None, topology.add_residue("ALA", chain, resSeq=1)) for name in ("N", "CA", "C")]
    topology.add_bond(atoms[0], atoms[1])
    topology.add_bond(atoms[1], atoms[2])
    traj = mdtraj.Trajectory(positions[0], topology)
    traj.save_dcd(str(tmp_path / "cg.dcd"))
    traj[0].save_hdf5(str(tmp_path / "top.h5"))
    with pytest.raises(ValueError, match="stores no topology; give topology"):
        read_cg_input(tmp_path / "cg.dcd")
    out = import_cg_files([tmp_path / "cg.dcd"], tmp_path / "cg.h5", topology=tmp_path / "top.h5",
                          metadata={key: META[key] for key in ("masses_amu", "temperature_k", "frame_interval_ps")})
    data = trajio.load(out)
    assert data.metadata["bead_names"] == ["N", "CA", "C"] and data.metadata["bonds"] == [[0, 1], [1, 2]]
    assert [residue.name for residue in data.topology.residues] == ["ALA", "ALA", "ALA"]
    np.testing.assert_allclose(data.positions, positions[0], atol=1e-5)
