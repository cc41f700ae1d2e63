"""Rule 2's memory of the last reaction allowance: what the pilot offered and what the meter read.

A cut is acked MEASURED only when the freed current really is free: the meter reads at or below the new
limit *and* the car cannot be on its way up, toward a raise it may not have seen yet or an older grant it
is still ramping to (docs/PROTOCOL.md 8.2, rule 2, "a car on its way up").  A SET_LIMIT at or above the offer
but below what was offered less than an allowance ago is a cut, too.  This class keeps what those checks
read, and forgets what is older than the allowance.  It never reads a clock.
"""

from __future__ import annotations

INF = float("inf")


class PilotHistory:
    """Lowerings, raises, offers and meter readings of the last reaction allowance (rule 2)."""

    def __init__(self, allowance: float, tolerance_da: int) -> None:
        self.allowance = allowance
        self.tolerance_da = tolerance_da
        # every lowering of the pilot within the last reaction allowance, as (when, offer before): until the
        # allowance has passed its EV may still draw what was offered before
        self._lowerings: list[tuple[float, int]] = []
        # every raise of the pilot within the last reaction allowance, as (when, offer after, highest offer of the
        # allowance before it): its EV may not have seen it yet, and may still climb toward it
        self._raises: list[tuple[float, int, int]] = []
        # every change of the offer within the last reaction allowance (and the one in effect at its start)
        self._offers: list[tuple[float, int]] = []
        # meter readings of the last reaction allowance (and the one in effect at its start), and the last time
        # one went up to more than the tolerance above the lowest of the allowance before it: a climbing EV
        self._readings: list[tuple[float, int]] = []
        self._rose_at = -INF

    def recent_lowerings(self, now: float) -> list[tuple[float, int]]:
        """The lowerings, as (when, offer before), whose reaction allowance still runs (older ones are forgotten)."""
        allowance = self.allowance
        self._lowerings = [x for x in self._lowerings if now < x[0] + allowance]
        return self._lowerings

    def raised_until(self, limit: int) -> float:
        """Until when the EV may still climb toward a raise of its pilot above ``limit``.

        A raise it has seen does not count: its draw has since gone above every pilot of the allowance before
        the raise (by more than the tolerance), which it could not do without seeing the raise.
        """
        allowance = self.allowance
        tol = self.tolerance_da
        until = -INF
        for t, after, before in self._raises:
            if after > limit and t + allowance > until and not any(
                    m > before + tol for at, m in self._readings if at > t):
                until = t + allowance
        return until

    def climb_ends(self, limit: int) -> float:
        """From when a meter at or below ``limit`` proves a cut to it: the EV cannot be on its way up.

        Not while a raise above ``limit`` it may not have seen is less than a reaction allowance old, nor while
        its draw rose (by more than the tolerance) less than an allowance ago, unless it has since come down
        from above limit + tolerance (it saw a lower pilot, or its own wish fell).
        """
        until = self.raised_until(limit)
        rose = self._rose_at + self.allowance
        if rose > until:
            came_down = any(m > limit + self.tolerance_da for at, m in self._readings if at >= self._rose_at)
            if not came_down:
                until = rose
        return until

    def note_reading(self, m: int, now: float) -> None:
        readings = self._readings
        if readings and readings[-1][1] == m:
            return
        start = now - self.allowance
        while len(readings) >= 2 and readings[1][0] <= start:
            readings.pop(0)  # (the first one kept is the reading in effect when the allowance began)
        if readings and m > readings[-1][1] and m > min(x for _, x in readings) + self.tolerance_da:
            self._rose_at = now  # up, and by more than the tolerance over the allowance (small steps add up)
        readings.append((now, m))

    def note_start(self, max_da: int, offer: int, now: float, charging_at: int | None) -> None:
        """A process that starts while its car draws: what the pilot offered, and when, is unknown. For a
        reaction allowance the car may still draw up to ``max_da`` (a lowering from it to ``offer``); and a car
        charging (pilot C or D, drawing ``charging_at``; None: not charging) may still be climbing toward it (a
        raise it may not have seen: a meter at or below a cut proves nothing until the allowance has passed)."""
        self.note_offer(max_da, offer, now)
        if charging_at is not None:
            self._raises.append((now, max_da, charging_at))

    def note_offer(self, old: int, offer: int, now: float) -> None:
        """The pilot goes from ``old`` to ``offer`` now."""
        if offer != old:
            allowance = self.allowance
            offers = self._offers
            while len(offers) >= 2 and offers[1][0] <= now - allowance:
                offers.pop(0)  # (the first one kept is the offer in effect when the allowance began)
            if offer > old:
                before = max([old] + [o for _, o in offers])  # what the EV may be acting on
                if self._raises and now >= self._raises[0][0] + allowance:
                    self._raises = [x for x in self._raises if now < x[0] + allowance]
                self._raises.append((now, offer, before))
            offers.append((now, offer))
        if offer < old:
            if len(self._lowerings) >= 8:
                self.recent_lowerings(now)  # (keeps the list short)
            self._lowerings.append((now, old))
