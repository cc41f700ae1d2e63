"""Two python-can drivers that behave as real ones do on a machine without their vendor library.

Registered by name in ``can.interfaces.BACKENDS`` by the tests: each logs a warning when imported (as
python-can's pcan, neovi, cantact or vector modules do when their library is missing) and then either fails
half-way through its constructor or opens.
"""

from __future__ import annotations

import logging
from typing import Any

import can

logging.getLogger("can.fakevendor").warning("vendor library not found: timestamps are relative to boot time")


class FailingBus(can.BusABC):
    """Fails after BusABC.__init__, as UdpMulticastBus does on a bad group: its __del__ would warn."""

    def __init__(self, channel: Any = None, **kwargs: Any) -> None:
        super().__init__(channel, **kwargs)
        raise can.CanInterfaceNotImplementedError("vendor driver could not be loaded")

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        pass


class WorkingBus(can.BusABC):
    def __init__(self, channel: Any = None, **kwargs: Any) -> None:
        super().__init__(channel, **kwargs)
        self.channel_info = "fake"

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        pass

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        return None, False
