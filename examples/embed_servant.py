"""A product embedding a busshare servant: wire the pilot, the pilot detector and the meter; run.

    python examples/embed_servant.py -i socketcan -c can0      (udp_multicast when -i is left out)
"""

import argparse
import time

from busshare.cli.transports import add_can_arguments
from busshare.cli.transports import open_can
from busshare.core.config import ServantConfig
from busshare.core.config import Timing
from busshare.io.runtime import Runtime
from busshare.io.servant_state import StateFile
from busshare.io.servant_state import default_path
from busshare.protocol.pilot import PilotState
from busshare.protocol.pilot import duty_for_current
from busshare.servant import Servant


class MyEvse:
    """Implements busshare.core.hardware.EvseHardware; replace the bodies with your board's drivers."""

    duty = None

    def apply(self, offer_da: int, ev_stopped: bool, now: float) -> None:  # called after every step
        duty = 100.0 if ev_stopped else duty_for_current(offer_da / 10)
        if duty != self.duty:
            self.duty = duty
            print(f"pilot PWM {duty:.1f} % ({offer_da / 10:.1f} A){' EV STOPPED' if ev_stopped else ''}", flush=True)

    def read(self, now: float) -> tuple[PilotState, int | None]:
        return PilotState.C, None  # pilot state from the ADC; meter current in 0.1 A, None without one


parser = argparse.ArgumentParser()
add_can_arguments(parser)
args = parser.parse_args()
bus = open_can(args)  # first: the node boots (its failsafe counts from then) on a bus it can hear
state = StateFile(default_path(1), 1)  # its memory across restarts (PROTOCOL.md 8.4): RAM that survives a reset
node = Servant(ServantConfig(address=1, max_da=320, serial=0xC0FFEE), Timing(), time.monotonic(), state.load())
Runtime(node, bus, hardware=MyEvse(), state=state,
        on_record=lambda rec: print(rec["event"], rec["detail"], flush=True)).run()  # until SIGINT/SIGTERM
