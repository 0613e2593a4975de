"""openmm-ml support: ``MLPotential('dynmatch', modelPath='model.pt')`` for exported CG models.

With openmm-ml installed, call :func:`register` once (``import openmm_dynmatch.openmm.openmmml_plugin as p;
p.register()``) and then use the stock openmm-ml API::

    from openmmml import MLPotential
    potential = MLPotential("dynmatch", modelPath="model.pt")
    system = potential.createSystem(topology)                 # topology: beads of k molecules
    mixed = potential.createMixedSystem(topology, mm_system, cg_atoms)  # or a subset of a larger System

The implementation (:class:`DynmatchPotentialImpl`) does not need openmm-ml itself: its ``addForces`` adds the
model's force to any System, for all particles or for a subset ``atoms`` (``k * n_beads`` particle indices,
walker-major). openmm-ml's ``createSystem`` builds particles with element masses; CG beads have no elements,
so give the System the bead masses from ``load_metadata(model_path)["masses_amu"]`` (``addForces`` does not
change masses of a System it did not build).
"""
from typing import Iterable, Optional

import torch

from openmm_dynmatch.openmm.export import load_exported, load_metadata
from openmm_dynmatch.openmm.cg_walkers import _torch_force

try:  # openmm-ml's base classes when it is installed; plain objects otherwise
    from openmmml.mlpotential import MLPotentialImpl as _ImplBase
    from openmmml.mlpotential import MLPotentialImplFactory as _FactoryBase
except ImportError:  # pragma: no cover - depends on the environment
    _ImplBase, _FactoryBase = object, object

NAME = "dynmatch"


class AtomSubset(torch.nn.Module):
    """Select the CG particles of a larger System before calling an exported model.

    Parameters
    ----------
    model : torch.jit.ScriptModule
        An exported model (flat ``(k * n_beads, 3)`` positions -> 0-d energy).
    indices : sequence of int
        The System's particle indices of the ``k * n_beads`` beads, walker-major.
    """

    def __init__(self, model: torch.jit.ScriptModule, indices):
        super().__init__()
        self.model = model
        self.register_buffer("indices", torch.as_tensor(list(indices), dtype=torch.long))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.model(positions.index_select(0, self.indices.to(positions.device)))


class DynmatchPotentialImpl(_ImplBase):
    """Adds an exported dynamic-matching model to a System (the ``MLPotentialImpl`` of openmm-ml).

    Parameters
    ----------
    modelPath : str or Path
        Exported model file (camelCase, as openmm-ml passes keyword arguments).
    useCUDAGraphs : bool
        openmm-torch's CUDA graphs (CUDA only).
    """

    def __init__(self, modelPath, useCUDAGraphs: bool = False):
        self.model_path = modelPath
        self.metadata = load_metadata(modelPath)
        self.use_cuda_graphs = bool(useCUDAGraphs)

    def addForces(self, topology, system, atoms: Optional[Iterable[int]], forceGroup: int, **args) -> None:
        """Add the model's force for ``atoms`` (default: every particle of ``system``) in ``forceGroup``."""
        n_beads = self.metadata["n_beads"]
        n_particles = system.getNumParticles()
        indices = list(range(n_particles)) if atoms is None else [int(i) for i in atoms]
        if not indices or len(indices) % n_beads != 0:
            raise ValueError(f"atoms must hold a whole number of molecules of {n_beads} beads, got {len(indices)}")
        if len(set(indices)) != len(indices) or min(indices) < 0 or max(indices) >= n_particles:
            raise ValueError(f"atoms must be distinct particle indices in [0, {n_particles}), got {indices}")
        module = load_exported(self.model_path)
        if indices != list(range(n_particles)):
            module = torch.jit.script(AtomSubset(module, indices))
        force = _torch_force(module, self.use_cuda_graphs)
        force.setForceGroup(forceGroup)
        system.addForce(force)


class DynmatchPotentialImplFactory(_FactoryBase):
    """Creates :class:`DynmatchPotentialImpl` objects (openmm-ml's factory interface)."""

    def createImpl(self, name: str, modelPath=None, useCUDAGraphs: bool = False, **args) -> DynmatchPotentialImpl:
        if modelPath is None:
            raise ValueError("MLPotential('dynmatch') needs modelPath=<exported model file>")
        return DynmatchPotentialImpl(modelPath, useCUDAGraphs)


def register() -> None:
    """Register the ``dynmatch`` potential with openmm-ml's ``MLPotential``."""
    try:
        from openmmml import MLPotential
    except ImportError as err:
        raise ImportError("openmm-ml is not installed: conda install -c conda-forge openmm-ml") from err
    MLPotential.registerImplFactory(NAME, DynmatchPotentialImplFactory())
