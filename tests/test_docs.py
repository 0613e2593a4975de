"""The documentation: generated CLI page up to date, MkDocs nav complete, links between pages resolving."""
import re
import sys
from pathlib import Path

import pytest
import yaml

from openmm_dynmatch.cli import VERBS, build_parser
from openmm_dynmatch.cli_reference import WIDTH, cli_reference

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REGENERATE = "python -m openmm_dynmatch.cli_reference > docs/cli.md"

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_links(text: str) -> list:
    """Targets of the Markdown links and images of ``text``, code blocks and inline code left out."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", text))
    return _LINK.findall(text)


def heading_anchors(text: str) -> set:
    """Anchors MkDocs gives the headings of a page (lower case, punctuation dropped, spaces -> '-')."""
    anchors = set()
    for line in _FENCE.sub("", text).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            title = re.sub(r"[^\w\s-]", "", match.group(1).replace("`", "")).strip().lower()
            anchors.add(re.sub(r"[-\s]+", "-", title))
    return anchors


def broken_links(page: Path) -> list:
    """Relative links of ``page`` whose file (or heading anchor within a Markdown file) does not exist."""
    text = page.read_text()
    broken = []
    for target in markdown_links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved.read_text()):
            broken.append(target)
    return broken


def nav_pages(nav) -> list:
    """Every page file named in a MkDocs ``nav`` (nested sections flattened)."""
    if isinstance(nav, str):
        return [] if re.match(r"^[a-z]+://", nav) else [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {nav!r}")


def test_cli_page_matches_the_parser():
    assert (DOCS / "cli.md").read_text() == cli_reference() + "\n", (
        f"docs/cli.md is out of date: regenerate it with `{REGENERATE}`")


def _sections(page: str) -> dict:
    parts = re.split(r"^## `dynmatch ?([a-z]*)`$", page, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_cli_page_lists_every_verb_and_every_option_of_its_help():
    sections = _sections(cli_reference())
    assert set(sections) == set(VERBS) | {""}
    subparsers = next(a for a in build_parser()._actions if a.dest == "verb")
    for verb, sub in subparsers.choices.items():
        help_text = sub.format_help()  # argparse's own rendering, independent of the generator
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text)) - {"--help"}
        assert options, verb
        for option in options:
            assert f"`{option}" in sections[verb], f"{option} of '{verb}' missing from its section"
        first_line = (sub.description or "").strip().splitlines()[0]
        assert first_line in sections[verb]


def test_cli_page_does_not_depend_on_terminal_or_program_name(monkeypatch):
    expected = (DOCS / "cli.md").read_text()
    monkeypatch.setattr(sys, "argv", ["/somewhere/else/pytest-runner", "-q"])
    monkeypatch.setenv("COLUMNS", "37")
    page = cli_reference() + "\n"
    assert page == expected
    usages = re.findall(r"^usage: (\S+)", page, flags=re.M)
    assert usages and set(usages) == {"dynmatch"}
    for block in re.findall(r"```text\n(.*?)```", page, flags=re.S):
        assert all(len(line) <= WIDTH for line in block.splitlines()), block


def test_every_nav_page_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs_dir = ROOT / config.get("docs_dir", "docs")
    pages = nav_pages(config["nav"])
    assert "cli.md" in pages and "quickstart.md" in pages and "concepts.md" in pages
    missing = [page for page in pages if not (docs_dir / page).is_file()]
    assert not missing, f"mkdocs.yml nav names pages that do not exist: {missing}"
    assert len(pages) == len(set(pages)), "a page is listed twice in the nav"


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    assert not broken_links(page), f"{page.name} links to missing files or headings: {broken_links(page)}"


def test_link_checker_finds_broken_links_and_ignores_code(tmp_path):
    (tmp_path / "there.md").write_text("# A page\n\n## The `dynmatch train` verb\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [anchor](there.md#the-dynmatch-train-verb) [web](https://example.org/x)\n"
                    "[gone](missing.md) [bad anchor](there.md#nowhere) ![img](pic.png)\n"
                    "`[not a link](nowhere.md)`\n```python\nx = [a](b)\n```\n")
    assert sorted(broken_links(page)) == ["missing.md", "pic.png", "there.md#nowhere"]
