"""The README's first command alone (`pip install .`) gives a busshare whose default bus opens.

Issue 11, section 1.  A clean virtualenv gets the package without its test
extras, from this checkout (copied, so the build leaves nothing behind);
then a real master and a real servant run from that virtualenv on the
default bus (no -i: python-can's own config is kept out with an empty HOME
and no CAN_* variables, so the default is udp_multicast) until the master
sees a grant acked.  Waits poll with generous timeouts; nothing is timed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.nodeproc import NodeProc
from tests.support.nodeproc import free_udp_port
from tests.support.site_files import site_toml

ROOT = Path(__file__).resolve().parents[2]

SITE = site_toml((1,), limit_a=32, max_a=16)


def clean_env(home: Path) -> dict[str, str]:
    """This environment without python-can's config, a virtualenv or this checkout on the path."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("CAN_")}
    env["HOME"] = str(home)  # no ~/can.conf, no ~/.canrc
    return env


@pytest.mark.slow
def test_a_plain_install_runs_a_master_and_a_servant_on_the_default_bus(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "busshare", source / "busshare", ignore=shutil.ignore_patterns("__pycache__"))
    venv, home = tmp_path / "venv", tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
                         capture_output=True, text=True, env=env, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    no_extras = subprocess.run([str(venv / "bin" / "python"), "-c", "import pytest"], capture_output=True, env=env,
                               timeout=60)
    assert no_extras.returncode != 0, "the test extras must not be installed here"

    site = tmp_path / "site.toml"
    site.write_text(SITE)
    busshare = [str(venv / "bin" / "busshare")]
    port = ["--bus-kwargs", f"port={free_udp_port()}"]  # the default interface, on a port of our own
    master = NodeProc(["master", "--config", str(site), "--json", *port], "master", cwd=tmp_path, command=busshare,
                      env=env)
    servant = NodeProc(["servant", "--address", "1", "--max", "16", "--ev", "sim", "--json", *port], "servant",
                       cwd=tmp_path, command=busshare, env=env)
    try:
        acked = master.wait_for(lambda r: r.get("event") == "grant-acked", timeout=120)
        assert acked["address"] == 1
        assert master.terminate() == 0 and servant.terminate() == 0
        assert "cannot open CAN bus" not in master.stderr + servant.stderr
    finally:
        master.close()
        servant.close()


def test_a_bus_without_its_package_names_the_command_that_installs_it(tmp_path: Path) -> None:
    """python-can's udp_multicast without msgpack (hidden here): the error says what to pip install."""
    code = "import sys; sys.modules['msgpack'] = None; from busshare.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "monitor", "--duration", "1"], capture_output=True, text=True,
                       env=clean_env(tmp_path), cwd=ROOT, timeout=60)
    assert r.returncode == 2
    assert r.stderr == ("busshare monitor: cannot open CAN bus (udp_multicast): msgpack not installed "
                        "(install it with: pip install 'python-can[multicast]')\n")
