"""CGnet-style network on internal coordinates: one MLP of all distances, bond angles and dihedrals of a walker.

Features of one configuration (fixed bead order, computed on the CG bond graph of :mod:`.graph`):

- every bead pair ``i < j``: ``1 / r_ij`` (1/nm, default) or ``r_ij`` (nm);
- every bonded angle ``(i, j, k)``: ``cos theta``;
- every dihedral ``(i, j, k, l)`` (path of three bonds): ``cos phi`` and ``sin phi``.

Distances and angle cosines are invariant under rotations, translations *and* reflections; ``sin phi`` changes
sign under a reflection, so the network can tell a molecule from its mirror image (chirality-aware), as the
all-atom force field does. The features are standardised with a mean and standard deviation per feature set
from data by :meth:`InternalMLP.fit_scales` (buffers: saved in the state dict) and fed to one MLP that returns
the energy of the walker. The cost is one gather of the bead tuples plus a dense MLP, so it is fast for small
molecules; the number of pair features grows as ``n_beads^2`` and the weights are tied to the bead order (no
sharing between beads), which suits one small molecule (up to ~50 beads).
"""
import numpy as np
import torch
from torch import Tensor, nn

from .geometry import angle_cos_from_vectors, dihedral_cos_sin_from_vectors, differences, tuple_differences
from .graph import angle_triplets, bead_type_array, dihedral_quadruplets, pair_index, validate_bonds
from .potential import _activation
from .radial import safe_norm

PAIR_FEATURES = ("inverse", "distance")


class InternalMLP(nn.Module):
    """MLP of standardised internal coordinates -> energy per walker.

    Parameters
    ----------
    n_beads : int
        At least 2.
    bead_types : list of int, length n_beads, optional
        Recorded in the spec for a uniform interface; the features are tied to the bead order, so types are not
        needed to tell beads apart.
    n_types : int, optional
    bonds : array-like, shape (n_bonds, 2), optional
        CG bond graph; bonded angles and dihedrals are derived from it (none without bonds).
    hidden, n_layers : int
        Width and number of hidden layers of the MLP.
    activation : str
        A key of :data:`~openmm_dynmatch.models.potential.ACTIVATIONS`.
    pair_feature : {"inverse", "distance"}
        ``1 / r`` (1/nm; decays for distant beads, grows at contact) or ``r`` (nm).

    Examples
    --------
    >>> net = InternalMLP(5, bonds=[[0, 1], [1, 2], [2, 3], [3, 4]])
    >>> net.n_features                       # 10 pairs + 3 angles + 2 x 2 dihedrals
    17
    >>> net.fit_scales(torch.randn(100, 5, 3))
    >>> net(torch.randn(4, 5, 3)).shape
    torch.Size([4])
    """

    inverse_distance: bool
    n_features: int
    n_pairs: int
    n_angles: int
    n_dihedrals: int

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None, hidden: int = 128,
                 n_layers: int = 2, activation: str = "silu", pair_feature: str = "inverse"):
        super().__init__()
        if int(n_beads) < 2:
            raise ValueError(f"n_beads: internal_mlp needs at least 2 beads (one distance), got {n_beads}")
        if pair_feature not in PAIR_FEATURES:
            raise ValueError(f"pair_feature: expected one of {list(PAIR_FEATURES)}, got '{pair_feature}'")
        if int(hidden) < 1 or int(n_layers) < 1:
            raise ValueError(f"hidden and n_layers must be >= 1, got hidden={hidden}, n_layers={n_layers}")
        types, n_types = bead_type_array(bead_types, n_beads, n_types)
        bonds = validate_bonds(bonds, n_beads)
        pairs = pair_index(n_beads)
        angles = angle_triplets(n_beads, bonds)
        dihedrals = dihedral_quadruplets(n_beads, bonds)
        self.register_buffer("pairs", torch.as_tensor(pairs))
        self.register_buffer("angles", torch.as_tensor(angles))
        self.register_buffer("dihedrals", torch.as_tensor(dihedrals))
        dtype = torch.get_default_dtype()
        # every pair vector, angle arm and dihedral bond in one matrix product (not saved: rebuilt from the indices)
        self.register_buffer("vector_matrix", tuple_differences(n_beads, pairs, angles, dihedrals).to(dtype),
                             persistent=False)
        self.n_pairs, self.n_angles, self.n_dihedrals = pairs.shape[1], len(angles), len(dihedrals)
        self.inverse_distance = pair_feature == "inverse"
        self.n_features = pairs.shape[1] + len(angles) + 2 * len(dihedrals)
        self.register_buffer("feature_mean", torch.zeros(self.n_features, dtype=dtype))
        self.register_buffer("feature_std", torch.ones(self.n_features, dtype=dtype))
        layers = [nn.Linear(self.n_features, hidden), _activation(activation)]
        for _ in range(n_layers - 1):
            layers += [nn.Linear(hidden, hidden), _activation(activation)]
        layers.append(nn.Linear(hidden, 1))
        self.mlp = nn.Sequential(*layers)
        self.spec = {"kind": "internal_mlp", "n_beads": int(n_beads), "bead_types": types.tolist(),
                     "n_types": n_types, "bonds": bonds.tolist(), "hidden": int(hidden), "n_layers": int(n_layers),
                     "activation": activation, "pair_feature": pair_feature}

    def features(self, positions: Tensor) -> Tensor:
        """Raw (unstandardised) features.

        Parameters
        ----------
        positions : torch.Tensor, shape (n_walkers, n_beads, 3), nm

        Returns
        -------
        torch.Tensor, shape (n_walkers, n_features)
            Pair terms (1/nm or nm) in :func:`~openmm_dynmatch.models.graph.pair_index` order, then angle cosines,
            then dihedral cosines, then dihedral sines (dimensionless), in the dtype of ``positions``.
        """
        a, d = self.n_angles, self.n_dihedrals
        pair_v, arm1, arm2, b1, b2, b3 = torch.split(differences(positions, self.vector_matrix),
                                                     [self.n_pairs, a, a, d, d, d], dim=1)
        r = safe_norm(pair_v)
        pair = 1.0 / r if self.inverse_distance else r
        cos_angle = angle_cos_from_vectors(arm1, arm2)
        cos_sin = dihedral_cos_sin_from_vectors(b1, b2, b3)
        return torch.cat([pair, cos_angle, cos_sin[0], cos_sin[1]], dim=-1)

    @torch.jit.unused
    @torch.no_grad()
    def fit_scales(self, positions, chunk_frames: int = 4096, min_std: float = 1e-3) -> None:
        """Set the feature mean and standard deviation from configurations (e.g. mapped AA training frames).

        Parameters
        ----------
        positions : np.ndarray or torch.Tensor, shape (n_frames, n_beads, 3), nm
            At least 2 frames. Statistics are accumulated in float64, ``chunk_frames`` frames at a time.
        chunk_frames : int
        min_std : float
            Floor of the standard deviation, in the feature's unit, so that a feature that is (nearly) constant
            in the data is not blown up wherever the CG model moves it.
        """
        x = positions if isinstance(positions, Tensor) else torch.as_tensor(np.asarray(positions))
        n_beads = self.spec["n_beads"]
        if x.dim() != 3 or x.shape[1] != n_beads or x.shape[2] != 3 or x.shape[0] < 2:
            raise ValueError(f"positions: expected shape (n_frames >= 2, {n_beads}, 3), got {tuple(x.shape)}")
        x = x.detach().to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("positions: expected finite coordinates, got NaN or inf")
        chunks = torch.split(x, int(chunk_frames))
        mean = sum(self.features(chunk).sum(0) for chunk in chunks) / x.shape[0]
        var = sum(((self.features(chunk) - mean) ** 2).sum(0) for chunk in chunks) / x.shape[0]
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(var.sqrt().clamp_min(min_std))

    def forward(self, positions: Tensor) -> Tensor:
        """Energies: positions (n_walkers, n_beads, 3) nm -> (n_walkers,) kJ/mol."""
        x = positions.to(self.feature_mean.dtype)
        z = (self.features(x) - self.feature_mean) / self.feature_std
        return self.mlp(z).squeeze(-1)
