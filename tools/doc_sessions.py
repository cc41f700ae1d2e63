"""Scripted sessions of real busshare processes, for the outputs the docs show (tools/regen_docs.py).

Each session starts real processes (``busshare master``, ``servant``, ``monitor``, the RS-485 emulator,
mbpoll) on a bus of its own and drives them step by step, each step waiting for what a process prints,
never for a fixed time where an event can be waited for.  Units are started one after the other and
acted on one at a time, so what each process prints comes in the same order on every run; what still
varies (times, frame counters, the order in which several units answer one broadcast) is what
``regen_docs`` normalises.  CAN sessions use ``udp_multicast`` on a free port of their own, through
python-can's environment configuration (``CAN_INTERFACE``/``CAN_CONFIG``), so the commands shown are
exactly the ones that ran.

A session returns {part: lines}; a part is ``$ COMMAND`` followed by what that process printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from regen_docs import Scratch

WAIT = 60.0  # s: generous, the machine is shared


class MissingTool(RuntimeError):
    """A program a session shows (mbpoll) is not installed here."""


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        raise MissingTool(f"{tool} is not installed (Debian: apt-get install {tool})")


def need_port(port: int) -> None:
    """The shown commands use a fixed local TCP port (the site file's): a session cannot run while
    something else (a broker of this machine, another run) holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise MissingTool(f"TCP port {port} on 127.0.0.1 is in use here ({exc.strerror})") from None


def free_udp_port() -> int:
    """A UDP port nobody uses now (bound and released), for a bus of our own."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


class Proc:
    """One shown command, run by bash in the scratch directory; its output lines are collected."""

    def __init__(self, command: str, scratch: Scratch, cwd: Path, env: dict[str, str] | None = None,
                 stdin: bool = False) -> None:
        self.command = command
        self.lines: list[str] = []
        self._lock = threading.Lock()
        # exec: the command is the process (a signal reaches it); a pipeline or a loop stays under bash
        compound = "|" in command or "\n" in command
        self.proc = subprocess.Popen(["bash", "-c", command if compound else f"exec {command}"],
                                     cwd=cwd, env={**scratch.env, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def enter(self, text: str) -> int:
        """Type ``text`` and Enter on the process's stdin, shown where a terminal would echo it (a
        ``stdin=True`` process); the index of that line, to wait for the answer after it."""
        assert self.proc.stdin is not None
        with self._lock:
            self.lines.append(text)
            at = len(self.lines)
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return at

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_for(self, pattern: str, after: int = 0, timeout: float = WAIT) -> int:
        """Index of the first line (from ``after``) matching ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.snapshot()
            for i in range(after, len(lines)):
                if rx.search(lines[i]):
                    return i
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.command}: no line matching {pattern!r} within {timeout} s:\n"
                           + "\n".join(self.snapshot()[-20:]))

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(1 for line in self.snapshot() if rx.search(line))

    def wait_count(self, pattern: str, n: int, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while self.count(pattern) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.command}: fewer than {n} lines matching {pattern!r}:\n"
                                   + "\n".join(self.snapshot()[-20:]))
            time.sleep(0.02)

    def signal(self, sig: int, whole_pipeline: bool = False) -> None:
        """Send ``sig`` (to the first command of a pipeline only, unless ``whole_pipeline``)."""
        if self.proc.poll() is not None:
            return
        if whole_pipeline or "|" not in self.command:
            os.killpg(self.proc.pid, sig) if whole_pipeline else self.proc.send_signal(sig)
            return
        first = _first_child(self.proc.pid)
        if first is not None:
            os.kill(first, sig)

    def finish(self, timeout: float = WAIT) -> list[str]:
        """Wait for the process to end; ``$ COMMAND`` and its output."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise RuntimeError(f"{self.command}: still running after {timeout} s") from None
        self._reader.join(10)
        lines = self.snapshot()
        while lines and not lines[-1].strip():
            lines.pop()
        first, *more = self.command.split("\n")  # a loop typed on several lines: bash's "> " prompts
        return [f"$ {first}", *(f"> {m}" for m in more), *lines]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _first_child(pid: int) -> int | None:
    """The oldest child process of ``pid`` (the first command of a pipeline bash runs)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _can_env() -> dict[str, str]:
    return {"CAN_INTERFACE": "udp_multicast", "CAN_CONFIG": json.dumps({"port": free_udp_port()})}


class Session:
    """The processes of one session, in a directory of its own (a copy of the scratch one's files), all
    killed if a step fails."""

    def __init__(self, scratch: Scratch, name: str, env: dict[str, str] | None = None) -> None:
        self.scratch = scratch
        self.procs: list[Proc] = []
        self.cwd = scratch.path / f"session-{name}"
        # each session's servants keep their memory across restarts (busshare servant --state) in it alone
        self.env = {**(env or {}), "XDG_STATE_HOME": str(self.cwd / ".state")}
        if self.cwd.exists():  # a session run again (tests/cli/test_docs.py retries a drifted one once)
            shutil.rmtree(self.cwd)
        self.cwd.mkdir()
        for f in scratch.path.iterdir():
            if f.is_file():
                shutil.copy(f, self.cwd / f.name)
            elif f.name in ("examples", "benchmarks", "dbc"):
                (self.cwd / f.name).symlink_to(f.resolve())

    def start(self, command: str, stdin: bool = False) -> Proc:
        p = Proc(command, self.scratch, self.cwd, self.env, stdin)
        self.procs.append(p)
        return p

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()


# ---------------------------------------------------------------------------------------------------
# CAN: an installation whose servants are in failsafe when the master starts, then kill -9 of the master


def can_installation(scratch: Scratch) -> dict[str, list[str]]:
    """examples/site.toml: servants 1-3 with simulated cars (3 speaking JSON) and 4 on the bench start
    first (no master: they fail safe); two monitors; the master (it learns them, sees their failsafe,
    pauses a reaction allowance, grants); `kill -9` of the master; the servants stop."""
    site = "--config examples/site.toml"
    with Session(scratch, "can", _can_env()) as s:
        servants = [s.start(f"busshare servant {site} --address {a} --serial {0x6cdd4070 + a:#x} --ev sim --seed {a}"
                            + (" --json" if a == 3 else "")) for a in (1, 2, 3)]
        servants.append(s.start(f"busshare servant {site} --address 4 --serial 0x1cb7b4f7 --ev bench --pilot C"))
        for p in servants:
            p.wait_for(r"no master heard since boot")
        anomalies = s.start("busshare monitor --anomalies-only")
        listing = s.start('busshare monitor | grep --line-buffered -E "(1→master|master→1) '
                          '(JOIN|REQUEST|SET|GRANT|CUT|ACK|RELEASE)|!!"')
        time.sleep(1.0)  # both monitors are listening (nothing they print tells when)
        master = s.start(f"busshare master {site} --status-interval 4 --epoch 162")
        master.wait_count(r"grant-acked \[\d\]", 4)
        granted = master.wait_for(r"grant-acked")
        master.wait_for(r" status: ", after=granted)
        master.signal(signal.SIGKILL)
        for p in servants:
            p.wait_for(r"no heartbeat for")
        anomalies.wait_for(r"master-silent")
        listing.wait_for(r"master-silent")
        for p in servants:
            p.signal(signal.SIGTERM)
            p.wait_for(r"stopped")
        for m in (anomalies, listing):
            m.signal(signal.SIGINT)
        master_lines = master.finish()
        return {
            "master": master_lines,
            "servant1": servants[0].finish(),
            "servant3": servants[2].finish(),
            "servant4": servants[3].finish(),
            "monitor-anomalies": anomalies.finish(),
            "monitor-servant1": listing.finish(),
        }


# ---------------------------------------------------------------------------------------------------
# CAN: bad frames while sharing goes on, then a graceful master exit

INJECT = ("python -c \"import can; bus = can.Bus(); [bus.send(can.Message(arbitration_id=i, data=d, "
          "is_extended_id=False)) for i, d in ((0x181, b'\\0\\x11'), (0x040, bytes(8)), (0x1FF, bytes(8)))]; "
          "bus.shutdown()\"")


def can_bad_input(scratch: Scratch) -> dict[str, list[str]]:
    """site.toml (two 32 A units): servants 1 and 2 on the bench with a car charging (started first:
    they fail safe), a monitor, the master; three malformed frames injected; SIGTERM of the master."""
    with Session(scratch, "can-bad", _can_env()) as s:
        listing = s.start('busshare monitor | grep --line-buffered -E '
                          '"(1→master|master→1) (JOIN|REQUEST|SET|GRANT|CUT|ACK|RELEASE)|BAD|!!|^--"')
        time.sleep(1.0)  # the monitor is listening (nothing it prints tells when)
        s1 = s.start("busshare servant --config site.toml --address 1 --serial 0x6cdd4078 --ev bench --pilot C")
        s1.wait_for(r"no master heard since boot")
        s2 = s.start("busshare servant --config site.toml --address 2 --serial 0xf5d411c2 --ev bench --pilot C")
        s2.wait_for(r"no master heard since boot")
        master = s.start("busshare master --config site.toml --epoch 204")
        s1.wait_for(r"grant \[1\]")
        s2.wait_for(r"grant \[2\]")
        listing.wait_for(r"1→master ACK")
        inject = s.start(INJECT)
        inject.finish()
        s1.wait_count(r"frame-rejected", 3)
        listing.wait_count(r"!! ", 3)
        listing.signal(signal.SIGINT)
        monitor = listing.finish()
        master.signal(signal.SIGTERM)
        master.wait_for(r"stopped")
        for p in (s1, s2):
            p.wait_for(r"master 1 is leaving")
            p.signal(signal.SIGTERM)
            p.wait_for(r"stopped")
        return {"servant1": s1.finish(), "monitor": monitor, "inject": inject.finish()}


# ---------------------------------------------------------------------------------------------------
# CAN, JSON lines: a monitor, a servant and a master speaking JSON, one bad frame, a graceful master exit

INJECT_ONE = ("python -c \"import can; bus = can.Bus(); bus.send(can.Message(arbitration_id=0x181, data=b'\\0\\x11', "
              "is_extended_id=False)); bus.shutdown()\"")


def can_json(scratch: Scratch) -> dict[str, list[str]]:
    """examples/site.toml: a JSON monitor, then servant 1 (a simulated car, JSON, a status every 2 s),
    both also keeping their lines (``tee``), and the master; once servant 1 has its grant, a frame of
    the wrong length injected; SIGTERM of the master (the servant fails safe at once); everything
    stops, and ``grep`` picks records out of the kept lines."""
    with Session(scratch, "can-json", _can_env()) as s:
        monitor = s.start("busshare monitor --json | tee monitor.jsonl")
        time.sleep(1.0)  # the monitor is listening (nothing it prints tells when)
        servant = s.start("busshare servant --address 1 --config examples/site.toml --ev sim --json "
                          "--status-interval 2 | tee servant.jsonl")
        servant.wait_for(r'"event": "started"')
        master = s.start("busshare master --config examples/site.toml --epoch 7")
        servant.wait_for(r'"event": "grant"')
        s.start(INJECT_ONE).finish()
        servant.wait_for(r'"record": "status".*"rejected": 1')
        master.signal(signal.SIGTERM)
        master.wait_for(r"stopped")
        monitor.wait_for(r'"anomaly": "master-leaving"')
        servant.wait_for(r'"failsafe": true')
        servant.signal(signal.SIGTERM)
        servant.wait_for(r'"event": "stopped"')
        monitor.signal(signal.SIGINT)
        lines = {"monitor": monitor.finish(), "servant": servant.finish(), "master": master.finish()}
        lines["status"] = s.start("grep -m1 '\"record\": \"status\".*\"rejected\": 1' servant.jsonl").finish()
        lines["anomaly"] = s.start("grep -m1 master-leaving monitor.jsonl").finish()
        return lines


# ---------------------------------------------------------------------------------------------------
# CAN: the embedding example against a master


def can_embedded(scratch: Scratch) -> dict[str, list[str]]:
    """embedded.toml (one unit, the example's): examples/embed_servant.py (no master yet: it fails safe),
    then its master; Ctrl-C.  The example boots its node after opening the bus, so its first lines (the
    plain offer, then the failsafe 1.5 s on) do not depend on how long the start took; only the frame
    counters of its last line vary (norm=counts)."""
    with Session(scratch, "can-embed", _can_env()) as s:
        unit = s.start("python examples/embed_servant.py")
        unit.wait_for(r"^failsafe ")
        master = s.start("busshare master --config embedded.toml --epoch 103")
        unit.wait_for(r"^grant ")
        master.wait_for(r"grant-acked \[1\]")
        unit.signal(signal.SIGINT)
        unit.wait_for(r"^stopped ")
        master.signal(signal.SIGTERM)
        return {"embedded": unit.finish(), "master": master.finish()}


# ---------------------------------------------------------------------------------------------------
# Modbus RTU on the emulated RS-485 line


def modbus_line(scratch: Scratch) -> dict[str, list[str]]:
    """rs485-site.toml (two 64 A units) on the RS-485 emulator at 19200 baud: master, servants 1 and 2
    with pilot files, a passive monitor; car 1 plugs in, then car 2, then car 1 leaves; `kill -9` of the
    master; mbpoll reads servant 2's plain registers; everything stops.  The emulator's capture becomes
    docs/examples/line.txt, which the decode examples read."""
    need("mbpoll")
    with Session(scratch, "modbus") as s:
        line = s.start("python -m busshare.cli.rs485 --ports 5 --baud 19200 --capture line.txt")
        line.wait_count(r"^/dev/", 5)
        ports = [x for x in line.snapshot() if x.startswith("/dev/")]
        for ev in ("ev1", "ev2"):
            (s.cwd / ev).write_text("A\n")
        site = "--baud 19200 --config rs485-site.toml"
        listing = s.start(f'busshare monitor --modbus {ports[3]} --baud 19200 | grep --line-buffered -v -E '
                          '"HEARTBEAT|STATUS"')
        s1 = s.start(f"busshare servant --modbus {ports[1]} {site} --address 1 --serial 0x6cdd4078 --pilot-file ev1")
        s2 = s.start(f"busshare servant --modbus {ports[2]} {site} --address 2 --serial 0xf5d411c2 --pilot-file ev2")
        for p in (s1, s2):
            p.wait_for(r"started \[")
        master = s.start(f"busshare master --modbus {ports[0]} {site} --epoch 167")
        master.wait_for(r"learned-all")
        master.wait_count(r"acked \[\d\]", 2)
        time.sleep(0.5)
        (s.cwd / "ev1").write_text("C\n")  # car 1 plugs in
        s1.wait_for(r"grant \[1\]: offer 0.0 A -> 64.0 A")
        master.wait_for(r"grant-acked \[1\]")
        time.sleep(1.0)
        (s.cwd / "ev2").write_text("C\n")  # car 2: servant 1 is cut to 32 A, and only then servant 2 gets 32 A
        s2.wait_for(r"grant \[2\]: offer 0.0 A -> 32.0 A")
        master.wait_count(r"grant-acked \[\d\]", 2)
        time.sleep(1.0)
        (s.cwd / "ev1").write_text("A\n")  # car 1 leaves: servant 2 back to 64 A
        s2.wait_for(r"grant \[2\]: offer 32.0 A -> 64.0 A")
        master.wait_count(r"grant-acked \[\d\]", 3)
        master.wait_count(r"acked \[1\]", 2)
        time.sleep(1.0)
        master.signal(signal.SIGKILL)
        for p in (s1, s2):
            p.wait_for(r"failsafe \[")
        listing.wait_for(r"master-silent")
        time.sleep(1.0)  # well past the failsafe timeout: the plain registers say the master is silent
        poll = s.start(f"mbpoll -m rtu -a 2 -b 19200 -P none -t 4 -r 1 -c 11 -1 {ports[4]}")
        poll.wait_for(r"^\[11\]")
        for p in (s1, s2):
            p.signal(signal.SIGTERM)
            p.wait_for(r"stopped")
        listing.signal(signal.SIGINT)
        monitor = listing.finish()
        line.signal(signal.SIGTERM)
        emulator = line.finish()
        return {
            "emulator": emulator[:6], "emulator-end": emulator[-1:],
            "master": master.finish(), "servant1": s1.finish(), "servant2": s2.finish(), "monitor": monitor,
            "mbpoll": poll.finish(),
            "file:line.txt": (s.cwd / "line.txt").read_text().splitlines(),
        }


# ---------------------------------------------------------------------------------------------------
# The moving budget's sources: the meter emulator typed at, mbpoll reading it; MQTT through Mosquitto


def meter_emulator(scratch: Scratch) -> dict[str, list[str]]:
    """The emulated SDM630 on 127.0.0.1:5020 with its clock held at 17:30 (``--speed 0``: the same
    figures on every run): a status, mbpoll reads the currents and powers, then every control command
    typed on its stdin, each answered before the next; quit."""
    need("mbpoll")
    need_port(5020)
    with Session(scratch, "meter") as s:
        emulator = s.start("python -m busshare.cli.meter_emulator --kind sdm630 --tcp 127.0.0.1:5020 --speed 0",
                           stdin=True)
        emulator.wait_for(r'"event": "listening"')
        at = emulator.enter("status")
        emulator.wait_for(r'"event": "status"', after=at)
        poll = s.start("mbpoll -m tcp -p 5020 -a 1 -t 3:float -B -r 7 -c 6 -1 127.0.0.1")
        mbpoll = poll.finish()
        for command in ("freeze", "set 12.5 31.2 0.4", "normal", "set 1 2", "profile", "silent"):
            at = emulator.enter(command)
            emulator.wait_for(r'"event"', after=at)
        emulator.enter("quit")
        return {"emulator": emulator.finish(), "mbpoll": mbpoll}


def meter_client(scratch: Scratch) -> dict[str, list[str]]:
    """docs/examples/meter_client.py (a MeterClient polling every second, printing its first 15
    events) against the emulated SDM630 (its house moving), the faults typed on the emulator's stdin
    as the client's lines come: two readings, freeze; two frozen failures, normal; two readings,
    silent; two timeouts, garbage; two impossible readings, quit (the client then fails to read)."""
    need_port(5020)
    with Session(scratch, "meter-client") as s:
        emulator = s.start("python -m busshare.cli.meter_emulator --kind sdm630 --tcp 127.0.0.1:5020", stdin=True)
        emulator.wait_for(r'"event": "listening"')
        client = s.start("python meter_client.py")
        for pattern, n, command in ((r"^MeterReading", 2, "freeze"), (r"FROZEN", 2, "normal"),
                                    (r"^MeterReading", 6, "silent"), (r"TIMEOUT", 2, "garbage"),
                                    (r"IMPOSSIBLE", 2, "quit")):
            client.wait_count(pattern, n)
            emulator.enter(command)
        return {"client": client.finish(), "emulator": emulator.finish()}


def mqtt_link(scratch: Scratch) -> dict[str, list[str]]:
    """A Mosquitto broker on 127.0.0.1:1883 (not shown); docs/examples/mqtt_link.py (an MqttBudgetLink
    printing its events, publishing the limit once); five setpoints published, good and bad, while it
    listens; mosquitto_sub reads the retained limit."""
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        need(tool)
    need_port(1883)
    with Session(scratch, "mqtt") as s:
        (s.cwd / "mosquitto.conf").write_text("listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker = s.start("mosquitto -c mosquitto.conf -v")
        broker.wait_for(r"Opening ipv4 listen socket on port 1883")
        link = s.start("python mqtt_link.py")
        link.wait_for(r"^BrokerConnected\(")
        publish = s.start("for p in 40 '{\"limit_a\": 16.5, \"ttl_s\": 30}' forty '{\"limit_a\": 40, \"ttl\": 5}' 1700; do\n"
                          "  mosquitto_pub -h 127.0.0.1 -t busshare/garage/limit/set -m \"$p\"; done")
        pub_lines = publish.finish()
        link.wait_count(r"^Setpoint(Rejected)?\(", 5)
        sub = s.start("mosquitto_sub -h 127.0.0.1 -t busshare/garage/limit -C 1 -v")
        sub_lines = sub.finish()
        lines = link.finish()
        broker.signal(signal.SIGTERM)
        broker.finish()
        return {"link": lines, "clients": pub_lines + sub_lines}


def mains_installation(scratch: Scratch) -> dict[str, list[str]]:
    """examples/site-mains.toml as a whole installation on one machine: a Mosquitto broker on 1883 (not
    shown) and the emulated SDM630 on 5020 holding its house at 17:30's load (``set``); servants 1-3 with
    simulated cars started first (no master: they fail safe), then the master (its first reading, the
    broker connecting and the servants learned come in any order: the docs skip those lines); once it
    has granted, an energy manager's setpoint with mosquitto_pub, and mosquitto_sub reads the retained
    limit; the meter is stopped (``quit``): the master falls back, and the retained limit says so; Ctrl-C."""
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        need(tool)
    need_port(1883)
    need_port(5020)
    site = "--config examples/site-mains.toml"
    with Session(scratch, "mains", _can_env()) as s:
        (s.cwd / "mosquitto.conf").write_text("listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker = s.start("mosquitto -c mosquitto.conf -v")
        broker.wait_for(r"Opening ipv4 listen socket on port 1883")
        emulator = s.start("python -m busshare.cli.meter_emulator --kind sdm630 --tcp 127.0.0.1:5020", stdin=True)
        emulator.wait_for(r'"event": "listening"')
        at = emulator.enter("set 13.6 14.3 5.8")  # the house held at its 17:30 load: the same figures every run
        emulator.wait_for(r'"event": "set"', after=at)
        servants = [s.start(f"busshare servant {site} --address {a} --serial {0x6cdd4070 + a:#x} --ev sim --seed {a}")
                    for a in (1, 2, 3)]
        for p in servants:
            p.wait_for(r"no master heard since boot")
        master = s.start(f"busshare master {site} --epoch 162")
        master.wait_count(r"grant-acked \[\d\]", 3)
        clients = s.start("mosquitto_pub -h 127.0.0.1 -t busshare/garage/limit/set -m '{\"limit_a\": 12, \"ttl_s\": 600}'"
                          ).finish()
        lowered = master.wait_for(r"budget-lowered")
        master.wait_for(r"cut-acked", after=lowered)
        clients += s.start("mosquitto_sub -h 127.0.0.1 -t busshare/garage/limit -C 1 -v").finish()
        emulator.enter("quit")
        emulator.wait_for(r'"event": "stopped"')
        master.wait_for(r"budget-fallback", after=lowered)
        clients += s.start("mosquitto_sub -h 127.0.0.1 -t busshare/garage/limit -C 1 -v").finish()
        master.signal(signal.SIGINT)
        lines = master.finish()
        for p in servants:
            p.signal(signal.SIGTERM)
            p.finish()
        broker.signal(signal.SIGTERM)
        broker.finish()
        return {"master": lines, "clients": clients}


SESSIONS: dict[str, Callable[[Scratch], dict[str, list[str]]]] = {
    "can-installation": can_installation,
    "can-bad-input": can_bad_input,
    "can-embedded": can_embedded,
    "can-json": can_json,
    "modbus-line": modbus_line,
    "meter-emulator": meter_emulator,
    "meter-client": meter_client,
    "mqtt-link": mqtt_link,
    "mains-installation": mains_installation,
}
