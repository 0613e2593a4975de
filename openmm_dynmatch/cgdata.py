"""Import trajectory data that is already coarse-grained (CG) into the mapped-data format training reads.

:func:`import_cg` takes bead trajectories as arrays (nm), optionally with forces (kJ/mol/nm), and the CG
metadata the trainer needs (masses, bonds, temperature, time between frames; bead names and types optional) and
writes the same HDF5 file as :func:`openmm_dynmatch.mapping.map_trajectory` (the format of
:mod:`openmm_dynmatch.trajio`), which ``data.cg_path`` of a training configuration accepts. Several independent
trajectories go into one file with their frame counts in ``trajectory_lengths``, so training windows and
splits never join two of them.

:func:`import_cg_files` does the same from files (what ``dynmatch import`` calls): ``.npz`` archives
(:func:`read_cg_input`) or trajectories mdtraj reads, with the metadata in a dict (e.g. a YAML file read with
:func:`read_metadata_yaml`, updated with command-line flags).

Examples
--------
>>> from openmm_dynmatch.cgdata import import_cg                                      # doctest: +SKIP
>>> import_cg([run0_nm, run1_nm], "cg.h5", masses_amu=[12.0, 14.0, 12.0], bonds=[[0, 1], [1, 2]],
...           temperature_k=300.0, frame_interval_ps=0.5, forces=[f0, f1])           # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from openmm_dynmatch.errors import short_reason
from openmm_dynmatch.units import positive_float, strip_unit

#: Metadata :func:`import_cg` cannot do without (``bonds`` may be an empty list).
REQUIRED_METADATA = ("masses_amu", "bonds", "temperature_k", "frame_interval_ps")
#: Metadata with defaults: bead names ``B0, B1, ...``, every bead of type 0, type names ``T0, T1, ...``, no timestep.
OPTIONAL_METADATA = ("bead_names", "bead_types", "type_names", "timestep_ps")
METADATA_KEYS = REQUIRED_METADATA + OPTIONAL_METADATA
#: Suffixes of the trajectory formats that store their own topology (others need ``topology``).
_WITH_TOPOLOGY = (".pdb", ".pdb.gz", ".gro")


def import_cg(trajectories, out_path, *, masses_amu, bonds, temperature_k, frame_interval_ps, bead_names=None,
              bead_types=None, type_names=None, forces=None, timestep_ps=None, overwrite: bool = False,
              topology=None) -> Path:
    """Write CG trajectories and their metadata as a mapped-data file for training (``data.cg_path``).

    Parameters
    ----------
    trajectories : array or sequence of arrays, shape (n_frames, n_beads, 3), nm
        One trajectory, or several independent ones (their frame counts may differ; at least 2 frames each).
        ``openmm.unit`` quantities are converted.
    out_path : str or Path
        HDF5 file to write (atomically: nothing is left behind on failure).
    masses_amu : array, shape (n_beads,), amu
        Bead masses, positive.
    bonds : array, shape (n_bonds, 2), int
        Bonded bead pairs (distinct indices in ``0..n_beads-1``; strings ``"i-j"`` are accepted too; an empty
        list for none). Stored sorted (``i < j``) and without duplicates.
    temperature_k : float or openmm.unit.Quantity
        Temperature of the simulation the data come from, K.
    frame_interval_ps : float or openmm.unit.Quantity
        Time between consecutive frames, ps; frame times are ``0, dt, 2 dt, ...`` in every trajectory.
    bead_names : sequence of str, optional
        One per bead (default ``B0, B1, ...``, or the atom names of ``topology``).
    bead_types : sequence of int, optional
        Type index of every bead, into ``type_names`` (default: all 0).
    type_names : sequence of str, optional
        Names of the bead types; must name every type used (default ``T0, T1, ...``).
    forces : array or sequence of arrays, shape (n_frames, n_beads, 3), kJ/mol/nm, optional
        Forces on the beads, structured like ``trajectories`` (needed for force matching).
    timestep_ps : float or openmm.unit.Quantity, optional
        Integration timestep of the source simulation, ps (stored for reference only).
    overwrite : bool
        Replace an existing ``out_path`` (default: refuse).
    topology : mdtraj.Topology, openmm.app.Topology, str or Path, optional
        Chains and residues of the beads (e.g. read with the data); one atom per bead. Default: one chain, one
        residue per bead named after it. Atom names are always the bead names and bonds always ``bonds``.

    Returns
    -------
    pathlib.Path
        ``out_path``. Its metadata holds ``temperature_k``, ``timestep_ps``, ``frame_interval_ps``,
        ``masses_amu``, ``bead_names``, ``bead_types``, ``type_names``, ``bonds``, ``trajectory_lengths``,
        ``forces_mapped`` and ``source: "import"``.

    Raises
    ------
    ValueError
        When an argument has the wrong shape, non-finite values, a non-positive mass, temperature or interval,
        a bond out of range, too few frames, or names that do not cover the beads or types (the message names
        the argument, what was expected and what came).
    FileExistsError
        If ``out_path`` exists and ``overwrite`` is False.
    """
    from openmm_dynmatch import trajio
    from openmm_dynmatch.fileio import atomic_path

    from openmm_dynmatch.mapping import as_mdtraj_topology

    out_path = _check_out_path(out_path, overwrite)
    topology = as_mdtraj_topology(topology) if topology is not None else None
    positions = _trajectory_list(trajectories, "trajectories", "nm")
    n_beads = positions[0].shape[1]
    force_list = None
    if forces is not None:
        force_list = _trajectory_list(forces, "forces", "kJ/mol/nm", like=positions)
    meta = _checked_metadata(n_beads, masses_amu, bonds, temperature_k, frame_interval_ps, bead_names, bead_types,
                             type_names, timestep_ps, topology)
    meta.update({trajio.LENGTHS_KEY: [int(p.shape[0]) for p in positions], "forces_mapped": force_list is not None,
                 "source": "import"})
    bead_topology = _bead_topology(meta["bead_names"], meta["bonds"], topology)
    with warnings.catch_warnings(), atomic_path(out_path) as tmp:
        warnings.filterwarnings("ignore", message="The .h5 extension is recommended")  # the temporary name
        with trajio.TrajectoryWriter(tmp, bead_topology, meta) as writer:
            for index, frames in enumerate(positions):
                time_ps = np.arange(frames.shape[0]) * meta["frame_interval_ps"]
                writer.write(frames, time_ps, forces=None if force_list is None else force_list[index])
    return out_path


def _check_out_path(out_path, overwrite: bool) -> Path:
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ValueError(f"out_path must be a file path, got the folder {out_path}")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"out_path: {out_path} already exists; pass overwrite=True to replace it, or choose "
                              f"another out_path")
    return out_path


def _trajectory_list(value, name: str, unit_key: str, like: Optional[list] = None) -> list:
    """The trajectories (or forces) as a list of float64 arrays (n_frames, n_beads, 3), checked; ``like``: the
    positions that forces must match."""
    value = strip_unit(value, unit_key, name)
    if isinstance(value, (list, tuple)) and len(value) == 0:
        raise ValueError(f"{name} must be an array (n_frames, n_beads, 3) or a non-empty sequence of them, got an "
                         f"empty {type(value).__name__}")
    several = isinstance(value, (list, tuple)) and _ndim(strip_unit(value[0], unit_key, name)) != 2
    items = [(f"{name}[{i}]", strip_unit(v, unit_key, f"{name}[{i}]")) for i, v in enumerate(value)] \
        if several else [(name, value)]
    if like is not None and len(items) != len(like):
        raise ValueError(f"{name} must hold one array per trajectory ({len(like)}), got {len(items)}")
    arrays = []
    for index, (label, item) in enumerate(items):
        array = _float_array(item, label, unit_key)
        if like is not None and array.shape != like[index].shape:
            raise ValueError(f"{label} must have the shape of its positions {like[index].shape}, got {array.shape}")
        n_beads = arrays[0].shape[1] if arrays else None
        if array.ndim != 3 or array.shape[2] != 3 or array.shape[1] < 1 or n_beads not in (None, array.shape[1]):
            expected = f"(n_frames, {n_beads}, 3) like {items[0][0]}" if n_beads else "(n_frames, n_beads, 3)"
            raise ValueError(f"{label} must have shape {expected}, {unit_key}, got {array.shape}")
        if like is None and array.shape[0] < 2:
            raise ValueError(f"{label} must have at least 2 frames (training windows span several), got "
                             f"{array.shape[0]}")
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            raise ValueError(f"{label} must hold finite values ({unit_key}), got {len(bad)} NaN/inf entries (first "
                             f"at frame {bad[0][0]}, bead {bad[0][1]})")
        arrays.append(array)
    return arrays


def _ndim(value) -> int:
    try:
        return np.ndim(value)
    except ValueError:  # ragged nesting
        return -1


def _float_array(value, name: str, unit_key: str) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        value = [strip_unit(v, unit_key, name) for v in value]
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers in {unit_key} (a regular array), got {_short(value)} "
                         f"({short_reason(err)})") from err


def _checked_metadata(n_beads, masses_amu, bonds, temperature_k, frame_interval_ps, bead_names, bead_types,
                      type_names, timestep_ps, topology) -> dict:
    """The validated metadata keys (plain floats, ints, lists) of :func:`import_cg`."""
    masses = _float_array(strip_unit(masses_amu, "amu", "masses_amu"), "masses_amu", "amu")
    if masses.shape != (n_beads,):
        raise ValueError(f"masses_amu must hold one mass per bead, shape ({n_beads},), got {_short(masses_amu)} "
                         f"(shape {masses.shape})")
    if not np.all(np.isfinite(masses) & (masses > 0)):
        raise ValueError(f"masses_amu must be finite positive masses in amu, got {_short(masses.tolist())}")
    if topology is not None and getattr(topology, "n_atoms", None) != n_beads:
        raise ValueError(f"topology must have one atom per bead ({n_beads}), got "
                         f"{getattr(topology, 'n_atoms', type(topology).__name__)}")
    if bead_names is None:
        bead_names = [atom.name for atom in topology.atoms] if topology is not None else \
            [f"B{i}" for i in range(n_beads)]
    names = _names(bead_names, "bead_names", n_beads, f"one per bead ({n_beads})")
    types = _bead_types(bead_types, n_beads)
    n_types = int(types.max()) + 1
    type_names = [f"T{t}" for t in range(n_types)] if type_names is None else \
        _names(type_names, "type_names", None, f"one per bead type 0..{n_types - 1} (at least {n_types})")
    if len(type_names) < n_types:
        raise ValueError(f"type_names must name every bead type 0..{n_types - 1} (at least {n_types} names), got "
                         f"{len(type_names)}: {type_names}")
    return {"temperature_k": positive_float(temperature_k, "K", "temperature_k"),
            "timestep_ps": None if timestep_ps is None else positive_float(timestep_ps, "ps", "timestep_ps"),
            "frame_interval_ps": positive_float(frame_interval_ps, "ps", "frame_interval_ps"),
            "masses_amu": [float(m) for m in masses], "bead_names": names,
            "bead_types": [int(t) for t in types], "type_names": type_names,
            "bonds": _checked_bonds(bonds, n_beads).tolist()}


def _names(values, name: str, count: Optional[int], expected: str) -> list:
    if not isinstance(values, (list, tuple, np.ndarray)) or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{name} must be a list of non-empty strings, {expected}, got {_short(values)}")
    values = [str(v) for v in values]
    if count is not None and len(values) != count:
        raise ValueError(f"{name} must hold {count} names, one per bead, got {len(values)}: {_short(values)}")
    return values


def _bead_types(bead_types, n_beads: int) -> np.ndarray:
    if bead_types is None:
        return np.zeros(n_beads, dtype=np.int64)
    types = np.asarray(bead_types)
    if types.shape != (n_beads,) or types.dtype.kind not in "iu" or (types.size and types.min() < 0):
        raise ValueError(f"bead_types must hold one non-negative integer type per bead, shape ({n_beads},), got "
                         f"{_short(types.tolist())} (shape {types.shape}, dtype {types.dtype})")
    return types.astype(np.int64)


def parse_bond(text: str) -> tuple:
    """A bond written ``"i-j"`` (bead indices) as ``(i, j)``."""
    parts = str(text).split("-")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"bonds: expected a bond written I-J with two bead indices, e.g. 0-1, got {text!r}")
    return int(parts[0]), int(parts[1])


def _checked_bonds(bonds, n_beads: int) -> np.ndarray:
    """Bonds as an int array (n_bonds, 2) with i < j, sorted and unique."""
    if bonds is None or isinstance(bonds, str):
        raise ValueError(f"bonds must be pairs of bead indices, shape (n_bonds, 2) (an empty list for none), got "
                         f"{bonds!r}")
    if isinstance(bonds, (list, tuple)):
        bonds = [parse_bond(b) if isinstance(b, str) else b for b in bonds]
    try:
        array = np.asarray(bonds)
    except ValueError as err:
        raise ValueError(f"bonds must be pairs of bead indices, shape (n_bonds, 2), got {_short(bonds)}") from err
    if array.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 2 or array.dtype.kind not in "iu":
        raise ValueError(f"bonds must be pairs of integer bead indices, shape (n_bonds, 2), got "
                         f"{_short(array.tolist())} (shape {array.shape}, dtype {array.dtype})")
    bad = (array.min(axis=1) < 0) | (array.max(axis=1) >= n_beads) | (array[:, 0] == array[:, 1])
    if np.any(bad):
        raise ValueError(f"bonds must be pairs of distinct bead indices in 0..{n_beads - 1}, got "
                         f"{_short(array[bad].tolist())}")
    return np.unique(np.sort(array.astype(np.int64), axis=1), axis=0)


def _bead_topology(bead_names: list, bonds: list, topology=None):
    """An ``mdtraj.Topology`` of the beads: ``topology``'s chains and residues (or one residue per bead), atoms
    named after the beads, and the given bonds."""
    import mdtraj

    bead_topology = mdtraj.Topology()
    if topology is None:
        chain = bead_topology.add_chain()
        for index, name in enumerate(bead_names):
            bead_topology.add_atom(name, None, bead_topology.add_residue(name, chain, resSeq=index + 1))
    else:
        for chain in topology.chains:
            new_chain = bead_topology.add_chain()
            for residue in chain.residues:
                new_residue = bead_topology.add_residue(residue.name, new_chain, resSeq=residue.resSeq)
                for atom in residue.atoms:
                    bead_topology.add_atom(bead_names[atom.index], atom.element, new_residue)
    atoms = list(bead_topology.atoms)
    for i, j in bonds:
        bead_topology.add_bond(atoms[i], atoms[j])
    return bead_topology


def _short(value, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


@dataclass
class CGInput:
    """CG trajectories read from a file by :func:`read_cg_input`.

    Attributes
    ----------
    trajectories : list of np.ndarray, each shape (n_frames, n_beads, 3), nm
    forces : list of np.ndarray or None, each shape (n_frames, n_beads, 3), kJ/mol/nm
    bead_names : list of str or None
        The atom names of the file's topology (files mdtraj reads).
    bonds : list of (int, int) or None
        The bonds of the file's topology, when it has any.
    topology : mdtraj.Topology or None
    """

    trajectories: list
    forces: Optional[list] = None
    bead_names: Optional[list] = None
    bonds: Optional[list] = None
    topology: object = None


def read_cg_input(path, topology=None) -> CGInput:
    """Read CG trajectories from a ``.npz`` archive or a trajectory file mdtraj reads.

    Parameters
    ----------
    path : str or Path
        ``.npz`` with ``positions`` (n_frames, n_beads, 3), nm, and optionally ``forces``, kJ/mol/nm; or several
        trajectories as ``positions_0``, ``positions_1``, ... (and ``forces_0``, ...). Any other file is read
        with mdtraj (positions in nm, bead names and bonds from its topology); an HDF5 file of this package
        (``.h5``) also gives its forces and its trajectories (``trajectory_lengths``).
    topology : str, Path or mdtraj.Topology, optional
        Topology for formats that store none (``.dcd``, ``.xtc``, ``.trr``, ``.nc``, ...), or to replace a
        stored one with the same number of atoms.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If an archive holds other arrays, mixes ``positions`` with ``positions_<i>``, numbers them with gaps,
        gives forces for some trajectories only; or mdtraj cannot read the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CG input file not found: {path}")
    if path.suffix == ".npz":
        return _read_npz(path)
    return _read_mdtraj(path, topology)


def _read_npz(path: Path) -> CGInput:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    numbered = [key for key in arrays if key.startswith("positions_")]
    if "positions" in arrays and numbered:
        raise ValueError(f"{path}: give either 'positions' or 'positions_0', 'positions_1', ..., got both")
    keys = ["positions"] if "positions" in arrays else [f"positions_{i}" for i in range(len(numbered))]
    if not numbered and "positions" not in arrays or numbered and set(numbered) != set(keys):
        raise ValueError(f"{path}: expected an array 'positions' or arrays 'positions_0', 'positions_1', ... "
                         f"(numbered from 0 without gaps), got {sorted(arrays)}")
    force_keys = [key.replace("positions", "forces") for key in keys]
    known = set(keys) | set(force_keys)
    if set(arrays) - known:
        raise ValueError(f"{path}: unknown arrays {sorted(set(arrays) - known)}; an archive holds "
                         f"{' and '.join(sorted(known))} only")
    present = [key in arrays for key in force_keys]
    if any(present) and not all(present):
        raise ValueError(f"{path}: forces must be given for every trajectory or none, got "
                         f"{[key for key in force_keys if key in arrays]} for {keys}")
    forces = [arrays[key] for key in force_keys] if all(present) else None
    return CGInput([arrays[key] for key in keys], forces)


def _read_mdtraj(path: Path, topology) -> CGInput:
    import mdtraj

    from openmm_dynmatch import trajio
    from openmm_dynmatch.mapping import as_mdtraj_topology

    given = as_mdtraj_topology(topology) if topology is not None else None
    forces = None
    if path.suffix == ".h5":
        data = trajio.load(path)
        stored, segments = data.topology, data.segments
        positions = [data.positions[a:b] for a, b in segments]
        forces = None if data.forces is None else [data.forces[a:b] for a, b in segments]
    else:
        if given is None and not path.name.endswith(_WITH_TOPOLOGY):
            raise ValueError(f"{path}: this format stores no topology; give topology (dynmatch import --top TOP)")
        try:
            traj = mdtraj.load(str(path), top=given)
        except (OSError, ValueError, TypeError, KeyError, IndexError) as err:
            raise ValueError(f"{path}: mdtraj cannot read it ({short_reason(err)}); give an .npz archive or a "
                             f"trajectory format mdtraj reads, with topology for formats that store none") from err
        stored, positions = traj.topology, [traj.xyz.astype(np.float64)]
    if given is not None and given.n_atoms != stored.n_atoms:
        raise ValueError(f"topology has {given.n_atoms} atoms but {path} holds {stored.n_atoms} beads per frame")
    top = given if given is not None else stored
    bonds = [(a.index, b.index) for a, b in top.bonds] or None  # no bonds: the caller must give them
    return CGInput(positions, forces, [atom.name for atom in top.atoms], bonds, top)


def read_metadata_yaml(path) -> dict:
    """Read CG metadata from a YAML file whose keys are :func:`import_cg`'s keyword arguments.

    Parameters
    ----------
    path : str or Path
        YAML mapping with any of :data:`METADATA_KEYS`, e.g. ``temperature_k: 300``, ``frame_interval_ps: 0.5``,
        ``masses_amu: [12.0, 14.0]``, ``bonds: [[0, 1]]`` (or ``[0-1]``).

    Raises
    ------
    ValueError
        If the file is not a YAML mapping or has other keys (the message lists the known ones).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({short_reason(err)})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping of metadata keys, got a {type(data).__name__}")
    unknown = sorted(set(data) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown metadata keys {unknown}; known: {sorted(METADATA_KEYS)}")
    return data


def import_cg_files(inputs, out_path, *, metadata: Optional[dict] = None, topology=None,
                    overwrite: bool = False) -> Path:
    """Import CG trajectories from files (``.npz`` or mdtraj formats, see :func:`read_cg_input`).

    Every file, and every trajectory in it, becomes one trajectory of ``out_path`` (in the order given).

    Parameters
    ----------
    inputs : str, Path or sequence of them
        The files; they must hold the same beads.
    out_path : str or Path
    metadata : dict, optional
        Keyword arguments of :func:`import_cg` (:data:`METADATA_KEYS`); a value of None counts as absent.
        Bead names and bonds default to those of the files' topology (mdtraj formats).
    topology : str, Path or mdtraj.Topology, optional
        Topology for trajectory formats that store none.
    overwrite : bool
        Replace an existing ``out_path``.

    Raises
    ------
    ValueError
        If required metadata (:data:`REQUIRED_METADATA`) is missing (all missing keys in one message), a key
        is unknown, or the files disagree in beads or in having forces; and as :func:`import_cg`.
    """
    paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else list(inputs))]
    if not paths:
        raise ValueError("inputs must name at least one CG input file, got none")
    _check_out_path(out_path, overwrite)
    given = {key: value for key, value in (metadata or {}).items() if value is not None}
    unknown = sorted(set(given) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"metadata: unknown keys {unknown}; known: {sorted(METADATA_KEYS)}")
    combined = _combine_inputs(paths, [read_cg_input(path, topology) for path in paths])
    found = {key: getattr(combined, key) for key in ("bead_names", "bonds") if getattr(combined, key) is not None}
    settings = {**found, **given}
    missing = [key for key in REQUIRED_METADATA if key not in settings]
    if missing:
        flags = ", ".join("--" + key.replace("_", "-") for key in missing)
        raise ValueError(f"missing metadata: {', '.join(missing)}; give them in --metadata or as flags ({flags}) "
                         f"(from Python: in metadata)")
    return import_cg(combined.trajectories, out_path, forces=combined.forces, topology=combined.topology,
                     overwrite=overwrite, **settings)


def _combine_inputs(paths: list, items: list) -> CGInput:
    """One :class:`CGInput` of the trajectories of every file; the files must agree in beads and forces."""
    first_path, first = paths[0], items[0]
    for path, item in zip(paths[1:], items[1:]):
        if None not in (_n_beads(first), _n_beads(item)) and _n_beads(item) != _n_beads(first):
            raise ValueError(f"inputs: {first_path} holds {_n_beads(first)} beads per frame but {path} holds "
                             f"{_n_beads(item)}; every file must hold the same beads")
        if (item.forces is None) != (first.forces is None):
            with_forces, without = (first_path, path) if item.forces is None else (path, first_path)
            raise ValueError(f"inputs: {with_forces} has forces but {without} has none; give forces for every "
                             f"trajectory or for none")
        if item.bead_names is not None and first.bead_names is not None and item.bead_names != first.bead_names:
            raise ValueError(f"inputs: the beads of {path} ({_short(item.bead_names)}) are not those of {first_path} "
                             f"({_short(first.bead_names)})")
    trajectories = [t for item in items for t in item.trajectories]
    forces = None if first.forces is None else [f for item in items for f in item.forces]
    named = next((item for item in items if item.bead_names is not None), first)
    return CGInput(trajectories, forces, named.bead_names, named.bonds, named.topology)


def _n_beads(item: CGInput) -> Optional[int]:
    shape = np.shape(item.trajectories[0])
    return shape[1] if len(shape) == 3 else None
