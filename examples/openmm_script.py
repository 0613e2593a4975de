"""Run an exported dynamic-matching CG model from a plain OpenMM script.

Only ``create_force`` (and ``load_metadata`` for the bead masses and dynamics parameters) come from
openmm_dynmatch; everything else is stock OpenMM: a System for one molecule, a LangevinMiddleIntegrator,
``openmm.app.Simulation`` with a ``DCDReporter`` and a ``StateDataReporter``.

Usage: python openmm_script.py MODEL_PT [--ps 5] [--out cg.dcd] [--start frames.h5]
"""
import argparse
import sys

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

from openmm_dynmatch.openmm.export import load_metadata
from openmm_dynmatch.openmm.system import create_force


def build_topology(meta):
    """One chain, one residue, one atom per bead, bonds from the model's bond graph."""
    topology = app.Topology()
    residue = topology.addResidue("CG", topology.addChain())
    atoms = [topology.addAtom(name, None, residue) for name in meta["bead_names"]]
    for i, j in meta["bonds"]:
        topology.addBond(atoms[i], atoms[j])
    return topology


def zigzag(n_beads, bond_nm=0.38):
    index = np.arange(n_beads)
    return np.stack([0.9 * bond_nm * index, 0.4 * bond_nm * (index % 2), np.zeros(n_beads)], axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--ps", type=float, default=5.0, help="simulated time, ps")
    parser.add_argument("--out", default="cg.dcd")
    parser.add_argument("--start", help="trajectory whose first frame starts the run")
    args = parser.parse_args(argv)

    meta = load_metadata(args.model)
    system = openmm.System()
    for mass in meta["masses_amu"]:
        system.addParticle(mass * unit.amu)
    system.addForce(create_force(args.model))
    integrator = openmm.LangevinMiddleIntegrator(meta["temperature_k"] * unit.kelvin,
                                                 meta["friction_per_ps"] / unit.picosecond,
                                                 meta["timestep_ps"] * unit.picosecond)
    integrator.setRandomNumberSeed(1)
    topology = build_topology(meta)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    if args.start:
        import mdtraj

        positions = mdtraj.load(args.start).xyz[0]
    else:
        positions = zigzag(meta["n_beads"])
    simulation.context.setPositions(positions * unit.nanometer)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(meta["temperature_k"] * unit.kelvin, 1)
    n_steps = int(round(args.ps / meta["timestep_ps"]))
    interval = max(1, n_steps // 50)
    simulation.reporters.append(app.DCDReporter(args.out, interval))
    simulation.reporters.append(app.StateDataReporter(sys.stdout, max(1, n_steps // 5), step=True,
                                                      potentialEnergy=True, temperature=True))
    simulation.step(n_steps)
    print(f"wrote {n_steps // interval} frames to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
