"""Export a trained CG potential as a TorchScript model file for OpenMM.

Reads ``RUN_DIR/potential.pt`` (written by the trainer with ``save_potential``; its metadata holds the
exported-model keys) or a potential file given with ``--potential``, and writes a TorchScript file that
``openmm_dynmatch.openmm.create_system`` / ``create_force`` and openmm-torch's ``TorchForce`` load. An existing
``--out`` is replaced only with ``--overwrite``.
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    from openmm_dynmatch.cli.outputs import add_overwrite_argument

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_DIR", help="training run directory holding potential.pt")
    source.add_argument("--potential", metavar="FILE", help="a potential file written by save_potential")
    parser.add_argument("--out", required=True, metavar="MODEL_PT", help="exported TorchScript file to write")
    add_overwrite_argument(parser, "the model file --out")


def run(args) -> int:
    from openmm_dynmatch.cli.outputs import refuse_existing
    from openmm_dynmatch.models import load_potential
    from openmm_dynmatch.openmm.export import export, load_metadata

    path = Path(args.run) / "potential.pt" if args.run else Path(args.potential)
    if not path.is_file():
        raise FileNotFoundError(f"potential file not found: {path}")
    refuse_existing([args.out], args.overwrite)
    potential, metadata = load_potential(path)
    out = export(potential.eval(), args.out, metadata)
    meta = load_metadata(out)
    print(f"wrote {out}: {meta['n_beads']} beads, integrator {meta['integrator']}, "
          f"T = {meta['temperature_k']} K")
    return 0
