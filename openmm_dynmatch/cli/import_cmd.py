"""Import trajectories that are already coarse-grained into the mapped-data file that training reads.

Example: ``dynmatch import run0.npz run1.npz --metadata meta.yaml --out cg.h5`` writes the file that
``dynmatch map`` would write, for ``data.cg_path``. Every input file (and every trajectory in it) becomes one
independent trajectory of the output. An ``.npz`` input holds ``positions`` (n_frames, n_beads, 3) in nm and
optionally ``forces`` in kJ/mol/nm, or ``positions_0``, ``positions_1``, ... (and ``forces_0``, ...) for several
trajectories; other files are read with mdtraj (``--top`` for formats that store no topology; bead names, and
bonds when it has some, come from the topology). The metadata (masses, bonds, temperature, frame interval; bead
names and types optional) come from the YAML file ``--metadata`` with the keys of
``openmm_dynmatch.cgdata.import_cg`` and from the flags below, which override it. An existing ``--out`` is
replaced only with ``--overwrite``.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    from openmm_dynmatch.cli.outputs import add_overwrite_argument

    parser.add_argument("inputs", nargs="+", metavar="FILE",
                        help="CG trajectory files (.npz, or formats mdtraj reads), each one or more trajectories")
    parser.add_argument("--out", required=True, metavar="FILE", help="mapped-data file to write (HDF5)")
    parser.add_argument("--top", default=None, metavar="TOP",
                        help="topology of the beads for trajectory formats that store none (.dcd, .xtc, ...)")
    parser.add_argument("--metadata", default=None, metavar="YAML",
                        help="YAML file with the metadata keys (temperature_k, frame_interval_ps, masses_amu, bonds, "
                             "bead_names, bead_types, type_names, timestep_ps)")
    parser.add_argument("--temperature-k", type=float, default=None, metavar="K",
                        help="temperature of the simulation the data come from")
    parser.add_argument("--frame-interval-ps", type=float, default=None, metavar="PS", help="time between frames")
    parser.add_argument("--timestep-ps", type=float, default=None, metavar="PS",
                        help="integration timestep of that simulation (recorded only)")
    parser.add_argument("--masses-amu", type=float, nargs="+", default=None, metavar="M", help="bead masses")
    parser.add_argument("--bonds", nargs="*", default=None, metavar="I-J",
                        help="bonded bead pairs, e.g. 0-1 1-2 (the flag alone: no bonds)")
    parser.add_argument("--bead-names", nargs="+", default=None, metavar="NAME",
                        help="bead names (default: B0, B1, ... or the topology's atom names)")
    parser.add_argument("--bead-types", type=int, nargs="+", default=None, metavar="T",
                        help="type index of every bead (default: all 0)")
    parser.add_argument("--type-names", nargs="+", default=None, metavar="NAME",
                        help="names of the bead types (default: T0, T1, ...)")
    add_overwrite_argument(parser, "the file --out")


def run(args) -> int:
    from openmm_dynmatch import trajio
    from openmm_dynmatch.cgdata import METADATA_KEYS, import_cg_files, read_metadata_yaml
    from openmm_dynmatch.cli.outputs import refuse_existing

    refuse_existing([args.out], args.overwrite)
    metadata = read_metadata_yaml(args.metadata) if args.metadata else {}
    metadata.update({key: getattr(args, key) for key in METADATA_KEYS if getattr(args, key) is not None})
    out = import_cg_files(args.inputs, args.out, metadata=metadata, topology=args.top, overwrite=args.overwrite)
    metadata = trajio.read_metadata(out)
    lengths = metadata[trajio.LENGTHS_KEY]
    forces = "with forces" if metadata["forces_mapped"] else "no forces"
    print(f"{out}: {len(lengths)} trajector{'y' if len(lengths) == 1 else 'ies'} ({', '.join(map(str, lengths))} "
          f"frames), {sum(lengths)} frames, {len(metadata['bead_names'])} beads, {forces}")
    return 0
