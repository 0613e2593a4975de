"""Radial building blocks shared by the networks: smooth cutoffs and radial bases of distances.

All functions take distances in nm and are TorchScript-compatible. The bases are smooth in ``r`` and, multiplied
by :func:`cosine_cutoff`, go to zero with zero slope at the cutoff, so energies built from them have continuous
forces there.

Example
-------
>>> import torch
>>> basis = BesselBasis(n_basis=8, cutoff_nm=1.0)
>>> r = torch.linspace(0.1, 1.2, 5)
>>> features = basis(r) * cosine_cutoff(r, 1.0).unsqueeze(-1)   # shape (5, 8), zero beyond 1 nm
"""

import math

import torch
from torch import Tensor, nn


def cosine_cutoff(r: Tensor, cutoff_nm: float) -> Tensor:
    """Smooth cosine envelope ``0.5 (cos(pi r / rc) + 1)`` for ``r < rc``, 0 beyond.

    Parameters
    ----------
    r : torch.Tensor, any shape, nm
        Distances.
    cutoff_nm : float
        Cutoff ``rc`` in nm.

    Returns
    -------
    torch.Tensor, same shape as ``r``, dimensionless
    """
    envelope = 0.5 * (torch.cos(r * (math.pi / cutoff_nm)) + 1.0)
    return torch.where(r < cutoff_nm, envelope, torch.zeros_like(r))


class CosineCutoff(nn.Module):
    """Module form of :func:`cosine_cutoff` (for composing networks)."""

    cutoff_nm: float

    def __init__(self, cutoff_nm: float):
        super().__init__()
        if not cutoff_nm > 0:
            raise ValueError(f"cutoff_nm must be > 0, got {cutoff_nm}")
        self.cutoff_nm = float(cutoff_nm)

    def forward(self, r: Tensor) -> Tensor:
        """Envelope of distances ``r`` (any shape, nm); same shape, dimensionless."""
        return cosine_cutoff(r, self.cutoff_nm)


class BesselBasis(nn.Module):
    """Spherical Bessel (sine) basis ``sqrt(2/rc) sin(n pi r / rc) / r``, ``n = 1..n_basis``.

    Parameters
    ----------
    n_basis : int
        Number of basis functions.
    cutoff_nm : float
        Cutoff ``rc`` in nm; sets the frequencies.
    trainable : bool
        Make the frequencies ``n pi / rc`` learnable parameters.
    eps_nm : float
        Distances are clamped below at ``eps_nm`` to keep ``1/r`` finite for coincident beads.
    """

    cutoff_nm: float
    eps_nm: float

    def __init__(self, n_basis: int = 8, cutoff_nm: float = 1.0, trainable: bool = False, eps_nm: float = 1e-6):
        super().__init__()
        if n_basis < 1:
            raise ValueError(f"n_basis must be >= 1, got {n_basis}")
        if not cutoff_nm > 0:
            raise ValueError(f"cutoff_nm must be > 0, got {cutoff_nm}")
        self.cutoff_nm = float(cutoff_nm)
        self.eps_nm = float(eps_nm)
        freqs = torch.arange(1, n_basis + 1, dtype=torch.get_default_dtype()) * (math.pi / cutoff_nm)
        if trainable:
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs)

    def forward(self, r: Tensor) -> Tensor:
        """Basis values of distances ``r`` (shape ``(...)``, nm) -> shape ``(..., n_basis)``, 1/nm."""
        r = r.clamp(min=self.eps_nm).unsqueeze(-1)
        prefactor = math.sqrt(2.0 / self.cutoff_nm)
        return prefactor * torch.sin(self.freqs * r) / r


class GaussianBasis(nn.Module):
    """Gaussians ``exp(-(r - mu_k)^2 / (2 w^2))`` with centres evenly spaced in ``[start_nm, cutoff_nm]``.

    Parameters
    ----------
    n_basis : int
        Number of Gaussians.
    cutoff_nm : float
        Last centre, nm.
    start_nm : float
        First centre, nm.
    trainable : bool
        Make centres and widths learnable parameters.
    """

    def __init__(self, n_basis: int = 16, cutoff_nm: float = 1.0, start_nm: float = 0.0, trainable: bool = False):
        super().__init__()
        if n_basis < 2:
            raise ValueError(f"n_basis must be >= 2, got {n_basis}")
        if not cutoff_nm > start_nm:
            raise ValueError(f"cutoff_nm must exceed start_nm, got {cutoff_nm} <= {start_nm}")
        centres = torch.linspace(start_nm, cutoff_nm, n_basis, dtype=torch.get_default_dtype())
        widths = torch.full((n_basis,), (cutoff_nm - start_nm) / (n_basis - 1), dtype=centres.dtype)
        if trainable:
            self.centres = nn.Parameter(centres)
            self.widths = nn.Parameter(widths)
        else:
            self.register_buffer("centres", centres)
            self.register_buffer("widths", widths)

    def forward(self, r: Tensor) -> Tensor:
        """Basis values of distances ``r`` (shape ``(...)``, nm) -> shape ``(..., n_basis)``, dimensionless."""
        diff = r.unsqueeze(-1) - self.centres
        return torch.exp(-0.5 * (diff / self.widths) ** 2)


RADIAL_BASES = {"bessel": BesselBasis, "gaussian": GaussianBasis}


def build_radial_basis(name: str, n_basis: int, cutoff_nm: float, trainable: bool = False) -> nn.Module:
    """Radial basis by name (``'bessel'`` or ``'gaussian'``)."""
    if name not in RADIAL_BASES:
        raise ValueError(f"unknown radial basis '{name}'; available: {sorted(RADIAL_BASES)}")
    return RADIAL_BASES[name](n_basis=n_basis, cutoff_nm=cutoff_nm, trainable=trainable)


def safe_norm(vectors: Tensor, eps: float = 1e-20) -> Tensor:
    """Euclidean norm over the last axis, ``sqrt(sum v^2 + eps)``: finite gradient at ``v = 0``.

    Parameters
    ----------
    vectors : torch.Tensor, shape (..., 3)
    eps : float
        Added under the square root (in squared units of ``vectors``).

    Returns
    -------
    torch.Tensor, shape (...)
    """
    return torch.sqrt((vectors * vectors).sum(-1) + eps)
