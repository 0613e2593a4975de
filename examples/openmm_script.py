"""Run an exported dynamic-matching CG model from a plain OpenMM script.

From openmm_dynmatch come only the model's force (``create_force``), its metadata (``load_metadata``), the
integrator and particle masses the model was trained with (``create_dynamics``) and a seeded Maxwell-Boltzmann
draw of start velocities; everything else is stock OpenMM: a System for one molecule,
``openmm.app.Simulation`` with a ``DCDReporter`` and a ``StateDataReporter``.

``create_dynamics`` matters: a Langevin model runs with a ``LangevinMiddleIntegrator`` and the bead masses, a
Brownian model with a ``BrownianIntegrator`` and masses that carry its per-bead frictions. Building the
integrator by hand from ``friction_per_ps`` alone gives other dynamics than the ones trained.

With a start file, the same seed and platform, the trajectory is the one that
``dynmatch simulate --walkers 1 --start FILE --seed SEED --frame-interval-ps DT`` writes.

Usage: python openmm_script.py MODEL_PT [--ps 5] [--frame-interval-ps DT] [--out cg.dcd] [--start frames.h5]
       [--seed 0] [--platform Reference]
"""
import argparse
import sys

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

from openmm_dynmatch.openmm.export import load_metadata
from openmm_dynmatch.openmm.recorder import maxwell_boltzmann
from openmm_dynmatch.openmm.cg_walkers import create_dynamics, create_force


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


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--ps", type=float, default=5.0, help="simulated time, ps")
    parser.add_argument("--frame-interval-ps", type=float, help="time between written frames (default: ps / 50)")
    parser.add_argument("--out", default="cg.dcd")
    parser.add_argument("--start", help="trajectory whose first frame starts the run (default: a minimised chain)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the integrator and the start velocities")
    parser.add_argument("--platform", default="Reference", help="OpenMM platform")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    meta = load_metadata(args.model)
    integrator, masses_amu = create_dynamics(args.model, seed=args.seed)
    system = openmm.System()
    for mass in masses_amu:
        system.addParticle(mass * unit.amu)
    system.addForce(create_force(args.model))
    simulation = app.Simulation(build_topology(meta), system, integrator,
                                openmm.Platform.getPlatformByName(args.platform))
    if args.start:
        import mdtraj

        simulation.context.setPositions(mdtraj.load(args.start).xyz[0] * unit.nanometer)
    else:
        simulation.context.setPositions(zigzag(meta["n_beads"]) * unit.nanometer)
        simulation.minimizeEnergy(maxIterations=200)
    # Velocities matter for Langevin models only; drawn as dynmatch simulate draws them for this seed.
    velocities = maxwell_boltzmann(meta["masses_amu"], 1, meta["temperature_k"], args.seed)[0]
    simulation.context.setVelocities(velocities * unit.nanometer / unit.picosecond)
    n_steps = int(round(args.ps / meta["timestep_ps"]))
    interval_ps = args.frame_interval_ps or args.ps / 50
    interval = max(1, int(round(interval_ps / meta["timestep_ps"])))
    simulation.reporters.append(app.DCDReporter(args.out, interval))
    simulation.reporters.append(app.StateDataReporter(sys.stdout, max(1, n_steps // 5), step=True,
                                                      potentialEnergy=True, temperature=True))
    simulation.step(n_steps)
    print(f"{meta['integrator']} dynamics; wrote {n_steps // interval} frames to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
