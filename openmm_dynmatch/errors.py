"""Errors the package raises on purpose, so that callers (the command line above all) report them in one line.

Each message names the file or setting at fault and what to do; the original exception, when there is one, is
chained (``raise ... from``) for debugging.
"""
from __future__ import annotations


class FileFormatError(ValueError):
    """An input file exists but cannot be read as what it should be (truncated, foreign or garbage).

    A ``ValueError``, so code that catches bad input keeps catching it.
    """


def short_reason(err: BaseException, limit: int = 120) -> str:
    """The exception's type and the first line of its message, at most ``limit`` characters (library errors
    such as HDF5's can span dozens of lines)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    # an HDF5 back trace opens with a banner and ends with its summary ("Unable to open/create file ...")
    first = (lines[-1] if lines[0].startswith("HDF5 error back trace") else lines[0]) if lines else ""
    if len(first) > limit:
        first = first[:limit - 3] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


class UnstableSimulationError(RuntimeError):
    """CG walkers kept exploding (non-finite or huge energies) after every restart the engine allows.

    The message says which walkers, how often, and which settings to change (a smaller ``dynamics.timestep_ps``,
    a stiffer prior).
    """
