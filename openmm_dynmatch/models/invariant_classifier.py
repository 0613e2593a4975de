"""A fast window classifier on hand-built invariant features (for small molecules, toys and quick runs).

Features of a window ``W = (R_0, ..., R_T)``: every inter-bead distance at every frame, the change of every
distance between consecutive frames, and the length of every bead's displacement between consecutive frames.
All are invariant under global rotations, reflections and translations of the window. With ``chiral=True``
(default) signed features are added, which change sign under a reflection, so that a window and its mirror image
are told apart (invariance under proper rotations and translations only):

- per frame, the normalised triple product of every three consecutive bond vectors ``b_k = R_{k+1} - R_k``
  (in bead order), ``b_k . (b_{k+1} x b_{k+2}) / (|b_k| |b_{k+1}| |b_{k+2}|)``, a signed volume in ``[-1, 1]``
  that has the sign of the dihedral of beads ``k..k+3`` (``n_beads >= 4``);
- per frame step, the displacement ``v_i`` of every bead along the normal of its two nearest bonds,
  ``v_i . (b_k x b_{k+1}) / (|b_k| |b_{k+1}|)`` with ``k = clip(i - 1, 0, n_beads - 3)``, nm
  (``n_beads >= 3``; a two-bead window gets no signed features).

All features are divided by
fixed scales (set from data with :meth:`InvariantWindowClassifier.fit_scales`) and fed to an MLP giving one
logit. Much cheaper than the equivariant :class:`~openmm_dynmatch.models.classifier.WindowClassifier`, but
tied to a fixed bead order (no weight sharing over beads) and quadratic in the number of beads.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn


class InvariantWindowClassifier(nn.Module):
    """MLP on invariant window features -> one logit per window (positive = AA).

    Parameters
    ----------
    n_beads : int
    window_frames : int
        ``T + 1``.
    hidden : int
        Width of the MLP's hidden layers.
    n_layers : int
        Hidden layers of the MLP.
    chiral : bool
        Add the signed (reflection-odd) features described in the module docstring.
    dtype : {"float32", "float64"}

    Examples
    --------
    >>> clf = InvariantWindowClassifier(n_beads=2, window_frames=5)
    >>> clf(torch.randn(7, 5, 2, 3)).shape
    torch.Size([7])
    """

    def __init__(self, n_beads: int, window_frames: int, hidden: int = 64, n_layers: int = 2,
                 dtype: str = "float32", chiral: bool = True):
        super().__init__()
        if n_beads < 2 or window_frames < 1:
            raise ValueError(f"need n_beads >= 2 and window_frames >= 1, got {n_beads} and {window_frames}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"unknown dtype '{dtype}'; available: ['float32', 'float64']")
        self.spec = {"kind": "invariant", "n_beads": int(n_beads), "window_frames": int(window_frames),
                     "hidden": int(hidden), "n_layers": int(n_layers), "dtype": dtype, "chiral": bool(chiral)}
        i, j = torch.triu_indices(n_beads, n_beads, offset=1)
        self.register_buffer("pair_i", i)
        self.register_buffer("pair_j", j)
        n_pairs, steps = i.numel(), window_frames - 1
        n_features = n_pairs * window_frames + (n_pairs + n_beads) * steps
        self.n_triples = max(n_beads - 3, 0) if chiral else 0
        self.signed_displacements = bool(chiral) and n_beads >= 3
        n_features += self.n_triples * window_frames + (n_beads * steps if self.signed_displacements else 0)
        k = torch.clamp(torch.arange(n_beads) - 1, 0, max(n_beads - 3, 0))
        self.register_buffer("normal_bond", k, persistent=False)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_scale", torch.ones(n_features))
        layers, width = [], n_features
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.to(getattr(torch, dtype))

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype (windows are cast to it on entry)."""
        return getattr(torch, self.spec["dtype"])

    def features(self, windows: Tensor) -> Tensor:
        """Features of windows (unscaled).

        Parameters
        ----------
        windows : torch.Tensor, shape (batch, T+1, n_beads, 3), nm

        Returns
        -------
        torch.Tensor, shape (batch, n_features)
            Distances (nm), their changes (nm), displacement lengths (nm), then with ``chiral`` the triple
            products (dimensionless) and signed displacements (nm).
        """
        if windows.dim() != 4 or windows.shape[1:3] != (self.spec["window_frames"], self.spec["n_beads"]):
            raise ValueError(f"windows must have shape (batch, {self.spec['window_frames']}, "
                             f"{self.spec['n_beads']}, 3), got {tuple(windows.shape)}")
        x = windows.to(self.feature_mean.dtype)
        distances = (x[:, :, self.pair_j] - x[:, :, self.pair_i]).norm(dim=-1)          # (B, T+1, P)
        parts = [distances.flatten(1)]
        if x.shape[1] > 1:
            parts.append((distances[:, 1:] - distances[:, :-1]).flatten(1))
            parts.append((x[:, 1:] - x[:, :-1]).norm(dim=-1).flatten(1))                # (B, T, N)
        if self.n_triples > 0 or self.signed_displacements:
            parts += self._signed_features(x)
        return torch.cat(parts, dim=1)

    def _signed_features(self, x: Tensor) -> List[Tensor]:
        """Reflection-odd features of windows ``x`` (batch, T+1, N, 3), nm; see the module docstring."""
        bonds = x[:, :, 1:] - x[:, :, :-1]                                               # (B, T+1, N-1, 3)
        unit = bonds / bonds.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        normals = torch.cross(unit[:, :, :-1], unit[:, :, 1:], dim=-1)                   # (B, T+1, N-2, 3)
        parts: List[Tensor] = []
        if self.n_triples > 0:
            parts.append((unit[:, :, :-2] * normals[:, :, 1:]).sum(-1).flatten(1))      # (B, T+1, N-3)
        if self.signed_displacements and x.shape[1] > 1:
            steps = x[:, 1:] - x[:, :-1]                                                 # (B, T, N, 3)
            plane = normals[:, 1:].index_select(2, self.normal_bond)                     # (B, T, N, 3)
            parts.append((steps * plane).sum(-1).flatten(1))
        return parts

    @torch.no_grad()
    def fit_scales(self, windows: Tensor) -> None:
        """Set the feature centring and scaling from (AA) windows so the MLP sees O(1) inputs."""
        feats = self.features(torch.as_tensor(windows))
        self.feature_mean.copy_(feats.mean(dim=0))
        self.feature_scale.copy_(feats.std(dim=0).clamp_min(1e-6))

    def forward(self, windows: Tensor) -> Tensor:
        """Logits ``(batch,)`` of windows ``(batch, T+1, N, 3)`` nm."""
        z = (self.features(windows) - self.feature_mean) / self.feature_scale
        return self.mlp(z).squeeze(-1)

