"""Features of CG trajectories: distances, angles, dihedrals, alanine-dipeptide phi/psi from beads, TICA.

All functions return arrays and never plot. Angles are in radians, lengths in nm.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

#: The five backbone beads of alanine dipeptide, as (residue name, atom name) of the AA atom they sit on.
#: phi = dihedral(C_ace, N, CA, C); psi = dihedral(N, CA, C, N_nme).
BACKBONE_ATOMS = {
    "C_ace": ("ACE", "C"),
    "N": ("ALA", "N"),
    "CA": ("ALA", "CA"),
    "C": ("ALA", "C"),
    "N_nme": ("NME", "N"),
}


def distances(positions, pairs) -> np.ndarray:
    """Distances between bead pairs.

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, n_beads, 3), nm
    pairs : array of int, shape (n_pairs, 2)

    Returns
    -------
    np.ndarray, shape (n_frames, n_pairs), nm
    """
    positions, pairs = _check(positions, pairs, 2, "pairs")
    return np.linalg.norm(positions[:, pairs[:, 1]] - positions[:, pairs[:, 0]], axis=-1)


def angles(positions, triples) -> np.ndarray:
    """Bond angles ``i-j-k`` at the middle bead ``j``.

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, n_beads, 3), nm
    triples : array of int, shape (n_angles, 3)

    Returns
    -------
    np.ndarray, shape (n_frames, n_angles), radians in [0, pi]
    """
    positions, triples = _check(positions, triples, 3, "triples")
    a = positions[:, triples[:, 0]] - positions[:, triples[:, 1]]
    b = positions[:, triples[:, 2]] - positions[:, triples[:, 1]]
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def dihedrals(positions, quadruples) -> np.ndarray:
    """Torsion angles ``i-j-k-l`` (IUPAC sign convention, as mdtraj).

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, n_beads, 3), nm
    quadruples : array of int, shape (n_dihedrals, 4)

    Returns
    -------
    np.ndarray, shape (n_frames, n_dihedrals), radians in (-pi, pi]
    """
    positions, quads = _check(positions, quadruples, 4, "quadruples")
    b0 = positions[:, quads[:, 1]] - positions[:, quads[:, 0]]
    b1 = positions[:, quads[:, 2]] - positions[:, quads[:, 1]]
    b2 = positions[:, quads[:, 3]] - positions[:, quads[:, 2]]
    n1 = np.cross(b0, b1)
    n2 = np.cross(b1, b2)
    y = np.linalg.norm(b1, axis=-1) * np.sum(b0 * n2, axis=-1)
    x = np.sum(n1 * n2, axis=-1)
    return np.arctan2(y, x)


def coordinate_msd(trajectory, terms: dict, lags: Sequence[int]) -> dict:
    """Mean squared change of every bond length, angle and dihedral of one trajectory over frame lags.

    Dihedral changes are taken the short way round the circle (wrapped to ``[-pi, pi)``), so a torsion that
    crosses +-pi between two frames counts its small step, not a full turn.

    Parameters
    ----------
    trajectory : np.ndarray, shape (n_frames, n_beads, 3), nm
        One continuous trajectory (one walker).
    terms : dict
        ``bonds`` (n, 2), ``angles`` (n, 3), ``dihedrals`` (n, 4) bead indices, as :func:`bond_graph_terms`
        returns them.
    lags : sequence of int
        Lags in frames, each at least 1.

    Returns
    -------
    dict
        ``bonds`` (nm^2), ``angles`` and ``dihedrals`` (rad^2): arrays of shape (len(lags), n_terms), the mean
        over all frame pairs of each lag; NaN for a lag not shorter than the trajectory.

    Examples
    --------
    >>> x = np.zeros((3, 2, 3)); x[:, 1, 0] = [1.0, 1.5, 1.0]
    >>> coordinate_msd(x, {"bonds": [[0, 1]], "angles": [], "dihedrals": []}, [1, 2])["bonds"].ravel().tolist()
    [0.25, 0.0]
    """
    lags = [int(lag) for lag in lags]
    if not lags or min(lags) < 1:
        raise ValueError(f"lags must be a non-empty sequence of frame lags >= 1, got {lags!r}")
    values = {"bonds": distances(trajectory, terms.get("bonds", [])),
              "angles": angles(trajectory, terms.get("angles", [])),
              "dihedrals": dihedrals(trajectory, terms.get("dihedrals", []))}
    out = {}
    for kind, series in values.items():
        table = np.full((len(lags), series.shape[1]), np.nan)
        for row, lag in enumerate(lags):
            if lag < series.shape[0]:
                change = series[lag:] - series[:-lag]
                if kind == "dihedrals":
                    change = (change + np.pi) % (2.0 * np.pi) - np.pi
                table[row] = np.mean(change ** 2, axis=0)
        out[kind] = table
    return out


def bond_graph_terms(bonds, n_beads: int) -> dict:
    """Angle triples and dihedral quadruples implied by a bond graph.

    Parameters
    ----------
    bonds : array of int, shape (n_bonds, 2)
    n_beads : int

    Returns
    -------
    dict
        ``bonds`` (n_bonds, 2), ``angles`` (n_angles, 3), ``dihedrals`` (n_dihedrals, 4), int arrays; each
        angle/dihedral listed once.
    """
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if bonds.size and (bonds.min() < 0 or bonds.max() >= n_beads):
        raise ValueError(f"bonds must index beads 0..{n_beads - 1}, got indices up to {bonds.max()}")
    neighbours = {i: set() for i in range(n_beads)}
    for i, j in bonds:
        neighbours[int(i)].add(int(j))
        neighbours[int(j)].add(int(i))
    triples = sorted({_canonical((i, j, k)) for j in neighbours for i in neighbours[j]
                      for k in neighbours[j] if i != k})
    quads = sorted({_canonical((i, j, k, l)) for j, k in bonds.tolist() for i in neighbours[j]
                    for l in neighbours[k] if len({i, j, k, l}) == 4})
    return {"bonds": bonds, "angles": np.asarray(triples, dtype=np.int64).reshape(-1, 3),
            "dihedrals": np.asarray(quads, dtype=np.int64).reshape(-1, 4)}


def find_backbone_beads(bead_names: Optional[Sequence[str]] = None, topology=None,
                        mapping_spec: Optional[dict] = None) -> dict:
    """Indices of the five alanine-dipeptide backbone beads, found by residue and atom name.

    Sources are tried in turn until each backbone bead matches exactly one bead: the CG ``topology`` (atom
    name in a residue of that name, as the mapping's ``cg_residues: residue`` topologies have), the
    ``mapping_spec`` beads (``residue_name`` + ``name``), then bead names holding both as tokens (any
    separators, residue numbers allowed: ``"ACE1-C"``, ``"C_ACE"``, ``"ALA2:CA"``).

    Parameters
    ----------
    bead_names : sequence of str, optional
        Bead names from the trajectory metadata.
    topology : mdtraj.Topology, optional
        The CG topology (one atom per bead).
    mapping_spec : dict, optional
        The ``mapping`` entry of mapped-trajectory metadata.

    Returns
    -------
    dict
        ``{"C_ace": i, "N": j, "CA": k, "C": l, "N_nme": m}``.

    Raises
    ------
    ValueError
        If a backbone bead is missing or ambiguous in every source.
    """
    sources = []
    if topology is not None:
        sources.append([(_tokens(atom.residue.name), _raw_tokens(atom.name)) for atom in topology.atoms])
    if mapping_spec and mapping_spec.get("beads"):
        sources.append([(_tokens(bead.get("residue_name", "")), _raw_tokens(bead.get("name", "")))
                        for bead in mapping_spec["beads"]])
    if bead_names is not None:
        sources.append([(_tokens(name), _raw_tokens(name)) for name in bead_names])
    for labels in sources:
        found = {key: [i for i, (res_tokens, atom_tokens) in enumerate(labels)
                       if residue in res_tokens and atom in atom_tokens]
                 for key, (residue, atom) in BACKBONE_ATOMS.items()}
        if all(len(hits) == 1 for hits in found.values()):
            return {key: hits[0] for key, hits in found.items()}
    raise ValueError(f"could not find exactly one bead for each backbone atom {BACKBONE_ATOMS} by name "
                     f"(bead names {list(bead_names) if bead_names is not None else None}); "
                     f"pass the bead indices explicitly")


def backbone_phi_psi(positions, beads: dict) -> np.ndarray:
    """Backbone phi and psi of alanine dipeptide from CG bead positions.

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, n_beads, 3), nm
    beads : dict
        Bead indices as returned by :func:`find_backbone_beads`.

    Returns
    -------
    np.ndarray, shape (n_frames, 2), radians: columns phi, psi
    """
    missing = sorted(set(BACKBONE_ATOMS) - set(beads))
    if missing:
        raise ValueError(f"beads is missing backbone entries {missing}; expected keys {sorted(BACKBONE_ATOMS)}")
    quads = [[beads["C_ace"], beads["N"], beads["CA"], beads["C"]],
             [beads["N"], beads["CA"], beads["C"], beads["N_nme"]]]
    return dihedrals(positions, quads)


def default_features(positions, bonds=None, backbone: Optional[dict] = None) -> np.ndarray:
    """Rotation- and translation-invariant features for TICA and clustering.

    With ``backbone`` beads: ``(cos phi, sin phi, cos psi, sin psi)``. Otherwise all inter-bead distances
    plus cos/sin of every dihedral of the bond graph.

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, n_beads, 3), nm
    bonds : array of int, shape (n_bonds, 2), optional
    backbone : dict, optional

    Returns
    -------
    np.ndarray, shape (n_frames, n_features)
    """
    positions = np.asarray(positions, dtype=np.float64)
    if backbone is not None:
        phi_psi = backbone_phi_psi(positions, backbone)
        return np.column_stack([np.cos(phi_psi[:, 0]), np.sin(phi_psi[:, 0]),
                                np.cos(phi_psi[:, 1]), np.sin(phi_psi[:, 1])])
    n_beads = positions.shape[1]
    pairs = np.array([(i, j) for i in range(n_beads) for j in range(i + 1, n_beads)]).reshape(-1, 2)
    parts = [distances(positions, pairs)]
    if bonds is not None and len(bonds):
        quads = bond_graph_terms(bonds, n_beads)["dihedrals"]
        if len(quads):
            torsions = dihedrals(positions, quads)
            parts += [np.cos(torsions), np.sin(torsions)]
    return np.concatenate(parts, axis=1)


def tica_project(aa_features, cg_features=None, lagtime: int = 1, dim: int = 2) -> dict:
    """Fit TICA on AA features and project AA and CG features onto the same components.

    Parameters
    ----------
    aa_features : np.ndarray or list of them, each shape (n_frames_k, n_features)
    cg_features : np.ndarray or list of them, each shape (n_frames_k, n_features), optional
    lagtime : int
        TICA lag in frames.
    dim : int
        Number of components kept.

    Returns
    -------
    dict
        ``aa`` / ``cg``: projections (lists of arrays (n_frames_k, dim), same nesting as the input),
        ``timescales_frames`` (dim,) TICA timescales of the AA fit, in frames.
    """
    from deeptime.decomposition import TICA

    aa_list = aa_features if isinstance(aa_features, (list, tuple)) else [aa_features]
    aa_list = [np.ascontiguousarray(a, dtype=np.float64) for a in aa_list]
    n_features = aa_list[0].shape[1]
    dim = min(int(dim), n_features)
    model = TICA(lagtime=int(lagtime), dim=dim, scaling="kinetic_map").fit(aa_list).fetch_model()
    out = {"aa": [model.transform(a) for a in aa_list], "cg": None,
           "timescales_frames": np.asarray(model.timescales(k=dim))}
    if cg_features is not None:
        cg_list = cg_features if isinstance(cg_features, (list, tuple)) else [cg_features]
        for c in cg_list:
            if c.shape[1] != n_features:
                raise ValueError(f"cg_features must have {n_features} features like aa_features, got {c.shape[1]}")
        out["cg"] = [model.transform(np.ascontiguousarray(c, dtype=np.float64)) for c in cg_list]
    return out


def _check(positions, index, width: int, name: str):
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f"positions must have shape (n_frames, n_beads, 3), got {positions.shape}")
    index = np.asarray(index, dtype=np.int64).reshape(-1, width)
    if index.size and (index.min() < 0 or index.max() >= positions.shape[1]):
        raise ValueError(f"{name} must index beads 0..{positions.shape[1] - 1}, got {index.max()}")
    return positions, index


def _canonical(indices):
    return tuple(indices) if indices[0] < indices[-1] else tuple(reversed(indices))


def _raw_tokens(name: str) -> set:
    return {token for token in re.split(r"[^A-Za-z0-9]+", str(name).upper()) if token}


def _tokens(name: str) -> set:
    """Upper-case tokens of a name, each also without trailing residue numbers ("ACE1" -> "ACE")."""
    raw = _raw_tokens(name)
    return raw | {re.sub(r"\d+$", "", token) for token in raw}
