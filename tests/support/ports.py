"""Ports of a test's own, for buses (udp_multicast), Modbus TCP meters and MQTT brokers started by tests.

The README's test command runs on pytest-xdist workers, so two tests run at once on one host, and other
test runs may share the host too.  A port is drawn:

* from this worker's own residue class (``port % workers == worker index``): two workers of one run
  never draw the same port, where two random draws from one range met now and then;
* below the kernel's ephemeral range (32768-60999 on Linux), so no connection's local port, nor another
  test's ``bind(0)``, lands on a port a test has drawn but is not listening on yet (a broker restarted
  on its port, a meter that comes up late);
* at random, from a generator of its own (hypothesis seeds the global one inside its tests), so two runs
  at once rarely meet;
* free when drawn (bound and released), and never twice in one process.
"""

from __future__ import annotations

import os
import random
import socket

LOW, HIGH = 20000, 32768
_draw = random.Random()  # seeded from os.urandom, untouched by anyone's random.seed()
_given: set[int] = set()


def worker() -> tuple[int, int]:
    """(index, count) of this pytest-xdist worker: ("gw1", 2 workers) -> (1, 2); (0, 1) without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not name.startswith("gw"):
        return 0, 1
    return int(name[2:]), int(os.environ["PYTEST_XDIST_WORKER_COUNT"])


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port (TCP for SOCK_STREAM, UDP for SOCK_DGRAM) nobody holds now, of this worker's own."""
    index, count = worker()
    for _ in range(1000):
        port = _draw.randrange(LOW + (index - LOW) % count, HIGH, count)
        if port in _given:
            continue
        try:
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _given.add(port)
        return port
    raise AssertionError(f"no free port in {LOW}-{HIGH} for xdist worker {index} of {count}")
