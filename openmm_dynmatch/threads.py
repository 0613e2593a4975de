"""How many CPU threads the package's commands use (PyTorch, the OpenMP and MKL runtimes, OpenMM's CPU platform).

By default PyTorch starts one OpenMP thread per core of the machine and its threads spin while they wait for
each other. Two such processes on the same cores take the cores from each other's spinning threads, and each
runs many times slower than alone. The package's commands therefore use at most the cores this process may
run on (its CPU affinity, which a batch scheduler or ``taskset`` restricts), and no more than
``OMP_NUM_THREADS`` when that is set; ``dynmatch VERB --threads N`` overrides both. Waiting threads sleep
instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless set), so that runs sharing cores slow each other by
the share of the cores they get, not by a large factor.

The environment variables only take effect when they are set before the runtimes start, i.e. before
``torch`` and ``openmm`` are first imported; :func:`use_threads` sets them and also tells an already imported
``torch`` and OpenMM CPU platform (the OpenMP wait policy cannot change once the runtime runs).
"""
from __future__ import annotations

import os
import sys
from typing import Optional

# The variables that fix the thread count of the libraries loaded later in the process.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENMM_CPU_THREADS")


def available_cores() -> int:
    """The number of CPU cores this process may run on (its affinity mask; all cores where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for one command: :func:`available_cores`, at most ``OMP_NUM_THREADS`` when that is a number.

    ``OMP_NUM_THREADS`` may list one count per nesting level (``"4,2"``); the first is the one that counts.
    A value that is not a positive integer is ignored, as the OpenMP runtime ignores it.
    """
    cores = available_cores()
    requested = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if requested.isdigit() and int(requested) > 0:
        return min(cores, int(requested))
    return cores


def use_threads(threads: Optional[int] = None) -> int:
    """Make this process use ``threads`` CPU threads (default :func:`default_threads`); returns the count.

    Sets :data:`THREAD_VARIABLES` (read by the OpenMP and MKL runtimes and by OpenMM's CPU platform when they
    load), ``OMP_WAIT_POLICY=PASSIVE`` unless it is set, and, when ``torch`` or ``openmm`` is already imported,
    ``torch.set_num_threads`` and the CPU platform's default ``Threads`` property.

    Parameters
    ----------
    threads : int, optional
        A positive number of threads.
    """
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(threads)
    openmm = sys.modules.get("openmm")
    if openmm is not None and hasattr(openmm, "Platform"):  # the CPU platform read its default when it loaded
        try:
            openmm.Platform.getPlatformByName("CPU").setPropertyDefaultValue("Threads", str(threads))
        except Exception:  # noqa: BLE001  (an OpenMM build without the CPU platform)
            pass
    return threads
