"""Atomic file writes: nothing half-written survives a failure.

Every output of the package is written to a temporary name in the destination's folder and renamed over the
destination only once complete (``os.replace`` is atomic on POSIX within one file system).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from openmm_dynmatch.errors import FileFormatError, short_reason


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on failure removed.

    Examples
    --------
    >>> with atomic_path("out.json") as tmp:          # doctest: +SKIP
    ...     Path(tmp).write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers (HDF5, torch.save) create the file themselves
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise RuntimeError(f"nothing was written to the temporary file for {path}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, data, indent: int = 2) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=indent, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def torch_save(obj, path) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def torch_load(path, what: str, fix: str, required=(), weights_only: bool = True):
    """``torch.load`` of a file this package wrote, with one clear error when it cannot be read.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file should hold, for the message (e.g. "training checkpoint").
    fix : str
        What the user can do, for the message (e.g. "delete it to restart training from the last stage").
    required : sequence of str
        Keys the loaded dict must have.
    weights_only : bool
        Passed to ``torch.load``.

    Returns
    -------
    dict
        The loaded object.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FileFormatError
        If the file is truncated, not a PyTorch file, or lacks ``required`` keys.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # truncated zip, foreign pickle, garbage bytes: all mean "unreadable"
        raise FileFormatError(f"{path}: cannot read the {what} ({short_reason(err)}); the file is truncated "
                              f"or was not written by this package; {fix}") from err
    missing = sorted(set(required) - set(payload)) if isinstance(payload, dict) else list(required)
    if missing:
        raise FileFormatError(f"{path}: not a {what} (missing {missing}); {fix}")
    return payload
