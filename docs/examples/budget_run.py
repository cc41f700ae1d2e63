"""The budget policy alone, on a virtual clock ticking every 50 ms (docs/BUDGET.md, section 4.4).

A 30 A house (L1 30, L2 18, L3 22 A) read every second, a 9.5 A kettle on L1 from 120 s to 270 s, the
meter not answering from 330 s to 340 s, a 16 A setpoint for 20 s at 380 s that is not renewed.
"""

from busshare.core.budget import BudgetPolicy
from busshare.core.budget import MainsReading
from busshare.core.budget_config import BudgetConfig
from busshare.core.config import Timing
from busshare.core.currents import PhaseCurrents

cfg = BudgetConfig(fallback_da=240, main_limit_da=800, margin_da=20)
p = BudgetPolicy(cfg, static_da=630, timing=Timing(), now=0.0, meter_timeout_s=5.0)
for tick in range(0, 8400):  # 420 s
    now = round(tick * 0.05, 3)
    second, rest = divmod(tick, 20)
    if rest == 1:  # each poll's reading arrives a tick after it was taken
        if 330 <= second < 340:
            p.meter_failed(now, "timeout: no response")
        else:
            kettle = 95 if 120 <= second < 270 else 0
            p.meter(MainsReading(float(second), PhaseCurrents((300 + kettle, 180, 220))), [], now)
    if tick == 380 * 20 + 1:
        p.setpoint(160, 20.0, now)
    p.tick(now)
    for event in p.drain_events():
        print(event)
print(p.stats)
