"""Map an all-atom trajectory to coarse-grained beads (positions, and forces when recorded).

Example: ``dynmatch map --aa aa.h5 --mapping ala2-heavy10 --out cg.h5`` (``--top`` is needed only when the
AA file stores no topology). MAP is a built-in mapping name or a YAML mapping file.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    from openmm_dynmatch.mapping import builtin_mappings

    parser.add_argument("--aa", required=True, metavar="FILE", help="AA trajectory (HDF5, this package's format)")
    parser.add_argument("--top", default=None, metavar="TOP",
                        help="AA topology (PDB, prmtop, ...) when the trajectory stores none")
    parser.add_argument("--mapping", required=True, metavar="MAP",
                        help=f"built-in mapping ({', '.join(sorted(builtin_mappings()))}) or a YAML file")
    parser.add_argument("--out", required=True, metavar="FILE", help="CG trajectory to write (HDF5)")
    parser.add_argument("--chunk-frames", type=int, default=1000, help="frames mapped at a time (default 1000)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args) -> int:
    from openmm_dynmatch import trajio
    from openmm_dynmatch.mapping import map_trajectory

    out = map_trajectory(args.aa, args.mapping, args.out, topology=args.top, chunk_frames=args.chunk_frames,
                         progress=not args.no_progress)
    metadata = trajio.read_metadata(out)
    forces = "with forces" if metadata.get("forces_mapped") else "no forces"
    print(f"{out}: {len(metadata['bead_names'])} beads, {trajio.count_frames(out)} frames, {forces}")
    return 0
