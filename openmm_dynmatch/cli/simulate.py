"""Simulate many walkers of an exported CG model in OpenMM and write one multi-chain trajectory.

Walker ``w`` is chain ``w`` of the output (mdtraj HDF5); per-walker energies go to ``<out>.energies.h5`` and a
checkpoint to ``<out>.chk`` (``--resume`` continues from it). Start frames come from ``--start`` (a trajectory
file of the CG molecule) or, without it, from a minimised zig-zag chain. ``--start-frames`` says which frames of
the file the walkers start from: evenly spaced over the file (the default for files with more frames than
walkers), a random draw seeded by ``--seed``, or cyclic (frame ``w % n_frames`` for walker ``w``, the default
otherwise); the frames used are printed and stored in the output's metadata (``start_frames``).
"""
from __future__ import annotations

import logging


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="exported TorchScript model file")
    parser.add_argument("--walkers", type=int, default=1, help="number of walkers (default 1)")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--ns", type=float, help="simulated time per walker, ns")
    length.add_argument("--steps", type=int, help="integration steps per walker")
    parser.add_argument("--out", required=True, help="trajectory file to write (.h5)")
    parser.add_argument("--start", help="trajectory file with start frames (n_beads atoms per frame, or a "
                        "multi-walker file of this model)")
    parser.add_argument("--start-frames", choices=["spaced", "random", "cyclic"], default=None,
                        help="which start frames: evenly spaced over the file (default when it has more frames than "
                             "walkers), random (seeded by --seed) or cyclic (default otherwise)")
    parser.add_argument("--platform", help="OpenMM platform (CUDA, CPU, Reference; default: fastest present)")
    parser.add_argument("--precision", choices=["single", "mixed", "double"], help="platform precision")
    parser.add_argument("--integrator", choices=["langevin", "brownian"], help="default: the model's")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--frame-interval-ps", type=float, default=1.0, help="time between frames (default 1)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.chk if present")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from openmm_dynmatch import trajio
    from openmm_dynmatch.openmm.runner import simulate

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start, per_frame = _start_frames(args.start, args.model) if args.start else (None, 1)
    result = simulate(args.model, start, args.walkers, args.out, ns=args.ns, n_steps=args.steps,
                      frame_interval_ps=args.frame_interval_ps, integrator=args.integrator, platform=args.platform,
                      precision=args.precision, seed=args.seed, resume=args.resume, progress=not args.no_progress,
                      start_selection=args.start_frames)
    if result.start_frames is not None:
        print(_describe_starts(result.start_frames, result.start_selection, len(start), per_frame, args.start))
    print(f"wrote {result.trajectory_path}: {result.n_frames} frames x {args.walkers} walkers "
          f"({result.n_steps} steps each); blow-ups: {result.blowups}")
    return 0


def _start_frames(path, model_path):
    """Frames ``(n, n_beads, 3)`` of a trajectory of one molecule, or of a multi-walker file (split by walker),
    and the molecules per file frame."""
    from openmm_dynmatch import trajio
    from openmm_dynmatch.openmm.export import load_metadata

    n_beads = load_metadata(model_path)["n_beads"]
    positions = trajio.load(path).positions
    if positions.shape[1] % n_beads != 0:
        raise ValueError(f"--start {path} has {positions.shape[1]} atoms per frame, not a multiple of the "
                         f"model's {n_beads} beads")
    return positions.reshape(-1, n_beads, 3), positions.shape[1] // n_beads


def _describe_starts(indices, selection: str, n_available: int, per_frame: int, path, shown: int = 12) -> str:
    """One line naming the start frame of every walker (``frame:walker`` for multi-walker files)."""
    names = [str(i) if per_frame == 1 else f"{i // per_frame}:{i % per_frame}" for i in indices]
    listed = ", ".join(names) if len(names) <= shown else \
        ", ".join(names[:shown - 2]) + f", ... ({len(names) - shown} more), " + ", ".join(names[-2:])
    if per_frame == 1:
        return f"start frames ({selection} over {n_available} frames of {path}): {listed}"
    pool = f"{n_available // per_frame} frames x {per_frame} walkers"
    return f"start frame:walker ({selection} over {pool} of {path}): {listed}"
