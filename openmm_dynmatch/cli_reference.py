"""Markdown reference of the ``dynmatch`` command line, generated from its argparse parser.

``docs/cli.md`` is the output of :func:`cli_reference`, and ``tests/test_docs.py`` checks that the two agree,
so the page cannot drift from the code. Regenerate the page with::

    python -m openmm_dynmatch.cli_reference > docs/cli.md

The page is rendered from the parser's actions (option strings, metavars, defaults, choices, help strings)
rather than copied from ``format_help()``: argparse's help layout changes between Python versions (section
titles, metavar placement, colour) and with the terminal width, and the page must come out the same on every
machine. Usage lines are wrapped at the fixed width :data:`WIDTH`, and the program name is always
``dynmatch`` whatever ``sys.argv[0]`` is.
"""
from __future__ import annotations

import argparse
import inspect
from typing import List

PROG = "dynmatch"
WIDTH = 100  # columns of the usage lines

_HEADER = """# Command-line reference

Generated from the `dynmatch` argument parser by `openmm_dynmatch.cli_reference`; `tests/test_docs.py`
checks that this page matches the code; `dynmatch VERB --help` prints the same options in a terminal.
The command line only parses arguments and calls the library; the [quick start](quickstart.md) shows the
same steps from Python. Units: nm, ps, ns, K, 1/ps. Every verb also accepts `-h`/`--help`."""


def cli_reference() -> str:
    """The Markdown page of the ``dynmatch`` command line: usage, description and options of every verb."""
    from openmm_dynmatch.cli import build_parser

    parser = build_parser()
    verbs = _subcommands(parser)
    lines = [_HEADER, "", f"## `{PROG}`", "", *_usage_block(parser, PROG), "",
             _description_markdown(parser.description or ""), "",
             "| verb | what it does |", "| --- | --- |"]
    for name, (sub, help_line) in verbs.items():
        lines.append(f"| [`{name}`](#{PROG}-{name}) | {_cell(help_line)} |")
    lines += ["", *_options_table(parser)]
    for name, (sub, _) in verbs.items():
        lines += ["", f"## `{PROG} {name}`", "", *_usage_block(sub, f"{PROG} {name}"), "",
                  _description_markdown(sub.description or ""), "", *_options_table(sub)]
    return "\n".join(lines).rstrip("\n")


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    """``{verb: (sub-parser, help line)}`` in the order the verbs were registered."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    return {}


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _argument(action: argparse.Action, option: str) -> str:
    """``option`` followed by its value placeholder(s), as argparse shows them."""
    if isinstance(action, argparse._SubParsersAction):
        return f"{_metavar(action)} ..."
    name = _metavar(action)
    nargs = action.nargs
    if nargs == 0:
        value = ""
    elif nargs is None:
        value = name
    elif nargs == "?":
        value = f"[{name}]"
    elif nargs == "*":
        value = f"[{name} ...]"
    elif nargs == "+":
        value = f"{name} [{name} ...]"
    elif isinstance(nargs, int):
        value = " ".join([name] * nargs)
    else:
        value = name
    return " ".join(part for part in (option, value) if part)


def _usage_block(parser: argparse.ArgumentParser, prog: str) -> List[str]:
    """The usage line(s) in a fenced block, wrapped at :data:`WIDTH` with argparse's hanging indent."""
    groups = {id(a): g for g in parser._mutually_exclusive_groups for a in g._group_actions}
    tokens, done = [], set()
    for action in parser._actions:
        group = groups.get(id(action))
        if group is not None:
            if id(group) in done:
                continue
            done.add(id(group))
            inner = " | ".join(_argument(a, a.option_strings[0]) for a in group._group_actions)
            tokens.append(f"({inner})" if group.required else f"[{inner}]")
        elif action.option_strings:
            text = _argument(action, action.option_strings[0])
            tokens.append(text if action.required else f"[{text}]")
        else:
            tokens.append(_argument(action, ""))
    head = f"usage: {prog} "
    lines, line = [], head
    for token in tokens:
        if len(line) + len(token) > WIDTH and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * len(head)
        line += token + " "
    lines.append(line.rstrip())
    return ["```text", *lines, "```"]


def _description_markdown(text: str) -> str:
    """A module docstring as Markdown: double backticks become single, indented lines a code block."""
    out, in_code = [], False
    for raw in inspect.cleandoc(text).replace("``", "`").splitlines():
        indented = raw.startswith("  ") and raw.strip() != ""
        if indented and not in_code:
            if out and out[-1] != "":
                out.append("")
            out.append("```bash")
            in_code = True
        elif not indented and in_code and raw.strip() != "":
            while out[-1] == "":
                out.pop()
            out += ["```", ""]
            in_code = False
        out.append(raw.strip() if in_code else raw)
    if in_code:
        out.append("```")
    return "\n".join(out).strip("\n")


def _options_table(parser: argparse.ArgumentParser) -> List[str]:
    """One table row per option (``-h/--help`` left out): option and value, default, meaning."""
    groups = {id(a): g for g in parser._mutually_exclusive_groups for a in g._group_actions}
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        option = ", ".join(f"`{_argument(action, s)}`" for s in action.option_strings)
        meaning = _expanded_help(action)
        if action.choices is not None:
            meaning += "; one of " + ", ".join(f"`{c}`" for c in action.choices)
        group = groups.get(id(action))
        if group is not None:
            others = [a.option_strings[0] for a in group._group_actions if a is not action]
            rule = "exactly one of this and" if group.required else "not together with"
            meaning += f" ({rule} " + ", ".join(f"`{o}`" for o in others) + ")"
        elif action.required:
            meaning += " (**required**)"
        rows.append(f"| {option} | {_default(action)} | {_cell(meaning)} |")
    return rows if len(rows) > 2 else []


def _expanded_help(action: argparse.Action) -> str:
    """The help string with argparse's ``%(name)s`` fields filled in."""
    text = action.help or ""
    if "%" not in text:
        return text
    fields = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    fields.update(prog=PROG, default=action.default)
    return text % fields


def _default(action: argparse.Action) -> str:
    value = action.default
    if value is None or value is argparse.SUPPRESS or value is False or value == [] or action.nargs == 0:
        return ""
    return f"`{value}`"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, ``<``/``>`` escaped outside code."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside backtick spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


if __name__ == "__main__":
    print(cli_reference())
