"""The settle bound of the service checks (waste, and the paused-car promises judged like it).

One function, and one ``Episode`` of a broken promise, so the two checks cannot drift apart on how lost
frames lengthen the bound or on when an episode is reported.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

INF = float("inf")


def settle_due(start: float, spoiled_at: list[float], settle_s: float, retry_s: float) -> float:
    """When an episode that began (or was last reported) at ``start`` breaks the settle bound.

    The settle bound covers one lost frame (one retry, ack_timeout later). Each further SET_LIMIT or ACK the
    bus spoiled since a settle bound before ``start`` (the frames that can still be on the path that ends the
    episode) is replaced one retry later, and the bound grows by that much. ``spoiled_at`` is sorted.
    """
    extra = 0.0
    if spoiled_at and spoiled_at[-1] >= start - settle_s:
        k = len(spoiled_at) - bisect_left(spoiled_at, start - settle_s)
        extra = retry_s * max(0, k - 1)
    return start + settle_s + extra


class Episode:
    """The one stretch going on now of a broken service promise (waste, or a paused car's), and its bound.

    ``since``: when it began (INF: the promise is kept); ``reported``: when it was last reported (collecting
    violations, it is reported again a bound later if it lasts); ``sched``: when its bound is looked at next.
    """

    def __init__(self, settle_s: float, retry_s: float) -> None:
        self.settle_s = settle_s
        self.retry_s = retry_s
        self.since = INF
        self.reported = -INF
        self.sched = INF

    def due(self, quiet_since: float, spoiled_at: list[float]) -> float:
        """When the episode going on now breaks its bound (settle, plus a retry per spoiled frame)."""
        return settle_due(max(self.since, quiet_since, self.reported), spoiled_at, self.settle_s, self.retry_s)

    def follow(self, broken: bool, t: float, quiet_since: float, spoiled_at: list[float],
               schedule: Callable[[float], None]) -> None:
        """After a change: end the episode, or start it and make sure its bound is looked at."""
        if self._goes_on(broken, t):
            self._arm(self.due(quiet_since, spoiled_at), t, schedule)

    def judge(self, why: str | None, t: float, quiet_since: float, spoiled_at: list[float],
              schedule: Callable[[float], None]) -> str | None:
        """At a look: ``why`` the promise is broken now (None: kept); what to report once it is past its bound."""
        if not self._goes_on(why is not None, t):
            return None
        due = self.due(quiet_since, spoiled_at)
        found = None
        if t + 1e-9 >= due:
            start = max(self.since, quiet_since, self.reported)
            found = f"{why} for {t - max(self.since, quiet_since):.2f} s (settle bound {due - start:.2f} s)"
            self.reported = t  # (collecting: once more a bound later if it lasts, not at this instant again)
            due = self.due(quiet_since, spoiled_at)
        self._arm(due, t, schedule)
        return found

    def _goes_on(self, broken: bool, t: float) -> bool:
        if not broken:
            self.since = INF
            self.reported = -INF
        elif self.since == INF:
            self.since = t
        return broken

    def _arm(self, due: float, t: float, schedule: Callable[[float], None]) -> None:
        if due < self.sched or self.sched <= t:
            self.sched = due
            schedule(due)
