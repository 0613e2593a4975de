"""Topology helpers on the CG bond graph: validation, graph distances, bonded angles/dihedrals, pair lists.

These run once when a model is built (numpy / plain Python); the resulting index arrays become buffers of the
TorchScript modules.

Example
-------
>>> bonds = chain_bonds(5)                      # [[0, 1], [1, 2], [2, 3], [3, 4]]
>>> angle_triplets(5, bonds).tolist()[0]        # [0, 1, 2]
[0, 1, 2]
>>> pair_index(5, bonds, min_separation=4).T.tolist()
[[0, 4]]
"""
from collections import deque

import numpy as np


def chain_bonds(n_beads: int) -> np.ndarray:
    """Bonds ``(i, i+1)`` of a linear chain, shape ``(n_beads - 1, 2)``."""
    return np.stack([np.arange(n_beads - 1), np.arange(1, n_beads)], axis=1).astype(np.int64)


def validate_bonds(bonds, n_beads: int) -> np.ndarray:
    """Check a bond list and return it as an int64 array of shape ``(n_bonds, 2)``.

    Raises ``ValueError`` naming the problem (wrong shape, index out of range, self-bond, duplicate).
    """
    arr = np.asarray(bonds if bonds is not None else np.zeros((0, 2)), dtype=np.int64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"bonds: expected shape (n_bonds, 2), got {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_beads:
        raise ValueError(f"bonds: bead indices must lie in [0, {n_beads}), got range [{arr.min()}, {arr.max()}]")
    if np.any(arr[:, 0] == arr[:, 1]):
        raise ValueError(f"bonds: a bead cannot be bonded to itself, got {arr[arr[:, 0] == arr[:, 1]].tolist()}")
    keys = {tuple(sorted(b)) for b in arr.tolist()}
    if len(keys) != len(arr):
        raise ValueError("bonds: duplicate bonds in the list")
    return arr


def validate_quadruplets(quadruplets, n_beads: int, name: str = "dihedrals") -> np.ndarray:
    """Check a list of dihedral quadruplets ``(i, j, k, l)`` and return it as an int64 array of shape ``(n, 4)``.

    Raises ``ValueError`` naming ``name`` and the problem (wrong shape, index out of range, a bead used twice in
    one quadruplet).
    """
    arr = np.asarray(quadruplets, dtype=np.int64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected shape (n, 4), got {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_beads:
        raise ValueError(f"{name}: bead indices must lie in [0, {n_beads}), got range [{arr.min()}, {arr.max()}]")
    repeated = [q for q in arr.tolist() if len(set(q)) != 4]
    if repeated:
        raise ValueError(f"{name}: the four beads of a dihedral must differ, got {repeated}")
    return arr


def _neighbours(n_beads: int, bonds: np.ndarray) -> list:
    neigh = [[] for _ in range(n_beads)]
    for i, j in bonds.tolist():
        neigh[i].append(j)
        neigh[j].append(i)
    return [sorted(n) for n in neigh]


def graph_distances(n_beads: int, bonds) -> np.ndarray:
    """Number of bonds on the shortest path between every pair of beads.

    Returns
    -------
    np.ndarray, shape (n_beads, n_beads), int64
        ``-1`` for beads in disconnected components, 0 on the diagonal.
    """
    neigh = _neighbours(n_beads, validate_bonds(bonds, n_beads))
    dist = np.full((n_beads, n_beads), -1, dtype=np.int64)
    for start in range(n_beads):
        dist[start, start] = 0
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in neigh[node]:
                if dist[start, nxt] < 0:
                    dist[start, nxt] = dist[start, node] + 1
                    queue.append(nxt)
    return dist


def angle_triplets(n_beads: int, bonds) -> np.ndarray:
    """Bonded triplets ``(i, j, k)`` with centre ``j`` and ``i < k``, shape ``(n_angles, 3)``."""
    neigh = _neighbours(n_beads, validate_bonds(bonds, n_beads))
    out = [(i, j, k) for j in range(n_beads) for a, i in enumerate(neigh[j]) for k in neigh[j][a + 1:]]
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def dihedral_quadruplets(n_beads: int, bonds) -> np.ndarray:
    """Bonded quadruplets ``(i, j, k, l)`` (paths of three bonds, all beads distinct), shape ``(n_dihedrals, 4)``.

    Each path appears once, oriented so that ``j < k`` (or ``i < l`` when ``j == k`` cannot happen).
    """
    arr = validate_bonds(bonds, n_beads)
    neigh = _neighbours(n_beads, arr)
    out = []
    for j, k in arr.tolist():
        if j > k:
            j, k = k, j
        for i in neigh[j]:
            if i == k:
                continue
            for m in neigh[k]:
                if m in (j, i):
                    continue
                out.append((i, j, k, m))
    return np.asarray(sorted(out), dtype=np.int64).reshape(-1, 4)


def one_dihedral_per_bond(n_beads: int, bonds) -> np.ndarray:
    """One bonded quadruplet per rotatable bond ``j-k``, shape ``(n_rotatable, 4)``.

    All quadruplets ``(i, j, k, l)`` about the same central bond measure the same rotation (up to the bend of
    the angles), so a prior that inverts each on its own marginal counts that rotation several times. This keeps
    one: the ends ``i`` and ``l`` with the most bonds (backbone before side chain or cap), ties to the lower index.
    For alanine dipeptide's heavy atoms that picks phi (C-N-CA-C) and psi (N-CA-C-N).
    """
    arr = validate_bonds(bonds, n_beads)
    degree = np.bincount(arr.ravel(), minlength=n_beads) if arr.size else np.zeros(n_beads, np.int64)
    chosen = {}
    for quad in dihedral_quadruplets(n_beads, arr).tolist():
        key = (quad[1], quad[2])
        rank = (-degree[quad[0]] - degree[quad[3]], quad[0], quad[3])
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, quad)
    return np.asarray(sorted(q for _, q in chosen.values()), dtype=np.int64).reshape(-1, 4)


def pair_index(n_beads: int, bonds=None, min_separation: int = 1) -> np.ndarray:
    """All bead pairs ``i < j`` whose graph distance is at least ``min_separation`` bonds.

    Beads in different components (no path) always count as separated.

    Parameters
    ----------
    n_beads : int
    bonds : array-like, shape (n_bonds, 2), optional
    min_separation : int
        1 keeps every pair; 2 drops bonded pairs; 4 keeps pairs more than 3 bonds apart.

    Returns
    -------
    np.ndarray, shape (2, n_pairs), int64
    """
    if n_beads < 1:
        raise ValueError(f"n_beads must be >= 1, got {n_beads}")
    i, j = np.triu_indices(n_beads, k=1)
    if min_separation > 1:
        dist = graph_distances(n_beads, bonds)[i, j]
        keep = (dist < 0) | (dist >= min_separation)
        i, j = i[keep], j[keep]
    return np.stack([i, j]).astype(np.int64)


def bead_type_array(bead_types, n_beads: int, n_types=None) -> tuple:
    """Validated bead types ``(types (n_beads,) int64, n_types)``; default: all beads of type 0."""
    types = np.zeros(n_beads, np.int64) if bead_types is None else np.asarray(bead_types, np.int64)
    if types.shape != (n_beads,):
        raise ValueError(f"bead_types: expected {n_beads} entries, got shape {types.shape}")
    n_types = int(types.max()) + 1 if n_types is None else int(n_types)
    if types.min() < 0 or types.max() >= n_types:
        raise ValueError(f"bead_types: expected values in [0, {n_types}), got range [{types.min()}, {types.max()}]")
    return types, n_types
