"""Record tests/data/modbus-cut-race.txt: a real emulated-line capture in which a cut unit's STATUS is late.

A master and four servants (`busshare master/servant --modbus`, real processes) on the RS-485 emulator
at 19200 baud; car 1 charges alone at 64 A; car 2 plugs in and out again CYCLES times, each time just
before servant 1's next periodic STATUS is due.  Servant 1 is cut (and acks) right after that STATUS
went out, so its next one, showing the cut, comes a whole status period later, after servant 2's
showing the grant: going by STATUS frames alone, 96 A would be offered on 64 A.  The test
(tests/analysis/test_decode_truth.py) checks that the capture holds the race and that `decode --summary` does
not fall for it.

    python tools/record_modbus_race.py OUT_DIR [CYCLES] [LEAD_S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from busshare.analysis.decode import Frame
from busshare.frames import MsgType  # noqa: E402
from tests.io.test_modbus_processes import WAIT  # noqa: E402
from tests.io.test_modbus_processes import Line  # noqa: E402
from tests.io.test_modbus_processes import is_event  # noqa: E402
from tests.io.test_modbus_processes import offer  # noqa: E402

STATUS_OF_1 = (int(MsgType.STATUS) << 6) | 1


def main(out: Path, cycles: int = 6, lead_s: float = 0.08) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    line = Line(out, 6)
    try:
        _, master = line.master()
        _, s1, ev1 = line.servant(1)
        _, s2, ev2 = line.servant(2)
        line.servant(3)
        line.servant(4)
        master.wait_for(is_event("learned-all"), WAIT)
        ev1.write_text("C")
        s1.wait_for(offer(64.0), WAIT)
        for _ in range(cycles):
            # more than a reaction allowance after servant 1 went back up to 64 A: its meter then proves the cut
            # at once (rule 2 waits while a draw may still be rising), which is what makes the race
            time.sleep(6.0)
            ts = [r.t for r in line.frames() if isinstance(r, Frame) and r.can_id == STATUS_OF_1 and r.t is not None]
            period = ts[-1] - ts[-2]
            due = ts[-1] + period
            while due < line.bus.now() + 0.2:
                due += period
            time.sleep(max(0.0, due - lead_s - line.bus.now()))
            n1, n2 = len(s1.snapshot()), len(s2.snapshot())
            ev2.write_text("C")
            s1.wait_for(offer(32.0), WAIT, after=n1)
            s2.wait_for(offer(32.0), WAIT, after=n2)
            time.sleep(1.5)
            n1 = len(s1.snapshot())
            ev2.write_text("A")
            s1.wait_for(offer(64.0), WAIT, after=n1)
    finally:
        line.close()
    path: Path = line.capture_path
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("cycles", type=int, nargs="?", default=6)
    parser.add_argument("lead_s", type=float, nargs="?", default=0.08)
    a = parser.parse_args()
    print(main(a.out, a.cycles, a.lead_s))
