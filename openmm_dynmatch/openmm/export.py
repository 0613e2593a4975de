"""Export a CG potential as a TorchScript file that openmm-torch's ``TorchForce`` runs (DESIGN.md section 4).

The exported module wraps a per-walker potential ``forward(positions (n_walkers, n_beads, 3)) -> (n_walkers,)``
into ``forward(positions (n_walkers * n_beads, 3)) -> 0-d total energy``: one file serves any number of
walkers, because the particle count fixes the number of walkers. The input may be float32 or float64
(OpenMM's platform precision decides); it is cast to the model's dtype and device on entry and the energy is
returned in the input's dtype, so that the forces openmm-torch takes by autograd have the input's dtype too.

The file carries the model's metadata as JSON in TorchScript's ``_extra_files`` under ``dynmatch.json``:
everything ``create_system(model_path, n_walkers)`` needs to build a complete OpenMM System.

Periodic CG models (a ``(positions, box_vectors)`` forward) are not supported yet: exporting metadata with
``periodic: true`` raises ``ValueError``.
"""

import json
import numbers
from pathlib import Path

import torch

from openmm_dynmatch.fileio import atomic_path
from openmm_dynmatch.integrators import get_integrator

FORMAT_VERSION = 1
METADATA_FILE = "dynmatch.json"
REQUIRED_KEYS = (
    "n_beads", "bead_names", "bead_types", "type_names", "masses_amu", "temperature_k", "integrator",
    "friction_per_ps", "timestep_ps", "cutoff_nm", "periodic", "bonds",
)


class ExportedPotential(torch.nn.Module):
    """The module stored in an exported file: a per-walker potential behind OpenMM's flat particle array.

    Parameters
    ----------
    potential : torch.nn.Module
        Scripted per-walker potential, positions ``(n_walkers, n_beads, 3)`` nm -> energies ``(n_walkers,)``
        kJ/mol.
    n_beads : int
        Beads per walker.
    dtype : torch.dtype
        The dtype the potential computes in.
    """

    n_beads: int

    def __init__(self, potential: torch.nn.Module, n_beads: int, dtype: torch.dtype):
        super().__init__()
        self.potential = potential
        self.n_beads = n_beads
        # An empty buffer records the model's dtype and follows the module to OpenMM's device.
        self.register_buffer("dtype_reference", torch.zeros(0, dtype=dtype))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """Total energy, 0-d, kJ/mol, in the dtype of ``positions`` (``(n_walkers * n_beads, 3)`` nm)."""
        return self.walker_energies(positions).sum()

    @torch.jit.export
    def walker_energies(self, positions: torch.Tensor) -> torch.Tensor:
        """Energies ``(n_walkers,)`` kJ/mol of positions ``(n_walkers * n_beads, 3)`` or ``(n_walkers, n_beads, 3)``."""
        walkers = positions.reshape(-1, self.n_beads, 3)
        walkers = walkers.to(device=self.dtype_reference.device, dtype=self.dtype_reference.dtype)
        energies = self.potential(walkers)
        return energies.to(device=positions.device, dtype=positions.dtype)


def validate_metadata(metadata: dict) -> dict:
    """Check exported-model metadata (contract 4) and return a normalised copy with ``format_version``.

    Raises
    ------
    ValueError
        Naming the key, what was expected and what came.
    """
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"metadata lacks required keys {missing}; required: {list(REQUIRED_KEYS)}")
    try:
        meta = json.loads(json.dumps(metadata))  # a JSON-able deep copy
    except TypeError as err:
        raise ValueError(f"metadata must be JSON-serialisable (plain lists, numbers, strings): {err}") from err
    version = meta.setdefault("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(f"metadata format_version must be {FORMAT_VERSION}, got {version!r}")
    n_beads = meta["n_beads"]
    if not isinstance(n_beads, int) or isinstance(n_beads, bool) or n_beads < 1:
        raise ValueError(f"metadata n_beads must be a positive integer, got {n_beads!r}")
    for key in ("bead_names", "bead_types", "masses_amu"):
        if not isinstance(meta[key], list) or len(meta[key]) != n_beads:
            raise ValueError(f"metadata {key} must be a list of n_beads={n_beads} entries, got {meta[key]!r}")
    n_types = len(meta["type_names"])
    if any(not isinstance(t, int) or not 0 <= t < n_types for t in meta["bead_types"]):
        raise ValueError(f"metadata bead_types must be integers in [0, {n_types}), got {meta['bead_types']}")
    for key in ("temperature_k", "friction_per_ps", "timestep_ps"):
        _check_positive(meta[key], f"metadata {key}")
    for mass in meta["masses_amu"]:
        _check_positive(mass, "metadata masses_amu entry")
    if meta["cutoff_nm"] is not None:
        _check_positive(meta["cutoff_nm"], "metadata cutoff_nm")
    get_integrator(meta["integrator"])
    if not isinstance(meta["periodic"], bool):
        raise ValueError(f"metadata periodic must be true or false, got {meta['periodic']!r}")
    if meta["periodic"]:
        raise ValueError("periodic CG models are not supported yet: metadata periodic must be false")
    for bond in meta["bonds"]:
        if (not isinstance(bond, list) or len(bond) != 2 or bond[0] == bond[1]
                or any(not isinstance(i, int) or not 0 <= i < n_beads for i in bond)):
            raise ValueError(f"metadata bonds must be pairs of distinct bead indices in [0, {n_beads}), got {bond!r}")
    return meta


def export(model: torch.nn.Module, path, metadata: dict) -> Path:
    """Write ``model`` as a TorchScript file for openmm-torch, with its metadata.

    Parameters
    ----------
    model : torch.nn.Module
        Per-walker potential: positions ``(n_walkers, n_beads, 3)`` nm -> energies ``(n_walkers,)`` kJ/mol.
        Scriptable (``torch.jit.script``) or already scripted.
    path : str or Path
        Output file (``.pt``), written atomically.
    metadata : dict
        Contract-4 keys (see :data:`REQUIRED_KEYS`); ``format_version`` is added. Extra keys are kept.

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> export(potential, "model.pt", metadata)            # doctest: +SKIP
    >>> load_exported("model.pt")(torch.zeros(10 * 5, 3))  # doctest: +SKIP
    """
    meta = validate_metadata(metadata)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    scripted = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
    floating = [t for t in list(scripted.parameters()) + list(scripted.buffers()) if t.is_floating_point()]
    dtype = floating[0].dtype if floating else torch.float64
    wrapped = torch.jit.script(ExportedPotential(scripted, meta["n_beads"], dtype).cpu().eval())
    _smoke_test(wrapped, meta["n_beads"])
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.jit.save(wrapped, tmp, _extra_files={METADATA_FILE: json.dumps(meta, sort_keys=True)})
    return path


def load_metadata(path) -> dict:
    """The metadata dict stored in an exported model file."""
    extra = {METADATA_FILE: ""}
    _load(path, extra)
    if not extra[METADATA_FILE]:
        raise ValueError(f"{path} is a TorchScript file without dynmatch metadata; export it with export()")
    return validate_metadata(json.loads(extra[METADATA_FILE]))


def load_exported(path) -> torch.jit.ScriptModule:
    """The scripted module of an exported model file (on the CPU)."""
    load_metadata(path)
    return _load(path, {})


def _load(path, extra_files: dict) -> torch.jit.ScriptModule:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    _check_archive(path)
    try:
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files)
    except RuntimeError as err:
        raise ValueError(f"{path} is not a TorchScript file: {err}") from err


def _check_archive(path: Path) -> None:
    """Refuse a damaged model file before torch or openmm-torch reads it.

    A TorchScript file is a zip archive with a CRC-32 per member. ``torch.jit.load`` does not read every member
    (debug tables are read later, by openmm-torch, which aborts the process on a bad one) and does not check the
    checksums of the tensors it reads, so a flipped byte could otherwise give other weights without an error.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except Exception as err:  # BadZipFile, zlib.error, EOFError, ...: all mean the archive cannot be read
        raise ValueError(f"{path} is not a TorchScript file (not a readable zip archive: {type(err).__name__}: "
                         f"{err}); export the model again") from err
    if damaged is not None:
        raise ValueError(f"{path} is damaged: its member {damaged} fails its checksum (a changed or truncated "
                         f"file); export the model again")


def _smoke_test(wrapped: torch.jit.ScriptModule, n_beads: int) -> None:
    """Evaluate the wrapped model on two zig-zag walkers: it must return one energy per walker."""
    index = torch.arange(n_beads, dtype=torch.float64)
    walker = torch.stack([0.38 * index, 0.1 * (index % 2), 0.05 * (index % 3)], dim=1)
    positions = torch.stack([walker, walker + 0.5]).reshape(-1, 3)
    try:
        energies = wrapped.walker_energies(positions)
    except RuntimeError as err:
        raise ValueError(f"model failed on positions of shape (2, {n_beads}, 3): {err}") from err
    if tuple(energies.shape) != (2,):
        raise ValueError(f"model must return energies of shape (n_walkers,) = (2,), got {tuple(energies.shape)}")
    if wrapped(positions).dim() != 0:
        raise ValueError("exported forward must return a 0-d energy")


def _check_positive(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
