"""CG mapping: positions, forces, topology, YAML files and trajectory mapping, each against a hand calculation."""
import argparse
import importlib.util
from pathlib import Path

import mdtraj
import numpy as np
import pytest

from openmm_dynmatch import trajio
from openmm_dynmatch.mapping import CGMapping, builtin_mappings, load_mapping, map_trajectory

# Element masses (amu) as tabulated by mdtraj, written out again for the hand computations.
M_H, M_C, M_N, M_O = 1.007947, 12.01078, 14.00672, 15.99943

HEAVY10 = [("ACE", "CH3"), ("ACE", "C"), ("ACE", "O"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "CB"),
           ("ALA", "C"), ("ALA", "O"), ("NME", "N"), ("NME", "C")]
BACKBONE5 = [("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N")]


@pytest.fixture(scope="module")
def ala2_prmtop():
    spec = importlib.util.find_spec("openmmtools")
    if spec is None:
        pytest.skip("openmmtools (alanine dipeptide data files) not installed")
    path = Path(spec.submodule_search_locations[0]) / "data" / "alanine-dipeptide-gbsa" / "alanine-dipeptide.prmtop"
    return path


@pytest.fixture(scope="module")
def ala2_top(ala2_prmtop):
    return mdtraj.load_prmtop(str(ala2_prmtop))


@pytest.fixture
def toy_top():
    """Two residues: XA = C, O, H (atoms 0-2) and XB = N, H, H (atoms 3-5), bonded as a chain 0-1-2-3-4-5."""
    from mdtraj.core import element

    top = mdtraj.Topology()
    chain = top.add_chain()
    atoms = []
    for resname, names in (("XA", ("C", "O", "H")), ("XB", ("N", "H1", "H2"))):
        residue = top.add_residue(resname, chain)
        for name in names:
            atoms.append(top.add_atom(name, element.get_by_symbol(name[0]), residue))
    for a, b in zip(atoms[:-1], atoms[1:]):
        top.add_bond(a, b)
    return top


def _index(top, resname, name):
    return next(a.index for a in top.atoms if a.residue.name == resname and a.name == name)


def test_com_and_cog_beads_equal_hand_computation(toy_top, rng):
    spec = {"beads": [{"name": "A", "select": "resname XA", "weights": "com"},
                      {"name": "B", "residue": "XB", "atoms": ["N", "H1", "H2"], "weights": "cog"}]}
    mapping = load_mapping(spec, toy_top)
    x = rng.normal(size=(4, 6, 3))
    masses_a = np.array([M_C, M_O, M_H])
    expected_a = (masses_a[None, :, None] * x[:, 0:3]).sum(axis=1) / masses_a.sum()
    expected_b = (x[:, 3] + x[:, 4] + x[:, 5]) / 3.0
    cg = mapping.map_positions(x)
    assert cg.shape == (4, 2, 3)
    np.testing.assert_allclose(cg[:, 0], expected_a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cg[:, 1], expected_b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mapping.masses_amu, [masses_a.sum(), M_N + 2 * M_H], rtol=1e-12)
    np.testing.assert_allclose(mapping.mapping_matrix_sparse.toarray(), mapping.mapping_matrix, atol=0)
    np.testing.assert_allclose(mapping.mapping_matrix @ x[0], cg[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, expected", [("ala2-heavy10", HEAVY10), ("ala2-backbone5", BACKBONE5)])
def test_builtin_slice_maps_pick_atoms_by_name(ala2_top, rng, name, expected):
    mapping = load_mapping(name, ala2_top)
    indices = [_index(ala2_top, resname, atom) for resname, atom in expected]
    assert [ix.tolist() for ix in mapping.atom_indices] == [[i] for i in indices]
    assert mapping.bead_names == [atom for _, atom in expected]
    x = rng.normal(size=(3, 22, 3))
    np.testing.assert_array_equal(mapping.map_positions(x), x[:, indices])
    np.testing.assert_allclose(mapping.masses_amu, [ala2_top.atom(i).element.mass for i in indices])


def test_builtin_bond_graphs(ala2_top):
    heavy = load_mapping("ala2-heavy10", ala2_top)
    # AA heavy-atom bonds of ACE-ALA-NME, by bead position in HEAVY10.
    named = {(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (4, 6), (6, 7), (6, 8), (8, 9)}
    assert {tuple(b) for b in heavy.bonds.tolist()} == named
    backbone = load_mapping("ala2-backbone5", ala2_top)
    assert backbone.bonds.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert [backbone.type_names[t] for t in backbone.bead_types] == ["C", "N", "CA", "C", "N"]


def test_bonds_through_unmapped_atoms_sequence_and_explicit(toy_top):
    beads = [{"name": "C", "indices": [0]}, {"name": "N", "indices": [3]}, {"name": "H2", "indices": [5]}]
    through = load_mapping({"weights": "slice", "beads": beads}, toy_top)
    assert through.bonds.tolist() == [[0, 1], [1, 2]]  # 0-1-2-3 and 3-4-5, inner atoms unmapped
    sequence = load_mapping({"weights": "slice", "bonds": "sequence", "beads": beads}, toy_top)
    assert sequence.bonds.tolist() == [[0, 1], [1, 2]]
    explicit = load_mapping({"weights": "slice", "bonds": [[2, 0]], "beads": beads}, toy_top)
    assert explicit.bonds.tolist() == [[0, 2]]


def test_force_aggregation_conserves_total_and_equals_hand_sum(toy_top, rng):
    spec = {"beads": [{"name": "A", "indices": [0, 1]}, {"name": "B", "indices": [3, 4]}]}  # atoms 2, 5 unmapped
    mapping = load_mapping(spec, toy_top)
    f = rng.normal(size=(5, 6, 3))
    mapped = mapping.map_forces(f)
    np.testing.assert_allclose(mapped[:, 0], f[:, 0] + f[:, 1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mapped[:, 1], f[:, 3] + f[:, 4], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mapped.sum(axis=1), f[:, [0, 1, 3, 4]].sum(axis=1), rtol=1e-12, atol=1e-12)


def test_overlapping_beads_error_unless_allowed(toy_top, rng):
    beads = [{"name": "A", "indices": [0, 1, 2]}, {"name": "B", "indices": [2, 3]}]
    with pytest.raises(ValueError, match="atom 2 belongs to beads 'A' and 'B'"):
        load_mapping({"beads": beads}, toy_top)
    mapping = load_mapping({"beads": beads, "allow_overlap": True, "bonds": "sequence"}, toy_top)
    f = rng.normal(size=(2, 6, 3))
    mapped = mapping.map_forces(f)
    np.testing.assert_allclose(mapped[:, 0], f[:, 0] + f[:, 1] + 0.5 * f[:, 2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mapped.sum(axis=1), f[:, :4].sum(axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bead, message", [
    ({"name": "X", "select": "name ZZ"}, "bead 'X': selection 'name ZZ' matches no atoms"),
    ({"name": "X", "residue": "ALA", "atoms": ["CA", "CG"]}, r"bead 'X': atoms \['CG'\] not found"),
    ({"name": "X", "residue": "GLY", "atoms": ["CA"]}, "bead 'X': no residue GLY"),
    ({"name": "X", "select": "resname ALA and name CA CB", "weights": "slice"},
     "slice bead 'X' must select exactly one atom, got 2"),
    ({"name": "X", "select": "resname ALA", "weights": "middle"}, "weights must be one of"),
    ({"name": "X", "select": "name CA", "colour": "red"}, r"unknown keys \['colour'\]"),
])
def test_bad_bead_definitions_raise(ala2_top, bead, message):
    with pytest.raises(ValueError, match=message):
        load_mapping({"beads": [bead], "bonds": []}, ala2_top)


def test_unknown_mapping_name_lists_available(ala2_top):
    assert {"ala2-heavy10", "ala2-backbone5"} <= set(builtin_mappings())
    with pytest.raises(ValueError, match=r"unknown mapping 'ala2-nope'; available: \['ala2-backbone5'"):
        load_mapping("ala2-nope", ala2_top)
    with pytest.raises(ValueError, match="pass the AA topology"):
        load_mapping("ala2-heavy10")


def test_yaml_round_trip(ala2_top, tmp_path, rng):
    mapping = load_mapping("ala2-heavy10", ala2_top)
    mapping.save(tmp_path / "map.yaml")
    for again in (load_mapping(tmp_path / "map.yaml"), load_mapping(str(tmp_path / "map.yaml"), ala2_top)):
        np.testing.assert_array_equal(again.mapping_matrix, mapping.mapping_matrix)
        np.testing.assert_array_equal(again.bonds, mapping.bonds)
        np.testing.assert_array_equal(again.masses_amu, mapping.masses_amu)
        assert again.bead_names == mapping.bead_names and again.type_names == mapping.type_names
        np.testing.assert_array_equal(again.bead_types, mapping.bead_types)
        assert again.to_dict() == mapping.to_dict()
    assert not list(tmp_path.glob(".*tmp"))


def test_cg_topology_saves_to_hdf5_and_converts_to_openmm(ala2_top, tmp_path, rng):
    mapping = load_mapping("ala2-heavy10", ala2_top)
    x = rng.normal(size=(3, 22, 3))
    cg = mdtraj.Trajectory(mapping.map_positions(x), mapping.cg_topology())
    cg.save_hdf5(str(tmp_path / "cg.h5"))
    back = mdtraj.load(str(tmp_path / "cg.h5"))
    assert [a.name for a in back.topology.atoms] == mapping.bead_names
    assert sorted((b[0].index, b[1].index) for b in back.topology.bonds) == [tuple(b) for b in mapping.bonds.tolist()]
    omm = back.topology.to_openmm()
    assert omm.getNumAtoms() == 10 and omm.getNumBonds() == 9
    # Residue names and atom names survive, so backbone dihedrals of the CG trajectory equal the AA ones.
    aa = mdtraj.Trajectory(x, ala2_top)
    np.testing.assert_allclose(mdtraj.compute_phi(back)[1], mdtraj.compute_phi(aa)[1], atol=1e-4)
    np.testing.assert_allclose(mdtraj.compute_psi(back)[1], mdtraj.compute_psi(aa)[1], atol=1e-4)


def _write_aa(path, top, n_frames, rng, forces=True, metadata=None):
    x = rng.normal(scale=0.5, size=(n_frames, top.n_atoms, 3))
    f = rng.normal(scale=100.0, size=x.shape) if forces else None
    v = rng.normal(size=x.shape)
    meta = {"temperature_k": 300.0, "timestep_ps": 0.002, "frame_interval_ps": 0.1, "system": "toy", "seed": 7}
    meta.update(metadata or {})
    with trajio.TrajectoryWriter(path, top, meta) as writer:
        writer.write(x, 0.1 * np.arange(n_frames), velocities=v, forces=f)
    return trajio.load(path)


def test_map_trajectory_matches_in_memory_mapping_and_metadata(ala2_top, tmp_path, rng):
    aa = _write_aa(tmp_path / "aa.h5", ala2_top, 10, rng, metadata={"n_constraints": 12})
    with pytest.warns(UserWarning, match="12 constraints"):
        out = map_trajectory(tmp_path / "aa.h5", "ala2-backbone5", tmp_path / "cg.h5", chunk_frames=3,
                             progress=False)
    mapping = load_mapping("ala2-backbone5", ala2_top)
    cg = trajio.load(out)
    np.testing.assert_allclose(cg.positions, mapping.map_positions(aa.positions), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cg.forces, aa.forces[:, [4, 6, 8, 14, 16]], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(cg.velocities, aa.velocities[:, [4, 6, 8, 14, 16]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cg.time_ps, aa.time_ps)
    meta = cg.metadata
    assert (meta["temperature_k"], meta["timestep_ps"], meta["frame_interval_ps"]) == (300.0, 0.002, 0.1)
    assert meta["bead_names"] == ["C", "N", "CA", "C", "N"] and meta["type_names"] == ["C", "N", "CA"]
    assert meta["bead_types"] == [0, 1, 2, 0, 1] and meta["bonds"] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    np.testing.assert_allclose(meta["masses_amu"], [M_C, M_N, M_C, M_C, M_N])
    assert meta["forces_mapped"] is True and meta["source"] == "aa.h5"
    assert meta["aa_metadata"]["system"] == "toy"
    assert CGMapping.from_dict(meta["mapping"]).to_dict() == mapping.to_dict()


def test_map_trajectory_without_forces_and_with_recorded_masses(toy_top, tmp_path, rng):
    masses = [12.0, 16.0, 3.0, 14.0, 1.0, 1.0]  # e.g. repartitioned hydrogen masses recorded by the AA run
    _write_aa(tmp_path / "aa.h5", toy_top, 4, rng, forces=False, metadata={"masses_amu": masses})
    spec = {"beads": [{"name": "A", "indices": [0, 1, 2]}, {"name": "B", "indices": [3, 4, 5]}]}
    map_trajectory(tmp_path / "aa.h5", spec, tmp_path / "cg.h5", progress=False)
    cg = trajio.load(tmp_path / "cg.h5")
    assert cg.forces is None and cg.metadata["forces_mapped"] is False
    np.testing.assert_allclose(cg.metadata["masses_amu"], [31.0, 16.0])


def test_map_trajectory_file_without_topology(ala2_top, ala2_prmtop, toy_top, tmp_path, rng):
    from mdtraj.formats import HDF5TrajectoryFile

    x = rng.normal(size=(5, 22, 3)).astype(np.float32)
    with HDF5TrajectoryFile(str(tmp_path / "bare.h5"), "w") as handle:
        handle.write(x, time=np.arange(5, dtype=np.float32))
    with pytest.raises(ValueError, match="stores no topology"):
        map_trajectory(tmp_path / "bare.h5", "ala2-heavy10", tmp_path / "cg.h5", progress=False)
    with pytest.raises(ValueError, match="topology has 6 atoms but .* stores 22"):
        map_trajectory(tmp_path / "bare.h5", "ala2-heavy10", tmp_path / "cg.h5", topology=toy_top, progress=False)
    assert not (tmp_path / "cg.h5").exists()
    map_trajectory(tmp_path / "bare.h5", "ala2-heavy10", tmp_path / "cg.h5", topology=str(ala2_prmtop),
                   metadata={"temperature_k": 300.0}, progress=False)
    cg = trajio.load(tmp_path / "cg.h5")
    np.testing.assert_allclose(cg.positions, x[:, [_index(ala2_top, r, a) for r, a in HEAVY10]], atol=1e-7)
    assert cg.metadata["frame_interval_ps"] == 1.0 and cg.metadata["temperature_k"] == 300.0


def test_atom_count_mismatch_between_mapping_and_file(toy_top, ala2_top, tmp_path, rng):
    _write_aa(tmp_path / "aa.h5", toy_top, 3, rng)
    mapping = load_mapping("ala2-backbone5", ala2_top)
    with pytest.raises(ValueError, match="is for 22 atoms but the topology has 6"):
        map_trajectory(tmp_path / "aa.h5", mapping, tmp_path / "cg.h5", progress=False)
    with pytest.raises(ValueError, match="topology has 22 atoms but .* stores 6 per frame"):
        map_trajectory(tmp_path / "aa.h5", "ala2-heavy10", tmp_path / "cg.h5", topology=ala2_top, progress=False)
    with pytest.raises(ValueError, match=r"positions must have shape \(n_frames, 22, 3\)"):
        mapping.map_positions(np.zeros((2, 6, 3)))



def test_given_topology_with_other_atom_names_or_order_is_refused(ala2_top, tmp_path, rng):
    """Same atom count, CA and CB swapped: the old code compared only counts and mapped the wrong atoms."""
    _write_aa(tmp_path / "aa.h5", ala2_top, 3, rng)
    swapped = ala2_top.copy()
    ca, cb = (swapped.select(f"resname ALA and name {name}")[0] for name in ("CA", "CB"))
    swapped.atom(int(ca)).name, swapped.atom(int(cb)).name = "CB", "CA"
    out = tmp_path / "cg.h5"
    with pytest.raises(ValueError, match=rf"atom {ca} is 'CB' \(C\) of residue ALA1 in the given topology but "
                                         rf"'CA' \(C\) of residue ALA1 in the topology .*aa\.h5 stores .*without --top"):
        map_trajectory(tmp_path / "aa.h5", "ala2-heavy10", out, topology=swapped, progress=False)
    renamed = ala2_top.copy()
    renamed.residue(1).name = "GLY"
    with pytest.raises(ValueError, match="of residue GLY1 in the given topology but .* of residue ALA1"):
        map_trajectory(tmp_path / "aa.h5", "ala2-heavy10", out, topology=renamed, progress=False)
    assert not out.exists()
    map_trajectory(tmp_path / "aa.h5", "ala2-heavy10", out, topology=ala2_top.copy(), progress=False)  # the same one
    assert trajio.count_frames(out) == 3

def test_cli_map_verb(ala2_top, tmp_path, rng, capsys):
    from openmm_dynmatch.cli import map_cmd

    aa = _write_aa(tmp_path / "aa.h5", ala2_top, 6, rng)
    parser = argparse.ArgumentParser()
    map_cmd.add_arguments(parser)
    args = parser.parse_args(["--aa", str(tmp_path / "aa.h5"), "--mapping", "ala2-heavy10",
                              "--out", str(tmp_path / "cg.h5"), "--no-progress"])
    assert map_cmd.run(args) == 0
    assert "10 beads, 6 frames, with forces" in capsys.readouterr().out
    cg = trajio.load(tmp_path / "cg.h5")
    indices = [_index(ala2_top, r, a) for r, a in HEAVY10]
    np.testing.assert_allclose(cg.positions, aa.positions[:, indices], atol=1e-7)


def test_stored_indices_are_checked_against_the_topology(ala2_top):
    spec = load_mapping("ala2-backbone5", ala2_top).to_dict()
    spec["beads"][2]["indices"] = [10]  # CB instead of CA
    with pytest.raises(ValueError, match="bead 'CA': selection gives atoms \\[8\\] .* stores \\[10\\]"):
        load_mapping(spec, ala2_top)
    assert load_mapping(spec).atom_indices[2].tolist() == [10]  # without a topology the indices are taken
    with pytest.raises(ValueError, match="lists an atom twice"):
        load_mapping({"beads": [{"name": "X", "indices": [3, 3]}]}, ala2_top)
    with pytest.raises(ValueError, match="bonds must be pairs of distinct bead indices"):
        load_mapping({"weights": "slice", "bonds": [[0, 5]], "beads": [{"name": "X", "indices": [3]}]}, ala2_top)


# ------------------------------------------------------------------ several AA runs into one CG file

def test_map_several_files_equals_mapping_each_alone(ala2_top, tmp_path, rng):
    lengths = [7, 4, 9]
    for k, n in enumerate(lengths):
        _write_aa(tmp_path / f"aa.r{k}.h5", ala2_top, n, rng, metadata={"seed": 100 + k, "platform": "CPU"})
    inputs = [tmp_path / f"aa.r{k}.h5" for k in range(3)]
    out = map_trajectory(inputs, "ala2-heavy10", tmp_path / "all.h5", chunk_frames=3, progress=False)
    alone = []
    for k, path in enumerate(inputs):
        map_trajectory(path, "ala2-heavy10", tmp_path / f"alone{k}.h5", progress=False)
        alone.append(trajio.load(tmp_path / f"alone{k}.h5"))
    cg = trajio.load(out)
    assert cg.metadata["trajectory_lengths"] == lengths and cg.n_frames == sum(lengths)
    assert cg.segments == [(0, 7), (7, 11), (11, 20)]
    for name in ("positions", "velocities", "forces", "time_ps"):
        np.testing.assert_array_equal(getattr(cg, name), np.concatenate([getattr(a, name) for a in alone]))
    assert cg.metadata["sources"] == ["aa.r0.h5", "aa.r1.h5", "aa.r2.h5"]
    assert [m["seed"] for m in cg.metadata["aa_file_metadata"]] == [100, 101, 102]
    assert "seed" not in cg.metadata["aa_metadata"] and cg.metadata["aa_metadata"]["system"] == "toy"
    # one input: its frame count is recorded too, and the file-level keys are as before
    assert alone[0].metadata["trajectory_lengths"] == [7] and alone[0].metadata["source"] == "aa.r0.h5"
    assert alone[0].metadata["aa_metadata"]["seed"] == 100 and "aa_file_metadata" not in alone[0].metadata


def test_map_refuses_files_of_different_runs(ala2_top, toy_top, tmp_path, rng):
    _write_aa(tmp_path / "a.h5", ala2_top, 3, rng)
    _write_aa(tmp_path / "hot.h5", ala2_top, 3, rng, metadata={"temperature_k": 350.0})
    _write_aa(tmp_path / "noforces.h5", ala2_top, 3, rng, forces=False)
    _write_aa(tmp_path / "toy.h5", toy_top, 3, rng)
    out = tmp_path / "cg.h5"
    with pytest.raises(ValueError, match=r"metadata 'temperature_k' differs between .*a\.h5 and .*hot\.h5: "
                                         r"300\.0 vs 350\.0"):
        map_trajectory([tmp_path / "a.h5", tmp_path / "hot.h5"], "ala2-heavy10", out, progress=False)
    with pytest.raises(ValueError, match=r"'forces' differs between .*a\.h5 and .*noforces\.h5"):
        map_trajectory([tmp_path / "a.h5", tmp_path / "noforces.h5"], "ala2-heavy10", out, progress=False)
    with pytest.raises(ValueError, match=r"topology differs between .*a\.h5 and .*toy\.h5 \(22 vs 6 atoms\)"):
        map_trajectory([tmp_path / "a.h5", tmp_path / "toy.h5"], "ala2-heavy10", out, progress=False)
    with pytest.raises(ValueError, match="at least one"):
        map_trajectory([], "ala2-heavy10", out, progress=False)
    assert not out.exists()


def test_map_keeps_the_boundaries_of_an_input_that_holds_several_runs(ala2_top, tmp_path, rng):
    _write_aa(tmp_path / "two.h5", ala2_top, 8, rng, metadata={"trajectory_lengths": [3, 5]})
    _write_aa(tmp_path / "one.h5", ala2_top, 4, rng)
    out = map_trajectory([tmp_path / "two.h5", tmp_path / "one.h5"], "ala2-backbone5", tmp_path / "cg.h5",
                         progress=False)
    assert trajio.read_metadata(out)["trajectory_lengths"] == [3, 5, 4]


def test_cli_map_verb_with_several_files(ala2_top, tmp_path, rng, capsys):
    from openmm_dynmatch.cli import main

    for k, n in enumerate((5, 6)):
        _write_aa(tmp_path / f"aa.r{k}.h5", ala2_top, n, rng, metadata={"seed": k})
    code = main(["map", "--aa", str(tmp_path / "aa.r0.h5"), str(tmp_path / "aa.r1.h5"), "--mapping", "ala2-heavy10",
                 "--out", str(tmp_path / "cg.h5"), "--no-progress"])
    assert code == 0
    assert "10 beads, 11 frames in 2 trajectories (5, 6), with forces" in capsys.readouterr().out
    assert trajio.read_metadata(tmp_path / "cg.h5")["trajectory_lengths"] == [5, 6]


# ------------------------------------------------------------------ AA files that lack the run settings

def _write_outside_aa(path, top, times_ps, rng):
    """An AA file from elsewhere: frames and times, no temperature_k and no frame_interval_ps."""
    with trajio.TrajectoryWriter(path, top, {"system": "outside"}) as writer:
        writer.write(rng.normal(scale=0.5, size=(len(times_ps), top.n_atoms, 3)), np.asarray(times_ps, float))


def test_map_takes_temperature_and_frame_interval_for_outside_files(toy_top, tmp_path, rng):
    import openmm.unit as unit

    spec = {"beads": [{"name": "A", "indices": [0, 1, 2]}, {"name": "B", "indices": [3, 4, 5]}]}
    _write_outside_aa(tmp_path / "one.h5", toy_top, [0.0], rng)
    out = tmp_path / "cg.h5"
    with pytest.raises(ValueError, match=r"one\.h5 does not record the AA run's temperature_k and frame_interval_ps "
                                         r"\(found temperature_k = None, frame_interval_ps = None\); pass "
                                         r"temperature_k and frame_interval_ps \(dynmatch map --temperature-k K "
                                         r"--frame-interval-ps PS\)"):
        map_trajectory(tmp_path / "one.h5", spec, out, progress=False)
    with pytest.raises(ValueError, match=r"frame_interval_ps \(found frame_interval_ps = None\)"):
        map_trajectory(tmp_path / "one.h5", spec, out, progress=False, temperature_k=300.0)
    assert not out.exists()
    map_trajectory(tmp_path / "one.h5", spec, out, progress=False, temperature_k=310.0 * unit.kelvin,
                   frame_interval_ps=0.5)
    meta = trajio.read_metadata(out)
    assert (meta["temperature_k"], meta["frame_interval_ps"]) == (310.0, 0.5)
    # Frame times that disagree with the given interval: the given one is kept, with a warning.
    _write_outside_aa(tmp_path / "stamped.h5", toy_top, [0.0, 1.0, 2.0], rng)
    with pytest.warns(UserWarning, match="frame times of .*stamped.h5 are 1 ps apart but frame_interval_ps = 0.2"):
        map_trajectory(tmp_path / "stamped.h5", spec, out, progress=False, temperature_k=300.0,
                       frame_interval_ps=0.2)
    assert trajio.read_metadata(out)["frame_interval_ps"] == 0.2
    # A value the AA file records cannot be changed; a non-positive one is refused.
    _write_aa(tmp_path / "recorded.h5", toy_top, 3, rng, forces=False)
    with pytest.raises(ValueError, match=r"temperature_k = 350.0 K was given but .*recorded\.h5 records 300.0 K"):
        map_trajectory(tmp_path / "recorded.h5", spec, out, progress=False, temperature_k=350.0)
    with pytest.raises(ValueError, match="frame_interval_ps must be a finite positive number in ps, got -0.1"):
        map_trajectory(tmp_path / "stamped.h5", spec, out, progress=False, temperature_k=300.0,
                       frame_interval_ps=-0.1)


def test_cli_map_temperature_and_frame_interval_options(toy_top, tmp_path, rng, capsys):
    from openmm_dynmatch.cli import main

    _write_outside_aa(tmp_path / "aa.h5", toy_top, [0.0], rng)
    spec = tmp_path / "map.yaml"
    spec.write_text("beads:\n  - {name: A, indices: [0, 1, 2]}\n  - {name: B, indices: [3, 4, 5]}\n")
    command = ["map", "--aa", str(tmp_path / "aa.h5"), "--mapping", str(spec), "--out", str(tmp_path / "cg.h5"),
               "--no-progress", "--threads", "1"]
    assert main(command) == 2
    assert "pass temperature_k and frame_interval_ps (dynmatch map --temperature-k K" in capsys.readouterr().err
    assert not (tmp_path / "cg.h5").exists()
    assert main(command + ["--temperature-k", "298.15", "--frame-interval-ps", "0.25"]) == 0
    meta = trajio.read_metadata(tmp_path / "cg.h5")
    assert (meta["temperature_k"], meta["frame_interval_ps"]) == (298.15, 0.25)


@pytest.mark.parametrize("key", ["temperature_k", "frame_interval_ps"])
def test_training_refuses_a_mapped_file_without_run_settings_at_load(toy_top, tmp_path, rng, key):
    """Files mapped before `dynmatch map` required the run settings carry them as None: training used to fail
    later with a bare TypeError."""
    import yaml

    from openmm_dynmatch.config import load_config
    from openmm_dynmatch.runs import load_training_data

    _write_aa(tmp_path / "aa.h5", toy_top, 40, rng, forces=False)
    spec = {"bonds": "sequence", "beads": [{"name": "A", "indices": [0, 1, 2]}, {"name": "B", "indices": [3, 4, 5]}]}
    out = map_trajectory(tmp_path / "aa.h5", spec, tmp_path / "cg.h5", progress=False)
    trajio.TrajectoryWriter(out, trajio.load(out).topology, {key: None}, append=True).close()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"cg_path": str(out), "window_frames": 4, "n_blocks": 2},
                                      "dynamics": {"timestep_ps": 0.002}}))
    with pytest.raises(ValueError, match=rf"cg\.h5 lacks metadata '{key}' \(found None\): map it with `dynmatch "
                                         rf"map` .*--temperature-k K and --frame-interval-ps PS"):
        load_training_data(load_config(config))
