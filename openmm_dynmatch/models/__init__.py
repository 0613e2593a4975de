"""CG potentials (prior + network) and their building blocks."""
from .radial import BesselBasis, CosineCutoff, GaussianBasis, build_radial_basis, cosine_cutoff, safe_norm
