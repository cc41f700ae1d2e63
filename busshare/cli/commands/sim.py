"""``busshare sim [SCENARIO]``: a whole installation in virtual time, shown live, ending with its summary.

The simulator (``busshare.sim``) never sleeps; this command paces it against
the wall clock (``--speed``), draws the live view from its per-step hook, and
writes the capture and the plot afterwards.  Exit 0 when no invariant broke.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Any
from typing import TextIO

from ...core.problems import Invalid
from ...errors import UserError
from ...report import progress
from ...report.records import RecordKind
from ...report.summaries import sim_summary
from . import _options as opt
from . import command_parser
from ._common import add_time_argument
from ._signals import sigterm_as_interrupt
from ._stdout import silence

DEFAULT_SPEED = 50.0  # the 220 s story takes about 4 s
FRAME_S = 0.1  # live view refresh, wall-clock seconds
PLAIN_EVERY_S = 10.0  # without a terminal: one line per this much simulated time
PROGRESS_EVERY_STEPS = 256  # the progress line looks at the wall clock this seldom (steps are cheap)
NO_GZIP = (".blf", ".db", ".mf4")  # binary formats python-can cannot write through gzip


def add_parser(subparsers: Any) -> None:
    p = command_parser(
        subparsers, "sim",
        "Run a master, its servants and simulated cars on a simulated CAN bus in virtual time, "
        "show each EVSE live, and end with the summary. SCENARIO is a built-in name or a .toml file.",
    )
    p.add_argument("scenario", nargs="?", default=None, metavar="SCENARIO", help="built-in name or .toml (default story)")
    p.add_argument("--scenario", dest="scenario_opt", default=None, help=argparse.SUPPRESS)
    p.add_argument("--speed", type=opt.speed, default=DEFAULT_SPEED,
                   help=f"simulated seconds per wall second: 1 = real time, max = as fast as possible "
                        f"(default {DEFAULT_SPEED:g})")
    p.add_argument("--seed", type=opt.integer(), default=None, help="random seed (default: the scenario's)")
    p.add_argument("--duration", type=opt.duration, default=None, metavar="S",
                   help="simulated seconds (default: the scenario's)")
    p.add_argument("--json", action="store_true",
                   help="JSON lines: a state record every 10 simulated seconds, then the summary (docs/JSON.md)")
    add_time_argument(p, absolute="the simulated clock", relative="since the start",
                      note="the simulated clock starts at 0, so both are the same")
    p.add_argument("--log", type=opt.option(_log_file, "file"), metavar="FILE",
                   help="write the bus traffic in any format python-can writes, from the extension: .log (candump), "
                   ".asc, .blf, .csv, .db, .trc, .txt, .mf4 (needs asammdf), and .log.gz, .asc.gz, .csv.gz, "
                   ".trc.gz, .txt.gz")
    p.add_argument("--plot", type=opt.plot_file, metavar="FILE.png",
                   help="timeline of each EVSE's offered and drawn current (.png, .svg or .pdf)")
    p.add_argument("--quiet", action="store_true",
                   help="no live view and no state records, only the summary (a terminal still shows a progress "
                   "line on stderr while it runs)")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------
# the live view


def evse_states(sim: Any) -> list[dict[str, Any]]:
    """What each EVSE does now, from the simulator's physical model."""
    out = []
    for p in sim.servants:
        ev = p.evse
        out.append({
            "evse": p.name, "address": p.address, "alive": bool(p.alive), "pilot": ev.pilot().name,
            "offered_a": ev.offer_da / 10, "drawn_a": ev.draw_da / 10,
            "failsafe": bool(getattr(p, "in_failsafe", False)),
        })
    return out


def state_record(sim: Any) -> dict[str, Any]:
    evses = evse_states(sim)
    budget = getattr(sim, "budget_run", None)
    limit = sim.config.limit_da if budget is None or budget.limit_da is None else budget.limit_da
    return {
        "t": round(sim.now, 3),
        "limit_a": limit / 10,  # the effective limit, with a moving budget
        "total_offered_a": round(sum(e["offered_a"] for e in evses), 1),
        "total_drawn_a": round(sum(e["drawn_a"] for e in evses), 1),
        "master": "up" if any(m.alive for m in sim.masters) else "down",
        "evses": evses,
    }


def _bar(value: float, limit: float, width: int) -> str:
    filled = 0 if limit <= 0 else min(width, round(width * value / limit))
    return "#" * filled + "." * (width - filled)


def render(rec: dict[str, Any], width: int = 80) -> list[str]:
    """The live view as lines: one per EVSE, then the total against the limit."""
    limit = rec["limit_a"]
    bar_w = max(10, min(40, width - 52))
    lines = [f"t = {rec['t']:8.1f} s   master {rec['master']:<4}   limit {limit:.1f} A"]
    for e in rec["evses"]:
        flags = (" failsafe" if e["failsafe"] else "") + ("" if e["alive"] else " down")
        lines.append(f"  {e['evse']:<4} pilot {e['pilot']}  offered {e['offered_a']:5.1f} A  drawn "
                     f"{e['drawn_a']:5.1f} A  {_bar(e['offered_a'], limit, bar_w)}{flags}")
    over = "  OVER" if rec["total_offered_a"] > limit else ""
    lines.append(f"  total       offered {rec['total_offered_a']:5.1f} A  drawn {rec['total_drawn_a']:5.1f} A"
                 f"  {_bar(rec['total_offered_a'], limit, bar_w)} / {limit:.1f} A{over}")
    return lines


def plain_line(rec: dict[str, Any]) -> str:
    parts = " | ".join(f"{e['address']}: {e['pilot']} {e['offered_a']:.1f}/{e['drawn_a']:.1f}"
                       + ("!" if e["failsafe"] else "") for e in rec["evses"])
    return (f"t={rec['t']:7.1f} s  offered {rec['total_offered_a']:.1f} A drawn {rec['total_drawn_a']:.1f} A"
            f" / limit {rec['limit_a']:.1f} A  master {rec['master']}  [{parts}]")


class StdoutClosed(BaseException):
    """stdout cannot be written any more mid-run: its reader went away (``| head``), or it failed (a full disk).
    A BaseException, as KeyboardInterrupt is: the simulator reports an Exception from its step hook as a node
    crash (an invariant violation), and this is nobody's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class LiveView:
    """Paces the simulation and shows it: redrawn in place on a terminal, periodic lines otherwise,
    and a progress line on stderr when that is a terminal with nothing else drawn on it."""

    def __init__(self, out: TextIO, speed: float, mode: str, bar: progress.Progress | None = None) -> None:
        self.out = out
        self.speed = speed
        self.mode = mode  # tty | plain | json | none
        self.bar = bar
        self.start = time.monotonic()
        self.next_draw = 0.0
        self.next_plain = 0.0
        self.drawn_lines = 0
        self.width = shutil.get_terminal_size((100, 20)).columns

    def __call__(self, sim: Any) -> None:
        try:
            self.show(sim)
        except OSError as exc:
            silence(self.out)
            raise StdoutClosed(exc) from None

    def show(self, sim: Any) -> None:
        now = sim.now
        if self.bar is not None and sim.steps % PROGRESS_EVERY_STEPS == 1:
            self.bar.update(now)
        if self.mode == "tty":
            wall = time.monotonic()
            if wall >= self.next_draw:
                self.next_draw = wall + FRAME_S
                self.draw(sim)
        if self.speed != float("inf"):
            ahead = now / self.speed - (time.monotonic() - self.start)
            if ahead > 0.002:  # the simulation is ahead of the wall clock: wait for it
                time.sleep(ahead)
        if self.mode in ("plain", "json") and now >= self.next_plain:
            self.next_plain = (now // PLAIN_EVERY_S + 1) * PLAIN_EVERY_S
            rec = state_record(sim)
            self.out.write((json.dumps({"record": RecordKind.STATE.value, **rec}) if self.mode == "json"
                            else plain_line(rec)) + "\n")

    def draw(self, sim: Any) -> None:
        if self.mode != "tty":
            return
        lines = render(state_record(sim), self.width)
        up = f"\x1b[{self.drawn_lines}F" if self.drawn_lines else ""
        self.out.write(up + "".join(f"{line}\x1b[K\n" for line in lines))
        self.out.flush()
        self.drawn_lines = len(lines)


# ---------------------------------------------------------------------------
# outputs


def _log_file(text: str) -> str:
    """``--log``: a format python-can writes (named by the extension), at a path that can be written."""
    problem = log_format_problem(text)
    if problem is not None:
        raise Invalid(problem)
    return opt.writable(text)


def log_format_problem(path: str) -> str | None:
    """Why python-can cannot write a capture named ``path`` (the extension names the format), or None."""
    import importlib.util
    from pathlib import PurePath

    from can.io.logger import MESSAGE_WRITERS

    suffixes = [x.lower() for x in PurePath(path).suffixes]
    known = ", ".join(sorted(MESSAGE_WRITERS))
    if not suffixes:
        return f"has no extension to name the format: use {known}, or a text one + .gz"
    fmt = suffixes[-1]
    if fmt == ".gz":
        fmt = suffixes[-2] if len(suffixes) == 2 else ""
        if fmt in NO_GZIP:
            return f"cannot be compressed by python-can ({fmt} is binary): write {PurePath(path).stem} instead"
        if fmt not in MESSAGE_WRITERS:
            return f"is not a compressed capture: use FILE.FORMAT.gz with one of {known} (no other dots)"
    elif fmt not in MESSAGE_WRITERS:
        return f"is not a capture file name: python-can writes {known} (and their .gz), not {fmt}"
    if fmt == ".mf4" and importlib.util.find_spec("asammdf") is None:
        return "needs asammdf (.mf4): pip install 'python-can[mf4]'"
    return None


def write_capture(path: str, capture: list[tuple[float, int, bytes]], base: int = 0) -> None:
    """The bus traffic through python-can's writers (format from the extension, compressed for .gz)."""
    import can

    problem = log_format_problem(path)
    if problem is not None:
        raise UserError(f"--log {path} {problem}")
    try:
        with can.Logger(path) as logger:
            for t, offset, data in capture:
                logger.on_message_received(can.Message(timestamp=t, arbitration_id=base + offset,
                                                       is_extended_id=False, data=data, channel="vcan0"))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def summary_dict(summary: Any) -> dict[str, Any]:
    """The simulator's summary with currents in A (``x_da`` becomes ``x_a``, in place)."""
    d: dict[str, Any] = {}
    for key, value in dataclasses.asdict(summary).items():
        if key == "budget":
            continue
        if key.endswith("_da"):
            d[key[:-3] + "_a"] = value / 10
        else:
            d[key] = value
    d["violations"] = [str(v) for v in summary.violations]
    b = getattr(summary, "budget", None)
    if b is not None:  # a run with a moving budget (docs/JSON.md): how it moved, and the main service
        d["budget"] = {"changes": b.changes, "lowest_a": b.lowest_da / 10, "fallbacks": b.fallbacks,
                       "longest_over_budget_s": b.longest_over_budget_s, "bound_s": b.bound_s}
        if b.main_limit_da is not None:
            d["site"] = {"main_limit_a": b.main_limit_da / 10, "peak_site_a": b.peak_site_da / 10,
                         "over_main_s": b.over_main_s}
    return d


def say(stream: TextIO, text: str, failed: list[OSError]) -> None:
    """Write what the user may no longer read (``| head``, a full disk): a stdout that fails loses the text (its
    error is kept in ``failed``), never the files written after it."""
    try:
        stream.write(text)
        stream.flush()
    except OSError as exc:
        silence(stream)
        failed.append(exc)


def output_mode(args: argparse.Namespace, out: TextIO) -> str:
    """What stdout shows while the simulation runs: tty (redrawn), plain (lines), json (records) or none."""
    if args.quiet:
        return "none"
    if args.json:
        return "json"
    if out.isatty() and os.environ.get("TERM") != "dumb":
        return "tty"
    return "plain"


def run(args: argparse.Namespace) -> int:
    from ...sim.failure import SimulationFailed
    from ...sim.runner import Simulation
    from ...sim.scenario import load_scenario

    speed = args.speed
    name = args.scenario or args.scenario_opt or "story"
    scenario = load_scenario(name)  # a ScenarioError names the file and the key
    if args.duration is not None:
        scenario = dataclasses.replace(scenario, duration_s=args.duration)
    out, err = sys.stdout, sys.stderr
    mode = output_mode(args, out)
    # a progress line on stderr when it is a terminal and nothing else is drawn there while the run lasts
    bar = None
    if progress.wanted(err) and (mode == "none" or not (mode == "tty" or out.isatty())):
        bar = progress.Progress(err, scenario.duration_s)
    view = LiveView(out, speed, mode, bar)
    paced = mode != "none" or speed != float("inf") or bar is not None
    sim = Simulation(scenario, args.seed, record=bool(args.log or args.plot), stop_on_violation=True,
                     on_step=view if paced else None)
    notice = err if args.json else out  # stdout stays JSON lines with --json
    failure = None
    interrupted = False
    closed_at: float | None = None
    failed: list[OSError] = []  # what writing stdout raised (the first): a closed pipe is no error, a full disk is
    try:
        with sigterm_as_interrupt():
            sim.run_until(scenario.duration_s)
    except SimulationFailed as exc:  # a violation the simulator could not continue past
        failure = str(exc).splitlines()[0]
    except KeyboardInterrupt:
        interrupted = True
    except StdoutClosed as exc:  # like the end of the run: nobody reads the rest, the files asked for are still written
        closed_at = sim.now
        failed.append(exc.error)
    if bar is not None:
        bar.close(sim.now)
    if closed_at is not None and (args.log or args.plot):
        files = " and ".join(f for f in (args.log, args.plot) if f)
        how = "closed" if isinstance(failed[0], BrokenPipeError) else "failed"
        err.write(f"busshare sim: stdout {how} at {closed_at:.1f} s: the run stopped there; {files}: what ran\n")
    if mode == "tty" and closed_at is None:
        view.draw(sim)  # over the live view: the cursor is still on the line below it (where ^C echoed)
    if failure is not None:
        say(notice, failure + "\n", failed)
    if interrupted:  # (on a terminal the ^C echo is on this line: write over it)
        say(notice, ("\r\x1b[K" if mode == "tty" else "\n") + f"interrupted at {sim.now:.1f} s: summary so far\n", failed)
    result = sim.result()
    # the summary first: a file that cannot be written after a long run (a full disk) loses nothing else
    if args.json:
        record = sim_summary(summary_dict(result.summary), result.summary.sim_seconds, interrupted)
        say(out, json.dumps(record) + "\n", failed)
    else:
        say(out, result.summary.text() + "\n", failed)
    if args.log:
        write_capture(args.log, result.capture)
        if not args.json:
            say(out, f"capture: {len(result.capture)} frames written to {args.log}\n", failed)
    if args.plot:
        from ...report.plot import plot_timeline

        plot_timeline(result.timeline, args.plot, title=f"busshare sim {scenario.name} (seed {sim.seed})",
                      t_end=result.summary.sim_seconds)
        if not args.json:
            say(out, f"plot: {args.plot}\n", failed)
    if failed and not isinstance(failed[0], BrokenPipeError):
        raise failed[0]  # (a full disk: one line, exit 2, once the files are written)
    if result.summary.violations:
        return 1
    return 130 if interrupted else 0  # like any command stopped by SIGINT: the run is not complete
