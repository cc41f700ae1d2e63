"""A mypyc build of the simulator's hot path: the same source, compiled to C, for the chaos sweep.

The sweep runs the real Master and Servant code through about 100 000 node events per installation-hour;
in CPython that is about 1.3-1.9 CPU seconds an hour (docs/SIM.md, Speed).  mypyc compiles the
type-annotated modules listed below (mypy strict already checks them) into C extensions, and the same
source then runs about 2.5-3x faster.  Nothing else changes: the package stays pure Python for users, the
README's test command runs it so, and the sweep's stage checks first that the build reproduces every
golden trace of the source (``tests/sim/test_sim_chaos.py``).

    python tools/mypyc_build.py                 # build (or reuse) into .cache/mypyc/; print its root
    python tools/mypyc_build.py --check         # exit 0 when a build is possible here (mypyc, a C compiler)

A build is a copy of ``busshare/`` with the listed modules compiled in place beside their source (Python
imports an extension module before the ``.py`` of the same name).  It is kept under a key of every source
file, the module list, mypy's version and Python's, so a second run reuses it, and a changed tree never
runs a stale build.  Needs mypy (the test extra) and a C compiler (Debian: gcc).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "mypyc"

#: The compiled modules: the nodes, the link and the simulator's event path.  Left out (they stay Python):
#: ``core/node.py`` (protocols an interpreted class extends), ``core/counters.py`` (``vars()`` of an instance; transports
#: subclass it), ``sim/failure.py`` (an exception class built on AssertionError), the config parsers (``core/source_settings.py``, ``budget_config.py``, ``meter_maps.py``,
#: ``problems.py``: a dataclass field read through its class) and the scenario builders (run once).
MODULES: tuple[str, ...] = (
    "busshare/frames.py",
    "busshare/master.py",
    "busshare/servant.py",
    "busshare/core/allocation.py",
    "busshare/core/budget.py",
    "busshare/core/config.py",
    "busshare/core/currents.py",
    "busshare/core/driver.py",
    "busshare/core/events.py",
    "busshare/core/hardware.py",
    "busshare/core/heartbeat_order.py",
    "busshare/core/house_load.py",
    "busshare/core/pilot_history.py",
    "busshare/core/servant_memory.py",
    "busshare/core/setpoint.py",
    "busshare/protocol/canid.py",
    "busshare/protocol/e2e.py",
    "busshare/protocol/kinds.py",
    "busshare/protocol/layout.py",
    "busshare/protocol/link.py",
    "busshare/protocol/pilot.py",
    "busshare/sim/budget_checks.py",
    "busshare/sim/budget_run.py",
    "busshare/sim/bus.py",
    "busshare/sim/clock.py",
    "busshare/sim/ev.py",
    "busshare/sim/faults.py",
    "busshare/sim/hosts.py",
    "busshare/sim/house.py",
    "busshare/sim/invariants.py",
    "busshare/sim/loop.py",
    "busshare/sim/oracle.py",
    "busshare/sim/pause_checks.py",
    "busshare/sim/procs.py",
    "busshare/sim/runner.py",
    "busshare/sim/settle.py",
    "busshare/sim/world.py",
)

_SETUP = """\
from setuptools import setup
from mypyc.build import mypycify
setup(name="busshare-mypyc", ext_modules=mypycify({modules!r}, opt_level="3"))
"""
# mypy's settings for the build: the project's, so the compiled modules type-check as in the mypy stage
_MYPY_CONFIG = "[mypy]\npython_version = 3.11\nstrict = True\nignore_missing_imports = True\n"


class BuildError(Exception):
    """No build here (no mypyc, no C compiler) or it failed: one line saying why."""


@dataclass(frozen=True)
class Build:
    """A compiled copy: put ``root`` first on ``sys.path`` and ``import busshare`` runs it."""

    root: Path
    modules: int  # how many modules are compiled
    seconds: float  # how long the build took (0 when an earlier one was reused)
    reused: bool

    def line(self) -> str:
        how = "reused" if self.reused else f"built in {self.seconds:.0f} s"
        return f"mypyc build of this tree ({self.modules} modules compiled, {how}): {self.root}"


def source_key(root: Path = ROOT) -> str:
    """What a build depends on: every source file of the package, the module list, mypy's and Python's versions."""
    digest = hashlib.sha256()
    for path in sorted((root / "busshare").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".so"):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update("\n".join(MODULES).encode())
    digest.update(f"{_mypy_version()} {sys.version}".encode())
    return digest.hexdigest()[:16]


def _mypy_version() -> str:
    try:
        from mypy.version import __version__
    except ImportError:
        return "none"
    return __version__


def why_not() -> str | None:
    """Why no build can be made here, or None when it can."""
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed (it comes with mypy: pip install -e '.[test]')"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc}) on PATH (Debian: apt-get install gcc)"
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        return "Python's C headers are missing (Debian: apt-get install python3-dev)"
    return None


def build(cache: Path = CACHE, root: Path = ROOT, jobs: int | None = None) -> Build:
    """The build of the tree at ``root``: reused from ``cache`` when one of the same source is there."""
    key = source_key(root)
    done = cache / key
    if (done / ".complete").exists():
        return Build(done, len(MODULES), 0.0, True)
    reason = why_not()
    if reason is not None:
        raise BuildError(reason)
    started = time.monotonic()
    work = cache / f"{key}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(root / "busshare", work / "busshare", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (work / "setup.py").write_text(_SETUP.format(modules=list(MODULES)))
    (work / "mypy.ini").write_text(_MYPY_CONFIG)
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace", "--parallel", str(jobs or os.cpu_count() or 1)]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
        raise BuildError("mypyc build failed:\n" + "\n".join(tail))
    missing = [m for m in MODULES if not compiled_file(work, m)]
    if missing:
        raise BuildError(f"mypyc build made no extension for {', '.join(missing)}")
    shutil.rmtree(work / "build", ignore_errors=True)
    (work / ".complete").write_text(key + "\n")
    shutil.rmtree(done, ignore_errors=True)
    work.rename(done)
    tidy(cache, done)
    return Build(done, len(MODULES), time.monotonic() - started, False)


def tidy(cache: Path, keep: Path) -> None:
    """Remove earlier trees' builds (only ``keep`` is used) and builds a crash left half made; never one
    another process is making now."""
    for old in cache.iterdir():
        if old != keep and ((old / ".complete").exists() or not _building(old)):
            shutil.rmtree(old, ignore_errors=True)


def _building(path: Path) -> bool:
    """Whether ``path`` is a build another process is making now (``KEY.PID.tmp``, that process alive)."""
    parts = path.name.split(".")
    if len(parts) != 3 or parts[2] != "tmp" or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def compiled_file(root: Path, module: str) -> Path | None:
    """The extension module built for ``module`` (a path like ``busshare/sim/world.py``) under ``root``."""
    stem = root / module[: -len(".py")]
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    path = stem.with_name(stem.name + suffix)
    return path if path.exists() else None


def use(root: str) -> None:
    """Run the build at ``root`` in this process: a process pool's initializer, before anything imports busshare.

    BuildError when busshare was imported already, or the build's modules are not the ones imported."""
    if "busshare" in sys.modules:
        raise BuildError("busshare is imported already: a build must be put first before any import of it")
    sys.path.insert(0, root)
    import busshare.sim.world

    if busshare.sim.world.__file__ != str(compiled_file(Path(root), "busshare/sim/world.py")):
        raise BuildError(f"{root} is not a mypyc build: busshare.sim.world came from {busshare.sim.world.__file__}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only say whether a build is possible here")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"where builds are kept (default {CACHE})")
    args = ap.parse_args(argv)
    if args.check:
        reason = why_not()
        print(reason or "a mypyc build is possible here")
        return 1 if reason else 0
    try:
        print(build(args.cache).line())
    except BuildError as exc:
        print(f"mypyc_build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
