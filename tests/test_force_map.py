"""Force maps of the CG mapping: the plain bead map and the aggregated map that adds bonded hydrogens.

The physics test runs constrained OpenMM dynamics of a small molecule and checks each map against the
configurational identity of a valid force map (integration by parts over the Boltzmann distribution of the CG
coordinates): for beads ``I != J`` with ``r = R_I - R_J`` and mapped forces ``F``,
``< r . (F_I - F_J) > = -kT * div_R(r) = -6 kT``.
"""
import argparse
import warnings

import mdtraj
import numpy as np
import pytest
from mdtraj.core import element

from openmm_dynmatch import trajio
from openmm_dynmatch.mapping import (FORCE_MAPS, constraint_leaks, force_map_matrix, load_mapping,
                                     map_trajectory)

KB_KJ_PER_MOL_K = 0.00831446261815324


def _topology(atoms, bonds):
    """An mdtraj topology of one residue; ``atoms`` are names whose first letter is the element symbol."""
    top = mdtraj.Topology()
    residue = top.add_residue("MOL", top.add_chain())
    made = [top.add_atom(name, element.get_by_symbol(name[0]), residue) for name in atoms]
    for a, b in bonds:
        top.add_bond(made[a], made[b])
    return top


# C0(H1, H2, H3) - C4(H5) - N6(H7), and C4 - O8 - H9: a methyl, a CH, an amine NH and a hydroxyl.
BRANCHED_ATOMS = ["C0", "H1", "H2", "H3", "C4", "H5", "N6", "H7", "O8", "H9"]
BRANCHED_BONDS = [(0, 1), (0, 2), (0, 3), (0, 4), (4, 5), (4, 6), (6, 7), (4, 8), (8, 9)]


@pytest.fixture
def branched_top():
    return _topology(BRANCHED_ATOMS, BRANCHED_BONDS)


def test_aggregated_map_matches_a_hand_written_matrix(branched_top, rng):
    # Bead A: the methyl carbon alone; bead B: C4, O8 and the hydroxyl H9 (centre of mass); N6 and H7 unmapped.
    spec = {"beads": [{"name": "A", "indices": [0], "weights": "slice"},
                      {"name": "B", "indices": [4, 8, 9], "weights": "com"}], "bonds": [[0, 1]]}
    mapping = load_mapping(spec, branched_top)
    expected = np.array([
        # C0 H1 H2 H3 C4 H5 N6 H7 O8 H9
        [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],   # A: C0 and its three hydrogens
        [0, 0, 0, 0, 1, 1, 0, 0, 1, 1],   # B: its atoms and H5 of C4; H7 sits on unmapped N6 and stays out
    ], dtype=float)
    matrix = mapping.aggregated_force_matrix(branched_top)
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(force_map_matrix(mapping, "aggregated", branched_top), expected)
    assert [h.tolist() for h in mapping.attached_hydrogens(branched_top)] == [[1, 2, 3], [5]]
    forces = rng.normal(size=(4, 10, 3))
    aggregated = mapping.map_forces(forces, matrix)
    np.testing.assert_allclose(aggregated[:, 0], forces[:, [0, 1, 2, 3]].sum(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(aggregated[:, 1], forces[:, [4, 5, 8, 9]].sum(axis=1), rtol=1e-12, atol=1e-12)
    # Positions and the plain map are untouched.
    np.testing.assert_array_equal(force_map_matrix(mapping, "bead"), mapping.force_matrix)
    np.testing.assert_allclose(mapping.map_forces(forces)[:, 0], forces[:, 0], rtol=1e-12, atol=1e-12)


def test_hydrogen_of_a_shared_atom_is_shared_like_the_atom(branched_top):
    spec = {"allow_overlap": True, "bonds": [[0, 1]],
            "beads": [{"name": "A", "indices": [0, 4], "weights": "com"},
                      {"name": "B", "indices": [4, 8], "weights": "com"}]}
    matrix = load_mapping(spec, branched_top).aggregated_force_matrix(branched_top)
    expected = np.zeros((2, 10))
    expected[0, [0, 1, 2, 3]] = 1.0
    expected[1, [8, 9]] = 1.0
    expected[:, [4, 5]] = 0.5  # C4 belongs to both beads; so does its hydrogen H5
    np.testing.assert_array_equal(matrix, expected)


@pytest.mark.parametrize("case", ["hydrogens-inside-beads", "no-hydrogens"])
def test_aggregated_map_equals_bead_map_when_no_hydrogen_is_outside_the_beads(case, rng):
    if case == "hydrogens-inside-beads":
        top = _topology(BRANCHED_ATOMS, BRANCHED_BONDS)
        spec = {"beads": [{"name": "A", "indices": [0, 1, 2, 3]}, {"name": "B", "indices": [4, 5, 6, 7, 8, 9]}]}
    else:  # a chain of heavy atoms, two of them unmapped
        top = _topology(["C0", "N1", "C2", "O3", "C4"], [(0, 1), (1, 2), (2, 3), (3, 4)])
        spec = {"weights": "slice", "beads": [{"name": "A", "indices": [0]}, {"name": "B", "indices": [2]},
                                              {"name": "C", "indices": [4]}]}
    mapping = load_mapping(spec, top)
    matrix = mapping.aggregated_force_matrix(top)
    np.testing.assert_array_equal(matrix, mapping.force_matrix)
    forces = rng.normal(size=(3, top.n_atoms, 3))
    np.testing.assert_array_equal(mapping.map_forces(forces, matrix), mapping.map_forces(forces))
    assert all(h.size == 0 for h in mapping.attached_hydrogens(top))


def test_force_map_errors_name_the_problem(branched_top):
    spec = {"weights": "slice", "bonds": [[0, 1]],
            "beads": [{"name": "A", "indices": [0]}, {"name": "B", "indices": [4]}]}
    mapping = load_mapping(spec, branched_top)
    with pytest.raises(ValueError, match=r"unknown force_map 'hydrogen'; available: \['aggregated', 'bead'\]"):
        force_map_matrix(mapping, "hydrogen", branched_top)
    with pytest.raises(ValueError, match="needs the AA topology"):
        force_map_matrix(mapping, "aggregated")
    unbonded = _topology(BRANCHED_ATOMS, [])
    with pytest.raises(ValueError, match="needs an AA topology with bonds"):
        mapping.aggregated_force_matrix(unbonded)
    bridged = _topology(BRANCHED_ATOMS, BRANCHED_BONDS + [(1, 4)])  # H1 bonded to C0 (bead A) and C4 (bead B)
    with pytest.raises(ValueError, match=r"atom 1\) is bonded to atoms \[0, 4\] of different beads"):
        mapping.aggregated_force_matrix(bridged)
    with pytest.raises(ValueError, match=r"force_matrix must have shape \(2, 10\)"):
        mapping.map_forces(np.zeros((10, 3)), np.ones((2, 9)))
    assert sorted(FORCE_MAPS) == ["aggregated", "bead"]


def test_constraint_leaks_are_pairs_with_different_columns(branched_top):
    spec = {"weights": "slice", "bonds": [[0, 1]],
            "beads": [{"name": "A", "indices": [0]}, {"name": "B", "indices": [4]}]}
    mapping = load_mapping(spec, branched_top)
    h_bonds = np.array([[0, 1], [0, 2], [0, 3], [4, 5], [6, 7], [8, 9]])
    # Bead map: the hydrogens of C0 and C4 are outside their slice beads; N6-H7 and O8-H9 touch no bead.
    np.testing.assert_array_equal(constraint_leaks(mapping.force_matrix, h_bonds), h_bonds[:4])
    # Aggregated map: H5 and C0's hydrogens join their beads; O8 (unmapped) keeps H9 out, so none leaks.
    assert constraint_leaks(mapping.aggregated_force_matrix(branched_top), h_bonds).shape == (0, 2)
    # A constrained heavy-atom bond between beads leaks under either map.
    np.testing.assert_array_equal(constraint_leaks(mapping.aggregated_force_matrix(branched_top), [[0, 4]]),
                                  [[0, 4]])
    with pytest.raises(ValueError, match=r"constraints must join atoms 0\.\.9, got indices 0\.\.10"):
        constraint_leaks(mapping.force_matrix, [[0, 10]])


# --- physics: constrained X-H bonds bias the bead map, not the aggregated one --------------------------------

def _xh_molecule():
    """C0-C1-C2 with H3 on C0 and H4, H5 on C1: soft harmonic C-C bonds and angles, rigid (constrained) C-H."""
    import openmm
    from openmm import app

    from openmm_dynmatch.openmm.aa_systems import AASystem

    system = openmm.System()
    for mass in (12.0, 12.0, 12.0, 1.008, 1.008, 1.008):
        system.addParticle(mass)
    bonds = openmm.HarmonicBondForce()
    for i, j in ((0, 1), (1, 2)):
        bonds.addBond(i, j, 0.15, 2000.0)
    for i, j in ((0, 3), (1, 4), (1, 5)):
        system.addConstraint(i, j, 0.11)
    angles = openmm.HarmonicAngleForce()
    angles.addAngle(0, 1, 2, 1.91, 100.0)
    for i, j, k in ((3, 0, 1), (4, 1, 0), (5, 1, 0), (4, 1, 2), (5, 1, 2), (4, 1, 5)):
        angles.addAngle(i, j, k, 1.91, 200.0)
    system.addForce(bonds)
    system.addForce(angles)
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    atoms = [topology.addAtom(name, app.Element.getBySymbol(name[0]), residue)
             for name in ("C0", "C1", "C2", "H3", "H4", "H5")]
    for i, j in ((0, 1), (1, 2), (0, 3), (1, 4), (1, 5)):
        topology.addBond(atoms[i], atoms[j])
    positions = np.array([[0.0, 0.0, 0.0], [0.15, 0.0, 0.0], [0.2, 0.14, 0.0], [-0.05, -0.1, 0.0],
                          [0.18, -0.05, 0.09], [0.18, -0.05, -0.09]])
    return AASystem("xh-molecule", system, topology, positions)


def _identity_estimate(positions_nm, forces, i, j, n_blocks=20):
    """Mean of ``(R_i - R_j) . (F_i - F_j)`` (kJ/mol) and its standard error from ``n_blocks`` time blocks."""
    values = np.einsum("fk,fk->f", positions_nm[:, i] - positions_nm[:, j], forces[:, i] - forces[:, j])
    blocks = values[: values.size // n_blocks * n_blocks].reshape(n_blocks, -1).mean(axis=1)
    return float(values.mean()), float(blocks.std(ddof=1) / np.sqrt(n_blocks))


def test_aggregated_map_removes_the_constraint_force_bias(tmp_path):
    pytest.importorskip("openmm")
    from openmm_dynmatch.openmm.reference import constraint_pairs, run_reference

    temperature_k = 300.0
    aa = _xh_molecule()
    aa_path = run_reference(aa, tmp_path / "aa.h5", ns=0.8, frame_interval_ps=0.04, timestep_ps=0.002,
                            temperature_k=temperature_k, friction_per_ps=5.0, platform="Reference",
                            equilibration_ps=4.0, seed=3, save_forces=True, chunk_frames=5000, progress=False)
    np.testing.assert_array_equal(trajio.read_array(aa_path, trajio.CONSTRAINTS_NODE), constraint_pairs(aa.system))
    spec = {"weights": "slice", "bonds": "sequence", "beads": [{"name": f"C{i}", "indices": [i]} for i in range(3)]}
    with pytest.warns(UserWarning, match=r"3 of its 3 constraints .* biased; force_map='aggregated' .* is exact"):
        map_trajectory(aa_path, spec, tmp_path / "bead.h5", progress=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*constraint")
        map_trajectory(aa_path, spec, tmp_path / "aggregated.h5", progress=False, force_map="aggregated")
    bead, aggregated = trajio.load(tmp_path / "bead.h5"), trajio.load(tmp_path / "aggregated.h5")
    assert (bead.metadata["force_map"], bead.metadata["constraint_forces_cancel"]) == ("bead", False)
    assert (aggregated.metadata["force_map"], aggregated.metadata["constraint_forces_cancel"]) == ("aggregated", True)
    assert aggregated.metadata["force_map_atoms"] == [[0, 3], [1, 4, 5], [2]]
    np.testing.assert_array_equal(aggregated.positions, bead.positions)

    target = -6.0 * KB_KJ_PER_MOL_K * temperature_k
    for i, j in ((0, 1), (1, 2), (0, 2)):
        mean, error = _identity_estimate(aggregated.positions, aggregated.forces, i, j)
        assert abs(mean - target) < 3.0 * error, f"aggregated ({i}, {j}): {mean:.2f} +- {error:.2f}, not {target:.2f}"
        mean, error = _identity_estimate(bead.positions, bead.forces, i, j)
        assert abs(mean - target) > 3.0 * error, f"bead ({i}, {j}): {mean:.2f} +- {error:.2f} unbiased"


def test_cli_force_map_option(branched_top, tmp_path, rng):
    from openmm_dynmatch.cli import map_cmd

    forces = rng.normal(size=(3, 10, 3))
    with trajio.TrajectoryWriter(tmp_path / "aa.h5", branched_top, {"temperature_k": 300.0}) as writer:
        writer.write(rng.normal(size=(3, 10, 3)), np.arange(3.0), forces=forces)
    spec = tmp_path / "map.yaml"
    spec.write_text("weights: slice\nbonds: [[0, 1]]\nbeads:\n  - {name: A, indices: [0]}\n"
                    "  - {name: B, indices: [4]}\n")
    parser = argparse.ArgumentParser()
    map_cmd.add_arguments(parser)
    args = parser.parse_args(["--aa", str(tmp_path / "aa.h5"), "--mapping", str(spec), "--out",
                              str(tmp_path / "cg.h5"), "--force-map", "aggregated", "--no-progress"])
    assert map_cmd.run(args) == 0
    cg = trajio.load(tmp_path / "cg.h5")
    assert cg.metadata["force_map"] == "aggregated" and cg.metadata["constraint_forces_cancel"] is None
    np.testing.assert_allclose(cg.forces[:, 0], forces[:, [0, 1, 2, 3]].sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cg.forces[:, 1], forces[:, [4, 5]].sum(axis=1), rtol=1e-5, atol=1e-5)


def test_per_file_arrays_round_trip_and_leave_the_trajectory_readable(branched_top, tmp_path, rng):
    path = tmp_path / "aa.h5"
    x = rng.normal(size=(2, 10, 3))
    with trajio.TrajectoryWriter(path, branched_top, {"n_constraints": 2}) as writer:
        writer.set_array(trajio.CONSTRAINTS_NODE, [[0, 1], [4, 5]])
        writer.set_array(trajio.CONSTRAINTS_NODE, [[0, 1], [4, 5], [8, 9]])  # replaces
        writer.write(x, np.arange(2.0))
        with pytest.raises(ValueError, match="other than the per-frame arrays"):
            writer.set_array("forces", np.zeros(3))
        with pytest.raises(ValueError, match="must hold numbers"):
            writer.set_array("labels", ["a", "b"])
    np.testing.assert_array_equal(trajio.read_array(path, trajio.CONSTRAINTS_NODE), [[0, 1], [4, 5], [8, 9]])
    assert trajio.read_array(path, "absent") is None
    np.testing.assert_allclose(mdtraj.load(str(path)).xyz, x, atol=1e-6)
    with trajio.TrajectoryWriter(path, branched_top, {}, append=True) as writer:  # appending keeps the array
        writer.write(x, np.arange(2.0, 4.0))
    assert trajio.read_array(path, trajio.CONSTRAINTS_NODE).shape == (3, 2)
