"""A CG-representable toy for the trainer tests: a 3-D harmonic dimer under Brownian or Langevin dynamics.

"AA" data are produced by OpenMM from the true model (exported and run by the package's runner), so dynamic
matching must recover the true force constant, bond length and friction from them.
"""
import math

import numpy as np
import torch
from torch import nn

from openmm_dynmatch import trajio
from openmm_dynmatch.units import kt_kj_per_mol

TEMPERATURE_K = 300.0
MASS_AMU = 12.0


class HarmonicDimer(nn.Module):
    """``U = k/2 (|x_1 - x_0| - r0)^2`` per walker, with ``log k`` and ``r0`` learnable (float64)."""

    def __init__(self, k: float, r0_nm: float):
        super().__init__()
        self.log_k = nn.Parameter(torch.tensor(math.log(k), dtype=torch.float64))
        self.r0 = nn.Parameter(torch.tensor(r0_nm, dtype=torch.float64))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        x = positions.to(torch.float64)
        r = torch.sqrt(((x[:, 1] - x[:, 0]) ** 2).sum(dim=-1))
        return 0.5 * torch.exp(self.log_k) * (r - self.r0) ** 2


def dimer_metadata(integrator: str, friction_per_ps: float, timestep_ps: float) -> dict:
    """Exported-model metadata of the dimer."""
    return {"n_beads": 2, "bead_names": ["A", "B"], "bead_types": [0, 0], "type_names": ["A"],
            "masses_amu": [MASS_AMU, MASS_AMU], "temperature_k": TEMPERATURE_K, "integrator": integrator,
            "friction_per_ps": friction_per_ps, "timestep_ps": timestep_ps, "cutoff_nm": None, "periodic": False,
            "bonds": [[0, 1]]}


def boltzmann_dimers(k: float, r0: float, n: int, rng) -> np.ndarray:
    """Exact Boltzmann samples ``(n, 2, 3)`` nm of the dimer (bond length by rejection from r^2 exp(-U/kT))."""
    kt = kt_kj_per_mol(TEMPERATURE_K)
    sigma = math.sqrt(kt / k)
    lengths = []
    while len(lengths) < n:
        r = rng.normal(r0, sigma, size=4 * n)
        keep = r[(r > 0) & (rng.random(r.size) < (r / (r0 + 6 * sigma)) ** 2)]
        lengths.extend(keep.tolist())
    r = np.asarray(lengths[:n])
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    x = np.zeros((n, 2, 3))
    x[:, 1] = r[:, None] * direction
    return x - x.mean(axis=1, keepdims=True)


def dimer_forces(positions: np.ndarray, k: float, r0: float) -> np.ndarray:
    """Exact forces ``(n, 2, 3)`` kJ/mol/nm of the dimer."""
    bond = positions[:, 1] - positions[:, 0]
    r = np.linalg.norm(bond, axis=1, keepdims=True)
    f1 = -k * (r - r0) * bond / r
    return np.stack([-f1, f1], axis=1)


def write_dimer_data(path, positions: np.ndarray, frame_interval_ps: float, k: float, r0: float) -> None:
    """Write frames ``(n, 2, 3)`` as a mapped (CG-resolution) trajectory with exact forces and metadata."""
    import mdtraj

    top = mdtraj.Topology()
    residue = top.add_residue("DIM", top.add_chain())
    atoms = [top.add_atom(name, mdtraj.element.carbon, residue) for name in ("A", "B")]
    top.add_bond(*atoms)
    meta = {"temperature_k": TEMPERATURE_K, "frame_interval_ps": frame_interval_ps, "masses_amu": [MASS_AMU] * 2,
            "bead_names": ["A", "B"], "bead_types": [0, 0], "type_names": ["A"], "bonds": [[0, 1]],
            "forces_mapped": True, "timestep_ps": frame_interval_ps}
    with trajio.TrajectoryWriter(path, top, meta) as writer:
        writer.write(positions, np.arange(len(positions)) * frame_interval_ps,
                     forces=dimer_forces(positions, k, r0))


def simulate_dimer_data(tmp_path, integrator: str, k: float, r0: float, friction_per_ps: float,
                        timestep_ps: float, frame_interval_ps: float, n_walkers: int, n_frames: int, seed: int):
    """Mapped-format "AA" data of the true dimer, simulated by OpenMM: walker trajectories concatenated.

    Returns the data file path and the frames ``(n_walkers, n_frames, 2, 3)``.
    """
    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.runner import simulate

    model = tmp_path / "true_dimer.pt"
    export(HarmonicDimer(k, r0), model, dimer_metadata(integrator, friction_per_ps, timestep_ps))
    starts = boltzmann_dimers(k, r0, n_walkers, np.random.default_rng(seed))
    out = tmp_path / "true_dimer_traj.h5"
    steps_per_frame = int(round(frame_interval_ps / timestep_ps))
    simulate(model, starts, n_walkers, out, n_steps=n_frames * steps_per_frame, frame_interval_ps=frame_interval_ps,
             platform="Reference", seed=seed, progress=False)
    frames = trajio.load(out).positions.reshape(-1, n_walkers, 2, 3).transpose(1, 0, 2, 3)
    return out, frames
