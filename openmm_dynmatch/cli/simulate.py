"""Simulate many walkers of an exported CG model in OpenMM and write one multi-chain trajectory.

Walker ``w`` is chain ``w`` of the output (mdtraj HDF5); per-walker energies go to ``<out>.energies.h5`` and a
checkpoint to ``<out>.chk`` after every chunk (``--resume`` continues an interrupted run from it, or extends a
finished one). The trajectory and energies are written as ``.part`` files and renamed when the run has finished,
so an interrupted run leaves no half-written output; the outputs of an earlier run are replaced only with
``--overwrite``. Start frames come from ``--start`` (a trajectory file of the CG molecule, whose atom names must
be the model's bead names) or, without it, from a minimised zig-zag chain. ``--start-frames`` says which frames
of the file the walkers start from: evenly spaced over the file (the default for files with more frames than
walkers), a random draw seeded by ``--seed``, or cyclic (frame ``w % n_frames`` for walker ``w``, the default
otherwise); the frames used are printed and stored in the output's metadata (``start_frames``).
"""
from __future__ import annotations

import logging


def add_arguments(parser) -> None:
    from openmm_dynmatch.cli.outputs import add_overwrite_argument
    from openmm_dynmatch.integrators import integrator_names

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
    parser.add_argument("--precision", choices=["single", "mixed", "double"], help="platform precision (CUDA, OpenCL; default mixed there)")
    parser.add_argument("--integrator", choices=integrator_names(), help="default: the model's")
    parser.add_argument("--timestep-ps", type=float, default=None,
                        help="integration time step, ps (default: the model's; e.g. smaller for a stability check)")
    parser.add_argument("--friction-per-ps", type=float, default=None,
                        help="friction for every bead, 1/ps (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--frame-interval-ps", type=float, default=1.0, help="time between frames (default 1)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from <out>.chk, or extend a finished one to a longer --ns/--steps")
    add_overwrite_argument(parser, "the outputs of an earlier run (--out, its energies and checkpoint)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from openmm_dynmatch.openmm.runner import load_start_frames, simulate

    _check_outputs(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start, per_frame = load_start_frames(args.start, args.model) if args.start else (None, 1)
    result = simulate(args.model, start, args.walkers, args.out, ns=args.ns, n_steps=args.steps,
                      frame_interval_ps=args.frame_interval_ps, integrator=args.integrator, platform=args.platform,
                      precision=args.precision, seed=args.seed, resume=args.resume, progress=not args.no_progress,
                      start_selection=args.start_frames, timestep_ps=args.timestep_ps,
                      friction_per_ps=args.friction_per_ps)
    if result.start_frames is not None:
        print(_describe_starts(result.start_frames, result.start_selection, len(start), per_frame, args.start))
    print(f"wrote {result.trajectory_path}: {result.n_frames} frames x {args.walkers} walkers "
          f"({result.n_steps} steps each); blow-ups: {result.blowups}")
    return 0


def _check_outputs(args) -> None:
    """Refuse to replace an earlier run's outputs unless --overwrite; --resume needs that run's checkpoint."""
    from pathlib import Path

    from openmm_dynmatch.cli.outputs import refuse_existing
    from openmm_dynmatch.openmm.runner import energies_path_for

    out = Path(args.out)
    checkpoint = Path(str(out) + ".chk")
    if args.resume and checkpoint.exists():
        return
    hint = "" if args.resume else " (or --resume to continue or extend that run)"
    refuse_existing([out, energies_path_for(out), checkpoint], args.overwrite, hint=hint)


def _describe_starts(indices, selection: str, n_available: int, per_frame: int, path, shown: int = 12) -> str:
    """One line naming the start frame of every walker (``frame:walker`` for multi-walker files)."""
    names = [str(i) if per_frame == 1 else f"{i // per_frame}:{i % per_frame}" for i in indices]
    listed = ", ".join(names) if len(names) <= shown else \
        ", ".join(names[:shown - 2]) + f", ... ({len(names) - shown} more), " + ", ".join(names[-2:])
    if per_frame == 1:
        return f"start frames ({selection} over {n_available} frames of {path}): {listed}"
    pool = f"{n_available // per_frame} frames x {per_frame} walkers"
    return f"start frame:walker ({selection} over {pool} of {path}): {listed}"
