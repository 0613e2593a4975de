"""Run CG simulations of many walkers in OpenMM and write them as one multi-chain trajectory.

:func:`simulate` runs ``n_walkers`` copies of an exported model from given start frames (evenly spaced over
them, drawn at random, or cycled: :func:`start_frame_indices`), writes one
mdtraj HDF5 trajectory through :class:`openmm_dynmatch.trajio.TrajectoryWriter` (walker ``w`` is chain
``w``; frames are written after every ``frame_interval_ps``, the start frame is not written), the per-walker
potential energies of every frame to a side file ``<out>.energies.h5`` (dataset ``/energies``,
``(n_frames, n_walkers)`` kJ/mol), and a checkpoint ``<out>.chk`` after every chunk, from which a run resumes.

Writes are atomic: a run writes ``<out>.part`` and ``<out stem>.energies.h5.part`` and renames them to the outputs
only when it has finished, so an interrupted or failed run never leaves a half-written output nor touches the
outputs of an earlier run; the checkpoint is replaced (atomically) only by a newer one, after the first chunk.
Every run has a random ``run_id`` (trajectory metadata, energies attribute, checkpoint): a resume continues the
files of the checkpoint's run, the partial ones or, to extend a finished run, copies of the outputs.

Blow-ups: at every frame each walker is checked (finite positions and velocities, extent below
``max_extent_nm``, finite energy at most ``max_energy_kt_per_bead * kT * n_beads`` above the highest start
energy; energies are evaluated per walker in PyTorch with the exported module). A walker that fails is
logged, counted (result and file metadata ``blowups``/``blowup_events``) and restarted from its last good
frame with fresh Maxwell-Boltzmann velocities; its last good frame is what is written for that frame, so no
NaN is ever written. A walker that fails ``max_restarts`` times in a row stops the run with an error.
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import openmm
import torch
from tqdm.auto import tqdm

from openmm_dynmatch import trajio
from openmm_dynmatch.errors import UnstableSimulationError
from openmm_dynmatch.fileio import torch_load, torch_save
from openmm_dynmatch.openmm.export import load_exported
from openmm_dynmatch.openmm.recorder import maxwell_boltzmann
from openmm_dynmatch.openmm.reference import openmm_seed
from openmm_dynmatch.openmm.cg_walkers import CGSystem, create_system
from openmm_dynmatch.units import kt_kj_per_mol, positive_float, strip_unit

LOGGER = logging.getLogger(__name__)
_NM = openmm.unit.nanometer
_NM_PER_PS = openmm.unit.nanometer / openmm.unit.picosecond


START_SELECTIONS = ("spaced", "random", "cyclic")
PART_SUFFIX = ".part"  # the files a run writes before they are renamed to its outputs
_START_STREAM = 17  # the random draw of start frames uses the stream [seed, 17], apart from the velocities'


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote: paths, frame count, start frames and blow-up report."""

    trajectory_path: Path
    energies_path: Path
    checkpoint_path: Path
    n_frames: int
    n_steps: int
    blowups: int = 0
    blowup_events: list = field(default_factory=list)  # [frame, walker] pairs
    start_frames: Optional[list] = None  # per walker, the index of its start frame in start_positions
    start_selection: Optional[str] = None


def start_frame_indices(n_frames: int, n_walkers: int, selection: Optional[str] = None, seed: int = 0) -> np.ndarray:
    """Which of ``n_frames`` start frames each of ``n_walkers`` walkers starts from.

    Parameters
    ----------
    n_frames : int
        Start frames available (e.g. the frames of a long mapped AA trajectory).
    n_walkers : int
    selection : str, optional
        ``spaced``: walker ``w`` takes frame ``floor(w * n_frames / n_walkers)``, evenly spread over all frames;
        ``random``: a random draw seeded by ``seed``, without repeats while frames last (more walkers than
        frames: every frame once, then again in a new order); ``cyclic``: walker ``w`` takes frame
        ``w % n_frames``. Default: ``spaced`` when there are more frames than walkers, else ``cyclic``.
    seed : int
        Seeds the ``random`` draw (the same seed gives the same frames).

    Returns
    -------
    np.ndarray of int, shape (n_walkers,)
    """
    for name, value in (("n_frames", n_frames), ("n_walkers", n_walkers)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    selection = selection or _default_selection(n_frames, n_walkers)
    walkers = np.arange(n_walkers)
    if selection == "spaced":
        return walkers * n_frames // n_walkers
    if selection == "cyclic":
        return walkers % n_frames
    if selection == "random":
        rng = np.random.default_rng([int(seed), _START_STREAM])
        rounds = -(-n_walkers // n_frames)
        return np.concatenate([rng.permutation(n_frames) for _ in range(rounds)])[:n_walkers]
    raise ValueError(f"unknown start selection '{selection}'; available: {sorted(START_SELECTIONS)}")


def _default_selection(n_frames: int, n_walkers: int) -> str:
    return "spaced" if n_frames > n_walkers else "cyclic"


def energies_path_for(out_path) -> Path:
    """The side file of per-walker energies of trajectory ``out_path``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + ".energies.h5")


def load_energies(out_path) -> np.ndarray:
    """Per-walker potential energies ``(n_frames, n_walkers)`` kJ/mol of a trajectory written by simulate."""
    import tables

    path = energies_path_for(out_path)
    if not path.is_file():
        raise FileNotFoundError(f"energies file not found: {path}")
    with tables.open_file(str(path), "r") as handle:
        return np.asarray(handle.root.energies[:], dtype=np.float64)


def load_walkers(out_path) -> np.ndarray:
    """Positions ``(n_walkers, n_frames, n_beads, 3)`` nm of a trajectory written by :func:`simulate`."""
    data = trajio.load(out_path)
    n_walkers = int(data.metadata.get("n_walkers", 1))
    n_frames, n_atoms = data.positions.shape[:2]
    return data.positions.reshape(n_frames, n_walkers, n_atoms // n_walkers, 3).transpose(1, 0, 2, 3)


def load_start_frames(path, model_path):
    """Start frames of a trajectory file of the model's molecule, or of a multi-walker file of this model.

    Every file frame holds one or more copies of the molecule, one after the other (walker-major, as
    :func:`simulate` writes them); they are split into molecules of the model's ``n_beads`` beads. The file's atom
    names must repeat the model's bead names in order, so that a file of another mapping (another bead count
    that happens to divide, or the same count in another order) is refused instead of being cut into wrong
    molecules.

    Parameters
    ----------
    path : str or Path
        Trajectory file (this package's HDF5 format).
    model_path : str or Path
        Exported model file.

    Returns
    -------
    frames : np.ndarray, shape (n_frames * per_frame, n_beads, 3), nm
    per_frame : int
        Molecules per file frame (walkers of a multi-walker file, else 1).

    Raises
    ------
    ValueError
        If the atoms per frame are not a multiple of the model's beads, the file records another walker count,
        or its atom names are not the model's bead names.
    """
    from openmm_dynmatch.openmm.export import load_metadata

    meta = load_metadata(model_path)
    n_beads, bead_names = int(meta["n_beads"]), [str(name) for name in meta.get("bead_names") or []]
    data = trajio.load(path)
    n_atoms = data.positions.shape[1]
    if n_atoms % n_beads != 0:
        raise ValueError(f"start file {path} has {n_atoms} atoms per frame, not a multiple of the model's {n_beads} "
                         f"beads ({Path(model_path).name})")
    per_frame = n_atoms // n_beads
    recorded = data.metadata.get("n_walkers")
    if recorded is not None and int(recorded) != per_frame:
        raise ValueError(f"start file {path} holds {recorded} walkers of {n_atoms // int(recorded)} beads per frame "
                         f"but the model {Path(model_path).name} has {n_beads} beads")
    names = [atom.name for atom in data.topology.atoms]
    if bead_names and len(bead_names) == n_beads:
        for index, name in enumerate(names):
            if name != bead_names[index % n_beads]:
                raise ValueError(f"start file {path}: atom {index} is '{name}' but bead {index % n_beads} of the "
                                 f"model {Path(model_path).name} is '{bead_names[index % n_beads]}'; the file's "
                                 f"atoms {_name_list(names)} are not the model's beads {_name_list(bead_names)} "
                                 f"(a trajectory of another mapping?)")
    return data.positions.reshape(-1, n_beads, 3), per_frame


def _name_list(names, shown: int = 12) -> str:
    names = [str(name) for name in names]
    return "[" + ", ".join(names if len(names) <= shown else names[:shown] + [f"... {len(names)} in all"]) + "]"


def initial_positions(model_path, bond_length_nm: float = 0.38, platform: Optional[str] = "Reference") -> np.ndarray:
    """A start frame ``(1, n_beads, 3)`` nm: a zig-zag chain relaxed by OpenMM's energy minimiser."""
    cg = create_system(model_path, 1, platform=platform)
    n_beads = cg.n_beads
    index = np.arange(n_beads, dtype=np.float64)
    chain = np.stack([0.9 * bond_length_nm * index, 0.4 * bond_length_nm * (index % 2), np.zeros(n_beads)], 1)
    cg.context.setPositions(chain)
    openmm.LocalEnergyMinimizer.minimize(cg.context, 1.0, 500)
    return cg.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(_NM)[None]


def simulate(model_path, start_positions, n_walkers: int, out_path, *, ns=None, n_steps=None,
             frame_interval_ps=1.0, integrator=None, platform=None, precision=None, seed: int = 0,
             chunk_frames: int = 100, resume: bool = False, progress: bool = True,
             max_energy_kt_per_bead: float = 100.0, max_extent_nm: float = 10.0,
             max_restarts: int = 20, start_selection: Optional[str] = None, timestep_ps=None,
             friction_per_ps=None, bead_friction_per_ps=None) -> SimulationResult:
    """Simulate ``n_walkers`` walkers of an exported model and write their trajectory.

    Parameters
    ----------
    model_path : str or Path
        Exported model file.
    start_positions : array, shape (n_start, n_beads, 3), nm, or None
        Start frames, assigned to walkers as ``start_selection`` says; None: :func:`initial_positions`.
    n_walkers : int
    out_path : str or Path
        Trajectory file (mdtraj HDF5).
    ns, n_steps : float, int
        Length per walker, in ns (or an ``openmm.unit`` time) or in steps; give exactly one. Rounded down
        to whole frames.
    frame_interval_ps : float
        Time between written frames; a multiple of the timestep.
    integrator, platform, precision : str, optional
        See :func:`~openmm_dynmatch.openmm.cg_walkers.create_system`.
    timestep_ps, friction_per_ps : float, optional
        Run with another time step (ps) or friction (1/ps, applied to every bead) than the model was trained
        with, e.g. to check its stability; recorded in the trajectory's metadata. Default: the model's.
    bead_friction_per_ps : sequence of float, optional
        One friction per bead instead (1/ps; see :func:`~openmm_dynmatch.openmm.cg_walkers.create_system`),
        recorded in the metadata as ``bead_friction_per_ps``.
    seed : int
        Seeds the integrator and the Maxwell-Boltzmann velocities.
    chunk_frames : int
        Frames buffered between writes (and checkpoints).
    resume : bool
        Continue from ``<out>.chk`` if it exists: an interrupted run from its partial files, a finished one
        (extended to a longer ``ns``/``n_steps``) from copies of its outputs. False starts a new run, which
        replaces the outputs (and the checkpoint, after its first chunk) of an earlier one.
    progress : bool
        Show a progress bar.
    max_energy_kt_per_bead, max_extent_nm, max_restarts : float, float, int
        Blow-up thresholds (see the module docstring).
    start_selection : str, optional
        ``spaced``, ``random`` (seeded by ``seed``) or ``cyclic`` (see :func:`start_frame_indices`; default:
        ``spaced`` when there are more start frames than walkers, else ``cyclic``). The frames used are in
        ``result.start_frames`` and in the trajectory's metadata ``start_frames``.
    """
    cg = create_system(model_path, n_walkers, platform=platform, precision=precision, integrator=integrator,
                       timestep_ps=timestep_ps, friction_per_ps=friction_per_ps, seed=openmm_seed(seed),
                       bead_friction_per_ps=bead_friction_per_ps)
    plan = _plan(cg, ns, n_steps, frame_interval_ps, chunk_frames)
    given = start_positions is not None
    if not given:
        start_positions = initial_positions(model_path)
    start, indices, selection = _walker_starts(start_positions, n_walkers, cg.n_beads, start_selection, seed)
    guard = _BlowupGuard(load_exported(model_path), cg, start, max_energy_kt_per_bead, max_extent_nm, max_restarts)
    out_path = Path(out_path)
    result = SimulationResult(out_path, energies_path_for(out_path), Path(str(out_path) + ".chk"),
                              plan["n_frames"], plan["n_frames"] * plan["steps_per_frame"],
                              start_frames=indices.tolist() if given else None,
                              start_selection=selection if given else None)
    rng = np.random.default_rng(seed)
    parts = partial_paths(out_path)
    if resume and result.checkpoint_path.exists():
        done, run_id, sources = _resume(cg, result, guard, rng, plan)
        if done >= plan["n_frames"] and all(source == "output" for source in sources.values()):
            return result  # a finished run, not extended: nothing to write
        _materialise_parts(result, parts, sources, done)
    else:  # the old checkpoint stays until this run has written its first chunk
        run_id = uuid.uuid4().hex
        cg.context.setPositions(start.reshape(-1, 3))
        cg.context.setVelocities(maxwell_boltzmann(cg.metadata["masses_amu"], n_walkers,
                                                   cg.metadata["temperature_k"], rng).reshape(-1, 3))
        done = 0
    metadata = dict(cg.metadata, n_walkers=n_walkers, frame_interval_ps=plan["frame_interval_ps"],
                    steps_per_frame=plan["steps_per_frame"], seed=seed, platform=cg.platform.getName(),
                    source=Path(model_path).name, start_frames=result.start_frames,
                    start_selection=result.start_selection, run_id=run_id)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = _open_writer(parts["trajectory"], cg.mdtraj_topology(), metadata, append=done > 0)
    energy_log = _EnergyLog(parts["energies"], n_walkers, append=done > 0, run_id=run_id)
    finished = False
    try:
        _run_frames(cg, guard, plan, done, writer, energy_log, result, rng, progress, run_id)
        finished = True
    finally:
        empty = writer.n_frames == 0
        writer.close()
        energy_log.close()
        if not finished and empty:  # no checkpoint refers to these files: leave no empty file behind
            for path in parts.values():
                path.unlink(missing_ok=True)
    _open_writer(parts["trajectory"], cg.mdtraj_topology(), {"blowups": result.blowups,
                                                            "blowup_events": result.blowup_events},
                 append=True).close()
    os.replace(parts["energies"], result.energies_path)
    os.replace(parts["trajectory"], result.trajectory_path)
    return result


def split_walkers(path, out_paths) -> list:
    """Write the walkers of a :func:`simulate` trajectory as ``len(out_paths)`` files of equal walker groups.

    Walkers are independent, so several productions of one model (other seeds, the same start frames) can run as
    one System of all their walkers, which costs far less than one System each on the CPU (a force evaluation
    has a large fixed cost, ``benchmarks/potential_speed.py``), and be split afterwards. Group ``k`` gets walkers
    ``k * g .. (k + 1) * g - 1`` (``g = n_walkers / len(out_paths)``) with their energies, when the energies file
    exists; its metadata keeps the run's (seed, model, friction) with ``n_walkers = g``, its ``start_frames``
    (indices into the start positions of the whole run) and ``walker_group = [k, n_groups]``. Every file is
    written atomically.

    Parameters
    ----------
    path : str or Path
        Trajectory written by :func:`simulate` (metadata ``n_walkers``).
    out_paths : sequence of str or Path
        One file per group; the walker count must divide into them.

    Returns
    -------
    list of Path
    """
    import tables

    from openmm_dynmatch.fileio import atomic_path

    out_paths = [Path(p) for p in out_paths]
    data = trajio.load(path)
    n_walkers = int(data.metadata.get("n_walkers", 1))
    n_groups = len(out_paths)
    if n_groups < 1 or n_walkers % n_groups:
        raise ValueError(f"out_paths: {path} holds {n_walkers} walkers, which do not split into "
                         f"{n_groups} equal groups")
    group = n_walkers // n_groups
    n_beads = data.positions.shape[1] // n_walkers
    energies = load_energies(path) if energies_path_for(path).is_file() else None
    starts = data.metadata.get("start_frames")
    for k, out in enumerate(out_paths):
        walkers = slice(k * group, (k + 1) * group)
        atoms = slice(walkers.start * n_beads, walkers.stop * n_beads)
        metadata = dict(data.metadata, n_walkers=group, walker_group=[k, n_groups],
                        start_frames=starts[walkers] if starts is not None else None)
        with atomic_path(out) as tmp:
            writer = _open_writer(Path(tmp), data.topology.subset(range(atoms.start, atoms.stop)), metadata,
                                  append=False)
            extra = {name: getattr(data, name)[:, atoms] for name in ("velocities", "forces")
                     if getattr(data, name) is not None}
            writer.write(data.positions[:, atoms], data.time_ps, box_vectors_nm=data.box_vectors, **extra)
            writer.close()
        if energies is not None:
            with atomic_path(energies_path_for(out)) as tmp:
                with tables.open_file(str(tmp), "w") as handle:
                    handle.create_array(handle.root, "energies", np.ascontiguousarray(energies[:, walkers]))
    return out_paths


def partial_paths(out_path) -> dict:
    """The files a run of :func:`simulate` writes before renaming them: ``trajectory`` and ``energies``."""
    out_path = Path(out_path)
    energies = energies_path_for(out_path)
    return {"trajectory": out_path.with_name(out_path.name + PART_SUFFIX),
            "energies": energies.with_name(energies.name + PART_SUFFIX)}


def _open_writer(path: Path, topology, metadata: dict, append: bool):
    with warnings.catch_warnings():  # mdtraj asks for a .h5 suffix, which the partial file lacks
        warnings.filterwarnings("ignore", message="The .h5 extension is recommended")
        return trajio.TrajectoryWriter(path, topology, metadata, append=append)


def _run_frames(cg, guard, plan, done, writer, energy_log, result, rng, progress, run_id: str) -> None:
    """Integrate frame by frame from frame ``done``, checking walkers and writing chunk by chunk."""
    frame_time = plan["frame_interval_ps"]
    buffer_positions, buffer_energies = [], []
    bar = tqdm(total=plan["n_frames"], initial=done, disable=not progress, desc="simulating", unit="frame")
    for frame in range(done, plan["n_frames"]):
        try:
            cg.integrator.step(plan["steps_per_frame"])
        except openmm.OpenMMException as err:  # some platforms refuse NaN coordinates; the guard restores
            LOGGER.warning("integration error at frame %d (%s); checking walkers", frame, err)
        positions, energies = guard.check(frame, rng, result)
        buffer_positions.append(positions)
        buffer_energies.append(energies)
        bar.update(1)
        if len(buffer_positions) == plan["chunk_frames"] or frame == plan["n_frames"] - 1:
            first = frame + 1 - len(buffer_positions)
            times = (np.arange(first, frame + 1) + 1) * frame_time
            writer.write(np.stack(buffer_positions).reshape(len(times), -1, 3), times)
            writer.flush()
            energy_log.append(np.stack(buffer_energies))
            buffer_positions, buffer_energies = [], []
            _save_checkpoint(cg, result, guard, rng, plan, frame + 1, run_id)
    bar.close()


class _BlowupGuard:
    """Checks walkers at every frame and restarts the bad ones from their last good frame."""

    def __init__(self, module, cg: CGSystem, start, max_energy_kt_per_bead, max_extent_nm, max_restarts):
        self.module, self.cg = module, cg
        self.last_good = start.copy()
        kt = kt_kj_per_mol(cg.metadata["temperature_k"])
        start_energies = self.energies(start)
        if not np.all(np.isfinite(start_energies)):
            bad = np.flatnonzero(~np.isfinite(start_energies)).tolist()
            raise ValueError(f"start_positions give non-finite energies for walkers {bad}")
        if not isinstance(max_energy_kt_per_bead, (int, float)) or not max_energy_kt_per_bead > 0:
            raise ValueError(f"max_energy_kt_per_bead must be a positive number, got {max_energy_kt_per_bead!r}")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be a non-negative integer, got {max_restarts!r}")
        self.energy_limit = start_energies.max() + max_energy_kt_per_bead * kt * cg.n_beads
        self.max_extent_nm = positive_float(max_extent_nm, "nm", "max_extent_nm")
        self.max_restarts = max_restarts
        self.consecutive = np.zeros(cg.n_walkers, dtype=np.int64)

    def energies(self, walkers: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module.walker_energies(torch.from_numpy(np.ascontiguousarray(walkers))).numpy()

    def check(self, frame: int, rng, result: SimulationResult):
        """Positions ``(n_walkers, n_beads, 3)`` and energies ``(n_walkers,)`` of this frame, all finite."""
        shape = self.last_good.shape
        state = self.cg.context.getState(getPositions=True, getVelocities=True)
        positions = state.getPositions(asNumpy=True).value_in_unit(_NM).reshape(shape)
        velocities = state.getVelocities(asNumpy=True).value_in_unit(_NM_PER_PS).reshape(shape)
        finite = np.isfinite(positions).all(axis=(1, 2)) & np.isfinite(velocities).all(axis=(1, 2))
        extent = np.where(finite, np.abs(positions - positions.mean(axis=1, keepdims=True)).max(axis=(1, 2)), np.inf)
        energies = np.full(shape[0], np.inf)
        if finite.any():
            energies[finite] = self.energies(positions[finite])
        bad = ~(np.isfinite(energies) & (energies <= self.energy_limit) & (extent <= self.max_extent_nm))
        self.consecutive = np.where(bad, self.consecutive + 1, 0)
        if not bad.any():
            self.last_good = positions.copy()
            return positions, energies
        walkers = np.flatnonzero(bad).tolist()
        if self.consecutive.max() > self.max_restarts:
            raise UnstableSimulationError(
                f"walkers {np.flatnonzero(self.consecutive > self.max_restarts).tolist()} blew up "
                f"{self.max_restarts + 1} frames in a row (at frame {frame}); the model is unstable: train it with a "
                f"smaller dynamics.timestep_ps, a stiffer prior or more pre-training")
        LOGGER.warning("frame %d: walkers %s blew up (non-finite or huge energy/positions); restarting them "
                       "from their last good frame", frame, walkers)
        result.blowups += len(walkers)
        result.blowup_events.extend([frame, w] for w in walkers)
        positions[bad] = self.last_good[bad]
        fresh = maxwell_boltzmann(self.cg.metadata["masses_amu"], len(walkers), self.cg.metadata["temperature_k"], rng)
        velocities[bad] = fresh
        self.cg.context.setPositions(positions.reshape(-1, 3))
        self.cg.context.setVelocities(velocities.reshape(-1, 3))
        energies[bad] = self.energies(positions[bad])
        self.last_good = positions.copy()
        return positions, energies


class _EnergyLog:
    """An appendable HDF5 array ``/energies`` of shape ``(n_frames, n_walkers)`` kJ/mol."""

    def __init__(self, path: Path, n_walkers: int, append: bool, run_id: Optional[str] = None):
        import tables

        if append and path.is_file():
            self._handle = tables.open_file(str(path), "a")
        else:
            self._handle = tables.open_file(str(path), "w")
            self._handle.create_earray(self._handle.root, "energies", tables.Float64Atom(), shape=(0, n_walkers))
            if run_id is not None:
                self._handle.root._v_attrs.run_id = run_id

    def append(self, energies: np.ndarray) -> None:
        self._handle.root.energies.append(energies)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _plan(cg: CGSystem, ns, n_steps, frame_interval_ps, chunk_frames) -> dict:
    """Frames, steps per frame and chunking of a run; validates the length arguments."""
    if (ns is None) == (n_steps is None):
        raise ValueError(f"give exactly one of ns and n_steps, got ns={ns!r}, n_steps={n_steps!r}")
    timestep = cg.metadata["timestep_ps"]
    interval = positive_float(frame_interval_ps, "ps", "frame_interval_ps")
    steps_per_frame = int(round(interval / timestep))
    if steps_per_frame < 1 or abs(steps_per_frame * timestep - interval) > 1e-6 * interval:
        raise ValueError(f"frame_interval_ps must be a multiple of the timestep {timestep} ps, got {interval}")
    if ns is not None:
        n_steps = int(positive_float(strip_unit(ns, "ns", "ns"), "ns", "ns") * 1000.0 / timestep + 1e-6)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < steps_per_frame:
        raise ValueError(f"n_steps must be an integer of at least one frame ({steps_per_frame} steps), got {n_steps!r}")
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    return {"n_frames": int(n_steps) // steps_per_frame, "steps_per_frame": steps_per_frame,
            "frame_interval_ps": steps_per_frame * timestep, "chunk_frames": chunk_frames}


def _walker_starts(start_positions, n_walkers: int, n_beads: int, selection, seed: int):
    """Start positions ``(n_walkers, n_beads, 3)``, the frame index of every walker, the selection used."""
    start = np.asarray(start_positions, dtype=np.float64)
    if start.ndim == 2:
        start = start[None]
    if start.ndim != 3 or start.shape[1:] != (n_beads, 3) or start.shape[0] < 1:
        raise ValueError(f"start_positions must have shape (n_start, {n_beads}, 3), got {start.shape}")
    if not np.isfinite(start).all():
        raise ValueError("start_positions contain non-finite values")
    selection = selection or _default_selection(start.shape[0], n_walkers)
    indices = start_frame_indices(start.shape[0], n_walkers, selection, seed)
    return start[indices], indices, selection


#: Keys of a production checkpoint (``<out>.chk``) that a resume reads.
CHECKPOINT_KEYS = ("openmm_checkpoint", "frames_written", "n_walkers", "n_beads", "steps_per_frame", "integrator",
                   "last_good", "consecutive", "blowup_events", "rng_state")


def _save_checkpoint(cg, result, guard, rng, plan, frames_written: int, run_id: str) -> None:
    torch_save({"format_version": 2, "run_id": run_id, "openmm_checkpoint": cg.context.createCheckpoint(),
                "frames_written": frames_written, "n_walkers": cg.n_walkers, "n_beads": cg.n_beads,
                "steps_per_frame": plan["steps_per_frame"], "integrator": cg.metadata["integrator"],
                "last_good": torch.from_numpy(guard.last_good), "consecutive": guard.consecutive.tolist(),
                "blowup_events": result.blowup_events, "rng_state": rng.bit_generator.state},
               result.checkpoint_path)


def _resume(cg, result, guard, rng, plan):
    """Restore the state of ``result.checkpoint_path``.

    Returns the frames already written, the run's id and, for ``trajectory`` and ``energies``, where its frames
    are: ``"part"`` (an interrupted run) or ``"output"`` (a finished one).
    """
    state = torch_load(result.checkpoint_path, "production checkpoint",
                       "delete it (and any .part files) and run again without --resume",
                       required=CHECKPOINT_KEYS, weights_only=False)
    expected = {"n_walkers": cg.n_walkers, "n_beads": cg.n_beads, "steps_per_frame": plan["steps_per_frame"],
                "integrator": cg.metadata["integrator"]}
    found = {key: state[key] for key in expected}
    if found != expected:
        raise ValueError(f"checkpoint {result.checkpoint_path} is of a different run: {found}, expected {expected}")
    run_id, frames = state.get("run_id"), state["frames_written"]
    parts = partial_paths(result.trajectory_path)
    sources = {}
    for key, output, reader in (("trajectory", result.trajectory_path, _trajectory_run),
                                ("energies", result.energies_path, _energies_run)):
        for source, path in (("part", parts[key]), ("output", output)):
            if path.is_file() and reader(path) == (run_id, True) and _frames_in(path, key) >= frames:
                sources[key] = source
                break
        else:
            raise ValueError(f"cannot resume from {result.checkpoint_path}: neither {parts[key]} nor {output} holds "
                             f"the {frames} frames of its run (run_id {run_id}); start a new run (without resume, "
                             f"`dynmatch simulate --overwrite`)")
    cg.context.loadCheckpoint(state["openmm_checkpoint"])
    guard.last_good = state["last_good"].numpy()
    guard.consecutive = np.asarray(state["consecutive"], dtype=np.int64)
    result.blowup_events = [list(event) for event in state["blowup_events"]]
    result.blowups = len(result.blowup_events)
    rng.bit_generator.state = state["rng_state"]
    LOGGER.info("resuming %s at frame %d", result.trajectory_path, frames)
    return frames, run_id, sources


def _trajectory_run(path: Path):
    """(run_id, readable) of a trajectory file."""
    try:
        return trajio.read_metadata(path).get("run_id"), True
    except (OSError, ValueError):
        return None, False


def _energies_run(path: Path):
    """(run_id, readable) of an energies file."""
    import tables

    try:
        with tables.open_file(str(path), "r") as handle:
            return getattr(handle.root._v_attrs, "run_id", None), "energies" in handle.root
    except (OSError, ValueError, tables.HDF5ExtError):
        return None, False


def _frames_in(path: Path, key: str) -> int:
    import tables

    if key == "trajectory":
        return trajio.count_frames(path)
    with tables.open_file(str(path), "r") as handle:
        return int(handle.root.energies.shape[0])


def _materialise_parts(result: SimulationResult, parts: dict, sources: dict, frames: int) -> None:
    """Partial files holding exactly the checkpoint's ``frames``: copies of the outputs where the run had
    finished (the outputs stay as they are until the extended run succeeds)."""
    for key, output in (("trajectory", result.trajectory_path), ("energies", result.energies_path)):
        if sources[key] == "output":
            shutil.copyfile(output, parts[key])
    trajio.truncate_frames(parts["trajectory"], frames)
    import tables

    with tables.open_file(str(parts["energies"]), "a") as handle:
        if handle.root.energies.shape[0] > frames:
            handle.root.energies.truncate(frames)
