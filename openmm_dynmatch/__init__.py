"""openmm_dynmatch: coarse-grained models whose dynamics match all-atom MD, simulated in OpenMM.

Import order matters for the OpenMM adapter: ``torch`` must be imported before ``openmmtorch``;
``openmm_dynmatch.openmm`` takes care of it.
"""

__version__ = "0.1.0"

from openmm_dynmatch.units import BOLTZMANN_KJ_PER_MOL_K, kt_kj_per_mol  # noqa: F401
