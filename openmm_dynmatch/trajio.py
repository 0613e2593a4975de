"""Trajectories on disk: mdtraj HDF5 files with forces and package metadata.

One format serves AA reference MD, mapped CG data and CG simulations. The file is a standard mdtraj HDF5
trajectory (``mdtraj.load`` reads it) with additions that mdtraj ignores:

- ``/forces``: an extendable float32 array ``(n_frames, n_atoms, 3)`` in kJ/mol/nm, when forces were saved;
- per-file arrays (:meth:`TrajectoryWriter.set_array`, :func:`read_array`), e.g. ``/constraints``, the
  constrained atom pairs of an AA run, which can outgrow the 64 KiB an HDF5 attribute may hold;
- the root attribute ``dynmatch_metadata``: a JSON object (temperature_k, timestep_ps, frame_interval_ps,
  masses_amu, ... whatever the writer recorded).

Positions are stored by mdtraj in float32 (nm), velocities in nm/ps, time in ps.

A file may hold several independent trajectories one after the other (e.g. AA replicas mapped into one CG
file): the metadata key ``trajectory_lengths`` lists their frame counts in file order (summing to the number of
frames), and :func:`trajectory_segments` turns it into half-open ``(start, stop)`` frame ranges. A file
without the key is one trajectory. Each trajectory keeps its own time stamps.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from openmm_dynmatch.errors import FileFormatError, short_reason

METADATA_ATTR = "dynmatch_metadata"
#: Metadata key: frame counts of the independent trajectories stored one after the other in a file.
LENGTHS_KEY = "trajectory_lengths"
#: Per-file array node: the constrained atom pairs of the run, shape (n_constraints, 2), int (AA reference MD).
CONSTRAINTS_NODE = "constraints"
_EXTENDABLE = (
    "coordinates", "time", "cell_lengths", "cell_angles", "velocities",
    "kineticEnergy", "potentialEnergy", "temperature", "alchemicalLambda", "forces",
)


@dataclass
class TrajectoryData:
    """A trajectory read back from disk.

    Attributes
    ----------
    positions : np.ndarray, shape (n_frames, n_atoms, 3), nm, float64
    time_ps : np.ndarray, shape (n_frames,), ps
    topology : mdtraj.Topology
    metadata : dict
    velocities : np.ndarray or None, shape (n_frames, n_atoms, 3), nm/ps
    forces : np.ndarray or None, shape (n_frames, n_atoms, 3), kJ/mol/nm
    box_vectors : np.ndarray or None, shape (n_frames, 3, 3), nm
    """

    positions: np.ndarray
    time_ps: np.ndarray
    topology: object
    metadata: dict
    velocities: Optional[np.ndarray] = None
    forces: Optional[np.ndarray] = None
    box_vectors: Optional[np.ndarray] = None

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def segments(self) -> list:
        """Half-open ``(start, stop)`` frame ranges of the independent trajectories (see
        :func:`trajectory_segments`)."""
        return trajectory_segments(self.metadata, self.n_frames)

    def to_mdtraj(self):
        """The positions as an ``mdtraj.Trajectory`` (with unit cell where present)."""
        import mdtraj

        traj = mdtraj.Trajectory(self.positions, self.topology, time=self.time_ps)
        if self.box_vectors is not None:
            traj.unitcell_vectors = self.box_vectors
        return traj


class TrajectoryWriter:
    """Append frames to an mdtraj HDF5 trajectory, chunk by chunk.

    Parameters
    ----------
    path : str or Path
        File to write. With ``append=False`` an existing file is overwritten.
    topology : mdtraj.Topology
        Topology of the atoms (or CG beads) in the file.
    metadata : dict
        JSON-serialisable metadata stored in the file.
    append : bool
        Continue an existing file (its metadata is kept and updated with ``metadata``).

    Examples
    --------
    >>> with TrajectoryWriter("out.h5", top, {"temperature_k": 300.0}) as writer:   # doctest: +SKIP
    ...     writer.write(positions_nm, time_ps, forces=forces)
    """

    def __init__(self, path, topology, metadata: dict, append: bool = False):
        from mdtraj.formats import HDF5TrajectoryFile

        self.path = Path(path)
        if append and not self.path.exists():
            raise FileNotFoundError(f"cannot append to {self.path}: no such file")
        self._file = HDF5TrajectoryFile(str(self.path), mode="a" if append else "w")
        handle = self._file._handle
        stored = {}
        if append:
            stored = json.loads(handle.root._v_attrs[METADATA_ATTR]) if METADATA_ATTR in handle.root._v_attrs else {}
        else:
            self._file.topology = topology
        stored.update(metadata)
        handle.root._v_attrs[METADATA_ATTR] = json.dumps(stored, sort_keys=True)
        self.n_atoms = topology.n_atoms

    @property
    def n_frames(self) -> int:
        handle = self._file._handle
        return handle.root.coordinates.shape[0] if "coordinates" in handle.root else 0

    def write(self, positions_nm, time_ps, velocities=None, forces=None, box_vectors_nm=None) -> None:
        """Append frames.

        Parameters
        ----------
        positions_nm : array, shape (n, n_atoms, 3), nm
        time_ps : array, shape (n,), ps
        velocities : array, shape (n, n_atoms, 3), nm/ps, optional
        forces : array, shape (n, n_atoms, 3), kJ/mol/nm, optional
        box_vectors_nm : array, shape (n, 3, 3), nm, optional
        """
        positions = np.asarray(positions_nm, dtype=np.float32)
        if positions.ndim != 3 or positions.shape[1:] != (self.n_atoms, 3):
            raise ValueError(
                f"positions_nm must have shape (n_frames, {self.n_atoms}, 3), got {positions.shape}")
        kwargs = {"time": np.asarray(time_ps, dtype=np.float32).reshape(-1)}
        if velocities is not None:
            kwargs["velocities"] = np.asarray(velocities, dtype=np.float32)
        if box_vectors_nm is not None:
            from mdtraj.utils import box_vectors_to_lengths_and_angles

            box = np.asarray(box_vectors_nm, dtype=np.float64)
            a, b, c, alpha, beta, gamma = box_vectors_to_lengths_and_angles(box[:, 0], box[:, 1], box[:, 2])
            kwargs["cell_lengths"] = np.stack([a, b, c], axis=1).astype(np.float32)
            kwargs["cell_angles"] = np.stack([alpha, beta, gamma], axis=1).astype(np.float32)
        self._file.write(positions, **kwargs)
        handle = self._file._handle
        if forces is not None:
            forces = np.asarray(forces, dtype=np.float32)
            if forces.shape != positions.shape:
                raise ValueError(f"forces must have shape {positions.shape}, got {forces.shape}")
            if "forces" not in handle.root:
                if self.n_frames != positions.shape[0]:
                    raise ValueError("forces were not written for earlier frames of this file")
                import tables

                node = handle.create_earray(handle.root, "forces", tables.Float32Atom(),
                                            shape=(0, self.n_atoms, 3), filters=tables.Filters(complib="zlib", complevel=1))
                node.attrs["units"] = "kilojoule/mole/nanometer"
            handle.root.forces.append(forces)
        elif "forces" in handle.root:
            raise ValueError("this file stores forces: pass forces for every chunk")

    def set_array(self, name: str, values) -> None:
        """Store a per-file (not per-frame) integer or float array as the root node ``/name``, replacing any.

        Used for data too large for the metadata attribute, e.g. the constrained atom pairs of an AA run
        (:data:`CONSTRAINTS_NODE`); read it back with :func:`read_array`.

        Parameters
        ----------
        name : str
            Node name; not one of the per-frame arrays (``coordinates``, ``forces``, ...) nor ``topology``.
        values : array
        """
        if not isinstance(name, str) or not name.isidentifier() or name in _EXTENDABLE + ("topology",):
            raise ValueError(f"name must be an identifier other than the per-frame arrays {_EXTENDABLE} and "
                             f"'topology', got {name!r}")
        values = np.asarray(values)
        if values.dtype.kind not in "iuf":
            raise ValueError(f"array '{name}' must hold numbers, got dtype {values.dtype}")
        handle = self._file._handle
        if name in handle.root:
            handle.remove_node(handle.root, name)
        handle.create_array(handle.root, name, obj=values)

    def flush(self) -> None:
        """Flush written frames to disk."""
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metadata(path) -> dict:
    """The ``dynmatch_metadata`` JSON of a trajectory file (empty dict if absent)."""
    import tables

    _check_exists(path)
    try:
        with tables.open_file(str(path), "r") as handle:
            attrs = handle.root._v_attrs
            return json.loads(attrs[METADATA_ATTR]) if METADATA_ATTR in attrs else {}
    except READ_ERRORS as err:
        raise unreadable(path, err) from err


def read_array(path, name: str):
    """The per-file array ``/name`` stored with :meth:`TrajectoryWriter.set_array`, or None if absent."""
    import tables

    _check_exists(path)
    try:
        with tables.open_file(str(path), "r") as handle:
            return np.asarray(handle.root[name].read()) if name in handle.root else None
    except READ_ERRORS as err:
        raise unreadable(path, err) from err


def trajectory_segments(metadata: dict, n_frames: int) -> list:
    """Frame ranges of the independent trajectories stored one after the other in a file.

    Parameters
    ----------
    metadata : dict
        A file's metadata; its ``trajectory_lengths`` (list of frame counts) splits the frames. Without the
        key (older files, single runs) all frames are one trajectory.
    n_frames : int
        Frames in the file (or in the loaded selection, whose metadata :func:`load` adjusts).

    Returns
    -------
    list of (int, int)
        Half-open ``(start, stop)`` ranges, in file order, covering ``0..n_frames`` without gaps.

    Raises
    ------
    ValueError
        If the lengths are not positive integers summing to ``n_frames``.
    """
    n_frames = int(n_frames)
    lengths = (metadata or {}).get(LENGTHS_KEY)
    if lengths is None:
        return [(0, n_frames)]
    valid = isinstance(lengths, (list, tuple)) and all(
        not isinstance(n, bool) and isinstance(n, (int, np.integer)) and n >= 1 for n in lengths)
    if not valid or sum(int(n) for n in lengths) != n_frames:
        raise ValueError(f"metadata {LENGTHS_KEY} must be a list of positive integers summing to the {n_frames} "
                         f"frames, got {lengths!r}")
    stops = np.cumsum([int(n) for n in lengths])
    return [(int(stop - n), int(stop)) for n, stop in zip(lengths, stops)]


def _selected_lengths(lengths, n_total: int, selection: slice) -> list:
    """Frame counts per trajectory of the frames ``selection`` keeps (trajectories left empty are dropped)."""
    try:
        stops = np.cumsum(np.asarray(lengths, dtype=np.int64).reshape(-1))
    except (TypeError, ValueError):
        return lengths
    if stops.size == 0 or stops[-1] != n_total:  # inconsistent metadata: trajectory_segments reports it
        return lengths
    kept = np.arange(n_total)[selection]
    counts = np.bincount(np.searchsorted(stops, kept, side="right"), minlength=len(stops))
    return [int(n) for n in counts if n > 0]


def count_frames(path) -> int:
    """Number of frames stored in a trajectory file."""
    import tables

    _check_exists(path)
    try:
        with tables.open_file(str(path), "r") as handle:
            return int(handle.root.coordinates.shape[0]) if "coordinates" in handle.root else 0  # not numpy's
    except READ_ERRORS as err:
        raise unreadable(path, err) from err


def truncate_frames(path, n_frames: int) -> None:
    """Cut every per-frame array of the file to its first ``n_frames`` frames (used when resuming)."""
    import tables

    _check_exists(path)
    try:
        with tables.open_file(str(path), "a") as handle:
            for name in _EXTENDABLE:
                if name in handle.root:
                    node = handle.root[name]
                    if node.shape[0] > n_frames:
                        node.truncate(n_frames)
    except READ_ERRORS as err:
        raise unreadable(path, err) from err


def load(path, stride: int = 1, start: int = 0, stop: Optional[int] = None) -> TrajectoryData:
    """Read a trajectory file written by :class:`TrajectoryWriter` (or any mdtraj HDF5 file).

    Parameters
    ----------
    path : str or Path
    stride, start, stop : int
        Frame selection ``[start:stop:stride]``. For a file of several trajectories the returned metadata's
        ``trajectory_lengths`` counts the selected frames of each (trajectories with none are dropped), so
        :attr:`TrajectoryData.segments` describes the loaded arrays.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    openmm_dynmatch.fileio.FileFormatError
        If the file is truncated, not HDF5, or lacks the trajectory arrays (one line naming the file).
    """
    _check_exists(path)
    if stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    try:
        topology, arrays = _read(path, slice(start, stop, stride))
    except READ_ERRORS as err:
        raise unreadable(path, err) from err
    if topology is None:
        raise ValueError(f"{path} has no topology; it is not a trajectory this package can read")
    return TrajectoryData(topology=topology, **arrays)


def _read(path, selection: slice) -> tuple:
    """The topology and the arrays of :class:`TrajectoryData` of the frames ``selection`` of a file."""
    import tables
    from mdtraj.formats import HDF5TrajectoryFile

    with HDF5TrajectoryFile(str(path), mode="r") as traj_file:
        topology = traj_file.topology
    with tables.open_file(str(path), "r") as handle:
        root = handle.root
        positions = np.asarray(root.coordinates[selection], dtype=np.float64)
        time_ps = np.asarray(root.time[selection], dtype=np.float64) if "time" in root else \
            np.arange(positions.shape[0], dtype=np.float64)
        velocities = np.asarray(root.velocities[selection], dtype=np.float64) if "velocities" in root else None
        forces = np.asarray(root.forces[selection], dtype=np.float64) if "forces" in root else None
        box = None
        if "cell_lengths" in root:
            from mdtraj.utils import lengths_and_angles_to_box_vectors

            lengths = np.asarray(root.cell_lengths[selection], dtype=np.float64)
            angles = np.asarray(root.cell_angles[selection], dtype=np.float64)
            a, b, c = lengths_and_angles_to_box_vectors(*lengths.T, *angles.T)
            box = np.stack([a, b, c], axis=1)
        metadata = json.loads(root._v_attrs[METADATA_ATTR]) if METADATA_ATTR in root._v_attrs else {}
        if metadata.get(LENGTHS_KEY) and selection != slice(0, None, 1):
            metadata[LENGTHS_KEY] = _selected_lengths(metadata[LENGTHS_KEY], root.coordinates.shape[0], selection)
    return topology, dict(positions=positions, time_ps=time_ps, metadata=metadata, velocities=velocities,
                          forces=forces, box_vectors=box)


#: What reading a damaged file raises, from HDF5 (``tables.HDF5ExtError`` is a RuntimeError), mdtraj, PyTables
#: (missing nodes are LookupErrors) and the metadata's JSON.
READ_ERRORS = (OSError, RuntimeError, LookupError, AttributeError, TypeError, ValueError)


def unreadable(path, err: BaseException) -> FileFormatError:
    """The one-line error for a trajectory file that exists but cannot be read."""
    return FileFormatError(f"{path}: cannot read it as an HDF5 trajectory ({short_reason(err)}); the file is "
                           f"truncated (an interrupted write or copy) or not an HDF5 trajectory; write it again "
                           f"with the command that made it")


def _check_exists(path) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
