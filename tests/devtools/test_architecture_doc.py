"""docs/ARCHITECTURE.md's module table and rule map are held to the tree, so they cannot drift again.

(The table had kept ``busshare/cli.py`` and three dev tools under ``cli/`` long after they moved, and
had no row for a dozen modules.)
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from busshare import master
from busshare import servant
from busshare.core import pilot_history
from busshare.protocol import link

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
MODULE = re.compile(r"`(busshare/[A-Za-z0-9_/]+\.py)`")


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next section of the same level."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found is not None, f"docs/ARCHITECTURE.md has no section '## {title}'"
    return found.group(1)


def table_modules(text: str) -> list[str]:
    """The modules the table rows name in their first column, in order, repeats kept."""
    rows = [line.split("|")[1] for line in section(text, "Modules").splitlines() if line.startswith("| `")]
    return [m for cell in rows for m in MODULE.findall(cell)]


def tree_modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "busshare").rglob("*.py")}


def drift(text: str) -> tuple[list[str], list[str], list[str]]:
    """(modules with no row, modules with two, modules named anywhere in the doc that do not exist)."""
    listed = table_modules(text)
    tree = tree_modules()
    return (sorted(tree - set(listed)), sorted(m for m, n in Counter(listed).items() if n > 1),
            sorted(set(MODULE.findall(text)) - tree))


def test_every_module_of_the_package_has_one_row() -> None:
    missing, twice, _ = drift(DOC.read_text())
    assert not missing, f"modules with no row in docs/ARCHITECTURE.md's table: {missing}"
    assert not twice, f"modules listed more than once: {twice}"


def test_every_module_the_doc_names_exists() -> None:
    _, _, stale = drift(DOC.read_text())
    assert not stale, f"docs/ARCHITECTURE.md names modules that do not exist: {stale}"


def test_a_missing_row_a_repeated_one_and_a_stale_one_are_caught() -> None:
    text = DOC.read_text()
    row = "| `busshare/core/events.py` |"
    assert drift(text.replace(row, "| events |"))[0] == ["busshare/core/events.py"]
    assert drift(text.replace(row, "| `busshare/core/events.py`, `busshare/frames.py` |"))[1] == ["busshare/frames.py"]
    assert drift(text.replace(row, "| `busshare/core/events.py`, `busshare/cli.py` |"))[2] == ["busshare/cli.py"]


RULE_NAMESPACES: tuple[ModuleType, ...] = (master, servant, pilot_history, link)


def _resolves(name: str) -> bool:
    for module in RULE_NAMESPACES:
        obj: object = module
        for part in name.split("."):
            if not hasattr(obj, part):
                break
            obj = getattr(obj, part)
        else:
            return True
    return False


def rule_rows(text: str) -> dict[str, list[str]]:
    rows = [line for line in section(text, "Where each rule lives").splitlines() if re.match(r"^\| [1-8] ", line)]
    return {row.split("|")[1].strip(): re.findall(r"`([A-Za-z_][A-Za-z_.]*)`", row) for row in rows}


def test_the_rule_map_has_every_rule() -> None:
    rows = rule_rows(DOC.read_text())
    assert sorted(r.split()[0] for r in rows) == [str(n) for n in range(1, 9)]
    assert all(names for names in rows.values())


@pytest.mark.parametrize("rule, names", sorted(rule_rows(DOC.read_text()).items()))
def test_every_name_in_the_rule_map_exists(rule: str, names: list[str]) -> None:
    missing = [n for n in names if not _resolves(n)]
    assert not missing, f"rule {rule}: the doc points to {missing}, which the code does not have"
