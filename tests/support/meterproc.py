"""Real budget-source processes for tests: the meter emulator, a Mosquitto broker, and waits on events.

Every wait polls for a condition with a generous timeout (shared, noisy machines); nothing
asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import TypeVar

import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
WAIT = 40.0
T = TypeVar("T")


def free_tcp_port() -> int:
    """A TCP port nobody listens on now, of this test's own (tests/support/ports.py)."""
    return free_port(socket.SOCK_STREAM)


def tool(name: str) -> str | None:
    """A Debian tool's path; mosquitto lives in /usr/sbin, which a user's PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def wait_for(get: Callable[[], Sequence[T]], pred: Callable[[T], bool], what: str, timeout: float = WAIT) -> T:
    """Poll ``get()`` (new items each call) until one matches ``pred``; fail naming ``what`` and what was seen."""
    seen: list[T] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in get():
            seen.append(item)
            if pred(item):
                return item
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s; last seen: {seen[-8:]}")


class EmulatorProc:
    """``python -m busshare.cli.meter_emulator``, commanded through its stdin, read through its JSON lines."""

    @staticmethod
    def command_line() -> list[str]:
        return [sys.executable, "-m", "busshare.cli.meter_emulator"]

    @staticmethod
    def env() -> dict[str, str]:
        """This checkout's busshare, installed or not."""
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
        return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)

    def __init__(self, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen([*self.command_line(), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=self.env())
        self.records: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.listening = self.wait(lambda r: r["event"] == "listening", "listening record")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def _new(self) -> list[dict[str, Any]]:
        out = []
        while not self.records.empty():
            out.append(self.records.get())
        return out

    def wait(self, pred: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        try:
            return wait_for(self._new, pred, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nemulator stderr: {''.join(self.stderr)[-2000:]}") from None

    @property
    def port(self) -> int:
        return int(str(self.listening["tcp"]).rsplit(":", 1)[1])

    def command(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.wait(lambda r: r["event"] != "listening", f"answer to {line!r}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> dict[str, Any]:
        self.proc.terminate()
        self.proc.wait(20)
        return self.wait(lambda r: r["event"] == "stopped", "stopped record")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Mosquitto:
    """A private Mosquitto broker on a free port, anonymous, no persistence; restartable on the same port."""

    def __init__(self, tmp: Path) -> None:
        binary = tool("mosquitto")
        assert binary is not None
        self.binary = binary
        self.port = free_tcp_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port} within {WAIT} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def pub(self, topic: str, payload: str, retain: bool = False) -> None:
        pub = tool("mosquitto_pub")
        assert pub is not None
        cmd = [pub, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", topic, "-m", payload]
        subprocess.run(cmd + (["-r"] if retain else []), check=True, timeout=WAIT)

    def subscribe(self, topic: str) -> Subscriber:
        """A mosquitto_sub running in the background; its lines ``topic payload`` are collected."""
        return Subscriber([str(tool("mosquitto_sub")), "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", topic,
                           "-v"])

    def sub_one(self, topic: str) -> str:
        """The first message on ``topic`` (a retained one at once): ``topic payload``."""
        sub = tool("mosquitto_sub")
        assert sub is not None
        out = subprocess.run([sub, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-C", "1", "-W", str(int(WAIT)),
                              "-v"], capture_output=True, text=True, timeout=WAIT + 10)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.strip()


class Subscriber:
    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def new(self) -> list[str]:
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        return out

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def needs_mosquitto() -> pytest.MarkDecorator:
    """Skip, saying why, where the Debian Mosquitto broker and its clients are not installed."""
    return pytest.mark.skipif(any(tool(t) is None for t in ("mosquitto", "mosquitto_pub", "mosquitto_sub")),
                              reason="Mosquitto is not installed (Debian packages mosquitto mosquitto-clients; "
                                     ".ci/run installs them)")


# the site the broker tests run as, and its two topics spelt out as an installer writes them (docs/BUDGET.md)
SITE_ID = "garage"
SET_TOPIC = f"busshare/{SITE_ID}/limit/set"
LIMIT_TOPIC = f"busshare/{SITE_ID}/limit"
STATUS_TOPIC = f"busshare/{SITE_ID}/status"
