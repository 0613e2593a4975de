"""Building blocks of the window classifier: radial basis, cutoff envelope and the per-frame encoder.

The per-frame encoder is a small NequIP-style equivariant graph network on e3nn whose layers are the shared
`InteractionBlock` of :mod:`.interaction`. Every frame of every window is one graph over the beads of the
molecule; all frames are batched as dense tensors of shape ``(n_graphs, n_beads, ...)`` with the fully connected
edge list ``i != j`` (ordered by receiver) and messages normalised by ``sqrt(n_beads - 1)``. A cutoff, when given,
is applied as a smooth envelope on the radial features (hence on the per-edge tensor-product weights, whose
radial MLP has no biases and maps zero to zero), which makes distant pairs contribute exactly zero.
"""
import math
from typing import Optional, Tuple

import torch
from e3nn import o3
from torch import Tensor, nn

from .interaction import InteractionBlock
from .radial import GaussianBasis, cosine_cutoff, safe_norm


def all_pair_edges(n_beads: int) -> Tuple[Tensor, Tensor]:
    """Receiver and sender indices of the fully connected graph without self-loops.

    Parameters
    ----------
    n_beads : int
        Number of beads (>= 2).

    Returns
    -------
    receivers, senders : torch.Tensor, shape (n_beads * (n_beads - 1),), int64
        Edge ``e`` carries a message from ``senders[e]`` to ``receivers[e]``; edges are grouped by receiver, each
        receiver having exactly ``n_beads - 1`` consecutive edges.
    """
    if n_beads < 2:
        raise ValueError(f"n_beads must be >= 2 for a graph with edges, got {n_beads}")
    idx = torch.arange(n_beads)
    receivers = idx.repeat_interleave(n_beads)
    senders = idx.repeat(n_beads)
    keep = receivers != senders
    return receivers[keep], senders[keep]


class RadialFeatures(nn.Module):
    """Gaussian radial basis on ``[0, r_max_nm]`` times an optional smooth cosine cutoff envelope.

    Without a cutoff the basis is not truncated (all pairs contribute; distances beyond ``r_max_nm`` only see the
    tails of the last Gaussians). With ``cutoff_nm`` every basis value is multiplied by the cosine envelope, so
    pairs at or beyond the cutoff contribute exactly zero and the features are smooth in the distance.

    Parameters
    ----------
    n_basis : int
        Number of Gaussians.
    r_max_nm : float
        Position of the last Gaussian centre, nm.
    cutoff_nm : float or None
        Cutoff radius, nm; ``None`` for no cutoff.
    """

    cutoff_nm: Optional[float]

    def __init__(self, n_basis: int, r_max_nm: float, cutoff_nm: Optional[float] = None):
        super().__init__()
        if cutoff_nm is not None and not cutoff_nm > 0:
            raise ValueError(f"cutoff_nm must be > 0 or None, got {cutoff_nm}")
        self.basis = GaussianBasis(n_basis=n_basis, cutoff_nm=r_max_nm)
        self.cutoff_nm = None if cutoff_nm is None else float(cutoff_nm)

    def forward(self, r: Tensor) -> Tensor:
        """Features of distances ``r`` (shape ``(...)``, nm) -> shape ``(..., n_basis)``, dimensionless."""
        features = self.basis(r)
        if self.cutoff_nm is not None:
            features = features * cosine_cutoff(r, self.cutoff_nm).unsqueeze(-1)
        return features


class FrameEncoder(nn.Module):
    """Equivariant per-frame encoder producing invariant per-bead features.

    Node input: a learned bead-type embedding (scalars) and, unless ``with_vector_input`` is False, one ``1o``
    vector per bead (the scaled displacement). Edge input: spherical harmonics of ``R_j - R_i`` and a Gaussian
    radial basis of ``|R_j - R_i|``. Output per bead: the ``0e`` channels of the last layer concatenated with
    the norms of its ``1o`` channels, all invariant under rotations, reflections and translations.

    With ``chiral`` the hidden features also carry ``hidden_vectors`` pseudo-vectors (``1e``, e.g. cross products
    ``1o x 1o``) and ``hidden_vectors`` pseudo-scalars (``0o``, e.g. ``1e . 1o``), and the output adds the norms of
    the ``1e`` channels and three sets of pseudo-scalars, used with their sign: the ``0o`` channels, the
    channel-wise dot products ``a_c . b_c`` of the last layer's ``1o`` channels ``a`` with its ``1e`` channels
    ``b``, and the handedness of each bead's neighbourhood, the triple products ``g_c . (g_{c+1} x g_{c+2})``
    (channels cyclic) of ``hidden_vectors`` learned neighbourhood vectors ``g_c^i = sum_j w_c(|e_ij|) e_ij/|e_ij|``
    with a linear map ``w`` of the radial basis, each scaled to (nearly) unit length so that the volume is O(1).
    The last ones read the handedness of a configuration directly:
    in the hidden ``1o`` channels the displacement input outweighs the edge geometry, so pseudo-scalars built only
    from them learn the static handedness slowly. The pseudo-scalars change sign under a reflection, so the output
    is invariant under proper rotations and translations only (SO(3), not O(3)): a configuration and its mirror
    image are told apart.

    Parameters
    ----------
    n_types : int
        Number of bead types.
    with_vector_input : bool
        Whether nodes carry a ``1o`` input vector.
    embed_dim, hidden_scalars, hidden_vectors, n_layers, lmax, n_basis, radial_hidden : int
        Sizes: type-embedding width, ``0e``/``1o`` multiplicities of the hidden features, number of interaction
        layers, maximum spherical-harmonic degree of edges, radial basis size, radial MLP width.
    r_max_nm : float
        Range of the radial basis, nm.
    cutoff_nm : float or None
        Smooth cutoff, nm (``None``: all pairs interact).
    chiral : bool
        Carry and output parity-odd channels (see above); needs ``hidden_vectors >= 3``.
    """

    hidden_scalars: int
    hidden_vectors: int
    chiral: bool

    def __init__(self, n_types: int, with_vector_input: bool, embed_dim: int, hidden_scalars: int,
                 hidden_vectors: int, n_layers: int, lmax: int, n_basis: int, radial_hidden: int,
                 r_max_nm: float, cutoff_nm: Optional[float], chiral: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if lmax < 1:
            raise ValueError(f"lmax must be >= 1, got {lmax}")
        if chiral and hidden_vectors < 3:
            raise ValueError(f"chiral=True needs hidden_vectors >= 3 (triple products of three vector channels), "
                             f"got {hidden_vectors}")
        self.with_vector_input = with_vector_input
        self.chiral = bool(chiral)
        self.embedding = nn.Embedding(n_types, embed_dim)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.basis = RadialFeatures(n_basis, r_max_nm, cutoff_nm)
        irreps_in = o3.Irreps(f"{embed_dim}x0e + 1x1o" if with_vector_input else f"{embed_dim}x0e")
        hv = hidden_vectors
        hidden = f"{hidden_scalars}x0e + {hv}x0o + {hv}x1o + {hv}x1e" if chiral else f"{hidden_scalars}x0e + {hv}x1o"
        irreps_hidden = o3.Irreps(hidden)
        layers = []
        for _ in range(n_layers):
            layers.append(InteractionBlock(irreps_in, irreps_hidden, self.irreps_sh, n_basis, radial_hidden))
            irreps_in = irreps_hidden
        self.layers = nn.ModuleList(layers)
        self.hidden_scalars = hidden_scalars
        self.hidden_vectors = hidden_vectors
        self.n_features = hidden_scalars + (5 * hidden_vectors if chiral else hidden_vectors)
        self.neighbourhood = nn.Linear(n_basis, hidden_vectors, bias=False) if chiral else None

    def _handedness(self, edges: Tensor, basis: Tensor, n_graphs: int, n_beads: int) -> Tensor:
        """Triple products of the learned neighbourhood vectors, shape (n_graphs, n_beads, hidden_vectors)."""
        assert self.neighbourhood is not None
        unit = edges / safe_norm(edges, 1e-12).unsqueeze(-1)
        vecs = self.neighbourhood(basis).unsqueeze(-1) * unit.unsqueeze(-2)        # (n_edges_total, C, 3)
        g = vecs.reshape(n_graphs, n_beads, n_beads - 1, self.hidden_vectors, 3).sum(2)
        g = g / safe_norm(g, 1e-4).unsqueeze(-1)         # ~unit vectors: the volume is O(1), not O(|g|^3)
        return (g * torch.cross(g.roll(-1, 2), g.roll(-2, 2), dim=-1)).sum(-1)

    def _readout(self, x: Tensor, handedness: Optional[Tensor]) -> Tensor:
        """Invariant (and, with ``chiral``, pseudo-scalar) per-bead features of the last layer's output."""
        n_graphs, n_beads, _ = x.shape
        hs, hv = self.hidden_scalars, self.hidden_vectors
        if not self.chiral:
            vecs = x[..., hs:].reshape(n_graphs, n_beads, hv, 3)
            return torch.cat([x[..., :hs], safe_norm(vecs, 1e-12)], dim=-1)
        odd = x[..., hs: hs + hv]
        polar = x[..., hs + hv: hs + 4 * hv].reshape(n_graphs, n_beads, hv, 3)
        axial = x[..., hs + 4 * hv:].reshape(n_graphs, n_beads, hv, 3)
        assert handedness is not None
        dots = (polar * axial).sum(-1)                                          # 1o . 1e -> 0o
        return torch.cat([x[..., :hs], safe_norm(polar, 1e-12), safe_norm(axial, 1e-12), odd, dots, handedness], -1)

    def forward(self, positions: Tensor, bead_types: Tensor, vectors: Optional[Tensor]) -> Tensor:
        """Encode frames.

        Parameters
        ----------
        positions : torch.Tensor, shape (n_graphs, n_beads, 3), nm
        bead_types : torch.Tensor, shape (n_beads,), int64
        vectors : torch.Tensor or None, shape (n_graphs, n_beads, 3), dimensionless (scaled displacements)

        Returns
        -------
        torch.Tensor, shape (n_graphs, n_beads, n_features)
            Per-bead features, invariant under rotations and translations (and reflections unless ``chiral``).
        """
        n_graphs, n_beads, _ = positions.shape
        receivers, senders = all_pair_edges(n_beads)
        receivers, senders = receivers.to(positions.device), senders.to(positions.device)
        edges = (positions.index_select(1, senders) - positions.index_select(1, receivers)).reshape(-1, 3)
        sh = o3.spherical_harmonics(self.irreps_sh, edges, normalize=True, normalization="component")
        basis = self.basis(edges.norm(dim=-1))
        x = self.embedding(bead_types).to(positions.dtype).expand(n_graphs, n_beads, -1)
        if self.with_vector_input:
            assert vectors is not None
            x = torch.cat([x, vectors], dim=-1)
        normalization = math.sqrt(n_beads - 1)
        for layer in self.layers:
            x = layer(x, sh, basis, senders, receivers, normalization)
        handedness = self._handedness(edges, basis, n_graphs, n_beads) if self.chiral else None
        return self._readout(x, handedness)
