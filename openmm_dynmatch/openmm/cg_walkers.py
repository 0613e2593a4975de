"""OpenMM Systems of many independent CG walkers, evaluated by one ``TorchForce`` (DESIGN.md section 5).

An exported model file (see :mod:`openmm_dynmatch.openmm.export`) holds everything needed: the System gets
``n_walkers * n_beads`` particles in walker-major order (particle ``w * n_beads + i``) with the model's bead
masses, one ``TorchForce`` that evaluates every walker in one batched call, no constraints; the integrator
(``LangevinMiddleIntegrator`` or ``BrownianIntegrator``) takes its temperature, friction and timestep from the
metadata unless overridden; the ``openmm.app.Topology`` has one chain per walker so that stock reporters and
mdtraj work on it.

``TorchForce`` is built in exactly one function, :func:`_torch_force`: moving to openmm-torch's
``PythonTorchForce`` changes that function only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch  # noqa: F401  (before openmmtorch: the plugin links against the torch in the process)
import openmm
import openmm.app
import openmmtorch

from openmm_dynmatch.openmm.export import load_exported, load_metadata, validate_metadata
from openmm_dynmatch.openmm.integrators import (create_integrator, openmm_integrator, openmm_masses_and_friction,
                                                per_bead_langevin_integrator)
from openmm_dynmatch.openmm.reference import available_platforms  # noqa: F401  (public here too)
from openmm_dynmatch.openmm.reference import openmm_seed
from openmm_dynmatch.units import positive_float



def _register_torch_kernels() -> None:
    """Retry the openmm-torch kernel plugins that failed to load because OpenMM was imported before torch.

    OpenMM loads its plugin folder on import; openmm-torch's kernel libraries need libtorch's shared
    libraries in the process, so a script that imports ``openmm`` first ends up without TorchForce kernels
    ("does not support all required kernels"). Loading them again now that torch is loaded fixes that.
    """
    for failure in openmm.Platform.getPluginLoadFailures():
        match = re.search(r"library (\S*OpenMMTorch\w*\.(?:so|dylib|dll))", failure)
        if match:
            try:
                openmm.Platform.loadPluginLibrary(match.group(1))
            except Exception:  # noqa: BLE001  (e.g. an OpenCL/CUDA kernel library without its driver)
                pass


_register_torch_kernels()

# Preferred order when no platform is named: for small CG systems Reference and CPU run at the same speed
# (TorchForce dominates; see benchmarks/engine.py) and Reference is double precision; CUDA beats both.
PLATFORM_PREFERENCE = ("CUDA", "Reference", "CPU", "OpenCL", "HIP")
PRECISIONS = ("single", "mixed", "double")
DEFAULT_PRECISION = "mixed"  # positions and integration in float64, forces in float32 (CUDA, OpenCL, HIP)


@dataclass
class CGSystem:
    """An OpenMM System of ``n_walkers`` CG walkers with its integrator, topology and platform choice.

    Attributes
    ----------
    system : openmm.System
    integrator : openmm.Integrator
    topology : openmm.app.Topology
        One chain (and one residue) per walker, one atom per bead, bonds from the metadata.
    metadata : dict
        The exported model's metadata, with ``integrator``/``friction_per_ps``/``timestep_ps``/
        ``temperature_k`` replaced by the values in use.
    n_walkers : int
    platform : openmm.Platform
    properties : dict
        Platform properties (precision etc.).

    Examples
    --------
    >>> cg = create_system("model.pt", n_walkers=64)    # doctest: +SKIP
    >>> cg.context.setPositions(positions.reshape(-1, 3))
    >>> cg.integrator.step(100)
    """

    system: openmm.System
    integrator: openmm.Integrator
    topology: openmm.app.Topology
    metadata: dict
    n_walkers: int
    platform: openmm.Platform
    properties: dict
    _context: Optional[openmm.Context] = field(default=None, repr=False)

    @property
    def n_beads(self) -> int:
        return int(self.metadata["n_beads"])

    @property
    def context(self) -> openmm.Context:
        """The Context (created on first use, then reused: creating one is expensive)."""
        if self._context is None:
            self._context = openmm.Context(self.system, self.integrator, self.platform, self.properties)
        return self._context

    def mdtraj_topology(self):
        """The topology as an ``mdtraj.Topology``."""
        import mdtraj

        return mdtraj.Topology.from_openmm(self.topology)


def platform_and_properties(name: Optional[str] = None, precision: Optional[str] = None):
    """Pick an OpenMM platform and its properties.

    Parameters
    ----------
    name : str, optional
        ``CUDA``, ``CPU``, ``Reference``, ... (default: the first present of :data:`PLATFORM_PREFERENCE`).
    precision : str, optional
        ``single``, ``mixed`` or ``double``, for platforms with a ``Precision`` property (CUDA, OpenCL, HIP);
        default ``mixed`` there (OpenMM's own default is ``single``, which stores positions in float32: recorded
        paths would then lose the float64 the path likelihood needs). Reference always computes in double
        precision; asking it (or CPU) for another precision is an error.

    Returns
    -------
    (openmm.Platform, dict)
        The platform and the properties to create a Context with.
    """
    present = available_platforms()
    if name is None:
        name = next(p for p in PLATFORM_PREFERENCE + tuple(present) if p in present)
    if name not in present:
        raise ValueError(f"unknown platform '{name}'; available: {sorted(present)}")
    platform = openmm.Platform.getPlatformByName(name)
    properties = {}
    if precision is None and "Precision" in platform.getPropertyNames():
        precision = DEFAULT_PRECISION
    if precision is not None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{precision}'; available: {sorted(PRECISIONS)}")
        if "Precision" in platform.getPropertyNames():
            properties["Precision"] = precision
        elif not (name == "Reference" and precision == "double"):
            raise ValueError(f"platform {name} has no precision setting; precision must be None, got '{precision}'")
    return platform, properties


def cg_topology(metadata: dict, n_walkers: int) -> openmm.app.Topology:
    """An ``openmm.app.Topology`` with one chain and one residue ``CG`` per walker, beads as atoms, bonds."""
    _check_walkers(n_walkers)
    topology = openmm.app.Topology()
    for _ in range(n_walkers):
        chain = topology.addChain()
        residue = topology.addResidue("CG", chain)
        atoms = [topology.addAtom(str(name), None, residue) for name in metadata["bead_names"]]
        for i, j in metadata["bonds"]:
            topology.addBond(atoms[i], atoms[j])
    return topology


def _torch_force(module: torch.jit.ScriptModule, use_cuda_graphs: bool) -> openmm.Force:
    """The one place that builds openmm-torch's force from an exported module."""
    force = openmmtorch.TorchForce(module)
    force.setOutputsForces(False)
    force.setUsesPeriodicBoundaryConditions(False)
    force.setProperty("useCUDAGraphs", "true" if use_cuda_graphs else "false")
    return force


def create_force(model_path, use_cuda_graphs: bool = False) -> openmm.Force:
    """The OpenMM force of an exported model, for users adding it to their own System.

    The force expects ``k * n_beads`` particles (``k`` walkers, walker-major order) and no others, with the
    particle masses that :func:`create_dynamics` returns. ``use_cuda_graphs`` only matters on CUDA.
    """
    return _torch_force(load_exported(model_path), use_cuda_graphs)


def create_dynamics(model, seed: Optional[int] = None):
    """The integrator and particle masses an exported model was trained with, for a user's own System.

    The integrator kind, temperature, friction and time step come from the model's metadata; the masses are
    those of :func:`particle_masses`: the bead masses, or for a Brownian model with per-bead frictions
    ``masses_amu[i] * bead_friction_per_ps[i] / friction_per_ps``. A System built with these masses and this
    integrator runs the dynamics the model was trained with (and that :func:`create_system` and
    ``dynmatch simulate`` run).

    Parameters
    ----------
    model : str, Path or dict
        Exported model file, or its metadata (:func:`~openmm_dynmatch.openmm.export.load_metadata`).
    seed : int, optional
        Run seed, as ``dynmatch simulate --seed``: the integrator gets the random stream of that run
        (:func:`~openmm_dynmatch.openmm.reference.openmm_seed`). None: OpenMM picks one.

    Returns
    -------
    integrator : openmm.LangevinMiddleIntegrator or openmm.BrownianIntegrator
    masses_amu : list of float, length n_beads, amu
        Mass of every particle of one walker; repeat it for each walker (walker-major order).

    Examples
    --------
    >>> integrator, masses_amu = create_dynamics("model.pt", seed=1)   # doctest: +SKIP
    >>> for mass in masses_amu:
    ...     system.addParticle(mass)
    >>> system.addForce(create_force("model.pt"))
    """
    meta = validate_metadata(model) if isinstance(model, dict) else load_metadata(model)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    integrator = create_integrator(meta["integrator"], meta["temperature_k"], meta["friction_per_ps"],
                                   meta["timestep_ps"], None if seed is None else openmm_seed(seed))
    return integrator, particle_masses(meta)


def create_system(model_path, n_walkers: int, *, platform=None, precision=None, integrator=None,
                  friction_per_ps=None, timestep_ps=None, temperature_k=None, use_cuda_graphs=True,
                  seed: Optional[int] = None, bead_friction_per_ps=None) -> CGSystem:
    """Build the OpenMM System of ``n_walkers`` walkers of an exported model.

    Parameters
    ----------
    model_path : str or Path
        Exported model file.
    n_walkers : int
    platform : str, optional
        Platform name (see :func:`platform_and_properties`).
    precision : str, optional
    integrator : str, optional
        ``langevin`` or ``brownian`` (default: the metadata's).
    friction_per_ps, timestep_ps, temperature_k : float or Quantity, optional
        Override the metadata's dynamics parameters.
    use_cuda_graphs : bool
        Use openmm-torch's CUDA graphs (CUDA only).
    seed : int, optional
        Integrator random seed.
    bead_friction_per_ps : sequence of float, optional
        A friction for every bead of a walker (1/ps), instead of the model's: Langevin models then run with
        :func:`~openmm_dynmatch.openmm.integrators.per_bead_langevin_integrator`, Brownian models with particle
        masses that carry the frictions (:func:`particle_masses`). The metadata then hold them as
        ``bead_friction_per_ps`` and their mean as ``friction_per_ps``. Not together with ``friction_per_ps``.
    """
    _check_walkers(n_walkers)
    meta = dict(load_metadata(model_path))
    overrides = {"integrator": integrator, "friction_per_ps": friction_per_ps, "timestep_ps": timestep_ps,
                 "temperature_k": temperature_k}
    units = {"friction_per_ps": "1/ps", "timestep_ps": "ps", "temperature_k": "K"}
    for key, value in overrides.items():
        if value is not None:
            meta[key] = value if key == "integrator" else positive_float(value, units[key], key)
    if friction_per_ps is not None and meta.get("bead_friction_per_ps"):
        meta["bead_friction_per_ps"] = [meta["friction_per_ps"]] * int(meta["n_beads"])  # one friction for all
    if bead_friction_per_ps is not None:
        if friction_per_ps is not None:
            raise ValueError("give friction_per_ps (one friction for all beads) or bead_friction_per_ps (one per "
                             "bead), not both")
        frictions = _bead_frictions(bead_friction_per_ps, int(meta["n_beads"]))
        meta["bead_friction_per_ps"] = frictions.tolist()
        meta["friction_per_ps"] = float(frictions.mean())
    omm_platform, properties = platform_and_properties(platform, precision)
    system = openmm.System()
    masses = particle_masses(meta, friction_overridden=friction_per_ps is not None)
    for _ in range(n_walkers):
        for mass in masses:
            system.addParticle(float(mass))
    graphs = use_cuda_graphs and omm_platform.getName() == "CUDA"
    system.addForce(_torch_force(load_exported(model_path), graphs))
    if bead_friction_per_ps is not None and not openmm_integrator(meta["integrator"]).masses_carry_friction:
        if meta["integrator"] != "langevin":
            raise ValueError(f"bead_friction_per_ps: integrator '{meta['integrator']}' has no per-bead frictions; "
                             f"langevin and brownian have")
        omm_integrator = per_bead_langevin_integrator(meta["temperature_k"], np.tile(frictions, n_walkers),
                                                      meta["timestep_ps"], seed)
    else:
        omm_integrator = create_integrator(meta["integrator"], meta["temperature_k"], meta["friction_per_ps"],
                                           meta["timestep_ps"], seed)
    return CGSystem(system, omm_integrator, cg_topology(meta, n_walkers), meta, n_walkers, omm_platform, properties)


def particle_masses(metadata: dict, friction_overridden: bool = False) -> list:
    """Particle masses (amu) of one walker.

    The bead masses, except where the model has per-bead frictions (optional metadata key
    ``bead_friction_per_ps``, written by the trainer when it learns one friction per bead type) and the
    integrator realises them through the masses (Brownian dynamics depends on ``gamma_i m_i`` only): then bead
    ``i`` gets the mass ``m_i gamma_i / gamma`` with the integrator's single friction ``gamma = friction_per_ps``
    (:func:`~openmm_dynmatch.openmm.integrators.openmm_masses_and_friction`). A friction given explicitly
    (``friction_per_ps`` override) applies to all beads.
    """
    masses = [float(m) for m in metadata["masses_amu"]]
    per_bead = metadata.get("bead_friction_per_ps")
    if not per_bead or friction_overridden or not openmm_integrator(metadata["integrator"]).masses_carry_friction:
        return masses
    if len(per_bead) != len(masses):
        raise ValueError(f"metadata bead_friction_per_ps must list {len(masses)} values, got {len(per_bead)}")
    realised, _ = openmm_masses_and_friction(metadata["integrator"], masses, per_bead,
                                             integrator_friction_per_ps=metadata["friction_per_ps"])
    return [float(m) for m in realised]


def create_simulation(model_path, n_walkers: int, **kwargs) -> openmm.app.Simulation:
    """A ready ``openmm.app.Simulation`` of ``n_walkers`` walkers; keyword arguments as :func:`create_system`."""
    cg = create_system(model_path, n_walkers, **kwargs)
    return openmm.app.Simulation(cg.topology, cg.system, cg.integrator, cg.platform, cg.properties)


def _bead_frictions(values, n_beads: int) -> np.ndarray:
    """``bead_friction_per_ps`` checked: ``n_beads`` finite positive frictions, 1/ps."""
    try:
        frictions = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        frictions = None
    if frictions is None or frictions.shape != (n_beads,) or not np.all(np.isfinite(frictions) & (frictions > 0)):
        raise ValueError(f"bead_friction_per_ps must list {n_beads} finite positive frictions (1/ps), one per bead, "
                         f"got {values!r}")
    return frictions


def _check_walkers(n_walkers) -> None:
    if isinstance(n_walkers, bool) or not isinstance(n_walkers, int) or n_walkers < 1:
        raise ValueError(f"n_walkers must be a positive integer, got {n_walkers!r}")
