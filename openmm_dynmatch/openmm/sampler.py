"""The trainer's view of the OpenMM CG engine: simulate the current model, record paths.

Every time the potential or the friction changes, :meth:`OpenMMSampler.set_model` exports the potential to a
TorchScript file (the same exporter users get) and the next call builds a fresh System and Context with
``n_walkers`` walkers from it. The integrator's random stream is seeded per call, so a sequence of calls with
the same seeds reproduces its paths (which makes training runs resumable exactly).
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import openmm
import torch

from openmm_dynmatch.errors import UnstableSimulationError
from openmm_dynmatch.openmm.export import export
from openmm_dynmatch.openmm.recorder import record_paths
from openmm_dynmatch.openmm.reference import openmm_seed
from openmm_dynmatch.openmm.cg_walkers import create_system

_MAX_REDRAWS = 3
_MAX_STEP_NM = 1.0  # a bead moving farther than this in one integration step has exploded


class OpenMMSampler:
    """Record CG paths of ``n_walkers`` walkers with OpenMM.

    Parameters
    ----------
    metadata : dict
        Exported-model metadata of the CG molecule (bead names/types, bonds, temperature, integrator,
        time step; masses and friction are replaced by :meth:`set_model`).
    n_walkers : int
        Walkers per System (windows per call).
    platform : str
        OpenMM platform name.
    workdir : str or Path, optional
        Folder for the exported model files (a temporary folder by default).

    Examples
    --------
    >>> sampler = OpenMMSampler(metadata, n_walkers=64)            # doctest: +SKIP
    >>> sampler.set_model(potential, masses_amu, friction_per_ps=5.0)
    >>> paths = sampler.record(start_positions, n_steps=50, seed=1)
    """

    def __init__(self, metadata: dict, n_walkers: int, platform: str = "Reference", workdir=None):
        self.metadata = dict(metadata)
        self.n_walkers = int(n_walkers)
        self.platform = platform
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dynmatch-sampler-")
            workdir = self._tmp.name
        self.model_path = Path(workdir) / "current_model.pt"
        self._fresh = False
        self._scripted = None  # a scripted copy of the potential, refreshed with its current parameters
        self._scripted_source = None

    def set_model(self, potential: torch.nn.Module, masses_amu, friction_per_ps: float) -> None:
        """Export ``potential`` with these masses (amu, per bead) and friction (1/ps) for the next runs."""
        meta = dict(self.metadata, masses_amu=[float(m) for m in np.asarray(masses_amu)],
                    friction_per_ps=float(friction_per_ps))
        meta.pop("bead_friction_per_ps", None)  # the masses given already realise per-bead frictions
        if self._scripted_source is not potential:
            self._scripted = torch.jit.script(copy.deepcopy(potential).eval())
            self._scripted_source = potential
        with torch.no_grad():
            for name, value in potential.state_dict().items():
                self._scripted.state_dict()[name].copy_(value)
        export(self._scripted, self.model_path, meta)
        self._fresh = True

    def _engine(self, seed: int):
        if not self._fresh:
            raise RuntimeError("call set_model() before simulating")
        return create_system(self.model_path, self.n_walkers, platform=self.platform, seed=openmm_seed(seed))

    def record(self, start_positions, n_steps: int, seed: int):
        """Windows of ``n_steps`` steps from ``start_positions`` (B, N, 3) nm, every step recorded.

        Walkers whose path becomes non-finite or jumps farther than 1 nm in one step are re-simulated from the
        same start with fresh noise (up to three times); they are counted in ``Paths.blowups``, never dropped.

        Returns
        -------
        openmm_dynmatch.paths.Paths
        """
        from openmm_dynmatch.paths import Paths

        starts = self._check_starts(start_positions)
        rng = np.random.default_rng([int(seed), 7])
        recorded = record_paths(self._engine(rng.integers(2**31)), starts, int(n_steps),
                                seed=int(rng.integers(2**31)))
        positions, velocities = recorded.positions, recorded.velocities
        if velocities is None:
            velocities = np.zeros_like(starts)
        bad = _exploded(positions)
        blowups = int(bad.sum())
        for _ in range(_MAX_REDRAWS):
            if not bad.any():
                break
            again = record_paths(self._engine(rng.integers(2**31)), starts, int(n_steps), seed=int(rng.integers(2**31)))
            positions[bad] = again.positions[bad]
            if again.velocities is not None:
                velocities[bad] = again.velocities[bad]
            bad = _exploded(positions)
        if bad.any():
            raise UnstableSimulationError(f"{int(bad.sum())} of {len(bad)} CG walkers exploded in every one of "
                                          f"{_MAX_REDRAWS + 1} attempts: the model is unstable at these start "
                                          "frames (try a smaller dynamics.timestep_ps or a stiffer prior)")
        return Paths(torch.as_tensor(positions), torch.as_tensor(velocities), blowups)

    def advance(self, positions, n_steps: int, seed: int) -> np.ndarray:
        """Continue walkers at ``positions`` (B, N, 3) nm for ``n_steps`` steps; returns the final positions.

        Walkers that explode are put back at their start positions (and counted in ``self.last_blowups``).
        """
        starts = self._check_starts(positions)
        rng = np.random.default_rng([int(seed), 11])
        engine = self._engine(rng.integers(2**31))
        context = engine.context
        context.setPositions(starts.reshape(-1, 3))
        context.setVelocitiesToTemperature(float(self.metadata["temperature_k"]), int(rng.integers(1, 2**31 - 1)))
        engine.integrator.step(int(n_steps))
        state = context.getState(getPositions=True)
        final = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer).reshape(starts.shape)
        bad = ~np.isfinite(final).all(axis=(1, 2)) | (np.abs(final - starts).max(axis=(1, 2)) > 10.0 * n_steps)
        self.last_blowups = int(bad.sum())
        final = np.array(final, dtype=np.float64)
        final[bad] = starts[bad]
        return final

    def _check_starts(self, start_positions) -> np.ndarray:
        starts = np.asarray(start_positions, dtype=np.float64)
        expected = (self.n_walkers, int(self.metadata["n_beads"]), 3)
        if starts.shape != expected:
            raise ValueError(f"start_positions must have shape {expected}, got {starts.shape}")
        return starts


def _exploded(positions: np.ndarray) -> np.ndarray:
    """Walkers (axis 0) of a path array (B, n+1, N, 3) that are non-finite or jump > 1 nm in a step."""
    finite = np.isfinite(positions).all(axis=(1, 2, 3))
    steps = np.abs(np.diff(np.nan_to_num(positions, nan=1e9, posinf=1e9, neginf=-1e9), axis=1))
    return ~finite | (steps.max(axis=(1, 2, 3)) > _MAX_STEP_NM)
