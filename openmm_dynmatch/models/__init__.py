"""CG potentials ``U = U_prior + U_net``, the window classifier, and their building blocks.

- :mod:`.prior`: bonds, angles, dihedrals, repulsion and their Boltzmann-inversion fit (:func:`fit_prior`)
- :mod:`.potential`: :class:`CGPotential`, the fast networks, ``build_potential`` / ``save_potential`` /
  ``load_potential`` / ``forces``
- :mod:`.equivariant`: the NequIP-style e3nn network; :mod:`.interaction`: its message-passing block, shared with
  the classifier's frame encoder
- :mod:`.internal`: the MLP of internal coordinates (``internal_mlp``; chirality-aware)
- :mod:`.classifier`: the window classifier of dynamic matching; :mod:`.classifier_ensemble`: several of them
  judged by their mean logit; :mod:`.registry`: the classifier kinds and the options every net and classifier
  kind takes
- :mod:`.radial`, :mod:`.graph`, :mod:`.geometry`: radial bases and cutoffs, bond-graph helpers, angle and
  dihedral cosines/sines

The e3nn-based names (``EquivariantNet`` and the classifier's) are imported on first access, so that importing
this package does not pay for e3nn.
"""
import importlib

from .graph import angle_triplets, chain_bonds, dihedral_quadruplets, graph_distances, pair_index
from .potential import (NETS, CGPotential, NoNet, PairMLP, SchNet, build_net, build_potential, forces,
                        load_potential, net_class, register_net, save_potential)
from .prior import PriorPotential, fit_prior, measure_internal
from .radial import BesselBasis, CosineCutoff, GaussianBasis, build_radial_basis, cosine_cutoff, safe_norm

_LAZY = {
    "EquivariantNet": "equivariant", "InternalMLP": "internal",
    "WindowClassifier": "classifier", "build_classifier": "classifier", "r1_penalty": "classifier",
    "displacement_rms": "classifier",
}

__all__ = [
    "NETS", "BesselBasis", "CGPotential", "CosineCutoff", "GaussianBasis", "NoNet", "PairMLP", "PriorPotential",
    "SchNet", "angle_triplets", "build_net", "build_potential", "build_radial_basis", "chain_bonds",
    "cosine_cutoff", "dihedral_quadruplets", "fit_prior", "forces", "graph_distances", "load_potential",
    "measure_internal", "net_class", "pair_index", "register_net", "safe_norm", "save_potential", *sorted(_LAZY),
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
