"""A car behind an EVSE: the physics the protocol has to respect.

``SimEvse`` is one EVSE's hardware (pilot generator, contactor, meter) with an
optional car plugged in.  It implements ``busshare.core.hardware.EvseHardware`` so
the real runtime can drive it (``--ev sim``), and the simulator drives it the
same way.  Its state is advanced lazily to whatever ``now`` it is given, and
``next_change()`` says when the car will next change its draw on its own, so an
event-driven simulator can jump straight there.

The car model:

* plug in (state B), then C once a current is offered and it wants energy;
* it starts drawing after ``start_delay_s`` and ramps up in steps of
  ``ramp_step_s`` at ``ramp_a_per_s``, up to min(offer, its own maximum);
* a lowered pilot is followed after a reaction delay drawn uniformly from
  [``reaction_min_s``, ``reaction_max_s``] (IEC 61851-1: within 5 s); a
  non-compliant car ignores lowered pilots entirely;
* with ``sees_pilot_late`` the car acts on *every* pilot change, raises too,
  only after such a delay (changes are seen in order): it ramps toward the
  pilot it has seen, so a grant followed within its reaction time by a cut
  can still make it climb toward the grant (issue 10, finding 3). Its first
  step toward a raise comes when it sees it (the delay is its whole reaction);
* over the last ``taper_kwh`` its wanted current falls linearly (1 A steps) to
  ``taper_floor_a``; when the energy it wanted is in, it stops drawing and
  goes back to state B (to the servant, a pause that never ends: parked);
* an open contactor (``ev_stopped``) or a power reset of the EVSE stops the draw
  at once: that is a relay, not a request;
* a car on its own schedule: with ``start_after_s`` it waits in B that long
  after it is plugged in; with ``pauses`` ((offset, duration) pairs, offsets
  from when it first started charging) it goes to B and stops drawing at each
  offset, for that long (its own timer, balancing, preconditioning). A car in
  B of its own accord wants nothing (``wants_da`` 0); when its time comes it
  goes (back) to C only if a PWM current is offered (J1772: none at 0 A, B1).

Energy is counted at ``VOLTAGE_V`` (230 V, single phase).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..protocol.pilot import PilotState

VOLTAGE_V = 230.0
INF = float("inf")
_EPS = 1e-9


@dataclass(frozen=True)
class EvProfile:
    """What kind of car it is."""

    max_a: float = 80.0  # its on-board charger's maximum
    need_kwh: float = 20.0  # energy it wants before it is full
    taper_kwh: float = 1.0  # the last kWh tapers
    taper_floor_a: float = 6.0
    reaction_min_s: float = 0.5
    reaction_max_s: float = 5.0
    start_delay_s: float = 1.0  # from a fresh offer to the first amp
    ramp_a_per_s: float = 20.0
    ramp_step_s: float = 0.5
    compliant: bool = True
    sees_pilot_late: bool = False  # raises too are acted on only after the reaction delay
    pauses: tuple[tuple[float, float], ...] = ()  # (offset after charging started, duration), in order
    start_after_s: float = 0.0  # plugged in, it waits in B this long (its own timer) before it may start

    def __post_init__(self) -> None:
        if not 0 <= self.reaction_min_s <= self.reaction_max_s:
            raise ValueError("EV reaction delay needs 0 <= reaction_min_s <= reaction_max_s")
        if self.max_a <= 0 or self.need_kwh < 0 or self.taper_kwh < 0 or self.ramp_a_per_s <= 0:
            raise ValueError("EV max_a, ramp_a_per_s must be > 0; need_kwh, taper_kwh >= 0")
        if self.ramp_step_s <= 0 or self.start_delay_s < 0:
            raise ValueError("EV ramp_step_s must be > 0 and start_delay_s >= 0")
        if self.start_after_s < 0:
            raise ValueError("EV start_after_s must be >= 0")
        offsets = [o for o, _ in self.pauses]
        if any(o < 0 or d <= 0 for o, d in self.pauses) or offsets != sorted(offsets):
            raise ValueError("EV pauses are (offset >= 0, duration > 0) pairs in order of offset")


class SimEvse:
    """One EVSE's pilot, contactor and meter, with a simulated car (or none)."""

    __slots__ = (
        "meter", "rng", "profile", "plugged", "full", "offer_da", "stopped", "draw_da", "t",
        "energy_wh", "session_wh", "drop_at", "ramp_at", "taper_at", "_max_da", "_floor_da",
        "over_since", "tolerance_da", "seen_da", "seen_at", "_seen_q",
        "hold_until", "pause_at", "started_at", "_pause_i",
    )

    def __init__(self, meter: bool = True, rng: random.Random | None = None, now: float = 0.0) -> None:
        self.meter = meter
        self.rng = rng or random.Random(0)
        self.profile: EvProfile | None = None
        self.plugged = False
        self.full = False
        self.offer_da = 0
        self.stopped = False  # contactor open
        self.draw_da = 0
        self.t = now
        self.energy_wh = 0.0  # over the whole run, every car
        self.session_wh = 0.0  # into the car plugged in now
        self.drop_at = INF  # a compliant car's reaction to a lowered pilot
        self.ramp_at = INF  # next ramp-up step
        self.taper_at = INF  # its own next taper step (or full)
        self._max_da = 0
        self._floor_da = 0
        self.over_since = INF  # since when the car draws more than offer + tolerance (contactor open: 0)
        self.tolerance_da = 0  # the servant's overdraw tolerance, for ``over_since``
        # sees_pilot_late: the pilot the car acts on, and the changes it has yet to see, as (when, offer)
        self.seen_da = 0
        self.seen_at = INF
        self._seen_q: list[tuple[float, int]] = []
        # the car's own schedule: in B of its own accord until hold_until; its next pause starts at pause_at
        self.hold_until = -INF
        self.pause_at = INF
        self.started_at = INF  # when it first started charging (the pauses' offsets count from here)
        self._pause_i = 0

    # -- EvseHardware -------------------------------------------------------

    def apply(self, offer_da: int, ev_stopped: bool, now: float) -> None:
        self.advance(now)
        if offer_da == self.offer_da and ev_stopped == self.stopped:
            return
        if offer_da != self.offer_da and self._late():
            self._see_later(offer_da, now)
        self.offer_da = offer_da
        self.stopped = ev_stopped
        if ev_stopped:
            self._set_draw(0, now)
        self._replan(now)

    def read(self, now: float) -> tuple[PilotState, int | None]:
        self.advance(now)
        return self.pilot(), (self.draw_da if self.meter else None)

    # -- the car -------------------------------------------------------------

    def plug(self, profile: EvProfile, now: float) -> None:
        self.advance(now)
        self.profile = profile
        self.plugged = True
        self.full = profile.need_kwh <= 0
        self.session_wh = 0.0
        self._max_da = round(profile.max_a * 10)
        self._floor_da = min(self._max_da, round(profile.taper_floor_a * 10))
        self.hold_until = now + profile.start_after_s if profile.start_after_s > 0 else -INF
        self.pause_at = self.started_at = INF
        self._pause_i = 0
        self._forget_seen()
        if profile.sees_pilot_late and self.offer_da:
            self._see_later(self.offer_da, now)
        self._replan(now)

    def unplug(self, now: float) -> None:
        self.advance(now)
        self.plugged = False
        self.profile = None
        self._set_draw(0, now)
        self.drop_at = self.ramp_at = self.taper_at = INF
        self.hold_until, self.pause_at, self.started_at = -INF, INF, INF
        self._forget_seen()

    def power_reset(self, now: float) -> None:
        """The EVSE lost its controller (watchdog, reboot): relay open, pilot off, at once."""
        self.advance(now)
        self.offer_da = 0
        self.stopped = False
        self._set_draw(0, now)
        self._forget_seen()
        self._replan(now)

    def pilot(self) -> PilotState:
        if not self.plugged:
            return PilotState.A
        if self.t < self.hold_until:
            return PilotState.B  # paused, or not started yet, of its own accord
        if self.draw_da > 0 or (self._acted_offer() > 0 and not self.stopped and not self.full):
            return PilotState.C
        return PilotState.B

    @property
    def wants_da(self) -> int:
        """What the car would draw if offered enough (0: unplugged or full)."""
        if not self.plugged or self.full or self.profile is None or self.t < self.hold_until:
            return 0
        return self._wanted()

    @property
    def compliant(self) -> bool:
        return self.profile is None or self.profile.compliant

    def next_change(self) -> float:
        return min(self.drop_at, self.ramp_at, self.taper_at, self.seen_at, self.pause_at, self._hold_end())

    def _hold_end(self) -> float:
        return self.hold_until if self.hold_until > self.t else INF

    def advance(self, now: float) -> None:
        """Run the car's own changes (reaction, ramp, taper, full) up to ``now``."""
        while True:
            nxt = min(self.drop_at, self.ramp_at, self.taper_at, self.seen_at, self.pause_at, self._hold_end())
            if nxt > now + _EPS:
                break
            self._accrue(nxt)
            if nxt == self.pause_at:
                self._pause(nxt)
            elif nxt == self._hold_end():
                self.t = nxt  # (its own B is over: it may start on the pilot offered now)
            elif nxt == self.seen_at:
                self._see(nxt)
            elif nxt == self.drop_at:
                self.drop_at = INF
                self._set_draw(min(self.draw_da, self.offer_da if not self.stopped else 0), nxt)
            elif nxt == self.ramp_at:
                self.ramp_at = INF
                assert self.profile is not None
                step = max(1, round(self.profile.ramp_a_per_s * self.profile.ramp_step_s * 10))
                self._set_draw(min(self._target(), self.draw_da + step), nxt)
            else:
                self.taper_at = INF
                if self.session_wh >= self._need_wh() - 1e-6:
                    self.full = True
                    self._set_draw(0, nxt)
                else:
                    self._set_draw(min(self.draw_da, self._wanted()), nxt)
            self._replan(nxt)
        self._accrue(now)

    # -- internals -------------------------------------------------------------

    def _need_wh(self) -> float:
        return self.profile.need_kwh * 1000.0 if self.profile else 0.0

    def _wanted(self) -> int:
        """The car's own wish at its state of charge: max, then a linear taper in 1 A steps."""
        p = self.profile
        assert p is not None
        remaining = self._need_wh() - self.session_wh
        taper_wh = p.taper_kwh * 1000.0
        if remaining >= taper_wh or taper_wh <= 0:
            return self._max_da
        frac = max(0.0, remaining / taper_wh)
        level = self._floor_da + (self._max_da - self._floor_da) * frac
        return max(self._floor_da, int(level // 10) * 10)

    def _pause(self, t: float) -> None:
        """Its own pause begins: B, nothing drawn, for the pause's duration; the next one is planned."""
        p = self.profile
        assert p is not None
        _, duration = p.pauses[self._pause_i]
        self._pause_i += 1
        self.hold_until = max(self.hold_until, t + duration)
        self.pause_at = INF
        self._set_draw(0, t)
        self.drop_at = self.ramp_at = INF

    def _late(self) -> bool:
        return self.profile is not None and self.profile.sees_pilot_late

    def _acted_offer(self) -> int:
        """The pilot the car acts on: the one it has seen, or the real one."""
        return self.seen_da if self._late() else self.offer_da

    def _see_later(self, offer_da: int, now: float) -> None:
        p = self.profile
        assert p is not None
        at = now + self.rng.uniform(p.reaction_min_s, p.reaction_max_s)
        if self._seen_q and at < self._seen_q[-1][0]:
            at = self._seen_q[-1][0]  # seen in order
        self._seen_q.append((at, offer_da))
        self.seen_at = self._seen_q[0][0]

    def _see(self, t: float) -> None:
        """The car sees the next pilot change: it drops to it at once (compliant) or starts climbing to it."""
        _, self.seen_da = self._seen_q.pop(0)
        self.seen_at = self._seen_q[0][0] if self._seen_q else INF
        assert self.profile is not None
        if self.profile.compliant and self.draw_da > self.seen_da:
            self._set_draw(self.seen_da, t)
        if self._target() > self.draw_da:
            self.ramp_at = t  # its first step now: the delay was its whole reaction

    def _forget_seen(self) -> None:
        self.seen_da = 0
        self.seen_at = INF
        self._seen_q.clear()

    def _target(self) -> int:
        offer = self._acted_offer()
        if not self.plugged or self.full or self.stopped or offer == 0 or self.t < self.hold_until:
            return 0
        return min(offer, self._wanted())

    def _accrue(self, t: float) -> None:
        dt = t - self.t
        if dt > 0:
            if self.draw_da:
                wh = self.draw_da * (VOLTAGE_V / 10.0) * dt / 3600.0
                self.energy_wh += wh
                self.session_wh += wh
            self.t = t

    def _set_draw(self, da: int, now: float) -> None:
        self.draw_da = max(0, da)
        self._track_over(now)

    def _track_over(self, now: float) -> None:
        cap = 0 if self.stopped else self.offer_da + self.tolerance_da
        if self.draw_da > cap:
            if self.over_since == INF:
                self.over_since = now
        else:
            self.over_since = INF

    def _replan(self, now: float) -> None:
        """Work out when the car next changes its draw by itself."""
        p = self.profile
        if not self.plugged or p is None or self.full:
            self.drop_at = self.ramp_at = self.taper_at = INF
            if self.draw_da and (not self.plugged or self.full):
                self._set_draw(0, now)
            return
        if self.started_at == INF and self._target() > 0:  # it starts charging: its pauses count from now
            self.started_at = now
        if self.pause_at == INF and self.started_at < INF and self._pause_i < len(p.pauses) and now >= self.hold_until:
            self.pause_at = max(now, self.started_at + p.pauses[self._pause_i][0])
        limit = 0 if self.stopped else self.offer_da
        if self.draw_da > limit and not p.sees_pilot_late:  # (a late-seeing car drops when it sees the pilot)
            if p.compliant and self.drop_at == INF:
                self.drop_at = now + self.rng.uniform(p.reaction_min_s, p.reaction_max_s)
        else:
            self.drop_at = INF
        self._track_over(now)
        target = self._target()
        if target > self.draw_da:
            if self.ramp_at == INF:
                self.ramp_at = now + (p.start_delay_s if self.draw_da == 0 else p.ramp_step_s)
        else:
            self.ramp_at = INF
        # when does its own taper move down a step (or the car get full)?
        if self.draw_da > 0:
            remaining = self._need_wh() - self.session_wh
            taper_wh = p.taper_kwh * 1000.0
            # the next moment its wish falls below what it draws now (1 A steps), or it is full
            threshold = min(self._wanted(), -(-self.draw_da // 10) * 10)
            span = self._max_da - self._floor_da
            if remaining <= 0:
                at_wh = 0.0
            elif remaining > taper_wh:
                at_wh = taper_wh if threshold >= self._max_da or span <= 0 else (
                    taper_wh * (threshold - self._floor_da) / span)
            elif threshold > self._floor_da and span > 0:
                at_wh = taper_wh * (threshold - self._floor_da) / span
            else:
                at_wh = 0.0
            watts = self.draw_da * VOLTAGE_V / 10.0
            self.taper_at = now + max(0.0, remaining - at_wh) * 3600.0 / watts + 1e-3
        else:
            self.taper_at = INF
