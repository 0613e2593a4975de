"""The trainer's view of the OpenMM CG engine: simulate the current model, record paths (kind ``local`` of the
sampler contract, :mod:`openmm_dynmatch.sampling`).

:meth:`OpenMMSampler.set_model` exports the potential to a TorchScript file (the same exporter users get) with the
masses and friction that realise the dynamics parameters in OpenMM
(:func:`~openmm_dynmatch.openmm.integrators.openmm_masses_and_friction`). The first call after it builds the
System and its Context; every further call until the next ``set_model`` (the free-mode advance, the recording,
the redraws of blown-up walkers) reuses that Context. The integrator's random stream is seeded when the Context
is built, from the seed of that first call, so a sequence of calls with the same seeds reproduces its paths
(which makes training runs resumable exactly).
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import openmm
import torch

from openmm_dynmatch.errors import UnstableSimulationError
from openmm_dynmatch.openmm.cg_walkers import create_system
from openmm_dynmatch.openmm.export import export
from openmm_dynmatch.openmm.integrators import openmm_masses_and_friction
from openmm_dynmatch.openmm.recorder import record_paths
from openmm_dynmatch.openmm.reference import openmm_seed
from openmm_dynmatch.sampling import Advanced, Paths, blown_up, path_blown_up

_MAX_REDRAWS = 3


class OpenMMSampler:
    """Record CG paths of ``n_walkers`` walkers with OpenMM.

    Parameters
    ----------
    metadata : dict
        Exported-model metadata of the CG molecule (bead names/types, bonds, bead masses, temperature,
        integrator, time step; the friction comes from :meth:`set_model`).
    n_walkers : int
        Walkers per System (windows per call).
    platform : str
        OpenMM platform name.
    workdir : str or Path, optional
        Folder for the exported model files (a temporary folder by default).

    Examples
    --------
    >>> sampler = OpenMMSampler(metadata, n_walkers=64)            # doctest: +SKIP
    >>> sampler.set_model(potential, dynamics)          # a DynamicsParameters
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
        self._engine_cache = None
        self._fresh = False
        self._scripted = None  # a scripted copy of the potential, refreshed with its current parameters
        self._scripted_source = None

    def set_model(self, potential: torch.nn.Module, dynamics) -> None:
        """Simulate ``potential`` with the friction of ``dynamics`` (a
        :class:`~openmm_dynmatch.dynamics.DynamicsParameters`) from the next call on."""
        friction_per_bead = dynamics.friction_per_bead().detach().cpu().numpy()
        masses, friction = openmm_masses_and_friction(self.metadata["integrator"], self.metadata["masses_amu"],
                                                      friction_per_bead)
        meta = dict(self.metadata, masses_amu=[float(m) for m in masses], friction_per_ps=float(friction))
        meta.pop("bead_friction_per_ps", None)  # the masses already realise per-bead frictions
        if self._scripted_source is not potential:
            self._scripted = torch.jit.script(copy.deepcopy(potential).eval())
            self._scripted_source = potential
        with torch.no_grad():
            for name, value in potential.state_dict().items():
                self._scripted.state_dict()[name].copy_(value)
        export(self._scripted, self.model_path, meta)
        self._engine_cache = None
        self._fresh = True

    def _engine(self, seed: int):
        """The System and Context of the current model, built on the first call after :meth:`set_model`."""
        if not self._fresh:
            raise RuntimeError("call set_model() before simulating")
        if self._engine_cache is None:
            self._engine_cache = create_system(self.model_path, self.n_walkers, platform=self.platform,
                                               seed=openmm_seed(seed))
        return self._engine_cache

    def record(self, start_positions, n_steps: int, seed: int) -> Paths:
        """Windows of ``n_steps`` steps from ``start_positions`` (B, N, 3) nm, every step recorded.

        Walkers that blow up (:func:`~openmm_dynmatch.sampling.blown_up`) are re-simulated from the same start
        with fresh noise (up to three times); they are counted in ``Paths.blowups``, never dropped.
        """
        starts = self._check_starts(start_positions)
        rng = np.random.default_rng([int(seed), 7])
        engine = self._engine(int(rng.integers(2**31)))
        recorded = record_paths(engine, starts, int(n_steps), seed=int(rng.integers(2**31)))
        positions, velocities = recorded.positions, recorded.velocities
        if velocities is None:
            velocities = np.zeros_like(starts)
        bad = path_blown_up(positions)
        blowups = int(bad.sum())
        for _ in range(_MAX_REDRAWS):
            if not bad.any():
                break
            again = record_paths(engine, starts, int(n_steps), seed=int(rng.integers(2**31)))
            positions[bad] = again.positions[bad]
            if again.velocities is not None:
                velocities[bad] = again.velocities[bad]
            bad = path_blown_up(positions)
        if bad.any():
            raise UnstableSimulationError(f"{int(bad.sum())} of {len(bad)} CG walkers exploded in every one of "
                                          f"{_MAX_REDRAWS + 1} attempts: the model is unstable at these start "
                                          "frames (try a smaller dynamics.timestep_ps or a stiffer prior)")
        return Paths(torch.as_tensor(positions), torch.as_tensor(velocities), blowups)

    def advance(self, positions, n_steps: int, seed: int) -> Advanced:
        """Continue walkers at ``positions`` (B, N, 3) nm for ``n_steps`` steps (Maxwell-Boltzmann velocities).

        Walkers that blow up are put back at their start positions and counted in ``Advanced.blowups``.
        """
        starts = self._check_starts(positions)
        rng = np.random.default_rng([int(seed), 11])
        context = self._engine(int(rng.integers(2**31))).context
        context.setPositions(starts.reshape(-1, 3))
        context.setVelocitiesToTemperature(float(self.metadata["temperature_k"]), int(rng.integers(1, 2**31 - 1)))
        context.getIntegrator().step(int(n_steps))
        state = context.getState(getPositions=True)
        final = np.array(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer),
                         dtype=np.float64).reshape(starts.shape)
        bad = blown_up(starts, final, int(n_steps))
        final[bad] = starts[bad]
        return Advanced(final, int(bad.sum()))

    def _check_starts(self, start_positions) -> np.ndarray:
        starts = np.asarray(start_positions, dtype=np.float64)
        expected = (self.n_walkers, int(self.metadata["n_beads"]), 3)
        if starts.shape != expected:
            raise ValueError(f"start_positions must have shape {expected}, got {starts.shape}")
        return starts

