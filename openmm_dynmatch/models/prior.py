"""Physics prior of the CG potential: bonds, angles, dihedrals on the bond graph and a soft repulsion.

Energy terms (kJ/mol; distances nm, angles rad):

- bonds ``(i, j)``: ``0.5 k_b (r_ij - r0)^2``
- angles ``(i, j, k)``, centre ``j``: ``0.5 k_a (theta_ijk - theta0)^2``
- dihedrals ``(i, j, k, l)``: ``sum_{n=1..n_terms} k_n (1 + cos(n phi - phi0_n))``, IUPAC sign convention,
  ``phi`` in ``(-pi, pi]``
- repulsion for pairs more than ``repulsion_exclude_bonds`` bonds apart: ``epsilon (sigma / r)^power``
- dihedral corrections on chosen quadruplets: ``sum_{n=1..order} a_n cos(n phi) + b_n sin(n phi)``, fixed
  buffers (zero until set) that the correction stage of training fits (:mod:`openmm_dynmatch.correction`)

:func:`fit_prior` sets the constants by Boltzmann inversion of mapped AA statistics.

Example
-------
>>> import torch
>>> prior = PriorPotential(n_beads=3, bonds=[[0, 1], [1, 2]], bond_r0_nm=0.38, bond_k=1000.0,
...                        angle_theta0_rad=2.0, angle_k=50.0)
>>> prior(torch.randn(4, 3, 3)).shape
torch.Size([4])
"""
import math
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..units import kt_kj_per_mol, strip_unit
from .geometry import angle_from_vectors, dihedral_cos_sin_from_vectors, differences, tuple_differences
from .graph import (angle_triplets, dihedral_quadruplets, one_dihedral_per_bond, pair_index, validate_bonds,
                    validate_quadruplets)
from .radial import safe_norm

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Which bonded dihedrals the prior inverts: every quadruplet, one per rotatable bond, or none.
DIHEDRAL_MODES = ("all", "one_per_bond", "none")


def resolve_dtype(name: str) -> torch.dtype:
    """torch dtype from its name (``'float32'`` or ``'float64'``)."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype '{name}'; available: {sorted(DTYPES)}")
    return DTYPES[name]


def _per_term(value, n: int, name: str, width: Optional[int] = None) -> np.ndarray:
    """Broadcast a scalar or check a per-term list to shape ``(n,)`` or ``(n, width)``."""
    shape = (n,) if width is None else (n, width)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0 or (width is not None and arr.ndim == 1 and arr.shape[0] == width):
        arr = np.broadcast_to(arr, shape)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected a scalar or shape {shape}, got shape {arr.shape}")
    return np.array(arr)


class PriorPotential(nn.Module):
    """Harmonic bonds and angles, Fourier dihedrals and a soft repulsion on a fixed CG bond graph.

    Parameters
    ----------
    n_beads : int
    bonds : array-like, shape (n_bonds, 2)
        CG bond graph; angles and dihedrals are derived from it unless given.
    bond_r0_nm, bond_k : float or array-like, shape (n_bonds,)
        Equilibrium lengths (nm) and force constants (kJ/mol/nm^2).
    angle_theta0_rad, angle_k : float or array-like, shape (n_angles,), optional
        Equilibrium angles (rad) and constants (kJ/mol/rad^2); no angle terms when ``angle_k`` is None.
    dihedral_k, dihedral_phi0_rad : array-like, shape (n_dihedrals, n_terms) or (n_terms,), optional
        Amplitudes ``k_n`` (kJ/mol) and phases ``phi0_n`` (rad) of multiplicities ``n = 1..n_terms``;
        no dihedral terms when ``dihedral_k`` is None.
    angles, dihedrals : array-like, shape (n_angles, 3) / (n_dihedrals, 4), optional
        Explicit bead triplets / quadruplets; default: all derived from ``bonds``.
    repulsion_sigma_nm : float or array-like, shape (n_pairs,), optional
        Repulsion radius; no repulsion when None.
    repulsion_epsilon, repulsion_power : float
        Repulsion energy scale (kJ/mol) and exponent.
    repulsion_exclude_bonds : int
        Pairs up to this many bonds apart get no repulsion (default 3).
    correction_dihedrals : array-like, shape (n_corrections, 4), optional
        Quadruplets that carry a dihedral correction, a Fourier series of order ``correction_order`` without a
        constant term whose coefficients (buffers ``correction_cos``, ``correction_sin``, shape
        ``(n_corrections, correction_order)``, kJ/mol) start at zero and are set by :meth:`add_correction`;
        they are saved in the state dict and exported with the potential, and never trained by gradients.
    correction_order : int
        Highest multiplicity of the corrections (default 3).
    trainable : bool
        Make bond, angle and dihedral constants ``nn.Parameter`` (the repulsion stays fixed). They are
        parameterised at their natural scales, so that one learning rate moves each by comparable relative amounts:
        force constants as ``log k``; equilibrium lengths and angles as ``x0 = x0_init + s * shift`` with the
        thermal spread ``s = sqrt(kT / k_init)`` of the term (``shift`` starts at 0); dihedral amplitudes (kJ/mol)
        and phases (rad) as they are. :meth:`constants` gives the physical values.
    scale_kt : float
        Thermal energy (kJ/mol) that sets the spreads ``s`` of the trainable equilibrium values.
    dtype : str
        ``'float64'`` or ``'float32'``; inputs are cast to it.
    """

    n_beads: int
    n_dihedral_terms: int
    repulsion_epsilon: float
    repulsion_power: float
    n_bonds: int
    n_angles: int
    n_dihedrals: int
    n_corrections: int
    correction_order: int

    def __init__(self, n_beads: int, bonds, bond_r0_nm=0.38, bond_k=1000.0, angle_theta0_rad=None, angle_k=None,
                 dihedral_k=None, dihedral_phi0_rad=None, angles=None, dihedrals=None, repulsion_sigma_nm=None,
                 repulsion_epsilon: float = 2.5, repulsion_power: float = 6.0, repulsion_exclude_bonds: int = 3,
                 correction_dihedrals=None, correction_order: int = 3, trainable: bool = False,
                 scale_kt: float = 2.494, dtype: str = "float64"):
        super().__init__()
        self.n_beads = int(n_beads)
        torch_dtype = resolve_dtype(dtype)
        bonds = validate_bonds(bonds, self.n_beads)
        angles = np.zeros((0, 3), np.int64) if angle_k is None else (
            angle_triplets(self.n_beads, bonds) if angles is None else np.asarray(angles, np.int64).reshape(-1, 3))
        dihedrals = np.zeros((0, 4), np.int64) if dihedral_k is None else (
            dihedral_quadruplets(self.n_beads, bonds) if dihedrals is None
            else np.asarray(dihedrals, np.int64).reshape(-1, 4))
        corrections = np.zeros((0, 4), np.int64) if correction_dihedrals is None else validate_quadruplets(
            correction_dihedrals, self.n_beads, "correction_dihedrals")
        if int(correction_order) < 1:
            raise ValueError(f"correction_order: expected an integer >= 1, got {correction_order!r}")
        n_terms = 0 if dihedral_k is None else int(np.atleast_1d(np.asarray(dihedral_k)).shape[-1])
        self.n_dihedral_terms = n_terms
        pairs = np.zeros((2, 0), np.int64) if repulsion_sigma_nm is None else pair_index(
            self.n_beads, bonds, min_separation=int(repulsion_exclude_bonds) + 1)
        values = {
            "bond_r0": _per_term(bond_r0_nm, len(bonds), "bond_r0_nm"),
            "bond_k": _per_term(bond_k, len(bonds), "bond_k"),
            "angle_theta0": _per_term(0.0 if angle_theta0_rad is None else angle_theta0_rad, len(angles),
                                      "angle_theta0_rad"),
            "angle_k": _per_term(0.0 if angle_k is None else angle_k, len(angles), "angle_k"),
            "dihedral_k": _per_term(0.0 if dihedral_k is None else dihedral_k, len(dihedrals), "dihedral_k",
                                    n_terms),
            "dihedral_phi0": _per_term(0.0 if dihedral_phi0_rad is None else dihedral_phi0_rad, len(dihedrals),
                                       "dihedral_phi0_rad", n_terms),
        }
        learned = {
            "log_bond_k": np.log(values["bond_k"]), "bond_r0_shift": np.zeros(len(bonds)),
            "log_angle_k": np.log(np.maximum(values["angle_k"], 1e-300)), "angle_theta0_shift": np.zeros(len(angles)),
            "dihedral_k": values["dihedral_k"], "dihedral_phi0": values["dihedral_phi0"],
        }
        for name, value in learned.items():
            tensor = torch.as_tensor(value, dtype=torch_dtype)
            if trainable:
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        for name, k in (("bond_r0", values["bond_k"]), ("angle_theta0", values["angle_k"])):
            spread = np.sqrt(float(scale_kt) / np.where(k > 0, k, float(scale_kt)))
            self.register_buffer(f"{name}_ref", torch.as_tensor(values[name], dtype=torch_dtype))
            self.register_buffer(f"{name}_scale", torch.as_tensor(spread, dtype=torch_dtype))
        sigma = _per_term(1.0 if repulsion_sigma_nm is None else repulsion_sigma_nm, pairs.shape[1],
                          "repulsion_sigma_nm")
        self.register_buffer("repulsion_sigma", torch.as_tensor(sigma, dtype=torch_dtype))
        self.register_buffer("bond_index", torch.as_tensor(bonds))
        self.register_buffer("angle_index", torch.as_tensor(angles))
        self.register_buffer("dihedral_index", torch.as_tensor(dihedrals))
        self.register_buffer("repulsion_index", torch.as_tensor(pairs))
        self.register_buffer("correction_index", torch.as_tensor(corrections))
        self.correction_order = int(correction_order)
        for name in ("correction_cos", "correction_sin"):
            self.register_buffer(name, torch.zeros(len(corrections), self.correction_order, dtype=torch_dtype))
        # every bond, repulsion pair, angle arm and dihedral bond in one matrix product (not saved: rebuilt from the
        # indices); rows: bonds, repulsion pairs, the angle and dihedral blocks of tuple_differences, then the three
        # bond blocks of the corrected dihedrals
        vectors = tuple_differences(self.n_beads, np.concatenate([bonds.T, pairs], axis=1), angles, dihedrals)
        matrix = torch.cat([vectors, tuple_differences(self.n_beads, np.zeros((2, 0)), np.zeros((0, 3)), corrections)])
        self.register_buffer("vector_matrix", matrix.to(torch_dtype), persistent=False)
        self.n_bonds, self.n_angles, self.n_dihedrals = len(bonds), len(angles), len(dihedrals)
        self.n_corrections = len(corrections)
        self.repulsion_epsilon = float(repulsion_epsilon)
        self.repulsion_power = float(repulsion_power)
        self.spec = {
            "n_beads": self.n_beads, "bonds": bonds.tolist(), "angles": angles.tolist(),
            "dihedrals": dihedrals.tolist(), "bond_r0_nm": values["bond_r0"].tolist(),
            "bond_k": values["bond_k"].tolist(),
            "angle_theta0_rad": None if angle_k is None else values["angle_theta0"].tolist(),
            "angle_k": None if angle_k is None else values["angle_k"].tolist(),
            "dihedral_k": None if dihedral_k is None else values["dihedral_k"].tolist(),
            "dihedral_phi0_rad": None if dihedral_k is None else values["dihedral_phi0"].tolist(),
            "repulsion_sigma_nm": None if repulsion_sigma_nm is None else sigma.tolist(),
            "repulsion_epsilon": self.repulsion_epsilon, "repulsion_power": self.repulsion_power,
            "repulsion_exclude_bonds": int(repulsion_exclude_bonds),
            "correction_dihedrals": None if correction_dihedrals is None else corrections.tolist(),
            "correction_order": self.correction_order, "trainable": bool(trainable),
            "scale_kt": float(scale_kt), "dtype": dtype,
        }
        self.fit_report: dict = {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # potentials saved before the dihedral corrections existed have none: load them as a prior without any
        if self.n_corrections == 0:
            for name in ("correction_index", "correction_cos", "correction_sin"):
                state_dict.setdefault(prefix + name, getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.jit.export
    def constants(self) -> Dict[str, Tensor]:
        """The physical constants: ``bond_r0`` (nm), ``bond_k`` (kJ/mol/nm^2), ``angle_theta0`` (rad),
        ``angle_k`` (kJ/mol/rad^2), ``dihedral_k`` (kJ/mol), ``dihedral_phi0`` (rad)."""
        return {
            "bond_r0": self.bond_r0_ref + self.bond_r0_scale * self.bond_r0_shift,
            "bond_k": torch.exp(self.log_bond_k),
            "angle_theta0": self.angle_theta0_ref + self.angle_theta0_scale * self.angle_theta0_shift,
            "angle_k": torch.exp(self.log_angle_k),
            "dihedral_k": self.dihedral_k, "dihedral_phi0": self.dihedral_phi0,
        }

    def bond_energy(self, x: Tensor) -> Tensor:
        """Harmonic bond energies, positions ``x`` (B, N, 3) nm -> (B, n_bonds) kJ/mol."""
        return self._bond_energy(self._vectors(x)[0])

    def angle_energy(self, x: Tensor) -> Tensor:
        """Harmonic angle energies, positions ``x`` (B, N, 3) nm -> (B, n_angles) kJ/mol."""
        v = self._vectors(x)
        return self._angle_energy(v[2], v[3])

    def dihedral_energy(self, x: Tensor) -> Tensor:
        """Fourier dihedral energies, positions ``x`` (B, N, 3) nm -> (B, n_dihedrals) kJ/mol."""
        v = self._vectors(x)
        return self._dihedral_energy(v[4], v[5], v[6])

    def repulsion_energy(self, x: Tensor) -> Tensor:
        """Soft repulsion energies, positions ``x`` (B, N, 3) nm -> (B, n_pairs) kJ/mol."""
        return self._repulsion_energy(self._vectors(x)[1])

    def correction_energy(self, x: Tensor) -> Tensor:
        """Dihedral-correction energies, positions ``x`` (B, N, 3) nm -> (B, n_corrections) kJ/mol."""
        v = self._vectors(x)
        return self._correction_energy(v[7], v[8], v[9])

    @torch.jit.unused
    def add_correction(self, cos_terms, sin_terms) -> None:
        """Add ``sum_n cos_terms[:, n-1] cos(n phi) + sin_terms[:, n-1] sin(n phi)`` (kJ/mol, shape
        ``(n_corrections, correction_order)`` each) to the dihedral corrections."""
        shape = tuple(self.correction_cos.shape)
        for name, value in (("cos_terms", cos_terms), ("sin_terms", sin_terms)):
            value = np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{name}: expected shape {shape} (corrected dihedrals, order), got {value.shape}")
        with torch.no_grad():
            self.correction_cos += torch.as_tensor(np.asarray(cos_terms), dtype=self.correction_cos.dtype)
            self.correction_sin += torch.as_tensor(np.asarray(sin_terms), dtype=self.correction_sin.dtype)

    def _vectors(self, x: Tensor) -> List[Tensor]:
        """Every difference vector the terms need, (B, V, 3) nm, split into bonds, repulsion pairs, first and second
        angle arms, the three bonds of the dihedrals and those of the corrected dihedrals."""
        a, d, c = self.n_angles, self.n_dihedrals, self.n_corrections
        return torch.split(differences(x, self.vector_matrix),
                           [self.n_bonds, self.repulsion_index.shape[1], a, a, d, d, d, c, c, c], dim=1)

    def _bond_energy(self, bond: Tensor) -> Tensor:
        r = safe_norm(bond)
        constants = self.constants()
        return 0.5 * constants["bond_k"] * (r - constants["bond_r0"]) ** 2

    def _angle_energy(self, u: Tensor, w: Tensor) -> Tensor:
        theta = angle_from_vectors(u, w)
        constants = self.constants()
        return 0.5 * constants["angle_k"] * (theta - constants["angle_theta0"]) ** 2

    def _dihedral_energy(self, b1: Tensor, b2: Tensor, b3: Tensor) -> Tensor:
        # k_n (1 + cos(n phi - phi0_n)) = k_n + k_n cos(phi0_n) cos(n phi) + k_n sin(phi0_n) sin(n phi)
        k, phi0 = self.dihedral_k, self.dihedral_phi0
        return k.sum(-1) + self._fourier_series(b1, b2, b3, k * torch.cos(phi0), k * torch.sin(phi0))

    def _fourier_series(self, b1: Tensor, b2: Tensor, b3: Tensor, cos_terms: Tensor, sin_terms: Tensor) -> Tensor:
        """``sum_n cos_terms[:, n-1] cos(n phi) + sin_terms[:, n-1] sin(n phi)`` of the dihedrals of the bonds
        ``b1, b2, b3`` (B, D, 3), coefficients (D, order): (B, D) kJ/mol."""
        cos_sin = dihedral_cos_sin_from_vectors(b1, b2, b3)
        c1, s1 = cos_sin[0], cos_sin[1]
        cn, sn = c1, s1
        energy = torch.zeros_like(c1)
        for n in range(cos_terms.shape[1]):
            if n > 0:
                cn, sn = cn * c1 - sn * s1, sn * c1 + cn * s1
            energy = energy + cos_terms[:, n] * cn + sin_terms[:, n] * sn
        return energy

    def _repulsion_energy(self, pair: Tensor) -> Tensor:
        r = safe_norm(pair)
        return self.repulsion_epsilon * (self.repulsion_sigma / r) ** self.repulsion_power

    def _correction_energy(self, b1: Tensor, b2: Tensor, b3: Tensor) -> Tensor:
        return self._fourier_series(b1, b2, b3, self.correction_cos, self.correction_sin)

    @torch.jit.export
    def energy_terms(self, positions: Tensor) -> Dict[str, Tensor]:
        """Energy of each kind of term, summed per walker: positions (B, N, 3) nm -> {name: (B,) kJ/mol}."""
        v = self._vectors(positions.to(self.bond_r0_ref.dtype))
        return {
            "bonds": self._bond_energy(v[0]).sum(-1),
            "angles": self._angle_energy(v[2], v[3]).sum(-1),
            "dihedrals": self._dihedral_energy(v[4], v[5], v[6]).sum(-1),
            "repulsion": self._repulsion_energy(v[1]).sum(-1),
            "dihedral_correction": self._correction_energy(v[7], v[8], v[9]).sum(-1),
        }

    def forward(self, positions: Tensor) -> Tensor:
        """Prior energy per walker.

        Parameters
        ----------
        positions : torch.Tensor, shape (n_walkers, n_beads, 3), nm

        Returns
        -------
        torch.Tensor, shape (n_walkers,), kJ/mol
        """
        bond, pair, arm1, arm2, b1, b2, b3, c1, c2, c3 = self._vectors(positions.to(self.bond_r0_ref.dtype))
        energy = self._bond_energy(bond).sum(-1) + self._angle_energy(arm1, arm2).sum(-1)
        energy = energy + self._dihedral_energy(b1, b2, b3).sum(-1) + self._repulsion_energy(pair).sum(-1)
        if self.n_corrections > 0:
            energy = energy + self._correction_energy(c1, c2, c3).sum(-1)
        return energy


def _harmonic_inversion(values: np.ndarray, jacobian: np.ndarray, kt: float, n_bins: int, min_count: int,
                        value_range=None) -> tuple:
    """Weighted quadratic fit of ``-kT log(p(x) / J(x))`` -> ``(x0, k)``; moments if the fit is not convex.

    A (nearly) constant coordinate gets its mean and a spring whose thermal spread is 0.1% of that mean.

    ``jacobian`` is a callable giving ``J`` at the bin centres; bins with fewer than ``min_count`` samples are
    ignored and the others weighted by their counts (the variance of ``log count`` is ``~1/count``).
    """
    spread_floor = 1e-3 * max(abs(float(values.mean())), 1e-3)
    if values.std() < spread_floor:  # (nearly) constant, e.g. a constrained bond: a stiff spring
        return float(values.mean()), float(kt / spread_floor ** 2)
    if value_range is None:
        value_range = (np.percentile(values, 0.5), np.percentile(values, 99.5))
    counts, edges = np.histogram(values, bins=n_bins, range=value_range)
    centres = 0.5 * (edges[1:] + edges[:-1])
    jac = jacobian(centres)
    keep = (counts >= min_count) & (jac > 0)
    if keep.sum() >= 3:
        density = counts[keep] / (counts.sum() * np.diff(edges)[keep])
        energy = -kt * np.log(density / jac[keep])
        a, b, _ = np.polyfit(centres[keep], energy, 2, w=np.sqrt(counts[keep]))
        if a > 0:
            return float(-b / (2 * a)), float(2 * a)
    return float(values.mean()), float(kt / values.var())


def _fourier_inversion(phi: np.ndarray, kt: float, n_terms: int, n_bins: int) -> tuple:
    """Least-squares fit of ``-kT log p(phi)`` (pseudocount 1) -> ``(k_n, phi0_n)``, each shape (n_terms,)."""
    counts, edges = np.histogram(phi, bins=n_bins, range=(-math.pi, math.pi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    energy = -kt * np.log((counts + 1.0) / (counts.sum() + n_bins))
    orders = np.arange(1, n_terms + 1)
    design = np.concatenate([np.ones((n_bins, 1)), np.cos(np.outer(centres, orders)),
                             np.sin(np.outer(centres, orders))], axis=1)
    coef, *_ = np.linalg.lstsq(design, energy, rcond=None)
    a, b = coef[1:n_terms + 1], coef[n_terms + 1:]
    return np.hypot(a, b), np.arctan2(b, a)


def measure_internal(positions: np.ndarray, bonds, angles=None, dihedrals=None) -> dict:
    """Bond lengths (nm), angles and dihedrals (rad) with the same conventions as :class:`PriorPotential`.

    Parameters
    ----------
    positions : np.ndarray, shape (n_frames, n_beads, 3), nm

    Returns
    -------
    dict with ``bonds`` (n_frames, n_bonds), ``angles`` (n_frames, n_angles), ``dihedrals`` (n_frames, n_dih),
    and the bead indices of the measured terms, ``angle_index`` (n_angles, 3), ``dihedral_index`` (n_dih, 4)
    """
    n_beads = positions.shape[1]
    probe = PriorPotential(n_beads, bonds, angle_k=0.0, angles=angles, dihedral_k=[0.0], dihedrals=dihedrals)
    x = torch.as_tensor(positions, dtype=torch.float64)
    with torch.no_grad():
        bond, _, arm1, arm2, b1, b2, b3 = probe._vectors(x)[:7]
        cos_sin = dihedral_cos_sin_from_vectors(b1, b2, b3)
        r, theta, phi = safe_norm(bond), angle_from_vectors(arm1, arm2), torch.atan2(cos_sin[1], cos_sin[0])
    return {"bonds": r.numpy(), "angles": theta.numpy(), "dihedrals": phi.numpy(),
            "angle_index": probe.angle_index.numpy(), "dihedral_index": probe.dihedral_index.numpy()}


def prior_dihedrals(n_beads: int, bonds, mode) -> np.ndarray:
    """The quadruplets a prior with dihedral ``mode`` inverts, shape ``(n, 4)``.

    ``mode``: ``'all'`` (every bonded quadruplet), ``'one_per_bond'`` (:func:`~.graph.one_dihedral_per_bond`) or
    ``'none'``; ``True``/``False`` mean ``'all'``/``'none'``.
    """
    if mode is True or mode is False:
        mode = "all" if mode else "none"
    if mode not in DIHEDRAL_MODES:
        raise ValueError(f"dihedrals: expected one of {list(DIHEDRAL_MODES)}, got {mode!r}")
    if mode == "none":
        return np.zeros((0, 4), np.int64)
    return dihedral_quadruplets(n_beads, bonds) if mode == "all" else one_dihedral_per_bond(n_beads, bonds)


def fit_prior(positions, bonds, temperature_k, angles: bool = True, dihedrals="all",
              dihedral_terms: int = 3, repulsion: bool = True, repulsion_exclude_bonds: int = 3,
              repulsion_percentile: float = 1.0, repulsion_power: float = 6.0, repulsion_epsilon=None,
              n_bins: int = 60, min_count: int = 5, correction_dihedrals=None, correction_order: int = 3,
              trainable: bool = False, dtype: str = "float64") -> PriorPotential:
    """Prior constants by Boltzmann inversion of (mapped AA) CG configurations.

    Bonds: quadratic fit of ``-kT log(p(r) / r^2)``; angles: of ``-kT log(p(theta) / sin theta)`` (the
    Jacobians of 3-D distances and angles); dihedrals: least-squares Fourier fit of ``-kT log p(phi)`` with
    multiplicities ``1..dihedral_terms`` on the quadruplets :func:`prior_dihedrals` selects for ``dihedrals``
    (``'all'``, ``'one_per_bond'`` or ``'none'``; each inverted on its own marginal, so ``'all'`` counts a
    rotation once per quadruplet about its bond); repulsion ``sigma``: the ``repulsion_percentile``-th percentile of
    all distances between beads more than ``repulsion_exclude_bonds`` bonds apart, ``epsilon`` = kT unless given.
    ``correction_dihedrals`` / ``correction_order`` give the prior empty dihedral-correction terms
    (:class:`PriorPotential`) for the correction stage of training to fill.

    Parameters
    ----------
    positions : array-like or openmm Quantity, shape (n_frames, n_beads, 3), nm
    bonds : array-like, shape (n_bonds, 2)
    temperature_k : float or openmm Quantity, K

    Returns
    -------
    PriorPotential
        With ``fit_report``: a dict of means, standard deviations and fitted constants per term.
    """
    positions = np.asarray(strip_unit(positions, "nm", "positions"), dtype=np.float64)
    if positions.ndim != 3 or positions.shape[2] != 3 or positions.shape[0] < 2:
        raise ValueError(f"positions: expected shape (n_frames >= 2, n_beads, 3), got {positions.shape}")
    temperature_k = float(strip_unit(temperature_k, "K", "temperature_k"))
    if not temperature_k > 0:
        raise ValueError(f"temperature_k must be > 0, got {temperature_k}")
    n_beads = positions.shape[1]
    bonds = validate_bonds(bonds, n_beads)
    kt = kt_kj_per_mol(temperature_k)
    quads = prior_dihedrals(n_beads, bonds, dihedrals)
    data = measure_internal(positions, bonds, dihedrals=quads if len(quads) else None)
    report = {"temperature_k": temperature_k, "n_frames": int(positions.shape[0]), "bonds": [], "angles": [],
              "dihedrals": [], "repulsion": None}
    r0, kb = [], []
    for col, pair in enumerate(bonds.tolist()):
        values = data["bonds"][:, col]
        x0, k = _harmonic_inversion(values, lambda r: r ** 2, kt, n_bins, min_count)
        r0.append(x0)
        kb.append(k)
        report["bonds"].append({"beads": pair, "mean_nm": float(values.mean()), "std_nm": float(values.std()),
                                "r0_nm": x0, "k_kj_per_mol_nm2": k})
    kwargs = {"bond_r0_nm": r0, "bond_k": kb}
    if angles and len(data["angle_index"]):
        theta0, ka = [], []
        for col, triplet in enumerate(data["angle_index"].tolist()):
            values = data["angles"][:, col]
            x0, k = _harmonic_inversion(values, np.sin, kt, n_bins, min_count)
            theta0.append(x0)
            ka.append(k)
            report["angles"].append({"beads": triplet, "mean_rad": float(values.mean()),
                                     "std_rad": float(values.std()), "theta0_rad": x0, "k_kj_per_mol_rad2": k})
        kwargs.update(angle_theta0_rad=theta0, angle_k=ka)
    if len(quads) and dihedral_terms > 0:
        amplitudes, phases = [], []
        for col, quad in enumerate(data["dihedral_index"].tolist()):
            k, phi0 = _fourier_inversion(data["dihedrals"][:, col], kt, dihedral_terms, max(n_bins // 2, 12))
            amplitudes.append(k.tolist())
            phases.append(phi0.tolist())
            report["dihedrals"].append({"beads": quad, "k_kj_per_mol": k.tolist(), "phi0_rad": phi0.tolist()})
        kwargs.update(dihedral_k=amplitudes, dihedral_phi0_rad=phases, dihedrals=quads)
    pairs = pair_index(n_beads, bonds, min_separation=repulsion_exclude_bonds + 1)
    if repulsion and pairs.shape[1]:
        distances = np.linalg.norm(positions[:, pairs[1]] - positions[:, pairs[0]], axis=-1)
        sigma = float(np.percentile(distances, repulsion_percentile))
        epsilon = kt if repulsion_epsilon is None else float(repulsion_epsilon)
        kwargs.update(repulsion_sigma_nm=sigma, repulsion_epsilon=epsilon, repulsion_power=repulsion_power)
        report["repulsion"] = {"sigma_nm": sigma, "epsilon_kj_per_mol": epsilon, "power": repulsion_power,
                               "n_pairs": int(pairs.shape[1]), "percentile": repulsion_percentile}
    prior = PriorPotential(n_beads, bonds, repulsion_exclude_bonds=repulsion_exclude_bonds, trainable=trainable,
                           correction_dihedrals=correction_dihedrals, correction_order=correction_order,
                           scale_kt=kt, dtype=dtype, **kwargs)
    prior.fit_report = report
    return prior
