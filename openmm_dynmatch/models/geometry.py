"""Internal coordinates of batched bead positions: bond-angle cosines and dihedral cosines/sines.

Shared by the prior (:mod:`.prior`) and the internal-coordinate network (:mod:`.internal`). All functions take
positions ``(n_walkers, n_beads, 3)`` in nm plus an index tensor of bead tuples, are TorchScript-compatible, and
stay finite, with finite gradients, for straight angles and collinear dihedrals.

Example
-------
>>> import torch
>>> x = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]])
>>> angle_cos(x, torch.tensor([[0, 1, 2]]))                  # right angle
tensor([[0.]])
>>> dihedral_cos_sin(x, torch.tensor([[0, 1, 2, 3]]))[:, 0, 0]  # phi = -90 degrees
tensor([ 0., -1.])
"""
import torch
from torch import Tensor

from .radial import safe_norm


def angle_cos(x: Tensor, idx: Tensor) -> Tensor:
    """Cosine of the bond angles ``(i, j, k)`` with centre ``j``.

    Parameters
    ----------
    x : torch.Tensor, shape (n_walkers, n_beads, 3), nm
    idx : torch.Tensor, shape (n_angles, 3), int64

    Returns
    -------
    torch.Tensor, shape (n_walkers, n_angles), dimensionless
        ``u . v / (|u| |v|)`` with ``u = x_i - x_j``, ``v = x_k - x_j`` (regularised norms: 0 for coincident beads).
    """
    u = x[:, idx[:, 0]] - x[:, idx[:, 1]]
    v = x[:, idx[:, 2]] - x[:, idx[:, 1]]
    return (u * v).sum(-1) / (safe_norm(u) * safe_norm(v))


def dihedral_cos_sin(x: Tensor, idx: Tensor) -> Tensor:
    """``(cos phi, sin phi)`` of the dihedrals ``(i, j, k, l)``, IUPAC sign convention.

    Parameters
    ----------
    x : torch.Tensor, shape (n_walkers, n_beads, 3), nm
    idx : torch.Tensor, shape (n_dihedrals, 4), int64

    Returns
    -------
    torch.Tensor, shape (2, n_walkers, n_dihedrals), dimensionless
        The normalised pair ``(n1 . n2, |b2| b1 . n2)`` with ``n1 = b1 x b2``, ``n2 = b2 x b3``; zero (not NaN)
        where the dihedral is undefined (collinear beads). ``sin phi`` changes sign under a reflection of the
        positions, ``cos phi`` does not.
    """
    b1 = x[:, idx[:, 1]] - x[:, idx[:, 0]]
    b2 = x[:, idx[:, 2]] - x[:, idx[:, 1]]
    b3 = x[:, idx[:, 3]] - x[:, idx[:, 2]]
    n1 = torch.linalg.cross(b1, b2, dim=-1)
    n2 = torch.linalg.cross(b2, b3, dim=-1)
    cos_part = (n1 * n2).sum(-1)
    sin_part = safe_norm(b2) * (b1 * n2).sum(-1)
    rho = torch.sqrt(cos_part * cos_part + sin_part * sin_part + 1e-24)
    return torch.stack([cos_part / rho, sin_part / rho])
