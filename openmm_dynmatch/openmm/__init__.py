"""The OpenMM adapter: every module of the package that imports ``openmm`` or ``openmmtorch`` lives here.

Keeping the adapter in one folder makes a change of OpenMM's machine-learning interface (``TorchForce`` is
moving to ``PythonTorchForce`` upstream) a one-folder change. Modules in this folder import ``torch`` before
``openmmtorch``: the openmm-torch plugin loads its library against the torch already in the process.
"""


def _import_simtk_alias_quietly() -> None:
    """Import the deprecated ``simtk.openmm`` alias with its deprecation message suppressed.

    openmm-torch's generated wrapper imports ``simtk.openmm``, whose import logs "importing 'simtk.openmm' is
    deprecated" on the root logger: every command would print it although neither this package nor the user
    imports ``simtk``. Importing the alias once here, with that one message filtered out, leaves the later
    import a no-op; other log records pass.
    """
    import logging

    import torch  # noqa: F401  (before OpenMM, as everywhere in this folder)

    class _DropSimtkNotice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "importing 'simtk.openmm' is deprecated" not in str(record.msg)

    root, notice = logging.getLogger(), _DropSimtkNotice()
    root.addFilter(notice)
    try:
        import simtk.openmm  # noqa: F401
    except ImportError:  # OpenMM builds without the alias: nothing to silence
        pass
    finally:
        root.removeFilter(notice)


_import_simtk_alias_quietly()

from openmm_dynmatch.openmm.export import export, load_exported, load_metadata  # noqa: E402,F401
from openmm_dynmatch.openmm.recorder import record_paths  # noqa: E402,F401
from openmm_dynmatch.openmm.runner import simulate  # noqa: E402,F401
from openmm_dynmatch.openmm.cg_walkers import (create_dynamics, create_force, create_simulation,  # noqa: E402,F401
                                           create_system)
