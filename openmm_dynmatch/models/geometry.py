"""Internal coordinates of batched bead positions: bond-angle cosines and dihedral cosines/sines.

Shared by the prior (:mod:`.prior`) and the internal-coordinate network (:mod:`.internal`). :func:`angle_cos` and
:func:`dihedral_cos_sin` take positions ``(n_walkers, n_beads, 3)`` in nm plus an index tensor of bead tuples;
their ``*_from_vectors`` forms take the bond vectors. All are TorchScript-compatible and stay finite, with finite
gradients, for straight angles and collinear dihedrals.

Difference vectors by one matrix product
----------------------------------------
A model of a small molecule needs many vectors ``x_a - x_b`` between its beads (bonds, the two arms of every
angle, the three bonds of every dihedral, every pair). Gathering them with ``x[:, index]`` costs one indexing
operation per tuple column forward and an accumulating scatter backward, and on walker batches of a few hundred
beads those fixed costs dominate a force evaluation. :func:`difference_matrix` writes all of them as the rows of
one ``(n_vectors, n_beads)`` matrix of +1/-1 entries, so :func:`differences` gets every vector with one batched
matrix product (and its gradient with one more). The forward values equal the direct subtraction exactly (each
row adds one position and subtracts one, the other products are zeros); the gradient sums the same terms in
another order.

Example
-------
>>> import torch
>>> x = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]])
>>> angle_cos(x, torch.tensor([[0, 1, 2]]))                  # right angle
tensor([[0.]])
>>> dihedral_cos_sin(x, torch.tensor([[0, 1, 2, 3]]))[:, 0, 0]  # phi = -90 degrees
tensor([ 0., -1.])
"""
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .radial import safe_norm


def difference_matrix(n_beads: int, heads: Sequence[int], tails: Sequence[int],
                      dtype: torch.dtype = torch.float64) -> Tensor:
    """Matrix ``D`` of shape ``(len(heads), n_beads)`` with ``(D x)_v = x[heads[v]] - x[tails[v]]``.

    Parameters
    ----------
    n_beads : int
    heads, tails : sequence of int, equal lengths
        Bead indices in ``[0, n_beads)``; ``heads[v] != tails[v]``.
    dtype : torch.dtype

    Example
    -------
    >>> difference_matrix(3, [1, 2], [0, 1])
    tensor([[-1.,  1.,  0.],
            [ 0., -1.,  1.]], dtype=torch.float64)
    """
    heads, tails = np.asarray(heads, dtype=np.int64).ravel(), np.asarray(tails, dtype=np.int64).ravel()
    if heads.shape != tails.shape:
        raise ValueError(f"heads and tails must have the same length, got {heads.size} and {tails.size}")
    if heads.size and (min(heads.min(), tails.min()) < 0 or max(heads.max(), tails.max()) >= n_beads):
        raise ValueError(f"bead indices must lie in [0, {n_beads}), got heads {heads.tolist()} and tails "
                         f"{tails.tolist()}")
    if np.any(heads == tails):
        raise ValueError("a difference vector needs two different beads (heads[v] == tails[v] for some v)")
    matrix = np.zeros((heads.size, int(n_beads)))
    rows = np.arange(heads.size)
    matrix[rows, heads] = 1.0
    matrix[rows, tails] = -1.0
    return torch.as_tensor(matrix, dtype=dtype)


def differences(x: Tensor, matrix: Tensor) -> Tensor:
    """All difference vectors of ``matrix`` (:func:`difference_matrix`) for positions ``x`` (B, N, 3): (B, V, 3)."""
    return torch.einsum("vn,bnc->bvc", matrix.to(x.dtype), x)


def tuple_differences(n_beads: int, pairs, angles, dihedrals) -> Tensor:
    """One :func:`difference_matrix` (float64) for the bead index arrays of pairs ``(2, P)`` (``x_j - x_i``), angles
    ``(A, 3)`` (``x_i - x_j``, then
    ``x_k - x_j``) and dihedrals ``(D, 4)`` (``x_j - x_i``, ``x_k - x_j``, ``x_l - x_k``), in blocks in that
    order: ``P`` pair rows, ``A`` rows of first arms, ``A`` of second arms, then ``D`` rows of each dihedral
    bond. The rows are those :func:`angle_cos` and :func:`dihedral_cos_sin` form from the indices."""
    p = np.asarray(pairs, dtype=np.int64).reshape(2, -1)
    a, d = np.asarray(angles, dtype=np.int64).reshape(-1, 3), np.asarray(dihedrals, dtype=np.int64).reshape(-1, 4)
    heads = np.concatenate([p[1], a[:, 0], a[:, 2], d[:, 1], d[:, 2], d[:, 3]])
    tails = np.concatenate([p[0], a[:, 1], a[:, 1], d[:, 0], d[:, 1], d[:, 2]])
    return difference_matrix(n_beads, heads, tails)


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
    return angle_cos_from_vectors(x[:, idx[:, 0]] - x[:, idx[:, 1]], x[:, idx[:, 2]] - x[:, idx[:, 1]])


def angle_cos_from_vectors(u: Tensor, v: Tensor) -> Tensor:
    """Cosine of the angle between the arms ``u`` and ``v`` (..., 3): ``u . v / (|u| |v|)``, regularised norms."""
    return (u * v).sum(-1) / (safe_norm(u) * safe_norm(v))


def angle_from_vectors(u: Tensor, v: Tensor) -> Tensor:
    """Angle (rad, in ``[0, pi]``) between the arms ``u`` and ``v`` (..., 3), as ``atan2(|u x v|, u . v)``: exact
    near 0 and pi, where ``acos`` of the cosine loses precision."""
    return torch.atan2(safe_norm(torch.linalg.cross(u, v, dim=-1)), (u * v).sum(-1))


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
    return dihedral_cos_sin_from_vectors(x[:, idx[:, 1]] - x[:, idx[:, 0]], x[:, idx[:, 2]] - x[:, idx[:, 1]],
                                         x[:, idx[:, 3]] - x[:, idx[:, 2]])


def dihedral_cos_sin_from_vectors(b1: Tensor, b2: Tensor, b3: Tensor) -> Tensor:
    """:func:`dihedral_cos_sin` of the bond vectors ``b1 = x_j - x_i``, ``b2 = x_k - x_j``, ``b3 = x_l - x_k``
    (..., 3): shape ``(2, ...)``."""
    n1 = torch.linalg.cross(b1, b2, dim=-1)
    n2 = torch.linalg.cross(b2, b3, dim=-1)
    cos_part = (n1 * n2).sum(-1)
    sin_part = safe_norm(b2) * (b1 * n2).sum(-1)
    rho = torch.sqrt(cos_part * cos_part + sin_part * sin_part + 1e-24)
    return torch.stack([cos_part / rho, sin_part / rho])
