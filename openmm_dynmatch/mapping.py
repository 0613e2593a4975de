"""Coarse-grained mapping: which all-atom (AA) atoms make up each CG bead, and how they are combined.

A :class:`CGMapping` is a linear map ``R = M x`` from AA positions ``x`` (n_atoms, 3) to bead positions ``R``
(n_beads, 3). Beads are defined in a mapping spec (a dict, usually read from YAML) by an mdtraj atom
selection (``select: "resname ALA and name CA"``), by a residue/atom-name table (``residue: ALA``,
``atoms: [N, CA]``) or by explicit atom indices (``indices: [6, 8]``), each with a weighting:

- ``slice``: the bead is one atom;
- ``com``: the mass-weighted centre of the bead's atoms;
- ``cog``: the geometric centre of the bead's atoms.

Forces are mapped by aggregation (``f_I = sum of the forces on the atoms of bead I``), the force map used for
force matching; see :meth:`CGMapping.map_forces` for when it is exact. The ``aggregated`` force map
(:meth:`CGMapping.aggregated_force_matrix`, ``force_map`` of :func:`map_trajectory`) also adds the forces of the
hydrogens bonded to a bead's atoms, which keeps it exact when bonds to hydrogen are constrained. Built-in
mappings ship as YAML files in the package's ``data`` folder (:func:`builtin_mappings`) and
:func:`load_mapping` resolves a built-in name, a YAML path or a dict. :func:`map_trajectory` maps whole AA
trajectory files (one run, or several independent runs of the same system written one after the other with
their boundaries) to one CG file.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

WEIGHTS = ("slice", "com", "cog")
BOND_MODES = ("topology", "sequence")
CG_RESIDUE_MODES = ("residue", "bead")
_BEAD_KEYS = {"name", "type", "select", "atoms", "residue", "resid", "indices", "weights", "element",
              "masses_amu", "residue_name", "residue_seq"}
_TOP_KEYS = {"name", "description", "weights", "beads", "bonds", "type_names", "allow_overlap", "cg_residues",
             "n_atoms"}


class CGMapping:
    """A linear AA -> CG map with bead types, masses and a CG bond graph.

    Build one with :meth:`from_dict` (or :func:`load_mapping`), which resolves the bead selections on an
    AA topology.

    Attributes
    ----------
    name : str
    bead_names : list of str
    type_names : list of str
    bead_types : np.ndarray, shape (n_beads,), int, index into ``type_names``
    masses_amu : np.ndarray, shape (n_beads,), amu, sum of the bead's atom masses
    atom_indices : list of np.ndarray, per bead, AA atom indices
    atom_weights : list of np.ndarray, per bead, weights (sum to 1) of those atoms in the bead position
    bonds : np.ndarray, shape (n_bonds, 2), int, CG bond graph (i < j, sorted)
    n_atoms : int, atoms of the AA system

    Examples
    --------
    >>> import mdtraj                                                   # doctest: +SKIP
    >>> top = mdtraj.load_prmtop("alanine-dipeptide.prmtop")            # doctest: +SKIP
    >>> mapping = load_mapping("ala2-backbone5", top)                   # doctest: +SKIP
    >>> cg_positions = mapping.map_positions(aa_positions)              # (n_frames, 5, 3), nm
    """

    def __init__(self, beads, n_atoms, bonds, type_names=None, name="custom", description="",
                 allow_overlap=False, cg_residues="residue"):
        if not beads:
            raise ValueError("a mapping needs at least one bead, got none")
        if cg_residues not in CG_RESIDUE_MODES:
            raise ValueError(f"cg_residues must be one of {CG_RESIDUE_MODES}, got '{cg_residues}'")
        self.name, self.description = str(name), str(description)
        self.n_atoms = int(n_atoms)
        self.allow_overlap, self.cg_residues = bool(allow_overlap), cg_residues
        self._beads = [dict(bead) for bead in beads]
        self.bead_names = [bead["name"] for bead in beads]
        bead_type_names = [bead.get("type") or bead["name"] for bead in beads]
        if type_names is None:
            type_names = list(dict.fromkeys(bead_type_names))
        unknown = sorted(set(bead_type_names) - set(type_names))
        if unknown:
            raise ValueError(f"bead types {unknown} are not in type_names {list(type_names)}")
        self.type_names = list(type_names)
        self.bead_types = np.array([self.type_names.index(t) for t in bead_type_names], dtype=np.int64)
        self.atom_indices = [np.asarray(bead["indices"], dtype=np.int64).reshape(-1) for bead in beads]
        self._check_atoms()
        self.atom_weights = [_weights(bead) for bead in beads]
        self.masses_amu = np.array([float(np.sum(bead["masses_amu"])) for bead in beads])
        self.bonds = _normalise_bonds(bonds, self.n_beads)
        # Compact maps over the atoms used by any bead: (n_beads, n_used).
        self._used = np.unique(np.concatenate(self.atom_indices))
        self._position_map = np.zeros((self.n_beads, self._used.size))
        for row, (indices, weights) in enumerate(zip(self.atom_indices, self.atom_weights)):
            self._position_map[row, np.searchsorted(self._used, indices)] = weights
        member = (self._position_map != 0).astype(np.float64)
        self._force_map = member / member.sum(axis=0)

    @property
    def n_beads(self) -> int:
        return len(self._beads)

    def _check_atoms(self) -> None:
        owner = {}
        for bead, indices in zip(self._beads, self.atom_indices):
            if indices.size == 0:
                raise ValueError(f"bead '{bead['name']}' has no atoms")
            if (indices.min() < 0 or indices.max() >= self.n_atoms):
                raise ValueError(f"bead '{bead['name']}' uses atom indices outside 0..{self.n_atoms - 1}: "
                                 f"{indices.tolist()}")
            if np.unique(indices).size != indices.size:
                raise ValueError(f"bead '{bead['name']}' lists an atom twice: {indices.tolist()}")
            for index in indices.tolist():
                if index in owner and not self.allow_overlap:
                    raise ValueError(f"atom {index} belongs to beads '{owner[index]}' and '{bead['name']}'; "
                                     f"overlapping beads need allow_overlap: true")
                owner.setdefault(index, bead["name"])

    def _full(self, compact: np.ndarray) -> np.ndarray:
        matrix = np.zeros((self.n_beads, self.n_atoms))
        matrix[:, self._used] = compact
        return matrix

    @property
    def mapping_matrix(self) -> np.ndarray:
        """Dense map, shape (n_beads, n_atoms): ``R_I = sum_a M[I, a] x_a``; each row sums to 1."""
        return self._full(self._position_map)

    @property
    def mapping_matrix_sparse(self):
        """The same map as a ``scipy.sparse.csr_matrix`` of shape (n_beads, n_atoms)."""
        from scipy import sparse

        rows, columns = np.nonzero(self._position_map)
        return sparse.csr_matrix((self._position_map[rows, columns], (rows, self._used[columns])),
                                 shape=(self.n_beads, self.n_atoms))

    @property
    def force_matrix(self) -> np.ndarray:
        """Force aggregation map, shape (n_beads, n_atoms): 1 for each atom of the bead.

        An atom shared by ``k`` beads (``allow_overlap``) gives ``1/k`` of its force to each, so the total force
        is kept.
        """
        return self._full(self._force_map)

    def map_positions(self, positions) -> np.ndarray:
        """Bead positions of AA frames.

        Parameters
        ----------
        positions : array, shape (n_frames, n_atoms, 3) or (n_atoms, 3), nm
            Molecules must be whole (not wrapped across periodic boundaries) for ``com``/``cog`` beads.

        Returns
        -------
        np.ndarray, shape (n_frames, n_beads, 3) (or (n_beads, 3)), nm, float64
        """
        return self._apply(self._position_map, positions, "positions")

    def map_forces(self, forces, force_matrix=None) -> np.ndarray:
        """Aggregated bead forces: the sum of the forces on the atoms of each bead.

        This is the force map of force matching. It is the exact force on the CG coordinate (its mean, given the
        bead positions, is the mean force of the CG potential of mean force) only when: beads are slices or
        centres of mass, no atom is shared between beads, and no constraint or virtual site couples atoms of
        different beads (or mapped with unmapped atoms, e.g. hydrogen-bond constraints on a slice atom). Atoms
        belonging to no bead are ignored. For ``cog`` beads of unequal masses it is an approximation. With bonds
        to hydrogen constrained, pass ``force_matrix=self.aggregated_force_matrix(topology)``.

        Parameters
        ----------
        forces : array, shape (n_frames, n_atoms, 3) or (n_atoms, 3), kJ/mol/nm
        force_matrix : array, shape (n_beads, n_atoms), optional
            Another force map (e.g. :meth:`aggregated_force_matrix`); default :attr:`force_matrix`.

        Returns
        -------
        np.ndarray, shape (n_frames, n_beads, 3) (or (n_beads, 3)), kJ/mol/nm, float64
        """
        if force_matrix is None:
            return self._apply(self._force_map, forces, "forces")
        matrix = np.asarray(force_matrix, dtype=np.float64)
        if matrix.shape != (self.n_beads, self.n_atoms):
            raise ValueError(f"force_matrix must have shape ({self.n_beads}, {self.n_atoms}), got {matrix.shape}")
        columns = np.flatnonzero(np.any(matrix != 0, axis=0))
        return self._apply(matrix[:, columns], forces, "forces", columns)

    def _apply(self, matrix, values, name, columns=None) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim not in (2, 3) or values.shape[-2:] != (self.n_atoms, 3):
            raise ValueError(f"{name} must have shape (n_frames, {self.n_atoms}, 3), got {values.shape}")
        return np.einsum("ba,...ak->...bk", matrix, values[..., self._used if columns is None else columns, :])

    def aggregated_force_matrix(self, topology) -> np.ndarray:
        """Force map with hydrogens attached to their heavy atom, shape (n_beads, n_atoms).

        :attr:`force_matrix` plus, for every hydrogen that belongs to no bead and is bonded (topology bonds) to
        an atom of a bead, the hydrogen's force with that atom's weight: ``f_I = sum over the bead's atoms and
        their unmapped hydrogens``. Positions are unaffected. For ``slice`` and ``com`` beads this is a valid
        force map (each row has weight 1 on the bead's atoms, 0 on other beads' atoms) and, unlike
        :attr:`force_matrix`, it stays exact when bonds to hydrogen are constrained: a constraint force acts
        with equal and opposite sign on two atoms of equal weight and cancels. Summing more atoms also lowers
        the noise of the mapped force (statistically optimal force aggregation, Kraemer et al., JCTC 2023).

        Parameters
        ----------
        topology : mdtraj.Topology, openmm.app.Topology, str or Path
            The AA topology, with bonds.

        Raises
        ------
        ValueError
            If the topology has no bonds or another atom count, or a hydrogen is bonded to atoms of different
            beads.
        """
        plain = self.force_matrix
        matrix = plain.copy()
        for hydrogen, host in _hydrogen_hosts(as_mdtraj_topology(topology), plain).items():
            matrix[:, hydrogen] = plain[:, host]
        return matrix

    def attached_hydrogens(self, topology) -> list:
        """Per bead, the unmapped hydrogens (AA indices, np.ndarray of int) :meth:`aggregated_force_matrix` adds."""
        added = (self.aggregated_force_matrix(topology) != 0) & (self.force_matrix == 0)
        return [np.flatnonzero(row) for row in added]

    def cg_topology(self):
        """An ``mdtraj.Topology`` of the beads, with the CG bonds.

        One chain; one residue per AA residue of the beads' first atoms (``cg_residues: residue``, keeps
        residue names so mdtraj's ``compute_phi``/``compute_psi`` work on backbone maps) or one residue per bead
        (``cg_residues: bead``). Atom names are bead names; elements are those of slice atoms (or the bead's
        ``element`` key), otherwise mdtraj's virtual-site element.
        """
        import mdtraj
        from mdtraj.core import element as elements

        topology = mdtraj.Topology()
        chain = topology.add_chain()
        residue, key = None, None
        for index, bead in enumerate(self._beads):
            bead_key = (bead.get("residue_name", "CG"), bead.get("residue_seq", index)) \
                if self.cg_residues == "residue" else (bead["name"], index)
            if residue is None or bead_key != key:
                residue = topology.add_residue(str(bead_key[0]), chain, resSeq=int(bead_key[1]) + 1)
                key = bead_key
            symbol = bead.get("element")
            element = elements.get_by_symbol(symbol) if symbol else None
            topology.add_atom(bead["name"], element, residue)
        atoms = list(topology.atoms)
        for i, j in self.bonds.tolist():
            topology.add_bond(atoms[i], atoms[j])
        return topology

    def to_dict(self) -> dict:
        """A JSON/YAML-able spec with the resolved atom indices and masses (rebuildable without a topology)."""
        beads = []
        for bead, indices in zip(self._beads, self.atom_indices):
            entry = {key: _plain(value) for key, value in bead.items() if key in _BEAD_KEYS}
            entry["indices"] = indices.tolist()
            entry["masses_amu"] = [float(m) for m in bead["masses_amu"]]
            beads.append(entry)
        return {"name": self.name, "description": self.description, "n_atoms": self.n_atoms,
                "type_names": list(self.type_names), "allow_overlap": self.allow_overlap,
                "cg_residues": self.cg_residues, "bonds": self.bonds.tolist(), "beads": beads}

    @classmethod
    def from_dict(cls, spec: dict, topology=None) -> "CGMapping":
        """Build a mapping from a spec dict (see the module docstring and docs/mapping.md).

        Parameters
        ----------
        spec : dict
            Mapping spec. Beads given by ``select``/``atoms`` need ``topology``; a spec from :meth:`to_dict`
            (with ``indices`` and ``masses_amu``) does not, and with a topology its selections are re-checked.
        topology : mdtraj.Topology, openmm.app.Topology, str or Path, optional
            The AA topology, or a file mdtraj can read a topology from (PDB, prmtop, HDF5, ...).
        """
        return cls(**_resolve_spec(spec, as_mdtraj_topology(topology) if topology is not None else None))

    def save(self, path) -> None:
        """Write :meth:`to_dict` as YAML, atomically."""
        import yaml

        from openmm_dynmatch.fileio import write_text

        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None))

    def __repr__(self) -> str:
        return f"CGMapping('{self.name}', n_beads={self.n_beads}, n_atoms={self.n_atoms}, n_bonds={len(self.bonds)})"


def _is_hydrogen(atom) -> bool:
    return atom.element is not None and atom.element.atomic_number == 1


def _hydrogen_hosts(topology, plain: np.ndarray) -> dict:
    """{hydrogen: bonded mapped atom} for the hydrogens in no bead bonded to an atom of a bead."""
    if topology.n_atoms != plain.shape[1]:
        raise ValueError(f"topology has {topology.n_atoms} atoms but the mapping is for {plain.shape[1]}")
    if topology.n_bonds == 0:
        raise ValueError("the aggregated force map needs an AA topology with bonds; this one has none")
    mapped = np.any(plain != 0, axis=0)
    hosts = {}
    for a, b in topology.bonds:
        for hydrogen, host in ((a, b), (b, a)):
            if _is_hydrogen(hydrogen) and not mapped[hydrogen.index] and mapped[host.index]:
                hosts.setdefault(hydrogen.index, []).append(host.index)
    for hydrogen, candidates in hosts.items():
        if any(not np.array_equal(plain[:, candidates[0]], plain[:, other]) for other in candidates[1:]):
            raise ValueError(f"hydrogen {topology.atom(hydrogen)} (atom {hydrogen}) is bonded to atoms {candidates} "
                             f"of different beads; the aggregated force map cannot attach it to one")
    return {hydrogen: candidates[0] for hydrogen, candidates in hosts.items()}


def _bead_force_matrix(mapping: CGMapping, topology) -> np.ndarray:
    return mapping.force_matrix


def _aggregated_force_matrix(mapping: CGMapping, topology) -> np.ndarray:
    if topology is None:
        raise ValueError("force_map 'aggregated' needs the AA topology (with bonds) to find the hydrogens")
    return mapping.aggregated_force_matrix(topology)


#: Force maps by name: ``FORCE_MAPS[name](mapping, topology)`` is the (n_beads, n_atoms) force matrix.
#: ``bead``: the forces of each bead's atoms; ``aggregated``: plus those of the hydrogens bonded to them.
FORCE_MAPS = {"bead": _bead_force_matrix, "aggregated": _aggregated_force_matrix}


def force_map_matrix(mapping: CGMapping, force_map: str = "bead", topology=None) -> np.ndarray:
    """The force matrix, shape (n_beads, n_atoms), of a named force map (:data:`FORCE_MAPS`).

    Parameters
    ----------
    mapping : CGMapping
    force_map : str
        ``bead`` (:attr:`CGMapping.force_matrix`) or ``aggregated`` (:meth:`CGMapping.aggregated_force_matrix`).
    topology : mdtraj.Topology, openmm.app.Topology, str or Path, optional
        The AA topology with bonds; needed by ``aggregated``.
    """
    if force_map not in FORCE_MAPS:
        raise ValueError(f"unknown force_map '{force_map}'; available: {sorted(FORCE_MAPS)}")
    return FORCE_MAPS[force_map](mapping, topology)


def constraint_leaks(force_matrix, constraints) -> np.ndarray:
    """The constrained atom pairs whose constraint forces do not cancel in the mapped forces.

    A constraint between atoms ``a`` and ``b`` adds ``lambda (x_a - x_b)`` to the force on ``a`` and its
    negative to ``b``; in bead ``I`` of the linear force map ``C`` it leaves ``lambda (C[I, a] - C[I, b])
    (x_a - x_b)``. MD engines report forces without these terms, so the mapped forces are exact only when
    columns ``a`` and ``b`` of ``C`` are equal for every constraint (both atoms in the same bead or aggregated
    group, or both outside all of them).

    Parameters
    ----------
    force_matrix : array, shape (n_beads, n_atoms)
    constraints : array, shape (n_constraints, 2), int, atom indices

    Returns
    -------
    np.ndarray, shape (n_leaks, 2), int
        The pairs for which the columns differ.
    """
    matrix = np.asarray(force_matrix, dtype=np.float64)
    pairs = np.asarray(constraints, dtype=np.int64).reshape(-1, 2)
    if matrix.ndim != 2:
        raise ValueError(f"force_matrix must have shape (n_beads, n_atoms), got {matrix.shape}")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= matrix.shape[1]):
        raise ValueError(f"constraints must join atoms 0..{matrix.shape[1] - 1}, got indices "
                         f"{pairs.min()}..{pairs.max()}")
    differ = np.any(matrix[:, pairs[:, 0]] != matrix[:, pairs[:, 1]], axis=0)
    return pairs[differ]


def _weights(bead: dict) -> np.ndarray:
    kind = bead.get("weights", "com")
    masses = np.asarray(bead["masses_amu"], dtype=np.float64)
    n = len(bead["indices"])
    if kind == "slice":
        if n != 1:
            raise ValueError(f"slice bead '{bead['name']}' must select exactly one atom, got {n}")
        return np.ones(1)
    if kind == "com":
        if not np.all(masses > 0):
            raise ValueError(f"com bead '{bead['name']}' has atoms without positive mass: {masses.tolist()}")
        return masses / masses.sum()
    if kind == "cog":
        return np.full(n, 1.0 / n)
    raise ValueError(f"bead '{bead['name']}': weights must be one of {WEIGHTS}, got '{kind}'")


def _normalise_bonds(bonds, n_beads: int) -> np.ndarray:
    array = np.asarray(bonds if bonds is not None else [], dtype=np.int64).reshape(-1, 2)
    if array.size and (array.min() < 0 or array.max() >= n_beads or np.any(array[:, 0] == array[:, 1])):
        raise ValueError(f"bonds must be pairs of distinct bead indices in 0..{n_beads - 1}, got {array.tolist()}")
    array = np.sort(array, axis=1)
    return np.unique(array, axis=0) if array.size else array


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def as_mdtraj_topology(topology):
    """An ``mdtraj.Topology`` from an mdtraj or OpenMM topology or a topology file path."""
    import mdtraj

    if isinstance(topology, mdtraj.Topology):
        return topology
    if hasattr(topology, "getNumAtoms"):
        return mdtraj.Topology.from_openmm(topology)
    if isinstance(topology, (str, Path)):
        if not Path(topology).is_file():
            raise FileNotFoundError(f"topology file not found: {topology}")
        return mdtraj.load_topology(str(topology))
    raise ValueError(f"topology must be an mdtraj/OpenMM topology or a file path, got {type(topology).__name__}")


def builtin_mappings() -> dict:
    """Built-in mapping names and their YAML files."""
    folder = Path(__file__).resolve().parent / "data"
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def read_mapping_spec(path) -> dict:
    """The spec dict of a mapping YAML file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mapping file not found: {path}")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise ValueError(f"mapping file {path} must hold a mapping (dict), got {type(spec).__name__}")
    return spec


def load_mapping(mapping, topology=None) -> CGMapping:
    """Resolve a built-in name, a YAML path, a spec dict or a :class:`CGMapping`.

    Parameters
    ----------
    mapping : str, Path, dict or CGMapping
    topology : mdtraj.Topology, openmm.app.Topology, str or Path, optional
        The AA topology, needed for specs that select atoms by selection or name.
    """
    if isinstance(mapping, CGMapping):
        n_atoms = mapping.n_atoms if topology is None else as_mdtraj_topology(topology).n_atoms
        if n_atoms != mapping.n_atoms:
            raise ValueError(f"mapping '{mapping.name}' is for {mapping.n_atoms} atoms but the topology has {n_atoms}")
        return mapping
    if isinstance(mapping, dict):
        return CGMapping.from_dict(mapping, topology)
    if isinstance(mapping, (str, Path)):
        available = builtin_mappings()
        if Path(mapping).is_file():
            return CGMapping.from_dict(read_mapping_spec(mapping), topology)
        if str(mapping) in available:
            return CGMapping.from_dict(read_mapping_spec(available[str(mapping)]), topology)
        raise ValueError(f"unknown mapping '{mapping}'; available: {sorted(available)} (or a YAML file path)")
    raise ValueError(f"mapping must be a name, a YAML path, a dict or a CGMapping, got {type(mapping).__name__}")


#: AA metadata keys that may differ between the files mapped into one CG file (they describe one run, not the
#: system or its dynamics); every other key must agree.
PER_RUN_KEYS = ("seed", "replica", "replica_base_seed", "platform", "openmm_version", "n_frames", "equilibration_ps",
                "steps_per_s", "ns_per_day", "wall_s_last_session", "trajectory_lengths")


def map_trajectory(aa_path, mapping, out_path, topology=None, chunk_frames: int = 1000, metadata=None,
                   progress: bool = True, force_map: str = "bead", temperature_k=None,
                   frame_interval_ps=None) -> Path:
    """Map AA trajectory files (trajio format) to one CG trajectory file.

    Positions, and velocities (same linear map) and forces (aggregated) where present, are mapped chunk by
    chunk into a temporary file that is renamed to ``out_path`` at the end. Several AA files (independent runs,
    e.g. the replicas of :func:`~openmm_dynmatch.openmm.reference.run_reference`) are written one after the
    other, each with its own time stamps, and ``trajectory_lengths`` records where each ends so that windows
    and splits never join two runs (:func:`openmm_dynmatch.trajio.trajectory_segments`). They must share the
    topology and every metadata key except the per-run ones (:data:`PER_RUN_KEYS`: seed, platform, length,
    throughput, ...).

    The CG file carries the metadata keys of the team contract: ``temperature_k``, ``timestep_ps``,
    ``frame_interval_ps`` (copied from the AA file or given; the interval is inferred from the frame times if
    neither; without a temperature and a frame interval no CG file is written),
    ``masses_amu`` (per bead, sums of the AA masses recorded in the AA file, else of the topology's),
    ``bead_names``, ``bead_types``, ``type_names``, ``bonds``, ``mapping`` (:meth:`CGMapping.to_dict`),
    ``source`` (the AA file names, comma-separated), ``sources`` (list), ``forces_mapped``,
    ``trajectory_lengths`` (frames per trajectory, file order; ``[n_frames]`` for one run); plus
    ``aa_metadata`` (the AA keys all inputs share), ``aa_file_metadata`` (per input, its per-run keys; several
    inputs only) and ``n_aa_atoms``.

    Parameters
    ----------
    aa_path : str or Path, or a sequence of them
        AA trajectory file(s). A file that itself holds several trajectories keeps its boundaries.
    mapping : str, Path, dict or CGMapping
        Built-in name, YAML path, spec dict or mapping (see :func:`load_mapping`).
    out_path : str or Path
    topology : mdtraj.Topology, openmm.app.Topology, str or Path, optional
        AA topology (a PDB/prmtop path or a topology object): required when a file stores none; when given,
        it resolves the mapping instead of the stored one, and must then have the stored topology's atoms
        (names, residue names and elements, in the same order).
    chunk_frames : int
        Frames read and mapped at a time.
    metadata : dict, optional
        Extra keys, overriding the copied ones; ``trajectory_lengths`` is always the one computed here.
    progress : bool
        Show a progress bar.
    force_map : str
        How forces are mapped (:data:`FORCE_MAPS`): ``bead`` sums the forces of each bead's atoms;
        ``aggregated`` also adds those of the hydrogens bonded to them (:meth:`CGMapping.aggregated_force_matrix`),
        the exact map when bonds to hydrogen were constrained. The CG metadata records ``force_map``,
        ``force_map_atoms`` (per bead, the AA atoms whose forces are summed) and ``constraint_forces_cancel``:
        True when every constraint stored in the AA files (``/constraints``) leaves the mapped forces unchanged,
        False when one does not (a warning names it), None when unknown (no forces, or files that record a
        number of constraints but not their atoms; a warning says so).
    temperature_k : float or openmm.unit.Quantity, optional
        Temperature of the AA simulation, K, for files that do not record it (a recorded one must agree).
    frame_interval_ps : float or openmm.unit.Quantity, optional
        Time between AA frames, ps, for files that do not record it (a recorded one must agree; frame times
        that disagree are kept, with a warning).

    Raises
    ------
    ValueError
        When the temperature or the frame interval is neither recorded nor given (nor, for the interval,
        readable from the frame times), or a given value disagrees with a recorded one; when a given topology
        has other atoms than the one a file stores (the message names the first atom that differs, both ways).

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    from tqdm import tqdm

    from openmm_dynmatch import trajio
    from openmm_dynmatch.fileio import atomic_path

    if force_map not in FORCE_MAPS:
        raise ValueError(f"unknown force_map '{force_map}'; available: {sorted(FORCE_MAPS)}")
    paths = [Path(p) for p in ([aa_path] if isinstance(aa_path, (str, Path)) else list(aa_path))]
    if not paths:
        raise ValueError("aa_path must name at least one AA trajectory file, got none")
    out_path = Path(out_path)
    if int(chunk_frames) < 1:
        raise ValueError(f"chunk_frames must be a positive integer, got {chunk_frames}")
    given = as_mdtraj_topology(topology) if topology is not None else None
    inputs = [_open_input(path, given) for path in paths]
    _check_same_run_settings(inputs)
    first = inputs[0]
    mapping = load_mapping(mapping, first["topology"])
    force_matrix, cancel = None, None
    if first["sample"].forces is not None:
        force_matrix = force_map_matrix(mapping, force_map, first["topology"])
        cancel = _constraint_forces_cancel(inputs, mapping, force_matrix, force_map)
    meta = _cg_metadata(mapping, inputs)
    meta.update(_run_settings(inputs, temperature_k, frame_interval_ps))
    meta.update(force_map=None if force_matrix is None else force_map, constraint_forces_cancel=cancel,
                force_map_atoms=None if force_matrix is None else
                [np.flatnonzero(row).tolist() for row in force_matrix])
    meta.update(metadata or {})
    _require_run_settings(meta, paths[0])
    meta[trajio.LENGTHS_KEY] = [stop - start for item in inputs
                                for start, stop in trajio.trajectory_segments(item["metadata"], item["n_frames"])]
    step = int(chunk_frames)
    with warnings.catch_warnings(), atomic_path(out_path) as tmp:
        warnings.filterwarnings("ignore", message="The .h5 extension is recommended")  # the temporary name
        writer = trajio.TrajectoryWriter(tmp, mapping.cg_topology(), meta)
        total = sum(item["n_frames"] for item in inputs)
        with writer, tqdm(total=total, unit="frame", desc="map", disable=not progress) as bar:
            for item in inputs:
                for start in range(0, item["n_frames"], step):
                    chunk = _read_chunk(item["path"], start, min(start + step, item["n_frames"]), item["topology"],
                                        item["stored"])
                    writer.write(mapping.map_positions(chunk.positions), chunk.time_ps,
                                 velocities=None if chunk.velocities is None else
                                 mapping.map_positions(chunk.velocities),
                                 forces=None if chunk.forces is None else
                                 mapping.map_forces(chunk.forces, force_matrix),
                                 box_vectors_nm=chunk.box_vectors)
                    bar.update(chunk.n_frames)
    return out_path


def _constraint_forces_cancel(inputs: list, mapping: CGMapping, force_matrix: np.ndarray, force_map: str):
    """True if the constraints of every AA file cancel in the force map, False (and a warning) if one does not,
    None (and a warning if the files had constraints) when the constrained atoms are not recorded."""
    from openmm_dynmatch import trajio

    verdict = True
    for item in inputs:
        n_constraints = item["metadata"].get("n_constraints")
        pairs = trajio.read_array(item["path"], trajio.CONSTRAINTS_NODE)
        if pairs is None:
            if n_constraints:
                warnings.warn(f"{item['path']} comes from a run with {n_constraints} constraints but does not record "
                              f"which atoms they join: the recorded forces exclude constraint forces, so the mapped "
                              f"forces are exact only if no constraint joins atoms that the '{force_map}' force map "
                              f"weights differently (e.g. a constrained bond to a hydrogen outside its heavy atom's "
                              f"bead with force_map='bead')", stacklevel=3)
                return None
            verdict = None if n_constraints is None else verdict
            continue
        leaks = constraint_leaks(force_matrix, pairs)
        if leaks.size:
            a, b = leaks[0].tolist()
            warnings.warn(f"{item['path']}: {len(leaks)} of its {len(pairs)} constraints join atoms that the "
                          f"'{force_map}' force map weights differently (e.g. atoms {a} and {b}); the recorded forces "
                          f"exclude constraint forces, so the mapped forces are biased"
                          f"{_aggregated_hint(mapping, item['topology'], pairs, force_map)}", stacklevel=3)
            return False
    return verdict


def _aggregated_hint(mapping: CGMapping, topology, pairs: np.ndarray, force_map: str) -> str:
    if force_map == "aggregated" or topology.n_bonds == 0:
        return ""
    try:
        fixed = constraint_leaks(mapping.aggregated_force_matrix(topology), pairs).size == 0
    except ValueError:
        return ""
    return "; force_map='aggregated' (bonded hydrogens summed into their heavy atom's bead) is exact here" \
        if fixed else ""


def _open_input(path: Path, given_topology) -> dict:
    """What :func:`map_trajectory` needs of one AA file: topology, frame count, metadata, first frames."""
    from openmm_dynmatch import trajio

    aa_top, n_file_atoms = _file_topology(path)
    file_top, stored = aa_top, aa_top is not None
    if given_topology is not None:  # a given topology is used to resolve the mapping; its atom count is checked
        aa_top = given_topology
    elif not stored:
        raise ValueError(f"{path} stores no topology: pass topology (a PDB/prmtop path or a topology)")
    if aa_top.n_atoms != n_file_atoms:
        raise ValueError(f"topology has {aa_top.n_atoms} atoms but {path} stores {n_file_atoms} per frame")
    if stored and given_topology is not None:
        _check_given_topology(path, file_top, given_topology)
    n_frames = trajio.count_frames(path)
    if n_frames == 0:
        raise ValueError(f"{path} stores no frames")
    return {"path": path, "topology": aa_top, "stored": stored, "n_frames": n_frames,
            "metadata": trajio.read_metadata(path), "sample": _read_chunk(path, 0, min(n_frames, 2), aa_top, stored)}


def _check_given_topology(path: Path, stored, given) -> None:
    """Refuse a given topology whose atoms differ from those the file stores (same count, other names or order):
    the mapping would be resolved on the wrong atoms."""
    for atom_stored, atom_given in zip(stored.atoms, given.atoms):
        if _atom_identity(atom_stored) != _atom_identity(atom_given):
            raise ValueError(f"topology: atom {atom_given.index} is {_atom_text(atom_given)} in the given topology "
                             f"but {_atom_text(atom_stored)} in the topology {path} stores (same atom count, other "
                             f"atom names, residues, elements or order); leave the topology out (dynmatch map "
                             f"without --top) to use the stored one, or give the topology this file was written with")


def _atom_identity(atom) -> tuple:
    return atom.residue.name, atom.name, getattr(atom.element, "symbol", None)


def _atom_text(atom) -> str:
    residue, name, symbol = _atom_identity(atom)
    return f"'{name}' ({symbol or 'no element'}) of residue {residue}{atom.residue.resSeq}"


def _check_same_run_settings(inputs: list) -> None:
    """Refuse AA files that are not runs of the same system with the same settings, naming the key and files."""
    first = inputs[0]
    for other in inputs[1:]:
        where = f"{first['path']} and {other['path']}"
        if first["topology"] != other["topology"]:
            raise ValueError(f"aa_path: topology differs between {where} "
                             f"({_topology_difference(first['topology'], other['topology'])})")
        keys = sorted((set(first["metadata"]) | set(other["metadata"])) - set(PER_RUN_KEYS))
        for key in keys:
            a, b = first["metadata"].get(key), other["metadata"].get(key)
            if a != b:
                raise ValueError(f"aa_path: metadata '{key}' differs between {where}: {_short(a)} vs {_short(b)}; "
                                 f"only runs of one system with the same settings can be mapped into one file")
        for name in ("velocities", "forces", "box_vectors"):
            if (getattr(first["sample"], name) is None) != (getattr(other["sample"], name) is None):
                has, lacks = (first, other) if getattr(first["sample"], name) is not None else (other, first)
                raise ValueError(f"aa_path: '{name}' differs between {where}: {has['path']} stores them, "
                                 f"{lacks['path']} does not")


def _topology_difference(a, b) -> str:
    if a.n_atoms != b.n_atoms:
        return f"{a.n_atoms} vs {b.n_atoms} atoms"
    for atom_a, atom_b in zip(a.atoms, b.atoms):
        if (atom_a.residue.name, atom_a.name, atom_a.element) != (atom_b.residue.name, atom_b.name, atom_b.element):
            return f"atom {atom_a.index} is {atom_a} vs {atom_b}"
    return f"{a.n_bonds} vs {b.n_bonds} bonds" if a.n_bonds != b.n_bonds else "bonds or chains differ"


def _short(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _run_settings(inputs: list, temperature_k, frame_interval_ps) -> dict:
    """``temperature_k``, ``timestep_ps`` and ``frame_interval_ps`` of the CG file: recorded in the AA files,
    else given, else (the interval) read from the frame times."""
    from openmm_dynmatch.units import positive_float

    aa_meta, first, path = inputs[0]["metadata"], inputs[0]["sample"], inputs[0]["path"]
    settings = {key: aa_meta.get(key) for key in ("temperature_k", "timestep_ps", "frame_interval_ps")}
    for key, value, unit in (("temperature_k", temperature_k, "K"), ("frame_interval_ps", frame_interval_ps, "ps")):
        if value is None:
            continue
        value = positive_float(value, unit, key)
        recorded = settings[key]
        if recorded is not None and not np.isclose(recorded, value, rtol=1e-9, atol=0.0):
            raise ValueError(f"{key} = {value} {unit} was given but {path} records {recorded} {unit}")
        settings[key] = value
    stamped = float(first.time_ps[1] - first.time_ps[0]) if first.n_frames > 1 else None
    if settings["frame_interval_ps"] is None:
        settings["frame_interval_ps"] = stamped
    elif aa_meta.get("frame_interval_ps") is None and stamped is not None \
            and not np.isclose(stamped, settings["frame_interval_ps"], rtol=1e-5, atol=0.0):
        warnings.warn(f"the frame times of {path} are {stamped:g} ps apart but frame_interval_ps = "
                      f"{settings['frame_interval_ps']:g} ps was given; the CG file keeps both, and training uses "
                      f"frame_interval_ps", stacklevel=3)
    return settings


def _require_run_settings(meta: dict, path: Path) -> None:
    """Refuse CG metadata without a positive temperature and frame interval (training and analysis need both)."""
    options = {"temperature_k": "--temperature-k K", "frame_interval_ps": "--frame-interval-ps PS"}
    missing = [key for key in options if not (isinstance(meta.get(key), (int, float)) and meta[key] > 0)]
    if missing:
        found = ", ".join(f"{key} = {meta.get(key)!r}" for key in missing)
        raise ValueError(f"{path} does not record the AA run's {' and '.join(missing)} (found {found}); pass "
                         f"{' and '.join(missing)} (dynmatch map {' '.join(options[key] for key in missing)}): "
                         f"a CG file needs both")


def _cg_metadata(mapping: CGMapping, inputs: list) -> dict:
    aa_meta, first = inputs[0]["metadata"], inputs[0]["sample"]
    masses = mapping.masses_amu
    aa_masses = aa_meta.get("masses_amu")
    if aa_masses is not None and len(aa_masses) == mapping.n_atoms:
        aa_masses = np.asarray(aa_masses, dtype=np.float64)
        masses = np.array([aa_masses[indices].sum() for indices in mapping.atom_indices])
    names = [item["path"].name for item in inputs]
    shared = {key: value for key, value in aa_meta.items() if key not in ("masses_amu", "trajectory_lengths")
              and all(key in item["metadata"] and item["metadata"][key] == value for item in inputs)}
    meta = dict(masses_amu=[float(m) for m in masses], bead_names=list(mapping.bead_names),
                bead_types=mapping.bead_types.tolist(), type_names=list(mapping.type_names),
                bonds=mapping.bonds.tolist(), mapping=mapping.to_dict(), source=", ".join(names), sources=names,
                forces_mapped=first.forces is not None, n_aa_atoms=mapping.n_atoms, aa_metadata=shared)
    if len(inputs) > 1:
        meta["aa_file_metadata"] = [{key: value for key, value in item["metadata"].items()
                                     if key not in shared and key not in ("masses_amu", "trajectory_lengths")}
                                    for item in inputs]
    return meta


def _file_topology(path: Path):
    """(mdtraj topology or None, atoms per frame) of a trajectory file."""
    import tables
    from mdtraj.formats import HDF5TrajectoryFile

    from openmm_dynmatch.trajio import READ_ERRORS, unreadable

    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    try:
        with HDF5TrajectoryFile(str(path), mode="r") as handle:
            topology = handle.topology
        with tables.open_file(str(path), "r") as handle:
            stored = "coordinates" in handle.root
            n_atoms = int(handle.root.coordinates.shape[1]) if stored else 0
    except READ_ERRORS as err:
        raise unreadable(path, err) from err
    if not stored:
        raise ValueError(f"{path} stores no coordinates; it is not a trajectory file")
    return topology, n_atoms


def _read_chunk(path: Path, start: int, stop: int, topology, stored: bool):
    """Frames [start, stop) as trajio.TrajectoryData, also for files without a stored topology."""
    import tables

    from openmm_dynmatch import trajio

    if stored:
        return trajio.load(path, start=start, stop=stop)
    with tables.open_file(str(path), "r") as handle:
        root = handle.root
        if "cell_lengths" in root:
            raise ValueError(f"{path} has a periodic box but no topology; add the topology to the file")
        arrays = {name: np.asarray(root[name][start:stop], dtype=np.float64)
                  for name in ("coordinates", "time", "velocities", "forces") if name in root}
    positions = arrays["coordinates"]
    time_ps = arrays.get("time", np.arange(start, stop, dtype=np.float64))
    return trajio.TrajectoryData(positions, time_ps, topology, {}, arrays.get("velocities"), arrays.get("forces"))


def _resolve_spec(spec: dict, topology) -> dict:
    """Keyword arguments of :class:`CGMapping` from a spec dict and an optional mdtraj topology."""
    if not isinstance(spec, dict):
        raise ValueError(f"mapping spec must be a dict, got {type(spec).__name__}")
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown mapping keys {unknown}; known: {sorted(_TOP_KEYS)}")
    if not isinstance(spec.get("beads"), list) or not spec["beads"]:
        raise ValueError(f"mapping spec needs a non-empty list 'beads', got {spec.get('beads')!r}")
    n_atoms = spec.get("n_atoms")
    if topology is not None:
        if n_atoms is not None and int(n_atoms) != topology.n_atoms:
            raise ValueError(f"mapping '{spec.get('name', 'custom')}' is for {n_atoms} atoms but the topology "
                             f"has {topology.n_atoms}")
        n_atoms = topology.n_atoms
    elif n_atoms is None:
        raise ValueError(f"mapping '{spec.get('name', 'custom')}' selects atoms: pass the AA topology (or give "
                         f"'n_atoms' and bead 'indices' and 'masses_amu')")
    default_weights = spec.get("weights", "com")
    beads = [_resolve_bead(bead, topology, default_weights) for bead in spec["beads"]]
    bonds = spec.get("bonds", "topology")
    if isinstance(bonds, str):
        if bonds not in BOND_MODES:
            raise ValueError(f"bonds must be one of {BOND_MODES} or a list of [i, j] pairs, got '{bonds}'")
        bonds = [(i, i + 1) for i in range(len(beads) - 1)] if bonds == "sequence" else \
            _topology_bonds(beads, topology)
    return dict(beads=beads, n_atoms=n_atoms, bonds=bonds, type_names=spec.get("type_names"),
                name=spec.get("name", "custom"), description=spec.get("description", ""),
                allow_overlap=spec.get("allow_overlap", False), cg_residues=spec.get("cg_residues", "residue"))


def _resolve_bead(bead: dict, topology, default_weights: str) -> dict:
    if not isinstance(bead, dict) or not bead.get("name"):
        raise ValueError(f"each bead must be a dict with a non-empty 'name', got {bead!r}")
    name = str(bead["name"])
    unknown = sorted(set(bead) - _BEAD_KEYS)
    if unknown:
        raise ValueError(f"bead '{name}': unknown keys {unknown}; known: {sorted(_BEAD_KEYS)}")
    out = dict(bead, name=name, weights=bead.get("weights", default_weights))
    by_name = "select" in bead or "atoms" in bead
    if topology is None:
        if "indices" not in bead or "masses_amu" not in bead:
            what = f"selection '{bead.get('select', bead.get('atoms'))}'" if by_name else "no atoms"
            raise ValueError(f"bead '{name}' has {what} and no indices/masses_amu: pass the AA topology")
        return out
    indices = _select_atoms(bead, topology) if by_name else np.asarray(bead.get("indices", []), dtype=np.int64)
    if indices.size == 0:
        raise ValueError(f"bead '{name}' selects no atoms (give 'select', 'atoms' or 'indices')")
    if by_name and "indices" in bead and sorted(bead["indices"]) != indices.tolist():
        raise ValueError(f"bead '{name}': selection gives atoms {indices.tolist()} on this topology but the "
                         f"mapping stores {sorted(bead['indices'])}; it was made for another topology")
    if indices.max() >= topology.n_atoms or indices.min() < 0:
        raise ValueError(f"bead '{name}': atom indices {indices.tolist()} outside 0..{topology.n_atoms - 1}")
    atoms = [topology.atom(int(i)) for i in indices]
    out["indices"] = indices.tolist()
    out["masses_amu"] = [float(atom.element.mass) if atom.element is not None else 0.0 for atom in atoms]
    out["residue_name"], out["residue_seq"] = atoms[0].residue.name, int(atoms[0].residue.index)
    symbol = getattr(atoms[0].element, "symbol", None)
    if "element" not in bead and out["weights"] == "slice" and symbol and symbol != "VS":
        out["element"] = symbol
    return out


def _select_atoms(bead: dict, topology) -> np.ndarray:
    name = bead["name"]
    if "select" in bead:
        try:
            indices = topology.select(str(bead["select"]))
        except Exception as err:  # mdtraj raises several types for a bad selection string
            raise ValueError(f"bead '{name}': invalid selection '{bead['select']}': {err}") from err
        if indices.size == 0:
            raise ValueError(f"bead '{name}': selection '{bead['select']}' matches no atoms")
        return np.sort(np.asarray(indices, dtype=np.int64))
    names = [bead["atoms"]] if isinstance(bead["atoms"], str) else list(bead["atoms"])
    residues = [r for r in topology.residues if ("residue" not in bead or r.name == bead["residue"])
                and ("resid" not in bead or r.index == int(bead["resid"]))]
    where = f"residue {bead.get('residue', '*')} (resid {bead.get('resid', '*')})"
    if not residues:
        raise ValueError(f"bead '{name}': no {where} in the topology")
    found = [atom for residue in residues for atom in residue.atoms if atom.name in names]
    missing = sorted(set(names) - {atom.name for atom in found})
    if missing:
        raise ValueError(f"bead '{name}': atoms {missing} not found in {where}")
    return np.sort(np.array([atom.index for atom in found], dtype=np.int64))


def _topology_bonds(beads: list, topology) -> list:
    """Bead pairs joined by an AA bond path whose inner atoms belong to no bead."""
    if topology is None or topology.n_bonds == 0:
        raise ValueError("bonds: topology needs an AA topology with bonds; use 'sequence' or an explicit list")
    neighbours = [[] for _ in range(topology.n_atoms)]
    for a, b in topology.bonds:
        neighbours[a.index].append(b.index)
        neighbours[b.index].append(a.index)
    owners = [set() for _ in range(topology.n_atoms)]
    for index, bead in enumerate(beads):
        for atom in bead["indices"]:
            owners[atom].add(index)
    bonds = set()
    for index, bead in enumerate(beads):
        seen, frontier = set(bead["indices"]), list(bead["indices"])
        while frontier:
            atom = frontier.pop()
            for other in neighbours[atom]:
                if other in seen:
                    continue
                seen.add(other)
                if owners[other] - {index}:
                    bonds.update(tuple(sorted((index, j))) for j in owners[other] - {index})
                elif not owners[other]:
                    frontier.append(other)
    return sorted(bonds)
