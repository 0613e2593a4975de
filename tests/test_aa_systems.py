"""Reference systems: registry, built-in systems checked against independent counts and formulas."""
import json

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
from openmm import app, unit  # noqa: E402

from openmm_dynmatch.openmm import aa_systems  # noqa: E402

BUILTINS = ("alanine-dipeptide-implicit", "alanine-dipeptide-explicit", "lj-dimer-solvent")


def _energy_kj_per_mol(aa, platform="Reference"):
    context = openmm.Context(aa.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    if aa.box_vectors_nm is not None:
        context.setPeriodicBoxVectors(*aa.box_vectors_nm)
    context.setPositions(aa.positions_nm)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def _hydrogen_bonds(topology):
    return sum(1 for bond in topology.bonds()
               if app.element.hydrogen in (bond[0].element, bond[1].element))


@pytest.fixture(scope="module")
def toy():
    return aa_systems.get_system("lj-dimer-solvent")


def test_registry_lists_builtins():
    assert set(BUILTINS) <= set(aa_systems.available_systems())
    assert aa_systems.available_systems() == sorted(aa_systems.available_systems())


@pytest.mark.parametrize("call", [aa_systems.get_system, aa_systems.load_system])
def test_unknown_system_name_lists_available(call):
    with pytest.raises(ValueError, match=r"unknown system 'no-such-system'; available: .*lj-dimer-solvent"):
        call("no-such-system")


def test_register_custom_system(toy):
    aa_systems.register_system("tiny-toy", lambda: aa_systems.lj_dimer_solvent(n_solvent=40, minimize=False))
    try:
        assert aa_systems.get_system("tiny-toy").n_atoms == 42
        assert "tiny-toy" in aa_systems.available_systems()
    finally:
        aa_systems.SYSTEMS.pop("tiny-toy")
    with pytest.raises(ValueError, match="builder"):
        aa_systems.register_system("broken", "not callable")


def test_alanine_dipeptide_implicit():
    aa = aa_systems.get_system("alanine-dipeptide-implicit")
    assert aa.n_atoms == 22 and aa.box_vectors_nm is None and not aa.periodic
    kinds = {type(force).__name__ for force in aa.system.getForces()}
    assert "GBSAOBCForce" in kinds and "CMMotionRemover" not in kinds  # the solute keeps its diffusion
    # HBonds constraints: one per bond to a hydrogen, counted from the topology
    assert aa.system.getNumConstraints() == _hydrogen_bonds(aa.topology) == 12
    element_masses = [atom.element.mass.value_in_unit(unit.dalton) for atom in aa.topology.atoms()]
    np.testing.assert_allclose(aa.masses_amu(), element_masses, rtol=1e-3)
    assert aa.degrees_of_freedom() == 3 * 22 - 12
    assert np.isfinite(_energy_kj_per_mol(aa))
    mdtop = aa.mdtraj_topology()
    assert mdtop.n_atoms == 22 and [r.name for r in mdtop.residues] == ["ACE", "ALA", "NME"]


def test_alanine_dipeptide_explicit():
    aa = aa_systems.get_system("alanine-dipeptide-explicit")
    assert aa.n_atoms == 2269 and aa.periodic
    crd = aa_systems.openmmtools_data_folder("alanine-dipeptide-explicit") / "alanine-dipeptide.crd"
    lengths_angstrom = [float(x) for x in crd.read_text().splitlines()[-1].split()[:3]]
    np.testing.assert_allclose(np.diag(aa.box_vectors_nm), np.array(lengths_angstrom) / 10.0, rtol=1e-6)
    nonbonded = [f for f in aa.system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert nonbonded.getCutoffDistance().value_in_unit(unit.nanometer) == pytest.approx(0.9)
    waters = [res for res in aa.topology.residues() if res.name in ("HOH", "WAT")]
    peptide_hbonds = 12
    # rigid water: 3 constraints per water; HBonds on the peptide
    assert aa.system.getNumConstraints() == 3 * len(waters) + peptide_hbonds
    assert len(waters) == (2269 - 22) // 3
    assert np.isfinite(_energy_kj_per_mol(aa, "CPU" if "CPU" in _platforms() else "Reference"))


def _platforms():
    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def test_toy_counts_box_and_topology(toy):
    n_total = 254 + 2
    assert toy.n_atoms == n_total and toy.periodic
    volume = np.linalg.det(toy.box_vectors_nm)
    assert n_total * 0.34**3 / volume == pytest.approx(0.7)
    np.testing.assert_allclose(toy.box_vectors_nm, np.eye(3) * volume ** (1 / 3))
    top = toy.mdtraj_topology()
    assert [a.name for a in top.atoms][:3] == ["D1", "D2", "AR"]
    assert [a.residue.name for a in top.atoms][:3] == ["DIM", "DIM", "SOL"]
    assert [(b[0].index, b[1].index) for b in top.bonds] == [(0, 1)]
    assert top.select("resname DIM").tolist() == [0, 1]
    np.testing.assert_allclose(toy.masses_amu(), 39.948)
    assert toy.degrees_of_freedom() == 3 * n_total


def _min_image(displacement, box_length):
    return displacement - box_length * np.round(displacement / box_length)


def _toy_energy_by_hand(positions, box_length, sigma=0.34, epsilon=2.5, barrier=10.0, half_width=0.085):
    """WCA between all pairs except the solute pair, double well between particles 0 and 1."""
    delta = _min_image(positions[:, None, :] - positions[None, :, :], box_length)
    r = np.sqrt((delta**2).sum(-1))
    i, j = np.triu_indices(len(positions), k=1)
    r_pairs = r[i, j][~((i == 0) & (j == 1))]
    r_cut = 2 ** (1 / 6) * sigma
    close = r_pairs[r_pairs < r_cut]
    wca = np.sum(4 * epsilon * ((sigma / close) ** 12 - (sigma / close) ** 6) + epsilon)
    bond = barrier * (1 - ((r[0, 1] - r_cut - half_width) / half_width) ** 2) ** 2
    return wca + bond


def test_toy_energy_equals_formula_and_no_overlaps(toy, rng):
    box_length = toy.box_vectors_nm[0, 0]
    delta = _min_image(toy.positions_nm[:, None] - toy.positions_nm[None], box_length)
    r = np.sqrt((delta**2).sum(-1)) + np.eye(toy.n_atoms) * 1e3
    assert r.min() > 0.9 * 0.34  # no overlaps after placement and minimisation
    assert _energy_kj_per_mol(toy) == pytest.approx(_toy_energy_by_hand(toy.positions_nm, box_length), rel=1e-6)
    # away from the minimum too: random displacements put pairs inside the WCA core and stretch the dimer
    moved = toy.positions_nm + rng.normal(scale=0.03, size=toy.positions_nm.shape)
    moved[1] = moved[0] + np.array([0.5, 0.0, 0.0])
    shifted = aa_systems.AASystem(toy.name, toy.system, toy.topology, moved, toy.box_vectors_nm)
    assert _energy_kj_per_mol(shifted) == pytest.approx(_toy_energy_by_hand(moved, box_length), rel=1e-6)


def test_toy_is_seeded_and_configurable():
    first = aa_systems.get_system("lj-dimer-solvent", n_solvent=60, seed=3, minimize=False)
    again = aa_systems.get_system("lj-dimer-solvent", n_solvent=60, seed=3, minimize=False)
    other = aa_systems.get_system("lj-dimer-solvent", n_solvent=60, seed=4, minimize=False)
    np.testing.assert_array_equal(first.positions_nm, again.positions_nm)
    assert not np.allclose(first.positions_nm, other.positions_nm)
    assert first.n_atoms == 62
    with pytest.raises(ValueError, match="reduced_density"):
        aa_systems.get_system("lj-dimer-solvent", reduced_density=-0.1)
    with pytest.raises(ValueError, match="n_solvent"):
        aa_systems.get_system("lj-dimer-solvent", n_solvent=0)


def test_user_amber_system_matches_builtin_and_load_system_forms(tmp_path):
    folder = aa_systems.openmmtools_data_folder("alanine-dipeptide-gbsa")
    builtin = aa_systems.get_system("alanine-dipeptide-implicit")
    spec = {"prmtop": str(folder / "alanine-dipeptide.prmtop"), "inpcrd": str(folder / "alanine-dipeptide.crd"),
            "implicit_solvent": "OBC2"}
    user = aa_systems.load_system(spec)
    assert _energy_kj_per_mol(user) == pytest.approx(_energy_kj_per_mol(builtin), rel=1e-10)
    vacuum = aa_systems.system_from_amber(spec["prmtop"], spec["inpcrd"], implicit_solvent=None)
    assert not any(isinstance(f, openmm.GBSAOBCForce) for f in vacuum.system.getForces())
    spec_file = tmp_path / "toy.json"
    spec_file.write_text(json.dumps({"name": "lj-dimer-solvent", "n_solvent": 30, "minimize": False}))
    assert aa_systems.load_system(spec_file).n_atoms == 32
    assert aa_systems.load_system(builtin) is builtin
    with pytest.raises(ValueError, match="implicit_solvent"):
        aa_systems.system_from_amber(spec["prmtop"], spec["inpcrd"], implicit_solvent="OBC9")
    with pytest.raises(ValueError, match="'name', 'prmtop' or 'pdb'"):
        aa_systems.load_system({"topology": "x"})
    with pytest.raises(FileNotFoundError, match="prmtop"):
        aa_systems.system_from_amber(tmp_path / "missing.prmtop", spec["inpcrd"])


def test_user_pdb_system():
    pdb = aa_systems.openmmtools_data_folder("alanine-dipeptide-gbsa") / "alanine-dipeptide.pdb"
    aa = aa_systems.load_system({"pdb": str(pdb), "forcefield": ["amber14-all.xml", "implicit/obc2.xml"]})
    assert aa.n_atoms == 22 and not aa.periodic
    assert aa.system.getNumConstraints() == _hydrogen_bonds(aa.topology)
    assert np.isfinite(_energy_kj_per_mol(aa))
    with pytest.raises(ValueError, match="nonbonded_method"):
        aa_systems.system_from_pdb(pdb, ["amber14-all.xml"], nonbonded_method="Ewald2")
    with pytest.raises(ValueError, match="forcefield_xmls"):
        aa_systems.system_from_pdb(pdb, [])
