"""`busshare sim`: the default story end to end, its outputs (live view, JSON, capture, plot) and its summary."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import pyte
import pytest

from tests.support.ptys import read_into
from tests.support.ptys import read_until_closed

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "busshare", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:  # type: ignore[type-arg]
    """The default job, run once: JSON lines, a candump capture and a plot."""
    d = tmp_path_factory.mktemp("sim")
    log, png = d / "story.log", d / "story.png"
    r = cli("sim", "--speed", "max", "--json", "--log", str(log), "--plot", str(png))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert all(line["record"] == "state" for line in lines[:-1]) and lines[-1]["record"] == "summary"
    return {"states": lines[:-1], "summary": lines[-1]}, log, png


def test_the_story_ends_with_a_clean_summary(story) -> None:  # type: ignore[no-untyped-def]
    s = story[0]["summary"]
    assert s["violations"] == []
    assert s["scenario"] == "story" and s["duration_s"] == pytest.approx(220.0)
    assert s["peak_offered_a"] <= s["limit_a"] == 64.0
    assert s["peak_drawn_a"] <= s["limit_a"]
    assert set(s["energy_kwh"]) == {"s1", "s2", "s3", "s4"}
    assert s["energy_kwh"]["s1"] > 0 and s["energy_kwh"]["s2"] > 0
    assert s["failsafe_episodes"] >= 1  # the story ends with the master falling silent


def test_the_periodic_states_never_offer_more_than_the_limit(story) -> None:  # type: ignore[no-untyped-def]
    states = story[0]["states"]
    assert len(states) >= 20
    for st in states:
        assert st["total_offered_a"] <= st["limit_a"]
        assert [e["address"] for e in st["evses"]] == [1, 2, 3, 4]
        assert all(e["pilot"] in "ABCDEF" for e in st["evses"])
    assert states[0]["master"] == "up" and states[-1]["master"] == "down"


def test_the_capture_decodes_to_the_same_installation(story) -> None:  # type: ignore[no-untyped-def]
    _, log, _ = story
    r = cli("decode", "--summary", "--json", str(log))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert [s["address"] for s in summary["servants"]] == [1, 2, 3, 4]
    assert summary["limit_a"] == 64.0
    assert summary["over_limit"] == [] and summary["cuts_never_acked"] == []
    assert summary["e2e_errors"] == {} and summary["duplicate_addresses"] == [] and summary["second_master"] == []
    assert {e["address"] for e in summary["failsafe_entries"]} == {1, 2, 3, 4}  # master silent at the end
    assert summary["heartbeat_gaps"]  # and the decoder sees it go


def test_the_plot_is_a_png(story) -> None:  # type: ignore[no-untyped-def]
    assert story[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("suffix", [".asc", ".blf"])
def test_other_capture_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    r = cli("sim", "--speed", "max", "--quiet", "--duration", "30", "--log", str(path))
    assert r.returncode == 0, r.stderr
    totals = json.loads(cli("decode", "--json", str(path)).stdout.splitlines()[-1])
    assert totals["records"] > 100 and totals["bad"] == 0


def test_plain_output_without_a_terminal_is_periodic_lines_then_the_summary() -> None:
    r = cli("sim", "--speed", "max", "--duration", "40")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    periodic = [float(line[2:].split()[0]) for line in lines if line.startswith("t=")]
    assert [round(t) for t in periodic] == [0, 10, 20, 30, 40]  # one line per 10 simulated seconds
    assert "\x1b[" not in r.stdout
    assert any(line.startswith("invariant violations: 0") for line in lines)


def test_same_seed_same_run_and_duration_is_honoured(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    for path in (a, b):
        assert cli("sim", "--speed", "max", "--quiet", "--seed", "7", "--duration", "50", "--log", str(path)).returncode == 0
    assert a.read_text() == b.read_text()
    s = json.loads(cli("sim", "--speed", "max", "--json", "--duration", "15").stdout.splitlines()[-1])
    assert s["duration_s"] == pytest.approx(15.0)


def test_live_view_redraws_in_place_on_a_terminal() -> None:
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "busshare", "sim", "--speed", "200", "--duration", "20"],
                            stdin=child_fd, stdout=child_fd, stderr=child_fd, cwd=ROOT, close_fds=True,
                            env={**os.environ, "TERM": "xterm"})
    os.close(child_fd)
    out = read_until_closed(main_fd)
    proc.wait(timeout=60)
    os.close(main_fd)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    assert "\x1b[" in text and "F" in text  # cursor moved back up over the previous frame
    assert text.count("total ") >= 2  # drawn more than once
    assert "pilot" in text and "limit 64.0 A" in text
    assert "invariant violations: 0" in text


def _on_a_terminal(args: list[str], columns: int = 100, rows: int = 40) -> tuple[int, int]:
    """Start `busshare ARGS` on a new pty that is its controlling terminal (so ^C is a real Ctrl-C)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "busshare", *args], {**os.environ, "TERM": "xterm"})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return pid, fd


def _read_until(fd: int, done: Callable[[bytes], bool], out: bytearray, timeout: float = 120) -> None:
    if not read_into(out, fd, done, timeout):
        raise AssertionError(f"no output for {timeout} s; so far:\n{out[-2000:].decode(errors='replace')}")


def test_ctrl_c_on_a_terminal_leaves_one_clean_final_view_and_exits_130() -> None:
    """The final redraw lands exactly over the live view (the ^C echo and the notice go below it)."""
    pid, fd = _on_a_terminal(["sim", "--speed", "20"])
    out = bytearray()
    try:
        _read_until(fd, lambda b: b.count(b"total ") >= 5, out)  # a few frames drawn in place
        os.write(fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
        _read_until(fd, lambda b: False, out)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    screen = pyte.Screen(100, 40)
    pyte.ByteStream(screen).feed(bytes(out))
    lines = [line.rstrip() for line in screen.display if line.strip()]
    text = "\n".join(lines)
    assert os.waitstatus_to_exitcode(status) == 130, text
    header = [i for i, line in enumerate(lines) if line.startswith("t = ")]
    assert len(header) == 1, text  # one view, nothing left of an earlier frame above or below it
    view = lines[header[0]:header[0] + 6]
    assert [line.split()[0] for line in view[1:]] == ["s1", "s2", "s3", "s4", "total"], text
    assert sum("total " in line for line in lines) == 1, text
    assert lines[header[0] + 6].startswith("interrupted at ") and lines[header[0] + 6].endswith(": summary so far"), text
    assert lines[header[0] + 7].startswith("scenario story, seed 1: "), text


@pytest.mark.parametrize("args,needle", [
    (["--speed", "0"], "speed"),
    (["--speed", "fast"], "speed"),
    (["no-such-scenario"], "no-such-scenario"),
    (["--log", "capture.xyz"], "--log"),
    (["--log", "capture.blf.gz"], "--log"),
    (["--duration", "-1"], "duration"),
])
def test_user_errors_are_one_line(args: list[str], needle: str) -> None:
    r = cli("sim", "--speed", "max", *args) if "--speed" not in args else cli("sim", *args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("busshare sim: ")]  # (a usage error: the usage first)
    assert len(err) == 1 and needle in err[0] and r.stderr.endswith(err[0] + "\n"), r.stderr


def test_a_scenario_file(tmp_path: Path) -> None:
    text = (ROOT / "busshare" / "sim" / "scenarios" / "story.toml").read_text()
    path = tmp_path / "mine.toml"
    path.write_text(text.replace("duration_s = 220.0", "duration_s = 30.0"))
    s = json.loads(cli("sim", str(path), "--speed", "max", "--json").stdout.splitlines()[-1])
    assert s["duration_s"] == pytest.approx(30.0) and s["violations"] == []


@pytest.fixture(scope="module")
def mains(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:  # type: ignore[type-arg]
    """``busshare sim mains``, run once: JSON lines and a plot."""
    png = tmp_path_factory.mktemp("mains") / "mains.svg"
    r = cli("sim", "mains", "--speed", "max", "--json", "--plot", str(png))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()], png


def test_sim_mains_summary_adds_the_budget_and_the_site(mains) -> None:  # type: ignore[no-untyped-def]
    s = mains[0][-1]
    assert s["record"] == "summary" and s["scenario"] == "mains" and s["violations"] == []
    b, site = s["budget"], s["site"]
    assert set(b) == {"changes", "lowest_a", "fallbacks", "longest_over_budget_s", "bound_s"}
    assert set(site) == {"main_limit_a", "peak_site_a", "over_main_s"}
    assert b["changes"] >= 10 and b["lowest_a"] == 12.0 and b["fallbacks"] >= 1  # the drop, the meter outage
    assert 0 < b["longest_over_budget_s"] <= b["bound_s"] == 6.05
    assert site["main_limit_a"] == 63.0 and site["peak_site_a"] > 63.0 and 0 < site["over_main_s"] < 10
    # the state records show the effective limit: the fallback first, the demand-response drop later
    limits = {st["t"]: st["limit_a"] for st in mains[0][:-1]}
    assert limits[0.0] == 24.0 and limits[500.0] == 12.0 and max(limits.values()) == 48.0


def test_sim_mains_plot_shows_the_site_and_the_budget(mains) -> None:  # type: ignore[no-untyped-def]
    svg = mains[1].read_text()
    # the effective budget in the total; the site panel: house, each EV stacked on it, the main limit
    for gid in ("budget", "house", "site-ev:1", "site-ev:4", "main-limit"):
        assert f'id="{gid}"' in svg, gid
    # the events marked: the house steps, the demand response, the meter outage (a span), the fallback
    for mark in ("mark:house:bus:150.000", "mark:setpoint:bus:420.", "mark:meter-fault:bus:720.000-760.000",
                 "mark:budget-fallback:bus:72"):
        assert f'id="{mark}' in svg, mark


def test_a_scenario_without_a_budget_has_no_budget_keys(story) -> None:  # type: ignore[no-untyped-def]
    assert "budget" not in story[0]["summary"] and "site" not in story[0]["summary"]
