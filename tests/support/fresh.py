"""What a fresh interpreter has loaded after running some code: for the tests that keep a library out of a layer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable


def packages_loaded(code: str, packages: Iterable[str]) -> list[str]:
    """Which of ``packages`` (or any module in them) a fresh ``python -c`` has imported after running ``code``."""
    names = sorted(packages)
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([p for p in {names!r} if any(m == p or m.startswith(p + '.') for m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout
    loaded: list[str] = json.loads(out)
    return loaded
