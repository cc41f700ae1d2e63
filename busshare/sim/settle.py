"""The settle bound of the service checks (waste, and the paused-car promises judged like it).

One function, so the two checks cannot drift apart on how lost frames lengthen the bound.
"""

from __future__ import annotations

from bisect import bisect_left


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
