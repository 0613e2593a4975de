"""The OpenMM adapter: every module of the package that imports ``openmm`` or ``openmmtorch`` lives here.

Keeping the adapter in one folder makes a change of OpenMM's machine-learning interface (``TorchForce`` is
moving to ``PythonTorchForce`` upstream) a one-folder change. Modules in this folder import ``torch`` before
``openmmtorch``: the openmm-torch plugin loads its library against the torch already in the process.
"""

from openmm_dynmatch.openmm.export import export, load_exported, load_metadata  # noqa: E402,F401
from openmm_dynmatch.openmm.recorder import record_paths  # noqa: E402,F401
from openmm_dynmatch.openmm.runner import simulate  # noqa: E402,F401
from openmm_dynmatch.openmm.system import create_force, create_simulation, create_system  # noqa: E402,F401
