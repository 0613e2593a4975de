"""Map all-atom trajectories to coarse-grained beads (positions, and forces when recorded).

Example: ``dynmatch map --aa aa.h5 --mapping ala2-heavy10 --out cg.h5`` (``--top`` is needed only when the
AA file stores no topology). MAP is a built-in mapping name or a YAML mapping file.
Several AA files (independent runs of one system with the same settings, e.g. ``--aa aa.r*.h5``, the replicas
that ``dynmatch reference`` writes) go into one CG file that records where each run ends, so training windows,
train/validation blocks and analyses never join two runs.
AA files from elsewhere that do not record the temperature or the time between frames need
``--temperature-k`` and ``--frame-interval-ps``; without them no CG file is written. When ``--top`` is given
and the file stores a topology too, their atoms must agree. An existing ``--out`` is replaced only with
``--overwrite``.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    from openmm_dynmatch.cli.outputs import add_overwrite_argument
    from openmm_dynmatch.mapping import FORCE_MAPS, builtin_mappings

    parser.add_argument("--aa", required=True, nargs="+", metavar="FILE",
                        help="AA trajectory file(s) (HDF5, this package's format); several files must be runs of "
                             "the same system and settings and are stored one after the other")
    parser.add_argument("--top", default=None, metavar="TOP",
                        help="AA topology (PDB, prmtop, ...) when the trajectory stores none")
    parser.add_argument("--mapping", required=True, metavar="MAP",
                        help=f"built-in mapping ({', '.join(sorted(builtin_mappings()))}) or a YAML file")
    parser.add_argument("--out", required=True, metavar="FILE", help="CG trajectory to write (HDF5)")
    parser.add_argument("--force-map", choices=sorted(FORCE_MAPS), default="bead",
                        help="bead: sum the forces of each bead's atoms (default); aggregated: also add those of the "
                             "hydrogens bonded to them, exact when bonds to hydrogen were constrained")
    parser.add_argument("--temperature-k", type=float, default=None, metavar="K",
                        help="temperature of the AA run, for files that do not record it")
    parser.add_argument("--frame-interval-ps", type=float, default=None, metavar="PS",
                        help="time between AA frames, for files that do not record it (default: from the frame "
                             "times)")
    parser.add_argument("--chunk-frames", type=int, default=1000, help="frames mapped at a time (default 1000)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_overwrite_argument(parser, "the CG trajectory --out")


def run(args) -> int:
    from openmm_dynmatch import trajio
    from openmm_dynmatch.cli.outputs import refuse_existing
    from openmm_dynmatch.mapping import map_trajectory

    refuse_existing([args.out], args.overwrite)
    out = map_trajectory(args.aa, args.mapping, args.out, topology=args.top, chunk_frames=args.chunk_frames,
                         progress=not args.no_progress, force_map=args.force_map, temperature_k=args.temperature_k,
                         frame_interval_ps=args.frame_interval_ps)
    metadata = trajio.read_metadata(out)
    forces = f"with forces ({metadata['force_map']} map)" if metadata.get("forces_mapped") else "no forces"
    lengths = metadata[trajio.LENGTHS_KEY]
    runs = f" in {len(lengths)} trajectories ({', '.join(map(str, lengths))})" if len(lengths) > 1 else ""
    print(f"{out}: {len(metadata['bead_names'])} beads, {trajio.count_frames(out)} frames{runs}, {forces}")
    return 0
