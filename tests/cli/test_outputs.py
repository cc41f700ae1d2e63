"""What a long run and a script see: JSON streams that stay JSON, a progress line a person sees, and
captures in every format python-can writes.

Real processes where the terminal or a signal matters (a pty for the
progress line, SIGINT for Ctrl-C); in-process runs otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import can
import pytest

from busshare.cli import main
from tests.support.ptys import read_until_closed

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0  # generous: a shared two-core machine


def busshare(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm"}
    return subprocess.Popen([sys.executable, "-m", "busshare", *args], cwd=ROOT, text=True,  # type: ignore[call-overload]
                            env=env, **kwargs)


# ---------------------------------------------------------------------------------------------- JSON streams


@pytest.mark.parametrize("json_mode", [True, False])
def test_ctrl_c_during_sim_exits_130_and_json_stays_json(json_mode: bool) -> None:
    args = ["sim", "--speed", "20", *(["--json"] if json_mode else [])]
    proc = busshare(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline() + proc.stdout.readline()  # under way: its states at 0 and 10 s are out
    assert first.count("\n") == 2, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in (err if json_mode else rest)
    if not json_mode:
        return
    records = [json.loads(line) for line in (first + rest).splitlines()]  # every line is JSON
    summary = records[-1]
    assert summary["record"] == "summary" and summary["interrupted"] is True
    assert 10 <= summary["duration_s"] < 220 and summary["duration_s"] == round(summary["duration_s"], 3)


def test_sim_json_quiet_prints_only_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--speed", "max", "--json", "--quiet", "--duration", "30"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0])["record"] == "summary"


def test_decode_json_plot_keeps_the_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    log, png = tmp_path / "story.log", tmp_path / "story.png"
    assert main(["sim", "--speed", "max", "--quiet", "--duration", "30", "--log", str(log)]) == 0
    capsys.readouterr()
    frames = len(log.read_text().splitlines())
    assert main(["decode", "--json", "--plot", str(png), str(log)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == frames + 1 and records[-1]["record"] == "summary"
    assert {r["record"] for r in records[:-1]} == {"frame"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    png.unlink()
    assert main(["decode", "--plot", str(png), str(log)]) == 0  # text: the listing too, then the totals
    text = capsys.readouterr().out.splitlines()
    assert len(text) == frames + 1 and png.exists()


# ---------------------------------------------------------------------------------------------- progress


def run_with_stderr_on_a_terminal(*args: str) -> tuple[int, str, str]:
    main_fd, child_fd = pty.openpty()
    proc = busshare(*args, stdout=subprocess.PIPE, stderr=child_fd, stdin=subprocess.DEVNULL,
                    close_fds=True)
    os.close(child_fd)
    seen = read_until_closed(main_fd, WAIT)
    out, _ = proc.communicate(timeout=WAIT)
    os.close(main_fd)
    return proc.returncode, out, seen.decode(errors="replace")


def test_a_quiet_long_run_shows_its_progress_on_a_terminal() -> None:
    code, out, term = run_with_stderr_on_a_terminal("sim", "shortage", "--speed", "max", "--quiet",
                                                    "--duration", "900")
    assert code == 0, term
    assert "simulated 0 of 900 s (0 %)" in term  # drawn at once
    assert "simulated 900 of 900 s (100 %)" in term and "x real time, ETA 0:00" in term  # and at the end
    assert term.rstrip("\r\n").endswith("\r\x1b[K")  # then erased: only the summary stays
    assert out.splitlines()[0].startswith("scenario shortage")  # stdout has the summary alone


def test_no_progress_line_when_stderr_is_not_a_terminal() -> None:
    proc = busshare("sim", "--speed", "max", "--quiet", "--duration", "60", stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0 and err == ""


# ---------------------------------------------------------------------------------------------- --log


FORMATS = [".log", ".log.gz", ".asc", ".asc.gz", ".blf", ".csv", ".csv.gz", ".db", ".trc", ".trc.gz", ".mf4"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, bytes]]:
    """The frames of a short run, as the candump writer has them."""
    path = tmp_path_factory.mktemp("ref") / "ref.log"
    assert main(["sim", "--speed", "max", "--quiet", "--duration", "20", "--log", str(path)]) == 0
    with can.LogReader(str(path)) as reader:
        frames = [(m.arbitration_id, bytes(m.data)) for m in reader]
    assert len(frames) > 100
    return frames


@pytest.mark.parametrize("suffix", FORMATS)
def test_sim_log_writes_every_python_can_format(tmp_path: Path, suffix: str,
                                                 reference: list[tuple[int, bytes]]) -> None:
    if suffix == ".mf4" and importlib.util.find_spec("asammdf") is None:
        pytest.skip("python-can writes .mf4 only with asammdf (pip install 'python-can[mf4]')")
    path = tmp_path / f"run{suffix}"
    assert main(["sim", "--speed", "max", "--quiet", "--duration", "20", "--log", str(path)]) == 0
    with can.LogReader(str(path)) as reader:
        frames = [(m.arbitration_id, bytes(m.data)) for m in reader]
    assert frames == reference


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_sim_log_writes_python_can_s_text_dump(tmp_path: Path, suffix: str,
                                                reference: list[tuple[int, bytes]]) -> None:
    import gzip

    path = tmp_path / f"run{suffix}"
    assert main(["sim", "--speed", "max", "--quiet", "--duration", "20", "--log", str(path)]) == 0
    text = (gzip.open(path, "rt") if suffix.endswith(".gz") else open(path)).read()
    assert len([line for line in text.splitlines() if "ID:" in line]) == len(reference)


def test_mf4_without_asammdf_is_one_clear_line_before_the_run(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    if importlib.util.find_spec("asammdf") is not None:
        pytest.skip("asammdf is installed")
    with pytest.raises(SystemExit) as exit_:  # a usage error, found when the command line is parsed
        main(["sim", "--speed", "max", "--quiet", "--log", str(tmp_path / "x.mf4")])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().splitlines()[-1].endswith("needs asammdf (.mf4): pip install 'python-can[mf4]'")
