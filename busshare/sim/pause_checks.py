"""The promises to cars that pause themselves (PROTOCOL.md 8.5-8.6, docs/BUDGET.md 6.6), checked like waste.

A car is *paused* here from the moment it is in B while its pilot offers current (its own timer, a
balancing pause, full: the pilot looks the same), or is offered current again while in B; it stays paused
while it is in B, at 0 A too (parked, it waits for leftovers). Charging again, it has *resumed*. The
checks (names as reported), under the same quiet conditions as ``waste``, each with the settle bound
(one more ack_timeout per further SET_LIMIT or ACK the bus spoiled):

``pause-offer``     a car paused for ``reclaim_after`` has a PWM offer (its parked minimum) whenever
                    its minimum is free: so it can resume.
``pause-leftovers`` a car paused for ``reclaim_after`` holds current only from leftovers: not while a
                    car that is offered current wants more, nor while a waiting car's minimum would fit
                    in what is free plus what the paused car holds.
``resume-share``    a car that resumed gets its share: it is not offered less than another car of its
                    priority that gets more than that one's minimum, while it wants more.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

from ..frames import MIN_OFFER_DA
from ..protocol.pilot import PilotState
from .procs import ServantProc
from .settle import Episode

INF = float("inf")


class PauseChecks(Episode):
    """Per servant the pause bookkeeping (``note``), and the one episode of a broken promise (``now``/``due``)."""

    def __init__(self, grace_s: float, settle_s: float, retry_s: float, slack_da: int) -> None:
        super().__init__(settle_s, retry_s)
        self.grace_s = grace_s  # the master's reclaim_after: how long a paused car keeps its allocation
        self.slack_da = slack_da
        self.tracked = 0  # servants paused or resumed now (none: nothing to look at)

    def note(self, p: ServantProc, offer: int, t: float, recovered_at: float = -INF) -> float | None:
        """``p``'s EVSE was synced at ``t``: update its pause state; a time to look again (a grace's end).

        ``recovered_at``: when the master is back to normal after a fault or a start (the world's
        ``quiet_since``); a car that pauses before then has its grace from then, since a late copy of an old
        STATUS still on its way may show it charging and restart the master's grace (chaos seed 1700)."""
        ev = p.evse
        before = p.paused_at < INF or p.resumed_at < INF
        again: float | None = None
        was = p.paused_offer  # the offer at the last sync (its servant may have dropped it as the car paused)
        if ev.plugged and not ev.stopped and not p.twin and ev.pilot() is PilotState.B:
            if (offer > 0 or was > 0) and (p.paused_at == INF or (was == 0 and offer > 0)):
                p.paused_at = max(t, recovered_at)  # (offered again after 0 A in B: the grace may run anew)
                p.resumed_at = INF
                again = p.paused_at + self.grace_s
        else:
            if p.paused_at < INF and ev.plugged and ev.pilot().charging:
                p.resumed_at = t
            elif not ev.plugged or ev.stopped:
                p.resumed_at = INF
            p.paused_at = INF
        p.paused_offer = offer
        after = p.paused_at < INF or p.resumed_at < INF
        self.tracked += int(after) - int(before)
        return again

    def restart(self, back_at: float, servants: Sequence[ServantProc]) -> None:
        """A master started: it learns every paused car anew, so their grace runs from ``back_at``."""
        for p in servants:
            if p.paused_at < back_at < INF and p.paused_at < INF:
                p.paused_at = back_at

    def now(self, servants: Sequence[ServantProc], spare_da: int, t: float) -> tuple[str, str] | None:
        """(check name, why) for a promise broken right now, or None."""
        if not self.tracked:
            return None
        for p in servants:
            if p.paused_at < INF and t + 1e-9 >= p.paused_at + self.grace_s and p.alive:
                need = max(p.cfg.min_da, MIN_OFFER_DA)
                if p.offer == 0 and spare_da >= need:
                    return "pause-offer", (f"{p.name}'s paused car gets no PWM to resume on while "
                                           f"{spare_da / 10:.1f} A are free")
                if p.offer > 0:
                    for q in servants:
                        if q is p or not q.unmet or q.paused_at < INF:
                            continue
                        if q.offer > 0 and min(q.evse.wants_da, q.cfg.max_da) - q.offer >= self.slack_da:
                            return "pause-leftovers", (f"{p.name}'s paused car holds {p.offer / 10:.1f} A while "
                                                       f"{q.name} gets {q.offer / 10:.1f} A of more it wants")
                        if q.offer == 0 and q.cfg.min_da <= spare_da + p.offer:
                            return "pause-leftovers", (f"{p.name}'s paused car holds {p.offer / 10:.1f} A while "
                                                       f"{q.name} waits for its {q.cfg.min_da / 10:.1f} A minimum")
            elif p.resumed_at < INF and p.unmet and p.offer > 0 and p.alive:
                for q in servants:
                    if (q is not p and q.alive and q.cfg.priority == p.cfg.priority and q.paused_at == INF
                            and q.offer > max(p.offer, q.cfg.min_da) + self.slack_da):
                        return "resume-share", (f"{p.name}'s resumed car gets {p.offer / 10:.1f} A, "
                                                f"{q.name} {q.offer / 10:.1f} A")
        return None

    def update(self, servants: Sequence[ServantProc], spare_da: int, t: float, quiet_since: float,
               spoiled_at: list[float], schedule: Callable[[float], None]) -> None:
        """After a change: start or end the episode, and make sure its bound is looked at."""
        self.follow(self.now(servants, spare_da, t) is not None, t, quiet_since, spoiled_at, schedule)
