"""Run all-atom reference MD of a built-in or user system (resumable).

Examples:
  dynmatch reference --system alanine-dipeptide-implicit --ns 1 --frame-interval-ps 0.1 --out ala2.h5
  dynmatch reference --system my_system.yaml --ns 0.5 --frame-interval-ps 0.2 --out mine.h5 --save-forces
  dynmatch reference --system alanine-dipeptide-implicit --ns 1 --frame-interval-ps 0.1 --out aa.h5 --replicas 4

--system takes a registered name or a .json/.yaml file with a system spec ({"name": ..., options},
{"prmtop": ..., "inpcrd": ..., "implicit_solvent": ...} or {"pdb": ..., "forcefield": [...]}).
An interrupted run started again with the same arguments continues from its checkpoint.
--replicas N runs N independent trajectories of --ns each, one after the other, from the same start structure
with different seeds: --out aa.h5 writes aa.r0.h5, aa.r1.h5, ... (replica 0 uses --seed, replica i a seed
derived from (--seed, i)); finished replicas are kept when the command is run again. `dynmatch map` maps all
replica files (aa.r*.h5) into one CG file that keeps their boundaries.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--system", required=True,
                        help="registered system name (e.g. alanine-dipeptide-implicit; an unknown name lists all) "
                             "or a .json/.yaml system spec file")
    parser.add_argument("--ns", type=float, required=True, help="production length, ns")
    parser.add_argument("--frame-interval-ps", type=float, required=True, help="time between saved frames, ps")
    parser.add_argument("--out", required=True, help="output trajectory (.h5)")
    parser.add_argument("--save-forces", action="store_true", help="also store forces (for force matching)")
    parser.add_argument("--no-velocities", action="store_true", help="do not store velocities")
    parser.add_argument("--platform", default=None,
                        help="OpenMM platform (default: the fastest present, chosen by a short timing probe)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--replicas", type=int, default=1, metavar="N",
                        help="independent trajectories, each --ns long; N > 1 writes OUT with .rI before the suffix "
                             "(aa.h5 -> aa.r0.h5, aa.r1.h5, ...), replica I seeded from (--seed, I) (default 1: OUT)")
    parser.add_argument("--temperature-k", type=float, default=300.0, help="temperature, K (default 300)")
    parser.add_argument("--timestep-ps", type=float, default=0.002, help="integration step, ps (default 0.002)")
    parser.add_argument("--friction-per-ps", type=float, default=1.0, help="Langevin friction, 1/ps (default 1)")
    parser.add_argument("--equilibration-ps", type=float, default=10.0,
                        help="unsaved equilibration before the first frame, ps (default 10)")
    parser.add_argument("--chunk-frames", type=int, default=500, help="frames between checkpoints (default 500)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over even if an interrupted run of the same output exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from openmm_dynmatch import trajio
    from openmm_dynmatch.openmm.reference import run_reference

    written = run_reference(
        args.system, args.out, args.ns, args.frame_interval_ps, timestep_ps=args.timestep_ps,
        temperature_k=args.temperature_k, friction_per_ps=args.friction_per_ps, platform=args.platform,
        equilibration_ps=args.equilibration_ps, seed=args.seed, save_forces=args.save_forces,
        save_velocities=not args.no_velocities, chunk_frames=args.chunk_frames, resume=not args.no_resume,
        progress=not args.quiet, replicas=args.replicas)
    for out in written if isinstance(written, list) else [written]:
        metadata = trajio.read_metadata(out)
        print(f"wrote {trajio.count_frames(out)} frames of '{metadata.get('system')}' to {out} "
              f"(seed {metadata.get('seed')})")
        if metadata.get("steps_per_s"):
            print(f"throughput on {metadata['platform']}: {metadata['steps_per_s']:.0f} steps/s, "
                  f"{metadata['ns_per_day']:.1f} ns/day (last session, including output)")
    return 0
