"""All-atom reference MD in OpenMM: seeded Langevin dynamics written chunk by chunk, resumable.

:func:`run_reference` integrates an :class:`~openmm_dynmatch.openmm.aa_systems.AASystem` with OpenMM's
``LangevinMiddleIntegrator`` and saves a frame every ``frame_interval_ps`` through
:class:`openmm_dynmatch.trajio.TrajectoryWriter`. Frames go to ``OUT.part``; after every chunk of frames the
OpenMM checkpoint and the number of frames on disk are saved atomically to ``OUT.chk``. An interrupted run
called again with the same arguments truncates ``OUT.part`` to the checkpointed frame count and continues from
the checkpoint; when all frames are written ``OUT.part`` is renamed to ``OUT`` and ``OUT.chk`` removed.

``replicas=N`` runs ``N`` independent trajectories one after the other, each in its own file
(:func:`replica_paths`: ``aa.h5`` -> ``aa.r0.h5``, ``aa.r1.h5``, ...) with its own seed (:func:`replica_seed`),
each resumable on its own, so a killed multi-replica call continues where it stopped.
"""
from __future__ import annotations

import base64
import json
import math
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from openmm_dynmatch import trajio
from openmm_dynmatch.errors import FileFormatError, short_reason
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.integrators import AA_INTEGRATOR, get_integrator
from openmm_dynmatch.openmm.aa_systems import AASystem, load_system
from openmm_dynmatch.units import positive_float, strip_unit

PART_SUFFIX = ".part"
CHECKPOINT_SUFFIX = ".chk"
GPU_PLATFORMS = ("CUDA", "HIP", "OpenCL")
#: How to discard an interrupted or finished run, in the words of the library and of the command line.
START_OVER = "run again with resume=False (`dynmatch reference --no-resume`)"
# Settings that must agree between an interrupted run and its resumption (``ns`` may change).
_RESUME_KEYS = ("system", "n_atoms", "timestep_ps", "frame_interval_ps", "temperature_k", "friction_per_ps",
                "seed", "equilibration_ps", "save_forces", "save_velocities")


def available_platforms() -> list:
    """Names of the OpenMM platforms present."""
    import openmm

    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def openmm_seed(seed: int) -> int:
    """The nonzero OpenMM random seed used for the package seed ``seed`` (OpenMM reads 0 as "pick one")."""
    return int(seed) % (2**31 - 1) + 1


def replica_seed(seed: int, replica: int) -> int:
    """The seed of replica ``replica`` of a multi-replica run with package seed ``seed``.

    Replica 0 uses ``seed`` itself (its trajectory is the one a single run with that seed writes); replica
    ``i > 0`` uses the first 32-bit word of ``numpy.random.SeedSequence([seed, i])``, so replicas of one seed
    are independent streams and do not repeat the runs of the neighbouring seeds ``seed + 1, ...``.

    Returns
    -------
    int
        A non-negative package seed (passed to OpenMM through :func:`openmm_seed`).
    """
    for value, name in ((seed, "seed"), (replica, "replica")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if replica == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(replica)]).generate_state(1, dtype=np.uint32)[0])


def replica_paths(out_path, replicas: int) -> list:
    """Output files of a run with ``replicas`` independent trajectories.

    One replica writes ``out_path`` itself; ``N > 1`` insert ``.r<i>`` before the suffix:
    ``aa.h5`` -> ``[aa.r0.h5, aa.r1.h5, ...]`` (a name without a suffix gets ``.r<i>`` appended).

    Returns
    -------
    list of Path, length ``replicas``
    """
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or replicas < 1:
        raise ValueError(f"replicas must be a positive integer, got {replicas!r}")
    out = Path(out_path)
    if replicas == 1:
        return [out]
    return [out.with_name(f"{out.stem}.r{i}{out.suffix}") for i in range(int(replicas))]


def _validated_settings(ns, frame_interval_ps, timestep_ps, temperature_k, friction_per_ps, equilibration_ps,
                        seed, chunk_frames) -> dict:
    ns = positive_float(ns, "ns", "ns")
    frame_interval_ps = positive_float(frame_interval_ps, "ps", "frame_interval_ps")
    timestep_ps = positive_float(timestep_ps, "ps", "timestep_ps")
    temperature_k = positive_float(temperature_k, "K", "temperature_k")
    friction_per_ps = positive_float(friction_per_ps, "1/ps", "friction_per_ps")
    equilibration_ps = float(strip_unit(equilibration_ps, "ps", "equilibration_ps"))
    if not (equilibration_ps >= 0 and math.isfinite(equilibration_ps)):
        raise ValueError(f"equilibration_ps must be a finite number >= 0 ps, got {equilibration_ps!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    steps_per_frame = _whole_ratio(frame_interval_ps, timestep_ps, f"frame_interval_ps must be a positive whole "
                                   f"multiple of timestep_ps ({timestep_ps:g} ps), got {frame_interval_ps:g} ps")
    n_frames = _whole_ratio(ns * 1000.0, frame_interval_ps, f"ns must be a positive whole multiple of "
                            f"frame_interval_ps ({frame_interval_ps:g} ps), got {ns:g} ns")
    return dict(ns=ns, frame_interval_ps=frame_interval_ps, timestep_ps=timestep_ps, temperature_k=temperature_k,
                friction_per_ps=friction_per_ps, equilibration_ps=equilibration_ps, seed=int(seed),
                chunk_frames=int(chunk_frames), steps_per_frame=steps_per_frame, n_frames=n_frames,
                equilibration_steps=int(round(equilibration_ps / timestep_ps)))


def _whole_ratio(numerator: float, denominator: float, message: str) -> int:
    ratio = numerator / denominator
    whole = int(round(ratio))
    if whole < 1 or abs(ratio - whole) > 1e-6 * max(1.0, ratio):
        raise ValueError(f"{message} (ratio {ratio:g})")
    return whole


def _make_context(aa: AASystem, settings: dict, platform_name: str):
    import openmm

    from openmm_dynmatch.openmm.integrators import create_integrator

    integrator = create_integrator(AA_INTEGRATOR, settings["temperature_k"], settings["friction_per_ps"],
                                   settings["timestep_ps"], openmm_seed(settings["seed"]))
    context = openmm.Context(aa.system, integrator, openmm.Platform.getPlatformByName(platform_name))
    if aa.box_vectors_nm is not None:
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in aa.box_vectors_nm])
    context.setPositions(aa.positions_nm)
    return context, integrator


def _prepare(context, integrator, settings: dict, minimize: bool, progress: bool) -> None:
    """Minimise (optionally), draw velocities from the seed and equilibrate."""
    import openmm
    from tqdm.auto import tqdm

    context.applyConstraints(1e-6)
    if minimize:
        openmm.LocalEnergyMinimizer.minimize(context, 10.0, 2000)
    context.setVelocitiesToTemperature(settings["temperature_k"], openmm_seed(settings["seed"]))
    remaining = settings["equilibration_steps"]
    with tqdm(total=remaining, disable=not progress or remaining == 0, unit="step", desc="equilibration") as bar:
        while remaining > 0:
            n = min(remaining, 1000)
            integrator.step(n)
            remaining -= n
            bar.update(n)


def _record_chunk(context, integrator, n_frames: int, settings: dict, periodic: bool) -> dict:
    """Integrate ``n_frames`` frames; return arrays (positions, velocities, forces, box) in nm, ps, kJ/mol."""
    frames = {"positions": [], "velocities": [], "forces": [], "box": []}
    for _ in range(n_frames):
        integrator.step(settings["steps_per_frame"])
        state = context.getState(getPositions=True, getVelocities=settings["save_velocities"],
                                 getForces=settings["save_forces"])
        frames["positions"].append(state.getPositions(asNumpy=True)._value)
        if settings["save_velocities"]:
            frames["velocities"].append(state.getVelocities(asNumpy=True)._value)
        if settings["save_forces"]:
            frames["forces"].append(state.getForces(asNumpy=True)._value)
        if periodic:
            frames["box"].append(state.getPeriodicBoxVectors(asNumpy=True)._value)
    return {key: np.asarray(value, dtype=np.float64) if value else None for key, value in frames.items()}


def _write_checkpoint(path: Path, context, frames_on_disk: int, platform_name: str, settings: dict) -> None:
    write_json(path, {
        "format_version": 1,
        "frames_on_disk": int(frames_on_disk),
        "platform": platform_name,
        "settings": {key: settings[key] for key in _RESUME_KEYS},
        "openmm_checkpoint": base64.b64encode(context.createCheckpoint()).decode("ascii"),
    })


def _read_checkpoint(path: Path) -> Optional[dict]:
    """The resume checkpoint ``OUT.chk`` (None when absent); a damaged or foreign file is one clear error."""
    if not path.is_file():
        return None
    fix = f"delete it and the partial trajectory beside it, or {START_OVER}"
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(f"{path}: cannot read the reference-MD checkpoint ({short_reason(err)}); the file "
                              f"is truncated or not one this package wrote; {fix}") from err
    fields = {"frames_on_disk": int, "platform": str, "settings": dict, "openmm_checkpoint": str}
    wrong = [key for key, kind in fields.items() if not isinstance(stored, dict) or not isinstance(
        stored.get(key), kind) or isinstance(stored.get(key), bool)]
    if wrong:
        raise FileFormatError(f"{path}: not a reference-MD checkpoint (missing or malformed {wrong}); {fix}")
    return stored


def _check_resumable(stored: dict, settings: dict, where: Path, what: str = "the interrupted run") -> None:
    changed = {key: (stored.get(key), settings[key]) for key in _RESUME_KEYS if stored.get(key) != settings[key]}
    if changed:
        raise ValueError(f"cannot resume {where}: settings differ from {what} "
                         f"(stored, requested) {changed}; {START_OVER} to start over")


def _metadata(aa: AASystem, settings: dict, platform_name: str) -> dict:
    import openmm

    return {
        "system": aa.name,
        "temperature_k": settings["temperature_k"],
        "timestep_ps": settings["timestep_ps"],
        "frame_interval_ps": settings["frame_interval_ps"],
        "steps_per_frame": settings["steps_per_frame"],
        "masses_amu": aa.masses_amu().tolist(),
        "integrator": AA_INTEGRATOR,
        "integrator_class": get_integrator(AA_INTEGRATOR).openmm_class,
        "friction_per_ps": settings["friction_per_ps"],
        "seed": settings["seed"],
        "platform": platform_name,
        "equilibration_ps": settings["equilibration_ps"],
        "n_frames": settings["n_frames"],
        "n_atoms": aa.n_atoms,
        "save_forces": settings["save_forces"],
        "save_velocities": settings["save_velocities"],
        "n_dof": aa.degrees_of_freedom(),
        "n_constraints": aa.system.getNumConstraints(),
        "periodic": aa.periodic,
        "velocities": "half-step velocities at t - dt/2, as LangevinMiddleIntegrator reports them",
        "openmm_version": openmm.version.version,
    }


def _produce(context, integrator, writer, paths: dict, frames_done: int, settings: dict, platform_name: str,
             periodic: bool, on_chunk, progress: bool) -> int:
    """Write the remaining frames chunk by chunk, checkpointing after each; return the frames written now."""
    from tqdm.auto import tqdm

    n_frames, interval = settings["n_frames"], settings["frame_interval_ps"]
    start = frames_done
    with tqdm(total=n_frames, initial=frames_done, disable=not progress, unit="frame",
              desc=f"reference MD ({platform_name})") as bar:
        while frames_done < n_frames:
            n = min(settings["chunk_frames"], n_frames - frames_done)
            chunk = _record_chunk(context, integrator, n, settings, periodic)
            time_ps = interval * np.arange(frames_done + 1, frames_done + n + 1)
            writer.write(chunk["positions"], time_ps, velocities=chunk["velocities"], forces=chunk["forces"],
                         box_vectors_nm=chunk["box"])
            writer.flush()
            frames_done += n
            _write_checkpoint(paths["checkpoint"], context, frames_done, platform_name, settings)
            bar.update(n)
            if on_chunk is not None:
                on_chunk(frames_done, context)
    return frames_done - start


def run_reference(system_or_name, out_path, ns, frame_interval_ps, *, timestep_ps=0.002, temperature_k=300.0,
                  friction_per_ps=1.0, platform: Optional[str] = None, equilibration_ps=10.0, minimize: bool = True,
                  seed: int = 0, save_forces: bool = False, save_velocities: bool = True, chunk_frames: int = 500,
                  resume: bool = True, progress: bool = True,
                  on_chunk: Optional[Callable[[int, object], None]] = None, replicas: int = 1,
                  only_replica: Optional[int] = None):
    """Run seeded all-atom Langevin MD and save it as a trajectory file; resumable.

    Frame ``i`` (0-based) is the state at ``(i + 1) * frame_interval_ps`` after equilibration, so the file holds
    ``ns * 1000 / frame_interval_ps`` frames covering exactly ``ns``. With ``replicas > 1`` this is done for
    every replica in turn, each from the same start structure with its own seed (velocities and noise).

    Parameters
    ----------
    system_or_name : AASystem, str or dict
        Anything :func:`~openmm_dynmatch.openmm.aa_systems.load_system` accepts.
    out_path : str or Path
        Output trajectory (mdtraj HDF5, see :mod:`openmm_dynmatch.trajio`).
    ns : float
        Production length, ns; a whole multiple of ``frame_interval_ps``.
    frame_interval_ps : float
        Time between saved frames, ps; a whole multiple of ``timestep_ps``.
    timestep_ps, temperature_k, friction_per_ps : float
        ``LangevinMiddleIntegrator`` settings.
    platform : str or None
        OpenMM platform name; None picks the fastest present (:func:`fastest_platform`). A resumed run uses the
        platform of the interrupted run.
    equilibration_ps : float
        Unsaved dynamics after minimisation and before the first frame, ps.
    minimize : bool
        Minimise the energy of the start positions first.
    seed : int
        Seeds the start velocities and the integrator's noise; replica ``i`` uses ``replica_seed(seed, i)``
        (replica 0: ``seed`` itself).
    save_forces, save_velocities : bool
        Also store forces (kJ/mol/nm) and the integrator's half-step velocities (nm/ps). The recorded forces
        exclude constraint forces; the constrained atom pairs are stored in the file (``/constraints``,
        :func:`openmm_dynmatch.trajio.read_array`) so that the force map can be checked against them.
    chunk_frames : int
        Frames written between two checkpoints.
    resume : bool
        Continue an interrupted run from ``OUT.chk`` and ``OUT.part`` (settings other than ``ns`` must match);
        a finished ``OUT`` with the same settings is returned as is. False starts over and overwrites.
    progress : bool
        Show a tqdm progress bar.
    on_chunk : callable, optional
        ``on_chunk(frames_on_disk, context)``, called after each chunk has been written and checkpointed.
    replicas : int
        Number of independent trajectories, each ``ns`` long, written to :func:`replica_paths` (``aa.h5`` ->
        ``aa.r0.h5``, ``aa.r1.h5``, ...; 1: ``out_path`` itself). Their metadata add ``replica`` (index) and
        ``replica_base_seed``. Finished replicas are kept (``resume``), an interrupted one continues.
    only_replica : int, optional
        With ``replicas > 1``, make only this replica (the file and trajectory it has in the whole run), so that
        several processes can make the replicas of one run side by side.

    Returns
    -------
    Path, or list of Path when ``replicas > 1``
        ``out_path``, or the replica files in order (with ``only_replica``: that replica's file alone).
    """
    paths = replica_paths(out_path, replicas)
    if only_replica is not None and (isinstance(only_replica, bool) or not isinstance(only_replica, (int, np.integer))
                                     or not 0 <= only_replica < len(paths) or len(paths) == 1):
        raise ValueError(f"only_replica must be a replica index in [0, {len(paths)}) of a run with replicas > 1, "
                         f"got {only_replica!r} with replicas {replicas}")
    if len(paths) > 1:
        options = dict(timestep_ps=timestep_ps, temperature_k=temperature_k, friction_per_ps=friction_per_ps,
                       equilibration_ps=equilibration_ps, minimize=minimize,
                       save_forces=save_forces, save_velocities=save_velocities, chunk_frames=chunk_frames,
                       resume=resume, progress=progress, on_chunk=on_chunk)
        _validated_settings(ns, frame_interval_ps, timestep_ps, temperature_k, friction_per_ps, equilibration_ps,
                            seed, chunk_frames)  # refuse bad arguments before any replica starts
        system, done, chosen = load_system(system_or_name), [], platform  # built once, shared by the replicas
        for i, path in enumerate(paths):
            if only_replica is not None and i != only_replica:
                continue
            resuming = resume and path.with_name(path.name + PART_SUFFIX).exists()  # keeps its own platform
            done.append(_run_one(system, path, ns, frame_interval_ps, seed=replica_seed(seed, i),
                                 platform=platform if resuming else chosen,
                                 replica={"replica": i, "replica_base_seed": int(seed)}, **options))
            if chosen is None:  # the platform picked for the first replica serves the others
                chosen = trajio.read_metadata(path)["platform"]
        return done
    return _run_one(system_or_name, out_path, ns, frame_interval_ps, timestep_ps=timestep_ps,
                    temperature_k=temperature_k, friction_per_ps=friction_per_ps, platform=platform,
                    equilibration_ps=equilibration_ps, minimize=minimize, seed=seed, save_forces=save_forces,
                    save_velocities=save_velocities, chunk_frames=chunk_frames, resume=resume, progress=progress,
                    on_chunk=on_chunk)


def _run_one(system_or_name, out_path, ns, frame_interval_ps, *, timestep_ps, temperature_k, friction_per_ps,
             platform, equilibration_ps, minimize, seed, save_forces, save_velocities, chunk_frames, resume,
             progress, on_chunk, replica: Optional[dict] = None) -> Path:
    """One trajectory of :func:`run_reference`; ``replica`` holds the metadata keys of a replica run."""
    settings = _validated_settings(ns, frame_interval_ps, timestep_ps, temperature_k, friction_per_ps,
                                   equilibration_ps, seed, chunk_frames)
    aa = load_system(system_or_name)
    settings.update(system=aa.name, n_atoms=aa.n_atoms, save_forces=bool(save_forces),
                    save_velocities=bool(save_velocities))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"part": out.with_name(out.name + PART_SUFFIX), "checkpoint": out.with_name(out.name + CHECKPOINT_SUFFIX)}
    if platform is not None and platform not in available_platforms():
        raise ValueError(f"unknown platform '{platform}'; available: {available_platforms()}")
    if resume and out.exists() and not paths["part"].exists():
        _check_finished(out, settings)
        return out
    stored = _read_checkpoint(paths["checkpoint"]) if resume and paths["part"].exists() else None
    if stored is not None:
        _check_resumable(stored["settings"], settings, out)
        if platform is not None and platform != stored["platform"]:
            raise ValueError(f"platform: the interrupted run used '{stored['platform']}', got '{platform}'; "
                             "a checkpoint only loads on the platform that wrote it")
        platform = stored["platform"]
    elif platform is None:
        platform = fastest_platform(aa, timestep_ps=settings["timestep_ps"])
    context, integrator = _make_context(aa, settings, platform)
    topology, metadata = aa.mdtraj_topology(), {**_metadata(aa, settings, platform), **(replica or {})}
    if stored is not None:
        _load_openmm_checkpoint(context, stored["openmm_checkpoint"], paths["checkpoint"])
        frames_done = min(int(stored["frames_on_disk"]), settings["n_frames"])  # ns may have shrunk
        trajio.truncate_frames(paths["part"], frames_done)
        writer = _open_writer(paths["part"], topology, metadata, append=True)
    else:
        _prepare(context, integrator, settings, minimize, progress)
        frames_done = 0
        writer = _open_writer(paths["part"], topology, metadata, append=False)
        writer.set_array(trajio.CONSTRAINTS_NODE, constraint_pairs(aa.system))
        _write_checkpoint(paths["checkpoint"], context, 0, platform, settings)
    started = time.perf_counter()
    try:
        written = _produce(context, integrator, writer, paths, frames_done, settings, platform, aa.periodic,
                           on_chunk, progress)
    finally:
        writer.close()
    _finish(out, paths, topology, settings, written, time.perf_counter() - started)
    return out


def constraint_pairs(system) -> np.ndarray:
    """The constrained particle pairs of an ``openmm.System``, shape (n_constraints, 2), int64."""
    pairs = [system.getConstraintParameters(k)[:2] for k in range(system.getNumConstraints())]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _open_writer(path: Path, topology, metadata: dict, append: bool):
    with warnings.catch_warnings():  # mdtraj asks for a .h5 suffix, which the partial file lacks
        warnings.filterwarnings("ignore", message="The .h5 extension is recommended")
        return trajio.TrajectoryWriter(path, topology, metadata, append=append)


def _load_openmm_checkpoint(context, encoded: str, path: Path) -> None:
    """Restore the OpenMM state stored (base64) in ``path``; a damaged one is an error naming the file."""
    try:
        context.loadCheckpoint(base64.b64decode(encoded, validate=True))
    except Exception as err:  # binascii.Error or OpenMMException: the stored state is unusable either way
        raise FileFormatError(f"{path}: the OpenMM state stored in the checkpoint cannot be loaded "
                              f"({short_reason(err)}); delete it and the partial trajectory beside it, or "
                              f"{START_OVER}") from err


def _check_finished(out: Path, settings: dict) -> None:
    stored = trajio.read_metadata(out)
    _check_resumable(stored, settings, out, what="the finished run in that file")
    if trajio.count_frames(out) != settings["n_frames"]:
        raise ValueError(f"{out} exists with {trajio.count_frames(out)} frames, {settings['n_frames']} requested; "
                         f"{START_OVER} to overwrite it")


def _finish(out: Path, paths: dict, topology, settings: dict, frames_written: int, seconds: float) -> None:
    """Record the throughput of this session in the metadata, publish the file, drop the checkpoint."""
    steps = frames_written * settings["steps_per_frame"]
    rate = steps / seconds if seconds > 0 and steps > 0 else 0.0
    extra = {"steps_per_s": rate, "ns_per_day": rate * settings["timestep_ps"] * 86400.0 / 1000.0,
             "wall_s_last_session": seconds}
    _open_writer(paths["part"], topology, extra, append=True).close()
    paths["part"].replace(out)
    paths["checkpoint"].unlink(missing_ok=True)


def measure_throughput(system, platform: str, n_steps: int = 1000, *, timestep_ps: float = 0.002,
                       temperature_k: float = 300.0, friction_per_ps: float = 1.0, warmup_steps: int = 10) -> dict:
    """Time ``n_steps`` Langevin steps of a system on a platform.

    Parameters
    ----------
    system : AASystem, str or dict
        Anything :func:`~openmm_dynmatch.openmm.aa_systems.load_system` accepts.
    platform : str
        OpenMM platform name.
    n_steps : int
        Timed steps (after ``warmup_steps`` untimed ones).

    Returns
    -------
    dict
        ``system``, ``platform``, ``n_atoms``, ``n_steps``, ``seconds``, ``steps_per_s``, ``ns_per_day``.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if platform not in available_platforms():
        raise ValueError(f"unknown platform '{platform}'; available: {available_platforms()}")
    aa = load_system(system)
    settings = dict(temperature_k=positive_float(temperature_k, "K", "temperature_k"),
                    friction_per_ps=positive_float(friction_per_ps, "1/ps", "friction_per_ps"),
                    timestep_ps=positive_float(timestep_ps, "ps", "timestep_ps"), seed=0)
    context, integrator = _make_context(aa, settings, platform)
    context.setVelocitiesToTemperature(settings["temperature_k"], openmm_seed(0))
    integrator.step(int(warmup_steps))
    context.getState(getEnergy=True)
    started = time.perf_counter()
    integrator.step(int(n_steps))
    context.getState(getPositions=True)  # waits for asynchronous platforms
    seconds = time.perf_counter() - started
    rate = n_steps / seconds
    return {"system": aa.name, "platform": platform, "n_atoms": aa.n_atoms, "n_steps": int(n_steps),
            "seconds": seconds, "steps_per_s": rate, "ns_per_day": rate * settings["timestep_ps"] * 86.4}


def fastest_platform(system, timestep_ps: float = 0.002, probe_seconds: float = 0.1) -> str:
    """The platform to run ``system`` on: a GPU platform if present, else the faster of CPU and Reference.

    CPU and Reference are compared by a short timing probe (about ``probe_seconds`` each): for small systems
    (tens of atoms, no cutoff) the Reference platform avoids CPU's per-step overhead and is often faster.
    """
    present = available_platforms()
    for name in GPU_PLATFORMS:
        if name in present:
            return name
    candidates = [name for name in ("CPU", "Reference") if name in present]
    if len(candidates) == 1:
        return candidates[0]
    aa = load_system(system)
    rates = {name: _probe_rate(aa, name, timestep_ps, probe_seconds) for name in candidates}
    return max(rates, key=rates.get)


def _probe_rate(aa: AASystem, platform: str, timestep_ps: float, probe_seconds: float) -> float:
    """Steps per second of ``aa`` on ``platform``, timed over doubling batches until ``probe_seconds`` pass."""
    settings = dict(temperature_k=300.0, friction_per_ps=1.0, timestep_ps=timestep_ps, seed=0)
    context, integrator = _make_context(aa, settings, platform)
    context.setVelocitiesToTemperature(300.0, openmm_seed(0))
    integrator.step(2)
    steps, batch, started = 0, 1, time.perf_counter()
    while time.perf_counter() - started < probe_seconds:
        integrator.step(batch)
        context.getState(getEnergy=True)
        steps += batch
        batch *= 2
    return steps / (time.perf_counter() - started)
