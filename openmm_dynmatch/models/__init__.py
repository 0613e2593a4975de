"""CG potentials ``U = U_prior + U_net`` and their building blocks.

- :mod:`.prior`: bonds, angles, dihedrals, repulsion and their Boltzmann-inversion fit (:func:`fit_prior`)
- :mod:`.potential`: :class:`CGPotential`, the fast networks, ``build_potential`` / ``save_potential`` /
  ``load_potential`` / ``forces``
- :mod:`.equivariant`: the NequIP-style e3nn network (imported on first use)
- :mod:`.radial`, :mod:`.graph`: radial bases and cutoffs, bond-graph helpers
"""
from .graph import angle_triplets, chain_bonds, dihedral_quadruplets, graph_distances, pair_index
from .potential import (NETS, CGPotential, NoNet, PairMLP, SchNet, build_net, build_potential, forces,
                        load_potential, save_potential)
from .prior import PriorPotential, fit_prior, measure_internal
from .radial import BesselBasis, CosineCutoff, GaussianBasis, build_radial_basis, cosine_cutoff, safe_norm

__all__ = [
    "NETS", "BesselBasis", "CGPotential", "CosineCutoff", "GaussianBasis", "NoNet", "PairMLP", "PriorPotential",
    "SchNet", "angle_triplets", "build_net", "build_potential", "build_radial_basis", "chain_bonds",
    "cosine_cutoff", "dihedral_quadruplets", "fit_prior", "forces", "graph_distances", "load_potential",
    "measure_internal", "pair_index", "safe_norm", "save_potential",
]
