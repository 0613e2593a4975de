"""Simulate many walkers of an exported CG model in OpenMM and write one multi-chain trajectory.

Walker ``w`` is chain ``w`` of the output (mdtraj HDF5); per-walker energies go to ``<out>.energies.h5`` and a
checkpoint to ``<out>.chk`` (``--resume`` continues from it). Start frames come from ``--start`` (a trajectory
file of the CG molecule, frames assigned to walkers cyclically) or, without it, from a minimised zig-zag chain.
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
    start = _start_frames(args.start, args.model) if args.start else None
    result = simulate(args.model, start, args.walkers, args.out, ns=args.ns, n_steps=args.steps,
                      frame_interval_ps=args.frame_interval_ps, integrator=args.integrator, platform=args.platform,
                      precision=args.precision, seed=args.seed, resume=args.resume, progress=not args.no_progress)
    print(f"wrote {result.trajectory_path}: {result.n_frames} frames x {args.walkers} walkers "
          f"({result.n_steps} steps each); blow-ups: {result.blowups}")
    return 0


def _start_frames(path, model_path):
    """Frames ``(n, n_beads, 3)`` of a trajectory of one molecule, or of a multi-walker file (split by walker)."""
    from openmm_dynmatch import trajio
    from openmm_dynmatch.openmm.export import load_metadata

    n_beads = load_metadata(model_path)["n_beads"]
    positions = trajio.load(path).positions
    if positions.shape[1] % n_beads != 0:
        raise ValueError(f"--start {path} has {positions.shape[1]} atoms per frame, not a multiple of the "
                         f"model's {n_beads} beads")
    return positions.reshape(-1, n_beads, 3)
