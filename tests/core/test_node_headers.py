"""Each node module opens with its state machines and where each rule of PROTOCOL.md 8.2 is enforced.

The header is the map a protocol engineer reads the code by: every rule must be on it, and every name it
points to must exist, so a rename cannot leave the map pointing at nothing.
"""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from busshare import master
from busshare import servant

NODE_CLASSES = {master: ("Master", "_Slot", "_Ledger", "_Pending"), servant: ("Servant",)}


def _resolves(module: ModuleType, name: str) -> bool:
    head, _, attr = name.partition(".")
    if hasattr(module, head):
        obj = getattr(module, head)
        return not attr or hasattr(obj, attr) or attr in getattr(obj, "__dataclass_fields__", {})
    if attr:
        return False
    return any(hasattr(getattr(module, cls), name) or name in getattr(module, cls).__init__.__code__.co_names
               for cls in NODE_CLASSES[module])


# rule 9 (a moving limit) is the master's alone: a servant never sees the budget
RULES = {master: range(1, 10), servant: range(1, 9)}


@pytest.mark.parametrize("module", [master, servant], ids=["master", "servant"])
def test_the_header_lists_every_rule_and_its_state_machines(module: ModuleType) -> None:
    doc = module.__doc__ or ""
    assert "State machines" in doc
    for rule in RULES[module]:
        assert re.search(rf"^rule {rule} ", doc, re.M), f"rule {rule} is not on the map"


@pytest.mark.parametrize("module", [master, servant], ids=["master", "servant"])
def test_every_name_the_header_points_to_exists(module: ModuleType) -> None:
    doc = module.__doc__ or ""
    names = set(re.findall(r"``([A-Za-z_][A-Za-z_.]*)``", doc)) - {"protocol/link.py"}
    missing = [n for n in sorted(names) if not _resolves(module, n) and not n.startswith("core")]
    assert not missing, f"the header of {module.__name__} points to {missing}"
