"""The master's budget API on a virtual clock (docs/BUDGET.md, section 6.4).

Two EVSEs on a 32 A circuit under a 40 A main service, a meter read every second, the house at
10 A, then a 15 A oven from 40 s, and a 10 A setpoint (for 20 s) at 60 s, withdrawn at 70 s.  The
servants are stand-ins: each reports every half second that its car wants 32 A and draws what it is
offered, and acks every set-limit at once.  Printed: each call that returned frames, then the master's events of the budget.
"""

from busshare.core.budget import BudgetPolicy
from busshare.core.budget import MainsReading
from busshare.core.config import parse_config
from busshare.core.currents import PhaseCurrents
from busshare.core.events import EventKind
from busshare.frames import Ack
from busshare.frames import AckHow
from busshare.frames import Message
from busshare.frames import SetLimit
from busshare.frames import Status
from busshare.master import Master
from busshare.protocol.pilot import PilotState

config = parse_config("""
[site]
limit_a = 32
[budget]
main_limit_a = 40.0
fallback_a = 12.0
raise_hold_s = 10
raise_step_a = 20
[budget.meter]
kind = "sdm120"
tcp = "127.0.0.1:5020"
[[servant]]
address = 1
max_a = 32
[[servant]]
address = 2
max_a = 32
""")
master = Master(config, 0.0, budget=BudgetPolicy.from_config(config, 0.0))
offer = {1: 0, 2: 0}


def send(now: float, call: str, out: list[Message]) -> None:
    """Put the master's frames on the stand-in bus: every set-limit is applied and acked at once."""
    limits = [m for m in out if isinstance(m, SetLimit)]
    if limits:
        print(f"{now:6.2f} {call:<15} " + ", ".join(f"{m.address}: {m.limit_da / 10:.1f} A" for m in limits))
    for m in limits:
        how = AckHow.IMMEDIATE if m.limit_da >= offer[m.address] else AckHow.TIMED
        offer[m.address] = m.limit_da
        send(now, "receive(ACK)", master.receive(Ack(m.address, m.txn, m.limit_da, None, how), now))


print(f"  0.00 start          {master.budget.limit_da / 10:.1f} A, {master.budget.source}")
for step in range(1, 1601):  # 80 s
    now = round(step * 0.05, 2)
    if step % 10 == 0:
        for a in (1, 2):
            send(now, "receive(STATUS)", master.receive(Status(a, a, PilotState.C, offer[a], None, 320), now))
    if step % 20 == 0:
        house = 100 + (150 if now >= 40 else 0)
        mains = MainsReading(now, PhaseCurrents((house + sum(offer.values()),)))
        send(now, "mains_reading", master.mains_reading(mains, now))
    if now == 60.0:
        send(now, "setpoint", master.setpoint(100, 20.0, now))
    if now == 70.0:
        send(now, "clear_setpoint", master.clear_setpoint(now))
    send(now, "tick", master.tick(now))
print(master.budget)
for e in master.drain_events():
    if e.kind.startswith(("budget", "setpoint", "meter")) and e.kind is not EventKind.BUDGET_INPUT_IGNORED:
        print(e)
