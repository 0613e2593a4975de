"""All-atom reference systems: a registry of built-in systems and loaders for user systems.

Every builder returns an :class:`AASystem`: the OpenMM ``System``, its ``openmm.app.Topology``, start positions
and (for periodic systems) box vectors, in package units (nm).

Built-in systems (see ``docs/systems.md``):

- ``alanine-dipeptide-implicit``: ACE-ALA-NME (AMBER ff96, from the openmmtools data files) in OBC2 implicit
  solvent, no cutoff, bonds to hydrogen constrained; 22 atoms.
- ``alanine-dipeptide-explicit``: the same peptide in a TIP3P water box, PME with a 0.9 nm cutoff, bonds to
  hydrogen constrained, rigid water; 2269 atoms.
- ``lj-dimer-solvent``: a double-well dimer in a periodic WCA (repulsive Lennard-Jones) solvent, built in code.

User systems: :func:`system_from_amber`, :func:`system_from_pdb`, or :func:`load_system` with a spec dict.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

SYSTEMS: Dict[str, Callable[..., "AASystem"]] = {}

_OPENMMTOOLS_INSTALL = "install it with `pip install openmmtools` or `conda install -c conda-forge openmmtools`"


@dataclass
class AASystem:
    """An all-atom system ready for simulation.

    Attributes
    ----------
    name : str
        Registered name or a description of where it came from.
    system : openmm.System
    topology : openmm.app.Topology
    positions_nm : np.ndarray, shape (n_atoms, 3), nm
        Start positions.
    box_vectors_nm : np.ndarray or None, shape (3, 3), nm
        Periodic box vectors (rows a, b, c); None for non-periodic systems.

    Examples
    --------
    >>> ala2 = get_system("alanine-dipeptide-implicit")      # doctest: +SKIP
    >>> ala2.n_atoms, ala2.degrees_of_freedom()               # doctest: +SKIP
    (22, 51)
    """

    name: str
    system: object
    topology: object
    positions_nm: np.ndarray
    box_vectors_nm: Optional[np.ndarray] = None

    @property
    def n_atoms(self) -> int:
        return self.system.getNumParticles()

    @property
    def periodic(self) -> bool:
        return self.box_vectors_nm is not None

    def masses_amu(self) -> np.ndarray:
        """Particle masses, shape (n_atoms,), amu."""
        return np.array([self.system.getParticleMass(i)._value for i in range(self.n_atoms)])

    def degrees_of_freedom(self) -> int:
        """``3 N_massive - n_constraints - (3 if a CMMotionRemover is present)``, as OpenMM counts them."""
        import openmm

        massive = int(np.count_nonzero(self.masses_amu() > 0))
        constraints = sum(
            1 for k in range(self.system.getNumConstraints())
            if self.system.getParticleMass(self.system.getConstraintParameters(k)[0])._value > 0
            or self.system.getParticleMass(self.system.getConstraintParameters(k)[1])._value > 0)
        removes_com = any(isinstance(force, openmm.CMMotionRemover) for force in self.system.getForces())
        return 3 * massive - constraints - (3 if removes_com else 0)

    def mdtraj_topology(self):
        """The topology as an ``mdtraj.Topology``."""
        import mdtraj

        return mdtraj.Topology.from_openmm(self.topology)


def register_system(name: str, builder: Callable[..., AASystem]) -> None:
    """Register ``builder(**options) -> AASystem`` under ``name`` (an existing name is replaced)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(builder):
        raise ValueError(f"builder must be callable, got {builder!r}")
    SYSTEMS[name] = builder


def available_systems() -> list:
    """Sorted names of the registered systems."""
    return sorted(SYSTEMS)


def get_system(name: str, **options) -> AASystem:
    """Build the registered system ``name``; ``options`` go to its builder."""
    if name not in SYSTEMS:
        raise ValueError(f"unknown system '{name}'; available: {sorted(SYSTEMS)}")
    return SYSTEMS[name](**options)


def load_system(spec) -> AASystem:
    """Build a system from a flexible specification.

    Parameters
    ----------
    spec : AASystem, str, Path or dict
        - an :class:`AASystem`: returned unchanged;
        - a registered name, e.g. ``"alanine-dipeptide-implicit"``;
        - a path to a ``.json``/``.yaml``/``.yml`` file holding a dict spec;
        - a dict ``{"name": registered_name, **builder_options}``, or
          ``{"prmtop": ..., "inpcrd": ..., **system_from_amber_options}``, or
          ``{"pdb": ..., "forcefield": [xml, ...], **system_from_pdb_options}``.
    """
    if isinstance(spec, AASystem):
        return spec
    if isinstance(spec, (str, Path)):
        if str(spec) in SYSTEMS:
            return get_system(str(spec))
        path = Path(spec)
        if path.suffix.lower() in (".json", ".yaml", ".yml") and path.is_file():
            return load_system(_read_spec_file(path))
        raise ValueError(f"unknown system '{spec}'; available: {sorted(SYSTEMS)} "
                         "(or a .json/.yaml file holding a system spec)")
    if isinstance(spec, dict):
        options = dict(spec)
        if "name" in options:
            return get_system(options.pop("name"), **options)
        if "prmtop" in options:
            return system_from_amber(options.pop("prmtop"), options.pop("inpcrd", None), **options)
        if "pdb" in options:
            return system_from_pdb(options.pop("pdb"), options.pop("forcefield", None), **options)
        raise ValueError(f"system spec dict needs one of the keys 'name', 'prmtop' or 'pdb', got {sorted(spec)}")
    raise ValueError(f"spec must be an AASystem, a system name, a spec file or a dict, got {type(spec).__name__}")


def _read_spec_file(path: Path) -> dict:
    text = path.read_text()
    if path.suffix.lower() == ".json":
        spec = json.loads(text)
    else:
        import yaml

        spec = yaml.safe_load(text)
    if not isinstance(spec, dict):
        raise ValueError(f"system spec file {path} must hold a mapping, got {type(spec).__name__}")
    return spec


def _implicit_solvent_model(name):
    from openmm import app

    models = {"HCT": app.HCT, "OBC1": app.OBC1, "OBC2": app.OBC2, "GBn": app.GBn, "GBn2": app.GBn2}
    if name is None:
        return None
    if name not in models:
        raise ValueError(f"unknown implicit_solvent '{name}'; available: {sorted(models)} or None")
    return models[name]


def _constraints(name):
    from openmm import app

    kinds = {None: None, "HBonds": app.HBonds, "AllBonds": app.AllBonds, "HAngles": app.HAngles}
    if name not in kinds:
        raise ValueError(f"unknown constraints '{name}'; available: HBonds, AllBonds, HAngles or None")
    return kinds[name]


def _box_array(box_vectors) -> Optional[np.ndarray]:
    """Box vectors (Quantity or plain, nm) as an array of shape (3, 3), nm; None stays None."""
    if box_vectors is None:
        return None
    from openmm import unit

    if unit.is_quantity(box_vectors):
        box_vectors = box_vectors.value_in_unit(unit.nanometer)
    return np.array([[float(x) for x in vec] for vec in box_vectors], dtype=np.float64)


def system_from_amber(prmtop, inpcrd=None, implicit_solvent: Optional[str] = None, constraints: str = "HBonds",
                      cutoff_nm: float = 0.9, rigid_water: bool = True, name: Optional[str] = None,
                      remove_com_motion: Optional[bool] = None) -> AASystem:
    """Build a system from AMBER ``prmtop`` and coordinate files.

    Parameters
    ----------
    prmtop, inpcrd : str or Path
        AMBER parameter/topology and coordinate (``.inpcrd``/``.crd``/``.rst7``) files.
    implicit_solvent : str or None
        ``"OBC2"``, ``"OBC1"``, ``"HCT"``, ``"GBn"``, ``"GBn2"`` or None. Implicit solvent systems use no cutoff.
    constraints : str or None
        ``"HBonds"`` (default), ``"AllBonds"``, ``"HAngles"`` or None.
    cutoff_nm : float
        Real-space cutoff for periodic systems (PME), nm.
    rigid_water : bool
    name : str, optional
        Name of the system (default: the prmtop file name).
    remove_com_motion : bool, optional
        Add OpenMM's ``CMMotionRemover``. Default: only for periodic (explicit-solvent) systems. A solute in
        implicit solvent or vacuum keeps its centre-of-mass diffusion, which is part of the dynamics a CG
        model has to match (a CG model simulated without the remover would otherwise drift where AA did not).
    """
    from openmm import app, unit

    prmtop, inpcrd = Path(prmtop), Path(inpcrd) if inpcrd is not None else None
    for label, path in (("prmtop", prmtop), ("inpcrd", inpcrd)):
        if path is None or not path.is_file():
            raise FileNotFoundError(f"{label} file not found: {path}")
    model = _implicit_solvent_model(implicit_solvent)
    parm = app.AmberPrmtopFile(str(prmtop))
    coords = app.AmberInpcrdFile(str(inpcrd))
    box = coords.boxVectors if coords.boxVectors is not None else parm.topology.getPeriodicBoxVectors()
    options = dict(constraints=_constraints(constraints), rigidWater=rigid_water)
    if remove_com_motion is None:
        remove_com_motion = model is None and box is not None
    options["removeCMMotion"] = bool(remove_com_motion)
    if model is not None:
        options.update(implicitSolvent=model, nonbondedMethod=app.NoCutoff)
        box = None
    elif box is not None:
        options.update(nonbondedMethod=app.PME, nonbondedCutoff=cutoff_nm * unit.nanometer)
    else:
        options.update(nonbondedMethod=app.NoCutoff)
    system = parm.createSystem(**options)
    topology = parm.topology
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
        topology.setPeriodicBoxVectors(box)
    positions = np.array(coords.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
    return AASystem(name or prmtop.stem, system, topology, positions, _box_array(box))


def system_from_pdb(pdb, forcefield_xmls, nonbonded_method: Optional[str] = None, constraints: str = "HBonds",
                    cutoff_nm: float = 0.9, rigid_water: bool = True, name: Optional[str] = None) -> AASystem:
    """Build a system from a PDB file and OpenMM force field XML files.

    Parameters
    ----------
    pdb : str or Path
        PDB file with all atoms (hydrogens included); its CRYST1 record, if any, makes the system periodic.
    forcefield_xmls : list of str
        Force field files for ``openmm.app.ForceField``, e.g. ``["amber14-all.xml", "implicit/obc2.xml"]``.
    nonbonded_method : str or None
        ``"NoCutoff"``, ``"CutoffNonPeriodic"``, ``"CutoffPeriodic"``, ``"PME"``; default PME when the PDB has a
        box, NoCutoff otherwise.
    constraints : str or None
    cutoff_nm : float
        Nonbonded cutoff, nm (ignored with NoCutoff).
    rigid_water : bool
    name : str, optional
    """
    from openmm import app, unit

    pdb = Path(pdb)
    if not pdb.is_file():
        raise FileNotFoundError(f"pdb file not found: {pdb}")
    if isinstance(forcefield_xmls, str):
        forcefield_xmls = [forcefield_xmls]
    if not forcefield_xmls:
        raise ValueError(f"forcefield_xmls must list at least one force field file, got {forcefield_xmls!r}")
    methods = {"NoCutoff": app.NoCutoff, "CutoffNonPeriodic": app.CutoffNonPeriodic,
               "CutoffPeriodic": app.CutoffPeriodic, "PME": app.PME}
    structure = app.PDBFile(str(pdb))
    box = structure.topology.getPeriodicBoxVectors()
    if nonbonded_method is None:
        nonbonded_method = "PME" if box is not None else "NoCutoff"
    if nonbonded_method not in methods:
        raise ValueError(f"unknown nonbonded_method '{nonbonded_method}'; available: {sorted(methods)}")
    forcefield = app.ForceField(*forcefield_xmls)
    options = dict(nonbondedMethod=methods[nonbonded_method], constraints=_constraints(constraints),
                   rigidWater=rigid_water)
    if nonbonded_method != "NoCutoff":
        options["nonbondedCutoff"] = cutoff_nm * unit.nanometer
    system = forcefield.createSystem(structure.topology, **options)
    positions = np.array(structure.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
    periodic = nonbonded_method in ("CutoffPeriodic", "PME")
    return AASystem(name or pdb.stem, system, structure.topology, positions, _box_array(box) if periodic else None)


def openmmtools_data_folder(folder: str) -> Path:
    """Path of a folder in the data files shipped with the ``openmmtools`` package."""
    import importlib.util

    spec = importlib.util.find_spec("openmmtools")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the alanine dipeptide systems need the openmmtools data files; {_OPENMMTOOLS_INSTALL}")
    root = Path(list(spec.submodule_search_locations)[0]) / "data"
    path = root / folder
    if not path.is_dir():
        raise FileNotFoundError(f"openmmtools has no data folder '{folder}' (looked in {root})")
    return path


def alanine_dipeptide_implicit(implicit_solvent: str = "OBC2", constraints: str = "HBonds") -> AASystem:
    """Alanine dipeptide (ACE-ALA-NME, AMBER ff96) in implicit solvent (OBC2 by default); 22 atoms."""
    folder = openmmtools_data_folder("alanine-dipeptide-gbsa")
    return system_from_amber(folder / "alanine-dipeptide.prmtop", folder / "alanine-dipeptide.crd",
                             implicit_solvent=implicit_solvent, constraints=constraints,
                             name="alanine-dipeptide-implicit")


def alanine_dipeptide_explicit(cutoff_nm: float = 0.9, constraints: str = "HBonds") -> AASystem:
    """Alanine dipeptide (AMBER ff96) in a TIP3P water box with PME; 2269 atoms."""
    folder = openmmtools_data_folder("alanine-dipeptide-explicit")
    return system_from_amber(folder / "alanine-dipeptide.prmtop", folder / "alanine-dipeptide.crd",
                             implicit_solvent=None, constraints=constraints, cutoff_nm=cutoff_nm,
                             rigid_water=True, name="alanine-dipeptide-explicit")


WCA_SIGMA_NM = 0.34
WCA_EPSILON_KJ_PER_MOL = 2.5
ARGON_MASS_AMU = 39.948


def lj_dimer_solvent(n_solvent: int = 254, reduced_density: float = 0.7, sigma_nm: float = WCA_SIGMA_NM,
                     epsilon_kj_per_mol: float = WCA_EPSILON_KJ_PER_MOL, mass_amu: float = ARGON_MASS_AMU,
                     barrier_kj_per_mol: float = 10.0, half_width_nm: float = 0.085, seed: int = 0,
                     minimize: bool = True) -> AASystem:
    """A double-well dimer in a periodic WCA solvent: a small, file-free test of dynamic coarse-graining.

    All particles are argon-like (size ``sigma_nm``, mass ``mass_amu``) and repel each other with the WCA
    potential (Lennard-Jones cut and shifted at its minimum ``2^(1/6) sigma``). The two solute particles are
    bound by the double-well bond ``h (1 - ((r - r_c - w) / w)^2)^2`` instead of WCA, with minima at the
    compact distance ``r_c = 2^(1/6) sigma`` and the extended distance ``r_c + 2 w`` and a barrier ``h`` at
    ``r_c + w``. The solvent packs around the dimer, reshapes the bare double well into a potential of mean
    force (solvation-shell packing changes the relative weight of the two states) and slows the compact <->
    extended transitions by friction: the slow mode the CG model (the two solute particles) has to reproduce.
    With the defaults at 300 K both states are populated and the dimer crosses the barrier about once every
    few tens of ps, while the bond vibrates on a sub-ps scale.

    With the defaults (``epsilon = 2.5 kJ/mol``) 300 K is ``k_B T / epsilon ~ 1``; ``reduced_density`` is
    ``N sigma^3 / V`` over all ``n_solvent + 2`` particles.

    Parameters
    ----------
    n_solvent : int
        Number of solvent particles.
    reduced_density : float
        ``N sigma^3 / V`` (liquid for WCA around 0.6-0.9).
    sigma_nm, epsilon_kj_per_mol, mass_amu : float
        WCA size (nm), well depth (kJ/mol) and particle mass (amu).
    barrier_kj_per_mol, half_width_nm : float
        Double-well barrier height ``h`` (kJ/mol) and half distance between the minima ``w`` (nm).
    seed : int
        Seed of the placement (which lattice sites are used, small random displacements).
    minimize : bool
        Relax the start positions by energy minimisation.
    """
    import openmm

    for label, value in (("reduced_density", reduced_density), ("sigma_nm", sigma_nm),
                         ("epsilon_kj_per_mol", epsilon_kj_per_mol), ("mass_amu", mass_amu),
                         ("barrier_kj_per_mol", barrier_kj_per_mol), ("half_width_nm", half_width_nm)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{label} must be a finite positive number, got {value!r}")
    if int(n_solvent) != n_solvent or n_solvent < 1:
        raise ValueError(f"n_solvent must be a positive integer, got {n_solvent!r}")
    n_total = int(n_solvent) + 2
    box_nm = (n_total * sigma_nm**3 / reduced_density) ** (1.0 / 3.0)
    cutoff_nm = 2.0 ** (1.0 / 6.0) * sigma_nm
    if box_nm < 2.0 * cutoff_nm:
        raise ValueError(f"the box ({box_nm:.3f} nm) is smaller than twice the WCA cutoff; raise n_solvent")
    system = openmm.System()
    box = np.eye(3) * box_nm
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    for _ in range(n_total):
        system.addParticle(mass_amu)
    system.addForce(_wca_force(n_total, sigma_nm, epsilon_kj_per_mol, cutoff_nm))
    bond = openmm.CustomBondForce("h*(1-((r-rc-w)/w)^2)^2")
    bond.addGlobalParameter("h", barrier_kj_per_mol)
    bond.addGlobalParameter("rc", cutoff_nm)
    bond.addGlobalParameter("w", half_width_nm)
    bond.addBond(0, 1, [])
    bond.setUsesPeriodicBoundaryConditions(True)
    system.addForce(bond)
    positions = _lattice_start(n_total, box_nm, seed)
    if minimize:
        positions = _minimized(system, positions)
    return AASystem("lj-dimer-solvent", system, _dimer_topology(n_total, box), positions, box)


def _wca_force(n_total: int, sigma_nm: float, epsilon_kj_per_mol: float, cutoff_nm: float):
    import openmm

    wca = openmm.CustomNonbondedForce("4*epsilon*((sigma/r)^12-(sigma/r)^6)+epsilon")
    wca.addGlobalParameter("sigma", sigma_nm)
    wca.addGlobalParameter("epsilon", epsilon_kj_per_mol)
    wca.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    wca.setCutoffDistance(cutoff_nm)
    for _ in range(n_total):
        wca.addParticle([])
    wca.addExclusion(0, 1)  # the solute pair interacts through the double-well bond only
    return wca


def _lattice_start(n_total: int, box_nm: float, seed: int) -> np.ndarray:
    """Solute on two neighbouring sites of an fcc lattice filling the box, solvent on a random subset of the
    other sites, all displaced by a little noise; shape (n_total, 3), nm."""
    rng = np.random.default_rng(seed)
    n_cells = int(np.ceil((n_total / 4.0) ** (1.0 / 3.0) - 1e-9))
    spacing = box_nm / n_cells
    basis = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])
    cells = np.stack(np.meshgrid(*[np.arange(n_cells)] * 3, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    sites = ((cells + basis[None]).reshape(-1, 3) + 0.25) * spacing
    solvent_sites = 2 + rng.choice(len(sites) - 2, size=n_total - 2, replace=False)
    positions = np.concatenate([sites[:2], sites[np.sort(solvent_sites)]])
    return positions + rng.normal(scale=0.01 * spacing, size=positions.shape)


def _minimized(system, positions: np.ndarray) -> np.ndarray:
    import openmm

    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 1000)
    state = context.getState(getPositions=True)
    return np.array(state.getPositions(asNumpy=True)._value, dtype=np.float64)


def _dimer_topology(n_total: int, box: np.ndarray):
    from openmm import Vec3, app

    argon = app.Element.getBySymbol("Ar")
    topology = app.Topology()
    solute = topology.addResidue("DIM", topology.addChain("A"))
    first = topology.addAtom("D1", argon, solute)
    second = topology.addAtom("D2", argon, solute)
    topology.addBond(first, second)
    solvent_chain = topology.addChain("B")
    for _ in range(n_total - 2):
        topology.addAtom("AR", argon, topology.addResidue("SOL", solvent_chain))
    topology.setPeriodicBoxVectors([Vec3(*row) for row in box])
    return topology


def _register_builtins() -> None:
    register_system("alanine-dipeptide-implicit", alanine_dipeptide_implicit)
    register_system("alanine-dipeptide-explicit", alanine_dipeptide_explicit)
    register_system("lj-dimer-solvent", lj_dimer_solvent)


_register_builtins()
