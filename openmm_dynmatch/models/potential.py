"""The CG potential ``U = U_prior + U_net`` and its fast invariant networks; building, saving and loading.

Network kinds (``spec["net"]["kind"]``):

- ``pair_mlp`` (default): a sum over bead pairs of an MLP of radial-basis features of the pair distance,
  conditioned on the two bead types, times a smooth cosine cutoff. The fastest kind.
- ``schnet``: SchNet-like continuous-filter message passing on all pairs within the cutoff, per-bead energies.
- ``equivariant``: NequIP-style e3nn network (:mod:`openmm_dynmatch.models.equivariant`).
- ``internal_mlp``: CGnet-style MLP of all distances, bond-angle cosines and dihedral cosines and sines
  (:mod:`openmm_dynmatch.models.internal`); chirality-aware.
- ``none``: no network, the prior alone.
- ``ensemble``: the mean energy of several networks of one kind (:mod:`openmm_dynmatch.models.ensemble`), which
  force matching fits one by one.

All networks work on dense per-walker tensors ``(n_walkers, n_beads, ...)`` with a precomputed pair list of
the fixed molecule, so one call evaluates every walker.

Example
-------
>>> potential = build_potential({"n_beads": 10, "bonds": [[i, i + 1] for i in range(9)]})
>>> energies, forces_ = forces(potential, torch.randn(4, 10, 3))
>>> energies.shape, forces_.shape
(torch.Size([4]), torch.Size([4, 10, 3]))
"""
import copy
import inspect
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import FileFormatError, short_reason
from ..fileio import torch_load, torch_save
from .geometry import difference_matrix, differences
from .graph import bead_type_array, pair_index, validate_bonds
from .prior import PriorPotential, resolve_dtype
from .radial import build_radial_basis, cosine_cutoff, safe_norm
from .registry import resolve

ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; available: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class PairMLP(nn.Module):
    """Pair-additive network ``sum_{i<j} f(phi(r_ij), t_i, t_j) c(r_ij)``.

    Parameters
    ----------
    n_beads : int
    bead_types : list of int, length n_beads, optional (default: all type 0)
    n_types : int, optional (default: ``max(bead_types) + 1``)
    bonds : array-like, shape (n_bonds, 2), optional
    exclude_bonds : int
        Pairs up to this many bonds apart are left to the prior (0 = the net sees every pair).
    cutoff_nm : float
        Smooth cosine cutoff of the pair terms, nm.
    n_basis, basis : int, str
        Radial basis size and kind (``'gaussian'`` or ``'bessel'``).
    hidden, n_layers : int
        Width and number of hidden layers of the pair MLP.
    embedding_dim : int
        Size of the bead-type embedding; the pair's embedding ``e_i + e_j`` biases the first layer.
    activation : str
    """

    cutoff_nm: float

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None, exclude_bonds: int = 0,
                 cutoff_nm: float = 1.2, n_basis: int = 16, basis: str = "gaussian", hidden: int = 32,
                 n_layers: int = 2, embedding_dim: int = 8, activation: str = "silu"):
        super().__init__()
        types, n_types = bead_type_array(bead_types, n_beads, n_types)
        bonds = validate_bonds(bonds, n_beads)
        pairs = pair_index(n_beads, bonds, min_separation=exclude_bonds + 1)
        self.register_buffer("pairs", torch.as_tensor(pairs))
        self.register_buffer("pair_types", torch.as_tensor(types[pairs]))
        self.register_buffer("pair_matrix", difference_matrix(n_beads, pairs[1], pairs[0], torch.get_default_dtype()),
                             persistent=False)
        self.cutoff_nm = float(cutoff_nm)
        self.basis = build_radial_basis(basis, n_basis, cutoff_nm)
        self.embedding = nn.Embedding(n_types, embedding_dim)
        self.type_bias = nn.Linear(embedding_dim, hidden)
        self.first = nn.Linear(n_basis, hidden, bias=False)
        layers = [_activation(activation)]
        for _ in range(n_layers - 1):
            layers += [nn.Linear(hidden, hidden), _activation(activation)]
        layers.append(nn.Linear(hidden, 1))
        self.mlp = nn.Sequential(*layers)
        self.spec = {"kind": "pair_mlp", "n_beads": int(n_beads), "bead_types": types.tolist(),
                     "n_types": n_types, "bonds": bonds.tolist(), "exclude_bonds": int(exclude_bonds),
                     "cutoff_nm": float(cutoff_nm), "n_basis": int(n_basis), "basis": basis, "hidden": int(hidden),
                     "n_layers": int(n_layers), "embedding_dim": int(embedding_dim), "activation": activation}

    def forward(self, positions: Tensor) -> Tensor:
        """Energies: positions (n_walkers, n_beads, 3) nm -> (n_walkers,) kJ/mol."""
        r = safe_norm(differences(positions, self.pair_matrix))
        emb = self.embedding(self.pair_types)
        bias = self.type_bias(emb[0] + emb[1])
        pair_energy = self.mlp(self.first(self.basis(r)) + bias).squeeze(-1)
        return (pair_energy * cosine_cutoff(r, self.cutoff_nm)).sum(-1)


class SchNet(nn.Module):
    """SchNet-like continuous-filter message passing over all pairs within the cutoff.

    Parameters as :class:`PairMLP` (``hidden`` = feature width), plus ``n_interactions`` message-passing blocks.
    """

    cutoff_nm: float
    n_beads: int

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None, exclude_bonds: int = 0,
                 cutoff_nm: float = 1.2, n_basis: int = 16, basis: str = "gaussian", hidden: int = 32,
                 n_interactions: int = 2, activation: str = "silu"):
        super().__init__()
        types, n_types = bead_type_array(bead_types, n_beads, n_types)
        bonds = validate_bonds(bonds, n_beads)
        pairs = pair_index(n_beads, bonds, min_separation=exclude_bonds + 1)
        self.n_beads = int(n_beads)
        self.register_buffer("pairs", torch.as_tensor(pairs))
        self.register_buffer("pair_matrix", difference_matrix(n_beads, pairs[1], pairs[0], torch.get_default_dtype()),
                             persistent=False)
        self.register_buffer("src", torch.as_tensor(np.concatenate([pairs[0], pairs[1]])))
        self.register_buffer("dst", torch.as_tensor(np.concatenate([pairs[1], pairs[0]])))
        self.register_buffer("types", torch.as_tensor(types))
        self.cutoff_nm = float(cutoff_nm)
        self.basis = build_radial_basis(basis, n_basis, cutoff_nm)
        self.embedding = nn.Embedding(n_types, hidden)
        self.filters = nn.ModuleList([nn.Sequential(nn.Linear(n_basis, hidden), _activation(activation),
                                                    nn.Linear(hidden, hidden)) for _ in range(n_interactions)])
        self.inputs = nn.ModuleList([nn.Linear(hidden, hidden, bias=False) for _ in range(n_interactions)])
        self.updates = nn.ModuleList([nn.Sequential(nn.Linear(hidden, hidden), _activation(activation),
                                                    nn.Linear(hidden, hidden)) for _ in range(n_interactions)])
        self.readout = nn.Sequential(nn.Linear(hidden, hidden // 2), _activation(activation),
                                     nn.Linear(hidden // 2, 1))
        self.spec = {"kind": "schnet", "n_beads": int(n_beads), "bead_types": types.tolist(), "n_types": n_types,
                     "bonds": bonds.tolist(), "exclude_bonds": int(exclude_bonds), "cutoff_nm": float(cutoff_nm),
                     "n_basis": int(n_basis), "basis": basis, "hidden": int(hidden),
                     "n_interactions": int(n_interactions), "activation": activation}

    def forward(self, positions: Tensor) -> Tensor:
        """Energies: positions (n_walkers, n_beads, 3) nm -> (n_walkers,) kJ/mol."""
        r = safe_norm(differences(positions, self.pair_matrix))
        rbf = self.basis(r)
        envelope = cosine_cutoff(r, self.cutoff_nm).unsqueeze(-1)
        h = self.embedding(self.types).unsqueeze(0).expand(positions.shape[0], -1, -1)
        for filt, inp, update in zip(self.filters, self.inputs, self.updates):
            w = filt(rbf) * envelope
            w = torch.cat([w, w], dim=1)
            messages = w * inp(h)[:, self.src]
            agg = torch.zeros_like(h).index_add(1, self.dst, messages)
            h = h + update(agg)
        return self.readout(h).squeeze(-1).sum(-1)


class NoNet(nn.Module):
    """The zero network (prior-only potential)."""

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None):
        super().__init__()
        types, n_types = bead_type_array(bead_types, n_beads, n_types)
        self.spec = {"kind": "none", "n_beads": int(n_beads), "bead_types": types.tolist(), "n_types": n_types,
                     "bonds": validate_bonds(bonds, n_beads).tolist()}

    def forward(self, positions: Tensor) -> Tensor:
        """Zero energies: positions (n_walkers, n_beads, 3) nm -> (n_walkers,) kJ/mol."""
        return torch.zeros(positions.shape[0], dtype=positions.dtype, device=positions.device)


# Network kinds: the class, or "module:Class" for kinds whose dependencies are imported on first use.
NETS = {"pair_mlp": PairMLP, "schnet": SchNet, "none": NoNet,
        "equivariant": "openmm_dynmatch.models.equivariant:EquivariantNet",
        "internal_mlp": "openmm_dynmatch.models.internal:InternalMLP",
        "ensemble": "openmm_dynmatch.models.ensemble:EnsembleNet"}


def register_net(kind: str, net_class) -> None:
    """Add a network kind; its class takes ``n_beads, bead_types, n_types, bonds`` and has a ``spec`` dict."""
    NETS[kind] = net_class


def net_class(kind: str):
    """The class of network ``kind`` (imports lazily registered kinds)."""
    if kind not in NETS:
        raise ValueError(f"unknown net kind '{kind}'; available: {sorted(NETS)}")
    return resolve(NETS[kind])


def build_net(spec: dict) -> nn.Module:
    """Network from its spec ``{"kind": ..., "n_beads": ..., <hyper-parameters>}``."""
    spec = dict(spec)
    kind = spec.pop("kind", "pair_mlp")
    cls = net_class(kind)
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"net spec of kind '{kind}': unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**spec)


class CGPotential(nn.Module):
    """CG potential ``U = U_prior + U_net`` of one molecule, batched over walkers.

    Parameters
    ----------
    prior : PriorPotential
    net : nn.Module
        A network from :data:`NETS` (with a ``spec`` attribute) for the same number of beads.
    dtype : str, optional
        ``'float32'`` or ``'float64'``; default: the prior's. Inputs are cast to it on entry.

    Example
    -------
    >>> prior = PriorPotential(3, [[0, 1], [1, 2]], bond_r0_nm=0.38, bond_k=1000.0)
    >>> potential = CGPotential(prior, PairMLP(3))
    >>> potential(torch.randn(5, 3, 3)).shape
    torch.Size([5])
    """

    n_beads: int

    def __init__(self, prior: PriorPotential, net: nn.Module, dtype=None):
        super().__init__()
        if net.spec["n_beads"] != prior.n_beads:
            raise ValueError(f"net is for {net.spec['n_beads']} beads but the prior for {prior.n_beads}")
        dtype = prior.spec["dtype"] if dtype is None else dtype
        torch_dtype = resolve_dtype(dtype)
        self.n_beads = prior.n_beads
        self.prior = prior.to(torch_dtype)
        self.net = net.to(torch_dtype)
        self.register_buffer("dtype_probe", torch.zeros(0, dtype=torch_dtype), persistent=False)
        prior_spec = dict(prior.spec, dtype=dtype)
        self.spec = {"n_beads": self.n_beads, "bonds": prior_spec["bonds"], "dtype": dtype, "prior": prior_spec,
                     "net": copy.deepcopy(net.spec)}

    def forward(self, positions: Tensor) -> Tensor:
        """Total energy per walker.

        Parameters
        ----------
        positions : torch.Tensor, shape (n_walkers, n_beads, 3), nm

        Returns
        -------
        torch.Tensor, shape (n_walkers,), kJ/mol
        """
        if positions.dim() != 3 or positions.shape[1] != self.n_beads or positions.shape[2] != 3:
            raise ValueError("positions: expected shape (n_walkers, n_beads, 3) for this potential's n_beads")
        x = positions.to(self.dtype_probe.dtype)
        return self.prior(x) + self.net(x)

    def __prepare_scriptable__(self):
        """Shallow copy with its own submodule table, so that ``torch.jit.script`` leaves this module untouched.

        Scripting swaps submodules for their own ``__prepare_scriptable__`` results (the e3nn network compiles a
        copy of itself); without this the eager potential would end up holding that copy.
        """
        clone = copy.copy(self)
        clone._modules = OrderedDict(self._modules)
        return clone


def build_potential(spec: dict) -> CGPotential:
    """Build a :class:`CGPotential` from its spec (``potential.spec`` rebuilds an identical architecture).

    Parameters
    ----------
    spec : dict
        ``n_beads`` (required); ``bonds`` (list of [i, j], default none); ``dtype`` (``'float32'`` default);
        ``prior``: keyword arguments of :class:`PriorPotential` or None (bonds-free empty prior);
        ``net``: ``{"kind": one of NETS, ...hyper-parameters}``, default ``{"kind": "pair_mlp"}``;
        ``bead_types``, ``n_types``: defaults for the net. ``n_beads``, ``bonds`` and ``dtype`` are filled into
        the sub-specs where missing.
    """
    if not isinstance(spec, dict) or "n_beads" not in spec:
        raise ValueError(f"spec: expected a dict with at least 'n_beads', got {spec!r}")
    known = {"n_beads", "bonds", "dtype", "prior", "net", "bead_types", "n_types"}
    if set(spec) - known:
        raise ValueError(f"spec: unknown keys {sorted(set(spec) - known)}; known: {sorted(known)}")
    n_beads = int(spec["n_beads"])
    bonds = validate_bonds(spec.get("bonds"), n_beads).tolist()
    dtype = spec.get("dtype", "float32")
    prior_spec = dict(spec.get("prior") or {"bonds": []})
    prior_spec.update(n_beads=n_beads, dtype=dtype)
    prior_spec.setdefault("bonds", bonds)
    net_spec = dict(spec.get("net") or {"kind": "pair_mlp"})
    net_spec.setdefault("n_beads", n_beads)
    net_spec.setdefault("bonds", bonds)
    for key in ("bead_types", "n_types"):
        if spec.get(key) is not None:
            net_spec.setdefault(key, spec[key])
    try:
        prior = PriorPotential(**prior_spec)
    except TypeError as err:
        raise ValueError(f"spec['prior']: {err}") from err
    return CGPotential(prior, build_net(net_spec), dtype=dtype)


def save_potential(path, potential: CGPotential, metadata=None) -> None:
    """Write ``{"spec", "state_dict", "metadata"}`` to ``path`` (torch.save, atomically)."""
    if not hasattr(potential, "spec"):
        raise ValueError(f"potential: expected a module with a 'spec' attribute, got {type(potential).__name__}")
    state = {k: v.detach().cpu() for k, v in potential.state_dict().items()}
    torch_save({"spec": potential.spec, "state_dict": state, "metadata": dict(metadata or {})}, path)


def load_potential(path) -> tuple:
    """Read a file written by :func:`save_potential` -> ``(potential, metadata)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    openmm_dynmatch.fileio.FileFormatError
        If the file is truncated, foreign, or its parameters do not fit its network description.
    """
    payload = torch_load(path, "potential file", "write it again (training writes potential.pt and one file per "
                         "pre-training stage) or delete it", required=("spec", "state_dict", "metadata"))
    try:
        potential = build_potential(payload["spec"])
        potential.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise FileFormatError(f"{path}: the stored parameters do not fit the stored network description "
                              f"({short_reason(err)}); write the file again") from err
    return potential, payload["metadata"]


def forces(potential: nn.Module, positions, create_graph: bool = False) -> tuple:
    """Energies and forces ``-dU/dx`` by autograd (with grad mode on, also under ``torch.no_grad()``).

    The one place where a potential's energy is differentiated; ``estimators.potential_force_fn`` wraps it.

    Parameters
    ----------
    potential : nn.Module
        Any potential (eager or scripted) mapping (n_walkers, n_beads, 3) -> (n_walkers,).
    positions : torch.Tensor or array-like, shape (n_walkers, n_beads, 3), nm
        Used as they are when they already require grad (the forces then keep their graph), else a detached copy.
    create_graph : bool
        Keep the graph so that the forces can be differentiated again (e.g. wrt parameters).

    Returns
    -------
    energies : torch.Tensor, shape (n_walkers,), kJ/mol, in the potential's output dtype
    forces : torch.Tensor, shape (n_walkers, n_beads, 3), kJ/mol/nm, in the dtype of ``positions``
    """
    x = torch.as_tensor(positions)
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"positions: expected shape (n_walkers, n_beads, 3), got {tuple(x.shape)}")
    if not x.requires_grad:
        x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        energies = potential(x)
        (grad,) = torch.autograd.grad(energies.sum(), x, create_graph=create_graph)
    return energies, -grad
