"""What happens to the installation from outside: cars come and go, processes crash, the bus misbehaves.

``Faults`` adds to the ``World`` the scripted and interactive changes a scenario (or a test) makes:
plug-ins and unplugs, master crashes, restarts and second masters, servant crashes and partitions,
bus fault episodes and twins.  Each marks the timeline and restarts the service clocks (``_disturb``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar
from typing import Unpack

from ..core.driver import overslept
from ..core.events import EventKind
from .bus import BusFaults
from .bus import BusSettings
from .bus import Port
from .ev import EvProfile
from .procs import INF
from .procs import MasterProc
from .procs import ServantProc
from .scenario import CarPlan
from .scenario import FaultPlan
from .world import World

P = TypeVar("P", MasterProc, ServantProc)


class Faults(World):
    """The world, with the changes a scenario or a test can make to it."""

    # ------------------------------------------------------------------ cars

    def _plan_car(self, car: CarPlan) -> None:
        self.queue.push_script(car.at, self._car_in, car)
        if car.leave is not None:
            self.queue.push_script(car.leave, self._car_out, car)

    def _procs_at(self, address: int, twin: bool = False) -> list[ServantProc]:
        return [p for p in self.by_address.get(address, []) if p.twin == twin]

    def _car_in(self, car: CarPlan, t: float) -> None:
        for p in self._procs_at(car.evse, car.twin)[:1]:
            self.plug(p, car.profile, t)

    def _car_out(self, car: CarPlan, t: float) -> None:
        for p in self._procs_at(car.evse, car.twin)[:1]:
            self.unplug(p, t)

    def plug(self, p: ServantProc, profile: EvProfile, t: float | None = None) -> None:
        t = self.now if t is None else t
        if p.evse.plugged:
            self.unplug(p, t)
        p.evse.plug(profile, t)
        self._mark(t, p.address, "plug-in", f"{p.name}: car wants {profile.need_kwh:.1f} kWh, max "
                   f"{profile.max_a:.0f} A{'' if profile.compliant else ', NON-COMPLIANT'}")
        self._hardware_changed(p, t)
        self._disturb(t)

    def unplug(self, p: ServantProc, t: float | None = None) -> None:
        t = self.now if t is None else t
        if not p.evse.plugged:
            return
        p.evse.advance(t)
        self.energy_done[p.name] = self.energy_done.get(p.name, 0.0)
        p.evse.unplug(t)
        self._mark(t, p.address, "unplug", f"{p.name}: {p.evse.session_wh / 1000:.2f} kWh delivered")
        self._hardware_changed(p, t)
        self._disturb(t)

    def _hardware_changed(self, p: ServantProc, t: float) -> None:
        if p.alive:
            self._servant_after(p, [], t, True)
        else:
            self._sync(p, t)
            self._ev_resched(p)

    # ------------------------------------------------------------------ faults

    def _apply_fault(self, f: FaultPlan, t: float) -> None:
        kind = f.kind
        if kind == "master_crash":
            self.master_crash(t)
        elif kind == "master_restart":
            self.master_restart(t)
        elif kind == "master_shutdown":
            self.master_shutdown(t)
        elif kind == "second_master":
            self.second_master(t, f.master_id, f.duration_s)
        elif kind == "servant_crash":
            self.servant_crash(self._one(f), t, f.hold_s, f.duration_s)
        elif kind == "servant_restart":
            self.servant_restart(self._one(f), t)
        elif kind == "servant_respawn":
            self.servant_respawn(self._one(f), t)
        elif kind == "servant_stall":
            self.servant_stall(self._one(f), t, f.duration_s or 0.0)
        elif kind == "master_stall":
            self.master_stall(t, f.duration_s or 0.0)
        elif kind == "partition":
            self.partition(self._one(f), f.direction, t, f.duration_s)
        elif kind == "bus":
            self.bus_faults(t, f.duration_s, **f.bus)
        elif kind == "twin":
            self.add_twin(f.address or 1, t, f.serial, f.duration_s, f.car)
        elif kind == "replay":
            self.replay(t, f.duration_s or 0.0, f.hold_s or 0.0, f.address)
        else:  # pragma: no cover - scenario validation rejects unknown kinds
            raise ValueError(f"unknown fault kind {kind!r}")

    def _one(self, f: FaultPlan) -> ServantProc:
        procs = self._procs_at(f.address or 1)
        if not procs:
            raise ValueError(f"fault {f.kind}: no servant at address {f.address}")
        return procs[0]

    def _fault_on(self, name: str, t: float) -> None:
        self.faults[name] = t
        self._disturb(t, "fault")

    def _fault_off(self, name: str, t: float) -> None:
        self.faults.pop(name, None)
        self._disturb(t, "fault")

    def _fault_for(self, name: str, p: ServantProc, t: float, duration_s: float | None,
                   end: Callable[[ServantProc, float], None]) -> None:
        """Fault ``name`` on ``p`` is on from ``t``; ``end(p, t)`` takes it off ``duration_s`` later (None: never)."""
        self._fault_on(name, t)
        if duration_s is not None:
            self.queue.push_script(t + duration_s, end, p)

    def master_crash(self, t: float | None = None) -> None:
        t = self.now if t is None else t
        if self.masters:
            self._stop_master(self.masters[0], t, graceful=False)
        self._disturb(t, "fault")

    def master_shutdown(self, t: float | None = None) -> None:
        t = self.now if t is None else t
        if self.masters:
            self._stop_master(self.masters[0], t, graceful=True)
        self._disturb(t, "fault")

    def master_restart(self, t: float | None = None) -> None:
        t = self.now if t is None else t
        if not any(m.master_id == self.config.master_id for m in self.masters):
            self._start_master(self.config.master_id, t)
        self._disturb(t, "fault")

    def second_master(self, t: float | None = None, master_id: int = 2, duration_s: float | None = None) -> None:
        t = self.now if t is None else t
        proc = self._start_master(master_id, t)
        self._disturb(t, "fault")
        if duration_s is not None:
            self.queue.push_script(t + duration_s, self._end_second_master, proc)

    def _end_second_master(self, proc: MasterProc, t: float) -> None:
        if proc.alive:
            self._stop_master(proc, t, graceful=False)
        self._disturb(t, "fault")

    def servant_crash(self, p: ServantProc, t: float | None = None, hold_s: float | None = None,
                      duration_s: float | None = None) -> None:
        """Crash a servant process; it holds its pilot for ``hold_s`` (default: the scenario's watchdog)."""
        t = self.now if t is None else t
        hold = self.scenario.watchdog_s if hold_s is None else hold_s
        self._mark(t, p.address, "servant-crash", f"{p.name} (pilot held {hold:.2f} s)")
        self._kill_servant(p, t, hold)
        self._fault_for(f"crash:{p.name}", p, t, duration_s, self.servant_restart)

    def servant_restart(self, p: ServantProc, t: float | None = None) -> None:
        t = self.now if t is None else t
        if p.alive:
            self._kill_servant(p, t, 0.0)
        elif p.watchdog_at < INF:  # rebooting resets the hardware too
            p.watchdog_at = INF
            p.evse.power_reset(t)
        self._mark(t, p.address, "servant-boot", p.name)
        self._boot_servant(p, t)
        self._fault_off(f"crash:{p.name}", t)

    def servant_respawn(self, p: ServantProc, t: float | None = None) -> None:
        """The servant process dies and a new one starts at once, before the hardware watchdog notices: the
        EVSE keeps the old pilot until the new process takes it over, so its car is still drawing (a supervisor
        restarting a crashed process, an update).  ``servant_restart`` power-resets the EVSE instead."""
        t = self.now if t is None else t
        if not p.alive:
            return
        self._mark(t, p.address, "servant-crash", f"{p.name} (a new process at once, pilot held)")
        self._kill_servant(p, t, 1.0)  # held (the watchdog never fires: the new process takes the pilot over)
        self._mark(t, p.address, "servant-boot", p.name)
        p.cutoff_from = t
        self._boot_servant(p, t)
        self._disturb(t, "fault")

    def servant_stall(self, p: ServantProc, t: float | None = None, duration_s: float = 0.5) -> None:
        """The servant's process stands still for ``duration_s`` (swap, a blocked write, SIGSTOP), shorter than
        its hardware watchdog: it runs nothing, frames queue for it, its EVSE and car go on.  When it resumes,
        it serves the deadlines it slept past before the frames that queued (``core.driver.overslept``, the
        runtime's loop rule, PROTOCOL.md 8.2 rule 4, a stalled process)."""
        t = self.now if t is None else t
        if p.alive:
            self._stall(p, p.address, "servant-stall", t, duration_s, self.servant_resume)

    def _stall(self, p: P, address: int | None, mark: str, t: float, duration_s: float,
               resume: Callable[[P, float], None]) -> None:
        """Process ``p`` stands still from ``t`` (``World.deliver`` queues its frames); ``resume`` at the end.
        ``address`` and ``mark``: the timeline mark's (a master's has no address)."""
        if p.stalled:
            return
        p.stalled, p.stall_from, p.resume_at = True, t, t + duration_s
        self._mark(t, address, mark, f"{p.name} stands still for {duration_s:.2f} s")
        self._fault_on(f"stall:{p.name}", t)
        self.queue.push_script(p.resume_at, resume, p)

    def _resumes(self, p: MasterProc | ServantProc, t: float) -> bool:
        """Whether the stall ``p`` ends at ``t`` is still on (a process killed meanwhile: the fault is over)."""
        if not p.stalled:
            self._fault_off(f"stall:{p.name}", t)
            return False
        return t == p.resume_at  # (else a later stall of a process started since)

    def master_stall(self, t: float | None = None, duration_s: float = 1.0) -> None:
        """The master's process stands still for ``duration_s`` (swap, a blocked write, SIGSTOP): it runs and
        sends nothing, frames and its budget feed's inputs queue for it.  When it resumes it does what the
        runtime's loop does (``Runtime.run``): it reads one frame, services (its tick, then the feed's inputs),
        then reads the others, each followed by a service that ticks when due."""
        t = self.now if t is None else t
        if self.masters:
            self._stall(self.masters[0], None, "master-stall", t, duration_s, self.master_resume)

    def master_resume(self, m: MasterProc, t: float) -> None:
        """The stalled master runs again, in the runtime loop's order (``master_stall``)."""
        if not self._resumes(m, t):
            return
        port = m.port
        assert port is not None
        backlog = m.backlog
        m.unstall()
        self._mark(t, None, "master-resume", f"{m.name}: {len(backlog)} frames queued meanwhile")
        frames: list[tuple[float, int, bytes, bool] | None] = [*backlog] if backlog else [None]
        for i, frame in enumerate(frames):
            if frame is not None:
                arrived, offset, data, bad = frame
                self.deliver(t, offset, [(port, data, bad)], arrived)
            if not m.alive:
                break
            # the loop's service: a tick after the first frame (a tick period has passed), then whenever one is due
            if i == 0 or m.node.next_deadline() <= t:
                self._master_tick(m, t)
            held, m.held = m.held, []
            for give in held:
                give(t)
        self._fault_off(f"stall:{m.name}", t)

    def servant_resume(self, p: ServantProc, t: float) -> None:
        """The stalled process runs again: the deadlines it slept past first (as the runtime's loop does), the
        rule-4 checks that fell due in the stall, then the frames that queued, read now (each with its arrival,
        which its rule-4 clocks count from: ``Node.receive``'s ``arrived``)."""
        if not self._resumes(p, t):
            return
        node, port = p.node, p.port
        assert node is not None and port is not None
        backlog = p.backlog
        p.unstall()
        if p.evse.over_since >= p.stall_from:  # a car overdrawing since the stall: seen now at the earliest
            p.cutoff_from = max(p.cutoff_from, t)
        self._mark(t, p.address, "servant-resume", f"{p.name}: {len(backlog)} frames queued meanwhile")
        # (its EVSE may have changed while it stood: the driver reads it now, ``changed``)
        out = node.tick(t) if overslept(node.next_deadline(), t, self.timing.tick_period) else []
        self._servant_after(p, out, t, True)
        # the rule-4 checks that came due in the stall (``check_due`` left them to the resume): now, or armed again
        for found in (self.inv.check_failsafe(p, t) if p.fs_check_sched == INF else None,
                      self.inv.check_hold(p, t) if p.hold_sched == INF else None):
            if found is not None:
                self.report(found)
        for arrived, offset, data, bad in backlog:
            self.deliver(t, offset, [(port, data, bad)], arrived)
        self._fault_off(f"stall:{p.name}", t)

    def partition(self, p: ServantProc, direction: str, t: float | None = None,
                  duration_s: float | None = None) -> None:
        """Cut ``p`` off the bus: 'in' (deaf), 'out' (mute) or 'both'."""
        t = self.now if t is None else t
        p.wire(deaf=direction in ("in", "both"), mute=direction in ("out", "both"))
        self._mark(t, p.address, "partition", f"{p.name} {direction}")
        self._fault_for(f"partition:{p.name}", p, t, duration_s, self.heal)

    def heal(self, p: ServantProc, t: float | None = None) -> None:
        t = self.now if t is None else t
        p.wire(deaf=False, mute=False)
        self._mark(t, p.address, "heal", p.name)
        self._fault_off(f"partition:{p.name}", t)

    def bus_faults(self, t: float | None = None, duration_s: float | None = None,
                   **changes: Unpack[BusSettings]) -> None:
        """Change the bus's fault rates, for ``duration_s`` (None: for good).

        Episodes may overlap: the bus is always the base with every running episode's changes applied in
        the order they started, so one ending never undoes (or brings back) another.
        """
        t = self.now if t is None else t
        if duration_s is None:
            self._bus_base.update(changes)
        else:
            episode = BusSettings(**changes)
            self._bus_episodes.append(episode)
            self.queue.push_script(t + duration_s, self._bus_restore, episode)
        self._bus_apply()
        self._mark(t, None, "bus", ", ".join(f"{k}={v}" for k, v in changes.items()))
        self._disturb(t, "fault")

    def replay(self, t: float, window_s: float, hold_s: float, address: int | None = None) -> None:
        """A store-and-forward gateway: it keeps the frames on the wire from ``t`` for ``window_s``, and
        ``hold_s`` after that delivers every one again, in order and back to back, to each port that hears
        it then (only the servant at ``address`` with one): old frames of a master that may have restarted
        since, in one burst (PROTOCOL.md 5.2: a late copy must never raise anything)."""
        buffer: list[tuple[Port, int, bytes]] = []
        self.bus.kept.append(buffer)
        self._mark(t, address, "replay", f"a gateway keeps {window_s:g} s of frames, replayed {hold_s:g} s later")
        self.queue.push_script(t + window_s, self._replay_kept, (buffer, hold_s, address))

    def _replay_kept(self, job: tuple[list[tuple[Port, int, bytes]], float, int | None], t: float) -> None:
        buffer, hold_s, address = job
        bus = self.bus
        bus.kept = [b for b in bus.kept if b is not buffer]
        at = t + hold_s
        to = {q.port for q in self._procs_at(address) if q.port is not None} if address is not None else None
        for port, offset, data in buffer:
            for hearer in bus.hearers(port, offset & 0x3F):
                if to is None or hearer in to:
                    bus.deliver_copy(hearer, offset, data, at)
            at += bus.faults.frame_time
        self._mark(t, address, "replay", f"{len(buffer)} frames kept, replayed at {t + hold_s:.3f} s")
        self._disturb(at, "fault")  # (when the burst is over: at >= t, hold_s is never negative)

    def _bus_restore(self, episode: BusSettings, t: float) -> None:
        self._bus_episodes = [e for e in self._bus_episodes if e is not episode]
        self._bus_apply()
        self._mark(t, None, "bus", "restored" if not self._bus_episodes else "episode over")
        # late copies still on their way are part of the fault: the recovery runs from the last one
        self._disturb(max(t, self.bus.late_until), "fault")

    def _bus_apply(self) -> None:
        merged = BusSettings(**self._bus_base)
        for episode in self._bus_episodes:
            merged.update(episode)
        self.bus.faults = BusFaults(**merged)

    def add_twin(self, address: int, t: float | None = None, serial: int | None = None,
                 duration_s: float | None = None, car: EvProfile | None = None) -> ServantProc:
        """A second servant process configured with the same address (a commissioning mistake)."""
        t = self.now if t is None else t
        base = self._procs_at(address)
        if not base:
            raise ValueError(f"twin: no servant at address {address}")
        cfg = base[0].cfg
        twin_cfg = replace(cfg, serial=serial if serial is not None else (cfg.serial ^ 0x5A5A5A5A) & 0xFFFFFFFF)
        p = self._add_servant(twin_cfg, twin=True, now=t)
        self._mark(t, address, EventKind.TWIN, f"{p.name} serial {twin_cfg.serial:#x}")
        self._fault_on(f"twin:{address}", t)
        if car is not None:
            self.plug(p, car, t)
        if duration_s is not None:
            self.queue.push_script(t + duration_s, self._twin_off, p)
        return p

    def _twin_off(self, p: ServantProc, t: float) -> None:
        self._kill_servant(p, t, 0.0)
        if p.evse.plugged:
            p.evse.unplug(t)
            self._sync(p, t)
        self._mark(t, p.address, EventKind.TWIN_GONE, p.name)
        self._fault_off(f"twin:{p.address}", t)
