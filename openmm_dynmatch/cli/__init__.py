"""The ``dynmatch`` command line: it parses arguments and calls the library, nothing more.

Each verb lives in ``openmm_dynmatch/cli/<verb>.py`` with a module docstring (its help line),
``add_arguments(parser)`` and ``run(args) -> int``. Expected failures (bad input, unreadable files, output
folders that cannot be written, unstable simulations) print one line naming the file or setting; ``--debug`` or
the environment variable ``DYNMATCH_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from openmm_dynmatch.errors import UnstableSimulationError

#: Environment variable that, set to anything but "" or "0", makes every error show its traceback.
DEBUG_ENV = "DYNMATCH_DEBUG"
#: Failures reported in one line; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ValueError, OSError, ImportError, UnstableSimulationError)

VERBS = {
    "demo": "demo",
    "reference": "reference",
    "map": "map_cmd",
    "import": "import_cmd",
    "train": "train",
    "export": "export",
    "simulate": "simulate",
    "analyze": "analyze",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynmatch", description="Dynamic matching of coarse-grained models, simulated in OpenMM.")
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    subparsers.required = True
    for verb, module_name in VERBS.items():
        module = importlib.import_module(f"openmm_dynmatch.cli.{module_name}")
        help_line = (module.__doc__ or "").strip().splitlines()[0]
        sub = subparsers.add_parser(verb, help=help_line, description=module.__doc__)
        module.add_arguments(sub)
        sub.add_argument("--threads", type=int, default=None, metavar="N",
                         help="CPU threads (PyTorch, OpenMP, OpenMM CPU platform; default: the cores this process "
                              "may use, at most OMP_NUM_THREADS when set)")
        sub.add_argument("--debug", action="store_true",
                         help=f"show the full traceback of an error (also: environment variable {DEBUG_ENV}=1)")
        sub.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    from openmm_dynmatch.threads import use_threads

    args = build_parser().parse_args(argv)
    try:
        use_threads(args.threads)  # before the verb imports torch: the OpenMP runtime reads it when it loads
        return int(args._run(args) or 0)
    except EXPECTED_ERRORS as err:
        if args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"dynmatch {args.verb}: error: {error_line(err)}", file=sys.stderr)
        return 2


def error_line(err: BaseException) -> str:
    """One line for an expected error: the message, or for an operating-system error the file, the reason and
    what to do."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        hints = {errno.EACCES: "make it writable (or readable) or choose another path",
                 errno.EPERM: "make it writable (or readable) or choose another path",
                 errno.EROFS: "choose a path on a writable file system",
                 errno.ENOSPC: "free disk space or choose another output folder",
                 errno.ENOENT: "check the path"}
        hint = hints.get(err.errno)
        return f"{err.filename}: {err.strerror}" + (f"; {hint}" if hint else "")
    return " ".join(str(err).split()) or type(err).__name__


def _version() -> str:
    from openmm_dynmatch import __version__

    return f"dynmatch {__version__}"


if __name__ == "__main__":
    sys.exit(main())
