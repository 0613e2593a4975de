"""The ``dynmatch`` command line: it parses arguments and calls the library, nothing more.

Each verb lives in ``openmm_dynmatch/cli/<verb>.py`` with a module docstring (its help line),
``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

VERBS = {
    "demo": "demo",
    "reference": "reference",
    "map": "map_cmd",
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
        sub.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"dynmatch {args.verb}: error: {err}", file=sys.stderr)
        return 2


def _version() -> str:
    from openmm_dynmatch import __version__

    return f"dynmatch {__version__}"


if __name__ == "__main__":
    sys.exit(main())
