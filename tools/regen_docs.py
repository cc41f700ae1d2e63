"""Regenerate every output shown in README.md and docs/*.md from real runs, or check that none drifted.

    python tools/regen_docs.py              # rewrite every shown output that drifted, in place (about a minute)
    python tools/regen_docs.py --force      # rewrite every one from this run, drifted or not
    python tools/regen_docs.py --check      # change nothing; exit 1 with a diff where a block differs
    python tools/regen_docs.py --only MODBUS.md --only sessions   # blocks whose file or recipe matches
    python tools/regen_docs.py --bench      # also re-measure the benchmark figures (many minutes)

`tests/cli/test_docs.py` runs the check for every block, so the docs cannot drift.  A shown output is a
fenced block preceded by a marker comment (or, for a table, everything up to ``<!-- /regen -->``):

``<!-- regen: shell -->``
    The block's ``$ `` lines are commands, run in order by one bash (stdout and stderr together, as a
    terminal shows them) in a scratch directory holding docs/examples/*, the repository's examples/,
    and story.log (``busshare sim --speed max --log story.log``); each command's output follows it.
    ``keep=SPEC`` (every command) or ``keepN=SPEC`` (the N-th) shows an excerpt: SPEC lists line
    ranges, 1-based, negative from the end (``1:5,-14:`` = lines 1-5, then the last 14), and a line
    ``...`` marks each cut.
``<!-- regen: tty COMMAND -->``
    COMMAND on a terminal (a pty, 100x40, TERM=xterm) until it ends; the block is ``$ COMMAND`` and
    the final screen as a terminal shows it (rendered with pyte), ``keep=`` as above.
``<!-- regen: session NAME PART -->``
    One output of a scripted session of real processes (tools/doc_sessions.py: several busshare
    processes on a bus of their own, steps driven by what they print); every block of one session
    comes from one run.
``<!-- regen: table NAME -->``
    A markdown table computed by this module (``TABLES``).
``<!-- regen: bench -->``
    Benchmark figures (``$ python benchmarks/...``): measured only with ``--bench``.

Outputs that wall-clock time makes differ from run to run are compared after a normalisation the
block names with ``norm=``, and only then (deterministic commands, the simulator and stored captures
are compared exactly).  Each one replaces what it matches by a placeholder, in both texts:

``times``   event times (the first column of node and monitor lines, JSON ``"t"``, ``"start_t"``,
            ``"last_heartbeat"``, ``"last_heard"``, an event's ``(t=...`` as Python prints it) and the
            durations measured between events (``after 0.18 s``, ``0.15 s ago``, ``for 1.50 s``,
            ``gap 1.535 s``, JSON ``"heartbeat_age"``, ``"heard_age"``, ``"duration_s"``, pymodbus's
            ``0.000 seconds into read``).
``counts``  frame counters, which count frames over wall-clock time: the numbers in ``status:``
            lines after ``|``, in ``stopped`` lines and records, in a monitor's closing ``-- N frames``
            line, in the RS-485 emulator's counters, and ``"frames"``, ``"frames_in"``, ``"sent"`` of
            JSON ``status`` and ``summary`` records.
``order``   a run of consecutive lines of the same event kind (``learned``, ``grant-acked``, ...) from
            several units at once is compared as a set: the units answer in any order. A run of a master's
            exchange with its units (``confirm``, ``acked``, ``grant``, ``grant-acked``, ``cut``, ``cut-acked``)
            keeps each unit's lines in their order and lets the units interleave: a new master grants each unit
            as its confirm is acked.
``readings`` what a meter measured from a house whose load moves with wall-clock time: the figures
            of a ``MeterReading``'s ``currents_da=(...)`` and ``powers_w=(...)``.
``ptys``    pseudo-terminal numbers (``/dev/pts/N``), which the kernel assigns.
``figures`` (bench blocks only) every number: measurements of this machine at that moment.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = ROOT / "docs" / "examples"
MARKER = re.compile(r"^<!-- regen: (?P<spec>.*?) -->$")
END_TABLE = "<!-- /regen -->"
CMD_SEP = "__regen_command_output_follows__"


@dataclass
class Block:
    """One shown output: the body lines between its fences (or its table lines) in ``path``."""

    path: Path
    line: int  # 0-based index of the marker line
    recipe: str
    args: list[str]
    options: dict[str, str]
    start: int  # first body line (0-based)
    end: int  # one past the last body line
    body: list[str]

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line + 1} {self.recipe} {' '.join(self.args)}".strip()

    @property
    def norms(self) -> list[str]:
        return [n for n in self.options.get("norm", "").split(",") if n]


def parse_marker(spec: str) -> tuple[str, list[str], dict[str, str]]:
    words = shlex.split(spec)
    options = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words[1:] if "=" in w and not w.startswith("-")}
    args = [w for w in words[1:] if not ("=" in w and not w.startswith("-"))]
    return words[0], args, options


def find_blocks(path: Path, text: str | None = None) -> list[Block]:
    lines = (path.read_text() if text is None else text).split("\n")
    blocks = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if m is None:
            continue
        recipe, args, options = parse_marker(m["spec"])
        if recipe == "table":
            end = lines.index(END_TABLE, i + 1)
            blocks.append(Block(path, i, recipe, args, options, i + 1, end, lines[i + 1:end]))
            continue
        fence = i + 1
        if not lines[fence].startswith("```"):
            raise ValueError(f"{path.name}:{i + 1}: a regen marker must be followed by a fenced block")
        close = next(j for j in range(fence + 1, len(lines)) if lines[j].startswith("```"))
        blocks.append(Block(path, i, recipe, args, options, fence + 1, close, lines[fence + 1:close]))
    return blocks


def all_blocks() -> list[Block]:
    return [b for path in DOCS for b in find_blocks(path)]


# ---------------------------------------------------------------------------------------------------
# excerpts and normalisation


def keep(lines: list[str], spec: str | None) -> list[str]:
    """The lines SPEC selects, with ``...`` where lines were left out.

    SPEC: comma-separated 1-based line numbers or inclusive ranges ``A:B``; ``A:`` runs to the end, and a
    negative number counts from the end (``1:5,-14:`` = lines 1-5, then the last 14).
    """
    if not spec:
        return lines
    n = len(lines)

    def index(tok: str) -> int:
        v = int(tok)
        return v - 1 if v > 0 else n + v

    chosen: set[int] = set()
    for part in spec.split(","):
        a, colon, b = part.partition(":")
        first = index(a)
        last = first if not colon else (n - 1 if not b else index(b))
        chosen.update(range(max(first, 0), min(last, n - 1) + 1))
    out: list[str] = []
    prev = -1
    for i in sorted(chosen):
        if i != prev + 1:
            out.append("...")
        out.append(lines[i])
        prev = i
    if prev < n - 1:
        out.append("...")
    return out


_TIME_PATTERNS = [
    re.compile(r"^()\s*-?\d+\.\d{3}(?= )"),  # the first column of node and monitor lines (and its padding)
    re.compile(r'("(?:t|last_heartbeat|last_heard|heartbeat_age|heard_age|start_t|duration_s)": )'
               r'-?\d+(?:\.\d+)?(?:e-?\d+)?'),
    re.compile(r"(\(t=)-?\d+(?:\.\d+)?"),  # an event's repr: Setpoint(t=3095.408288635, ...)
    re.compile(r"((?:after|for|gap|since) )\d+\.\d+(?= s)"),
    re.compile(r"()\d+\.\d+(?= s ago)"),
    re.compile(r"()\d+\.\d+(?= seconds into read)"),  # pymodbus: when a meter's connection closed
]
_COUNTED = re.compile(r"^(?:\s*\S+ status: .*?\|)|(?: stopped(?: \[\d+\])?: )|^-- |^rs485: ")
_JSON_COUNTED = re.compile(r'("(?:frames|frames_in|sent)": )\d+')  # status and summary records


def _times(line: str) -> str:
    for p in _TIME_PATTERNS:
        line = p.sub(lambda m: m.group(1) + "<t>", line)
    return line


def _counts(line: str) -> str:
    if '"event": "stopped"' in line:  # a JSON record: the counters are in its detail
        return re.sub(r'("detail": ")([^"]*)', lambda m: m.group(1) + re.sub(r"\b\d+\b", "<n>", m.group(2)), line)
    if line.startswith('{"record": "status"') or line.startswith('{"record": "summary"'):
        return _JSON_COUNTED.sub(lambda m: m.group(1) + "<n>", line)
    m = _COUNTED.search(line)
    if m is None:
        return line
    head, tail = line[:m.end()], line[m.end():]
    if " status: " in line:  # only the frame counters after the last "|" of a status line
        head, _, tail = line.rpartition("|")
        head += "|"
    return head + re.sub(r"\b\d+\b", "<n>", tail)


def _readings(line: str) -> str:
    return re.sub(r"((?:currents_da|powers_w)=\()([^)]*)",
                  lambda m: m.group(1) + re.sub(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", "<n>", m.group(2)), line)


def _kind(line: str) -> str | None:
    """The event kind of a node line (`  1.234 learned [4]: ...` -> learned), a monitor line's frame
    type (`0.1 2→master ACK ...` -> 2→master ACK without the address), or None."""
    m = re.match(r"^\s*(?:<t>|\d+\.\d{3}) (?:(\S+) \[\d+\]:|\S*?(?:\d+|master|all)→\S*? (\S+))", line)
    if m is None:
        return None
    return m.group(1) or m.group(2)


# a new master's exchange with its units after learning: each unit's lines come in order, the units in any
_EXCHANGE = frozenset(("confirm", "acked", "grant", "grant-acked", "cut", "cut-acked"))


def _unit(line: str) -> int:
    m = re.search(r" \[(\d+)\]:", line)
    return int(m.group(1)) if m else -1


def _order(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        kind = _kind(lines[i])
        j = i + 1
        if kind in _EXCHANGE:
            while j < len(lines) and _kind(lines[j]) in _EXCHANGE:
                j += 1
            out.extend(sorted(lines[i:j], key=_unit))  # (stable: each unit's own order is kept)
            i = j
            continue
        while kind is not None and j < len(lines) and _kind(lines[j]) == kind:
            j += 1
        out.extend(sorted(lines[i:j]))
        i = j
    return out


def normalise(lines: list[str], norms: list[str]) -> list[str]:
    out = list(lines)
    if "times" in norms:
        out = [_times(x) for x in out]
    if "counts" in norms:
        out = [_counts(x) for x in out]
    if "readings" in norms:
        out = [_readings(x) for x in out]
    if "ptys" in norms:
        out = [re.sub(r"/dev/pts/\d+", "/dev/pts/<n>", x) for x in out]
    if "figures" in norms:
        out = [re.sub(r"\d+(?:\.\d+)?", "<n>", x) for x in out]
    if "order" in norms:
        out = _order(out)
    return out


# ---------------------------------------------------------------------------------------------------
# running things


@dataclass
class Scratch:
    """The directory the shown commands run in, and the environment they see."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls) -> Scratch:
        path = Path(tempfile.mkdtemp(prefix="busshare-docs-"))
        for f in EXAMPLES.iterdir():
            shutil.copy(f, path / f.name)
        (path / "examples").symlink_to(ROOT / "examples")
        (path / "benchmarks").symlink_to(ROOT / "benchmarks")
        (path / "dbc").symlink_to(ROOT / "dbc")
        bindir = path / ".bin"
        bindir.mkdir()
        shim = bindir / "busshare"  # this checkout's busshare, with this interpreter, installed or not
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m busshare "$@"\n')
        shim.chmod(0o755)
        python = bindir / "python"  # (a symlink would lose the virtualenv)
        python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        python.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAN_", "BUSSHARE_", "PYTEST"))}
        path_dirs = [str(bindir), str(Path(sys.executable).parent), env.get("PATH", "")]  # the venv's tools too
        env.update(PATH=os.pathsep.join(path_dirs), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
                   TERM="dumb", COLUMNS="100", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8",
                   XDG_STATE_HOME=str(path / ".state"))  # (servants' memory across restarts: not the user's)
        scratch = cls(path, env)
        scratch.bash(["busshare sim --speed max --quiet --log story.log > /dev/null"])
        return scratch

    def bash(self, commands: list[str], timeout: float = 900) -> list[list[str]]:
        """Run ``commands`` in order in one bash; each one's output lines (stdout and stderr as they come)."""
        script = "".join(f"printf '\\n{CMD_SEP}\\n'\n{c}\n" for c in commands)
        r = subprocess.run(["bash", "-c", script], cwd=self.path, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        parts = r.stdout.split(f"\n{CMD_SEP}\n")[1:]
        if len(parts) != len(commands):
            raise RuntimeError(f"bash ended early: {r.stdout[-2000:]}")
        return [p.rstrip("\n").split("\n") if p.strip("\n") else [] for p in parts]

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def shell(block: Block, scratch: Scratch) -> list[str]:
    commands = [line[2:] for line in block.body if line.startswith("$ ")]
    if not commands:
        raise ValueError(f"{block.name}: a shell block needs `$ ` command lines")
    out: list[str] = []
    for i, (cmd, lines) in enumerate(zip(commands, scratch.bash(commands), strict=True), 1):
        out.append(f"$ {cmd}")
        out.extend(keep(lines, block.options.get(f"keep{i}", block.options.get("keep"))))
    return out


def tty(block: Block, scratch: Scratch) -> list[str]:
    """The final screen of a command run on a terminal."""
    import fcntl
    import pty
    import struct
    import termios

    import pyte

    cmd = " ".join(block.args)
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.chdir(scratch.path)
        os.execvpe("bash", ["bash", "-c", cmd], {**scratch.env, "TERM": "xterm"})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    screen = pyte.Screen(100, 40)
    pyte.ByteStream(screen).feed(bytes(data))
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return [f"$ {cmd}", *keep(lines, block.options.get("keep"))]


def modbus_timing_table() -> list[str]:
    from busshare.transport.modbus import registers as mm
    from busshare.transport.modbus import rtu

    out = ["| baud | char | 3.5-char gap | poll transaction | heartbeat broadcast | cycle bound 8 / 32 servants "
           "| heartbeat period | failsafe timeout | status period (8 / 32) | silent after (8 / 32) "
           "| ack timeout (8 / 32) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for baud in (9600, 19200, 115200):
        t8, t32 = mm.modbus_timing(baud, 8), mm.modbus_timing(baud, 32)
        out.append(
            f"| {baud} | {rtu.char_time(baud) * 1000:.3f} ms | {rtu.gap_time(baud) * 1000:.2f} ms "
            f"| {mm.poll_wire_time(baud) * 1000:.1f} ms "
            f"| {mm.broadcast_wire_time(baud) * 1000:.1f} ms "
            f"| {mm.cycle_wire_time(baud, 8) * 1000:.0f} / {mm.cycle_wire_time(baud, 32) * 1000:.0f} ms "
            f"| {t8.heartbeat_period:g} s | {t8.failsafe_timeout:.1f} s "
            f"| {t8.status_period:.1f} / {t32.status_period:.1f} s "
            f"| {t8.servant_silent_after:.1f} / {t32.servant_silent_after:.1f} s "
            f"| {t8.ack_timeout:.1f} / {t32.ack_timeout:.1f} s |")
    return out


def chaos_shapes_table() -> list[str]:
    """How many of the CI seeds hold each shape, with either generator, against the test's floor."""
    from collections import Counter

    from busshare.sim.chaos import CI_SEEDS
    from busshare.sim.chaos import STATED_SHARE
    from busshare.sim.chaos import chaos_scenario
    from busshare.sim.chaos import shapes_in

    counts = {g: Counter[str]() for g in (1, 2)}
    for g, counter in counts.items():
        for seed in CI_SEEDS:
            counter.update(shapes_in(chaos_scenario(seed, generator=g)))
    out = ["| shape | generator 1 | generator 2 | the test's floor |", "|---|---|---|---|"]
    for name, share in STATED_SHARE.items():
        label = f"`{name}`" + {"tight-budget": " (limit 0.8-1.2 x sum of minimums)",
                               "moving-budget": " (a mains meter, meter faults, setpoints)"}.get(name, "")
        out.append(f"| {label} | {counts[1][name]} | {counts[2][name]} | {round(share * len(CI_SEEDS))} |")
    return out


TABLES: dict[str, Callable[[], list[str]]] = {"modbus-timing": modbus_timing_table, "chaos-shapes": chaos_shapes_table}


class Context:
    """What regenerating needs once per run: the scratch directory and each session's outputs.

    A session may also return files (parts named ``file:NAME``, e.g. the RS-485 emulator's capture);
    ``keep_files(name)`` makes them replace docs/examples/NAME (and the scratch copy), so the examples
    that read them show that very run."""

    def __init__(self) -> None:
        self._scratch: Scratch | None = None
        self._sessions: dict[str, dict[str, list[str]]] = {}

    @property
    def scratch(self) -> Scratch:
        if self._scratch is None:
            self._scratch = Scratch.make()
        return self._scratch

    def session(self, name: str) -> dict[str, list[str]]:
        if name not in self._sessions:
            sys.path.insert(0, str(Path(__file__).parent))
            import doc_sessions

            self._sessions[name] = doc_sessions.SESSIONS[name](self.scratch)
        return self._sessions[name]

    def keep_files(self, name: str) -> list[str]:
        """Store the files session ``name`` left; their names."""
        names = []
        for part, lines in self.session(name).items():
            if part.startswith("file:"):
                text = "\n".join(lines) + "\n"
                (EXAMPLES / part[5:]).write_text(text)
                (self.scratch.path / part[5:]).write_text(text)
                names.append(part[5:])
        return names

    def forget_session(self, name: str) -> None:
        """The next ``session(name)`` runs it again."""
        self._sessions.pop(name, None)

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()


def regenerate(block: Block, ctx: Context) -> list[str]:
    """The block's body as a fresh run gives it."""
    if block.recipe in ("shell", "bench"):
        return shell(block, ctx.scratch)
    if block.recipe == "tty":
        return tty(block, ctx.scratch)
    if block.recipe == "table":
        return TABLES[block.args[0]]()
    if block.recipe == "session":
        name, part = block.args
        lines = ctx.session(name)[part]
        return keep(lines, block.options.get("keep"))
    raise ValueError(f"{block.name}: unknown recipe {block.recipe!r}")


def drift(block: Block, fresh: list[str]) -> str:
    """'' when the shown block matches the fresh output (after the block's normalisation), else a diff."""
    norms = block.norms + (["figures"] if block.recipe == "bench" else [])
    shown, now = normalise(block.body, norms), normalise(fresh, norms)
    if shown == now:
        return ""
    return "\n".join(difflib.unified_diff(shown, now, f"{block.name} (shown)", "a fresh run", lineterm=""))


def rewrite(blocks: list[Block], fresh: dict[int, list[str]]) -> None:
    """Put fresh bodies into the files (blocks of one file replaced from the last, so indexes hold)."""
    by_path: dict[Path, list[Block]] = {}
    for b in blocks:
        by_path.setdefault(b.path, []).append(b)
    for path, bs in by_path.items():
        lines = path.read_text().split("\n")
        for b in sorted(bs, key=lambda x: x.start, reverse=True):
            if id(b) in fresh:
                lines[b.start:b.end] = fresh[id(b)]
        path.write_text("\n".join(lines))


def selected(blocks: list[Block], only: list[str], bench: bool) -> Iterator[Block]:
    for b in blocks:
        if b.recipe == "bench" and not bench:
            continue
        if only and not any(o in b.name or o in b.path.name or (o == "sessions" and b.recipe == "session")
                            for o in only):
            continue
        yield b


def main(argv: list[str] | None = None) -> int:
    import doc_sessions  # beside this file (as in Context.session)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 with a diff where a block drifted")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="only blocks whose file name or recipe contains TEXT ('sessions': the multi-process ones)")
    ap.add_argument("--bench", action="store_true", help="also re-measure the benchmark figures (many minutes)")
    ap.add_argument("--force", action="store_true",
                    help="rewrite every block from this run, even those equal after normalisation")
    args = ap.parse_args(argv)
    blocks = list(selected(all_blocks(), args.only, args.bench))
    ctx = Context()
    fresh: dict[int, list[str]] = {}
    drifted: list[Block] = []
    skipped: list[str] = []  # blocks whose tool (mbpoll, mosquitto) is not installed here: said, not a crash
    try:
        if not args.check:
            # Sessions first: a session whose shown outputs drifted replaces them all, and the files it
            # left (a capture), and so every block that reads those files: one run, shown consistently.
            # An unchanged one (after normalisation) keeps the docs as they are: no churn.
            for name in dict.fromkeys(b.args[0] for b in blocks if b.recipe == "session"):
                print(f"session {name} ...", file=sys.stderr, flush=True)
                own = [b for b in blocks if b.recipe == "session" and b.args[0] == name]
                try:
                    news = {id(b): regenerate(b, ctx) for b in own}
                except doc_sessions.MissingTool as exc:
                    skipped.append(f"session {name}: {exc}")
                    blocks = [b for b in blocks if b not in own]
                    continue
                if args.force or any(drift(b, news[id(b)]) for b in own):
                    drifted += [b for b in own if drift(b, news[id(b)])]
                    fresh.update(news)
                    files = ctx.keep_files(name)
                    blocks += [b for b in all_blocks() if b.recipe == "shell" and b not in blocks
                               and any(f in "\n".join(b.body) for f in files)]
        for b in blocks:
            if b.recipe == "session" and not args.check:
                continue
            print(f"{b.name} ...", file=sys.stderr, flush=True)
            try:
                new = regenerate(b, ctx)
            except doc_sessions.MissingTool as exc:
                skipped.append(f"{b.name}: {exc}")
                continue
            diff = drift(b, new)
            if diff:
                drifted.append(b)
                if args.check:
                    print(diff)
            if (diff or args.force) and new != b.body:
                fresh[id(b)] = new
    finally:
        ctx.close()
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if args.check:
        print(f"{len(blocks)} blocks checked, {len(drifted)} drifted", file=sys.stderr)
        return 1 if drifted else 0
    rewrite(blocks, fresh)
    print(f"{len(blocks)} blocks regenerated, {len(fresh)} rewritten ({len(drifted)} had drifted)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
