"""The command line's policy for existing outputs: a verb never replaces a file or report it finds in its way
unless given ``--overwrite``.

``map``, ``import``, ``export``, ``simulate`` and ``analyze`` follow it through :func:`refuse_existing`;
``train`` refuses a non-empty run directory (continue it with ``--resume``) and ``reference`` continues or keeps
the run already in its output (start over with ``--no-resume``).
"""
from __future__ import annotations

from pathlib import Path


def add_overwrite_argument(parser, what: str) -> None:
    """Add ``--overwrite`` to a verb's parser; ``what`` names the outputs it replaces, for the help line."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} if present (default: refuse and change nothing)")


def existing_outputs(paths) -> list:
    """The paths that exist; a folder counts only when it is not empty."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            if any(path.iterdir()):
                found.append(path)
        elif path.exists():
            found.append(path)
    return found


def refuse_existing(paths, overwrite: bool, option: str = "--out", hint: str = "") -> None:
    """Refuse to replace existing outputs unless ``overwrite``.

    Parameters
    ----------
    paths : sequence of str or Path
        The files (or folders, refused only when not empty) the verb would write.
    overwrite : bool
        The verb's ``--overwrite`` flag.
    option : str
        The option that named the outputs, for the message.
    hint : str
        Another way out, appended to the message (e.g. "--resume to continue it").

    Raises
    ------
    FileExistsError
        Naming the existing outputs, the option and ``--overwrite``.
    """
    if overwrite:
        return
    found = existing_outputs(paths)
    if found:
        what = ", ".join(f"{path}{' (a folder that is not empty)' if path.is_dir() else ''}" for path in found)
        raise FileExistsError(f"{option}: {what} already exist{'s' if len(found) == 1 else ''}; pass --overwrite to "
                              f"replace {'it' if len(found) == 1 else 'them'}{hint}, or choose another {option}")
