"""NequIP-style equivariant network on e3nn: the accurate (and slower) kind of CG potential network.

The network is a stack of the shared `InteractionBlock` of :mod:`.interaction`: along every directed edge
``j -> i`` the channel-wise ("uvu") tensor product of the neighbour's features ``h_j`` with the spherical
harmonics ``Y(r_ij / |r_ij|)``, with per-edge, per-path weights from a bias-free MLP of a radial basis of
``|r_ij|`` times a cosine cutoff (so pairs at or beyond the cutoff send nothing); messages summed over neighbours
and divided by ``avg_neighbors``, mixed by a linear, added to a linear self-connection of the block's input and
passed through a gated non-linearity (plus the input itself where the irreps allow). Node features keep the
parity of spherical harmonics (``0e + 1o + 2e ...``, see `parity_irreps`), so the energy is invariant under
reflections too. The final scalars give one energy per bead; their sum is the energy of the walker.

Example
-------
>>> import torch
>>> net = EquivariantNet(n_beads=5, mul=8, lmax=1, n_layers=2)
>>> net(torch.randn(3, 5, 3)).shape
torch.Size([3])
"""
import numpy as np
import torch
from e3nn import o3
from e3nn.util.jit import compile_mode
from torch import Tensor, nn

from .graph import bead_type_array, pair_index, validate_bonds
from .interaction import InteractionBlock, parity_irreps
from .radial import build_radial_basis, cosine_cutoff, safe_norm


@compile_mode("script")
class EquivariantNet(nn.Module):
    """NequIP-style energy network: bead-type scalars in, per-bead scalar energies out.

    Parameters
    ----------
    n_beads : int
    bead_types : list of int, optional (default: all type 0)
    n_types : int, optional
    bonds : array-like, shape (n_bonds, 2), optional
    exclude_bonds : int
        Pairs up to this many bonds apart are not edges (0 = all pairs within the cutoff).
    cutoff_nm : float
    n_basis, basis : int, str
        Radial basis (default Bessel).
    mul, lmax, n_layers : int
        Channels per irrep, highest ``l`` of features and spherical harmonics, number of interaction blocks.
    radial_hidden : int
        Width of the radial MLPs.
    avg_neighbors : float, optional
        Message normalisation; default: mean number of edges per bead.
    """

    cutoff_nm: float
    avg_neighbors: float

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None, exclude_bonds: int = 0,
                 cutoff_nm: float = 1.2, n_basis: int = 8, basis: str = "bessel", mul: int = 16, lmax: int = 1,
                 n_layers: int = 2, radial_hidden: int = 32, avg_neighbors=None):
        super().__init__()
        types, n_types = bead_type_array(bead_types, n_beads, n_types)
        bonds = validate_bonds(bonds, n_beads)
        if lmax < 1 or n_layers < 1:
            raise ValueError(f"lmax and n_layers must be >= 1, got lmax={lmax}, n_layers={n_layers}")
        pairs = pair_index(n_beads, bonds, min_separation=exclude_bonds + 1)
        self.register_buffer("src", torch.as_tensor(np.concatenate([pairs[0], pairs[1]])))
        self.register_buffer("dst", torch.as_tensor(np.concatenate([pairs[1], pairs[0]])))
        self.register_buffer("types", torch.as_tensor(types))
        avg = max(2.0 * pairs.shape[1] / n_beads, 1.0) if avg_neighbors is None else float(avg_neighbors)
        self.cutoff_nm = float(cutoff_nm)
        self.avg_neighbors = avg
        self.basis = build_radial_basis(basis, n_basis, cutoff_nm)
        self.sh = o3.SphericalHarmonics(o3.Irreps.spherical_harmonics(lmax), normalize=True,
                                        normalization="component")
        self.embedding = nn.Embedding(n_types, mul)
        irreps = o3.Irreps(f"{mul}x0e")
        blocks = []
        for _ in range(n_layers):
            block = InteractionBlock(irreps, parity_irreps(mul, lmax), self.sh.irreps_out, n_basis, radial_hidden)
            blocks.append(block)
            irreps = block.irreps_out
        self.blocks = nn.ModuleList(blocks)
        self.readout = o3.Linear(irreps, o3.Irreps(f"{mul}x0e"))
        self.energy = nn.Sequential(nn.SiLU(), nn.Linear(mul, 1))
        self.spec = {"kind": "equivariant", "n_beads": int(n_beads), "bead_types": types.tolist(),
                     "n_types": n_types, "bonds": bonds.tolist(), "exclude_bonds": int(exclude_bonds),
                     "cutoff_nm": float(cutoff_nm), "n_basis": int(n_basis), "basis": basis, "mul": int(mul),
                     "lmax": int(lmax), "n_layers": int(n_layers), "radial_hidden": int(radial_hidden),
                     "avg_neighbors": avg}

    def forward(self, positions: Tensor) -> Tensor:
        """Energies: positions (n_walkers, n_beads, 3) nm -> (n_walkers,) kJ/mol."""
        vectors = (positions[:, self.src] - positions[:, self.dst]).reshape(-1, 3)
        r = safe_norm(vectors)
        rbf = self.basis(r) * cosine_cutoff(r, self.cutoff_nm).unsqueeze(-1)
        sh = self.sh(vectors)
        h = self.embedding(self.types).unsqueeze(0).expand(positions.shape[0], -1, -1)
        for block in self.blocks:
            h = block(h, sh, rbf, self.src, self.dst, self.avg_neighbors)
        return self.energy(self.readout(h)).squeeze(-1).sum(-1)

    def __prepare_scriptable__(self):
        """Copy with the e3nn submodules compiled by e3nn (tracing the ones marked so), for ``torch.jit.script``.

        ``torch.jit.script`` calls this hook, so scripting a potential that contains this network just works.
        """
        from e3nn.util.jit import compile as e3nn_compile

        spec = dict(self.spec)
        del spec["kind"]
        reference = self.embedding.weight
        clone = EquivariantNet(**spec).to(device=reference.device, dtype=reference.dtype)
        clone.load_state_dict(self.state_dict())
        for name, child in list(clone.named_children()):
            setattr(clone, name, e3nn_compile(child))
        return clone
