"""Bad input through every command that reads it: one clear line, never a traceback, nothing opened first.

Issue 11, section 3.  The same kind of input goes through each of its readers:
a site file through check-config, master, servant, sim (a scenario's
[installation]) and the Modbus master and servant; a number on the command
line through every option that takes one.  A usage error prints the usage of
the command that got it, and names the option and the value as typed.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from busshare.cli import main
from busshare.cli.commands import SUMMARIES
from busshare.errors import UserError
from busshare.transport.modbus.servant import open_serial
from tests.support.site_files import site_toml

ROOT = Path(__file__).resolve().parents[2]

GOOD_SITE = "[site]\nbreaker_a = 80\n\n[[servant]]\naddress = 1\nmax_a = 32\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``busshare ARGV`` in this process: (exit status, stdout, stderr); a traceback fails the test by itself."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------
# a site file, through every command that reads one


SITE_CASES = {
    "huge breaker": ("[site]\nbreaker_a = 1e308\n[[servant]]\naddress = 1\nmax_a = 32\n",
                     "site.breaker_a: 1e+308 must be a current above 0 and at most 10000 A"),
    "nan breaker": ("[site]\nbreaker_a = nan\n[[servant]]\naddress = 1\nmax_a = 32\n",
                    "site.breaker_a: nan is not a finite current"),
    "negative breaker": ("[site]\nbreaker_a = -80\n[[servant]]\naddress = 1\nmax_a = 32\n",
                         "site.breaker_a: -80 must be a current above 0 and at most 10000 A"),
    "negative min": ("[site]\nbreaker_a = 80\n[[servant]]\naddress = 1\nmax_a = 32\nmin_a = -6\n",
                     "servant[0].min_a: -6 is below 6 A"),
    "huge timing": ("[site]\nbreaker_a = 80\n[timing]\nfailsafe_timeout = 1e308\n[[servant]]\naddress = 1\nmax_a = 32\n",
                    "timing.failsafe_timeout: 1e+308 must be a number of seconds 0.001-86400"),
    "duplicate serial": ("[site]\nbreaker_a = 80\n[[servant]]\naddress = 1\nmax_a = 32\nserial = 7\n"
                         "[[servant]]\naddress = 2\nmax_a = 32\nserial = 7\n",
                         "servant[1].serial: 7 is also the serial of servant[0]"),
    "empty": ("", "no servants"),
    "bool address": ("[site]\nbreaker_a = 80\n[[servant]]\naddress = true\nmax_a = 32\n",
                     "servant[0].address: true is not an integer"),
    "fallback under the failsafes": (GOOD_SITE + "[budget]\nfallback_a = 3\n",
                                     "budget.fallback_a: 3 is below the servants' standalone failsafe currents"),
    "nan margin": (GOOD_SITE + "[budget]\nfallback_a = 6\nmargin_a = nan\n", "budget.margin_a: nan is not a finite current"),
    "meter port": (GOOD_SITE + '[budget]\nmain_limit_a = 80\nfallback_a = 6\n[budget.meter]\nkind = "sdm630"\n'
                   'tcp = "meter:99999"\n', 'budget.meter.tcp: "meter:99999" must have a port 1-65535'),
    "mqtt typo": (GOOD_SITE + '[budget]\nfallback_a = 6\n[budget.mqtt]\nbroker = "h"\nkeepalive = 30\n',
                  "budget.mqtt.keepalive: unknown key"),
    "site id": ('[site]\nid = "a/b"\n' + GOOD_SITE[len("[site]\n"):], "site.id: \"a/b\" contains '/'"),
}


def site_readers(path: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Every command that reads a site file, as argv (none of them gets as far as a bus or a port)."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text("duration_s = 10\n[installation]\n" + "".join(
        f"[installation.{line[1:-1]}]\n" if line.startswith("[") and not line.startswith("[[") else
        f"[[installation.{line[2:-2]}]]\n" if line.startswith("[[") else line + "\n"
        for line in path.read_bytes().decode(errors="replace").splitlines()))
    return {
        "check-config": ["check-config", str(path)],
        "master": ["master", "--config", str(path), "-i", "virtual"],
        "servant": ["servant", "--config", str(path), "--address", "1", "-i", "virtual"],
        "sim": ["sim", str(scenario), "--speed", "max", "--quiet"],
        "modbus master": ["master", "--config", str(path), "--modbus", "/nonexistent/tty"],
        "modbus servant": ["servant", "--config", str(path), "--address", "1", "--modbus", "/nonexistent/tty"],
    }


@pytest.mark.parametrize("case", list(SITE_CASES))
def test_a_bad_site_file_is_one_line_naming_file_and_key_in_every_command(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str) -> None:
    text, expected = SITE_CASES[case]
    path = tmp_path / "site.toml"
    path.write_text(text)
    for reader, argv in site_readers(path, tmp_path).items():
        code, out, err = run(capsys, *argv)
        if reader == "check-config":  # lists the problems on stdout, exit 1
            assert code == 1 and err == "", (reader, err)
            assert f"{path}: " in out and expected in out, (reader, out)
        else:
            assert code == 2 and out == "", (reader, out)
            assert err.count("\n") == 1, (reader, err)
            where = "scenario.toml" if reader == "sim" else str(path)
            assert where in err and expected in err, (reader, err)


@pytest.mark.parametrize("example", ["site.toml", "site-mains.toml"])
def test_a_site_file_with_or_without_a_budget_is_taken_by_every_command(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, example: str) -> None:
    """A [budget] is configuration every reader accepts (the master acts on it; the others share the static limit)."""
    path = ROOT / "examples" / example
    for reader, argv in site_readers(path, tmp_path).items():
        if reader in ("master", "servant"):
            argv = [*argv, "--duration", "0.2", "-c", f"budget-{reader}"]
        code, out, err = run(capsys, *argv)
        if reader.startswith("modbus"):  # the file is taken; then the port cannot be opened
            assert code == 2 and err.count("\n") == 1 and "/nonexistent/tty" in err, (reader, err)
            assert str(path) not in err, (reader, err)
        else:
            assert code == 0, (reader, out, err)
            assert "Traceback" not in err, (reader, err)


def test_a_site_file_that_is_not_utf8_is_named_by_every_command(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(GOOD_SITE.encode() + b"# caf\xe9\n")
    for reader, argv in site_readers(path, tmp_path).items():
        if reader == "sim":
            continue  # (its scenario is written as text above; below for scenario files)
        code, out, err = run(capsys, *argv)
        assert code in (1, 2), reader
        assert f"{path}: the file is not UTF-8 text (byte 0xe9" in out + err, (reader, out, err)


# ---------------------------------------------------------------------------
# scenario files


SCENARIO = "duration_s = 10\n{top}\n[installation.site]\nbreaker_a = 80\n[[installation.servant]]\naddress = 1\nmax_a = 32\n{tail}"


@pytest.mark.parametrize(("top", "tail", "expected"), [
    ("", "[[fault]]\nkind = 'twin'\naddress = 1\nserial = -5\n", "fault[0].serial: -5 must be 0-4294967295"),
    ("", "[[car]]\nevse = 1\nmax_a = \"big\"\n", 'car[0].max_a: "big" is not a number'),
    ("seed = \"abc\"", "", 'seed: "abc" is not an integer'),
    ("duration_s = nan", "", "duration_s: nan is not a finite number"),
    # a huge car value is refused here, not found later as an OverflowError "invariant violation"
    ("", "[[fault]]\nkind = 'second_master'\nat = 1\nmaster_id = 99\n", "fault[0].master_id: 99 must be 0-15"),
    ("", "[[car]]\nevse = 1\nmax_a = 1e308\n", "car[0].max_a: 1e+308 must be above 0 and at most 80 A"),
    ("", "[[car]]\nevse = 1\ntaper_floor_a = 1e308\n", "car[0].taper_floor_a: 1e+308 must be 0-80 A"),
    ("[car_defaults]\nramp_a_per_s = 1e308", "[[car]]\nevse = 1\n",
     "car_defaults.ramp_a_per_s: 1e+308 must be above 0 and at most 1000 A/s"),
    ("", "[[car]]\nevse = 1\nramp_step_s = 1e308\n", "car[0].ramp_step_s: 1e+308 must be above 0 and at most 3600 s"),
    ("", "[[fault]]\nkind = 'twin'\naddress = 1\nserial = 5\nat = 5\ncar = { max_a = 1e308 }\n",
     "fault[0].car.max_a: 1e+308 must be above 0 and at most 80 A"),
])
def test_a_bad_scenario_value_is_one_line_naming_file_and_key(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                              top: str, tail: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    text = SCENARIO.format(top=top, tail=tail)
    if top.startswith("duration_s"):
        text = text.replace("duration_s = 10\n", "")
    if top.startswith("[car_defaults]"):  # a table: after the top-level keys
        text = text.replace(top, "") + top + "\n"
    path.write_text(text)
    code, out, err = run(capsys, "sim", str(path), "--speed", "max", "--quiet")
    assert code == 2 and out == ""
    assert err == f"busshare sim: {path}: {expected}\n"


def test_a_scenario_file_that_is_not_utf8_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(SCENARIO.format(top="", tail="").encode() + b"# caf\xe9\n")
    code, out, err = run(capsys, "sim", str(path), "--speed", "max", "--quiet")
    assert code == 2 and err.startswith(f"busshare sim: {path}: the file is not UTF-8 text (byte 0xe9")


def test_an_installation_file_given_as_a_scenario_says_where_it_belongs(capsys: pytest.CaptureFixture[str]) -> None:
    """`busshare sim examples/site.toml`: not "servant: unknown key (known: bus, car, ...)", but what a scenario is."""
    code, out, err = run(capsys, "sim", str(ROOT / "examples" / "site.toml"), "--speed", "max", "--quiet")
    assert code == 2 and out == ""
    assert err.startswith(f"busshare sim: {ROOT / 'examples' / 'site.toml'}: installation: is missing, and this is an "
                          "installation file"), err
    assert "[installation.site]" in err and err.count("\n") == 1, err


# ---------------------------------------------------------------------------
# numbers on the command line: every option, checked when parsed (the command's usage, exit 2)

SITE = ROOT / "examples" / "site.toml"
NODE_NUMBERS = [("--status-interval", ["-1", "0", "nan", "x", "0.001"]), ("--duration", ["-1", "0", "nan", "inf"])]
CASES: list[tuple[list[str], str, str]] = []
for command, base in (("master", ["--config", str(SITE)]), ("servant", ["--address", "1"])):
    for option, values in NODE_NUMBERS:
        CASES += [([command, *base, option, v], option, v) for v in values]
    CASES += [([command, *base, "--baud", v, "--modbus", "/dev/null"], "--baud", v) for v in ("0", "-5", "x")]
    CASES += [([command, *base, "-b", "0"], "-b/--bitrate", "0"), ([command, *base, "--id-base", "x"], "--id-base", "x")]
CASES += [(["master", "--config", str(SITE), option, v], option, v)
          for option in ("--master-id", "--epoch") for v in ("300", "-1", "x")]
CASES += [(["master", "--config", str(SITE), "--modbus", "/dev/null", "--reply-timeout", v], "--reply-timeout", v)
          for v in ("0", "nan")]
CASES += [(["servant", "--address", v], "--address", v) for v in ("0", "63", "x")]
CASES += [(["servant", "--address", "1", option, v], option, v) for option, values in [
    ("--max", ["90", "5", "nan", "lots", "16.25"]), ("--min", ["-6", "5"]), ("--failsafe", ["3", "-1"]),
    ("--meter", ["500", "-1", "nan", "1e308"]), ("--max", ["1e308"]), ("--min", ["1e308"]), ("--failsafe", ["1e308"]), ("--priority", ["300", "-1"]), ("--serial", ["-5", "zz", "0x100000000"]),
    ("--need-kwh", ["-1", "nan"]), ("--seed", ["x"]),
] for v in values]
CASES += [(["monitor", option, v], option, v) for option, values in [
    ("--duration", ["-1", "nan"]), ("--reaction-allowance", ["-1", "0", "nan"]), ("--baud", ["0"]),
] for v in values]
CASES += [(["decode", "-", option, v], option, v) for option, values in [
    ("--baud", ["0", "x"]), ("--limit", ["0", "nan", "5000"]), ("--id-base", ["x", "-1"]),
] for v in values]
CASES += [(["busload", option.split("/")[0], v], option, v) for option, values in [
    ("--status-period", ["nan", "0", "-1"]), ("--heartbeat-period", ["inf", "0"]), ("-b/--bitrate", ["0", "1", "x"]),
    ("--servants", ["0", "63"]),
] for v in values]
CASES += [(["busload", "0"], "SERVANTS", "0")]
CASES += [(["sim", option, v], option, v) for option, values in [
    ("--speed", ["0", "-1", "nan", "fast", "1e-300"]), ("--duration", ["-1", "0", "nan"]), ("--seed", ["x"]),
] for v in values]


@pytest.mark.parametrize(("argv", "option", "value"), CASES, ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_every_number_option_is_checked_when_parsed(capsys: pytest.CaptureFixture[str], argv: list[str], option: str,
                                                    value: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    command = argv[0]
    assert f"usage: busshare {command}" in err, err  # the command's usage, not the top level's
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"busshare {command}: error: argument {option}: "), last
    assert value in last or repr(value) in last, last
    assert "<lambda>" not in err and "invalid" not in last, last  # no argparse internals


def test_busload_warns_when_the_bus_cannot_carry_the_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "busload", "-b", "5000", "62")
    assert code == 0 and "worst case" in out
    assert err.startswith("busshare busload: warning: the worst case needs ") and "5000 bit/s cannot carry 62" in err
    code, out, err = run(capsys, "busload", "-b", "125000", "4")
    assert code == 0 and err == ""


def test_an_unknown_option_prints_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for command in SUMMARIES:
        code, out, err = run(capsys, command, "--no-such-option")
        assert code == 2, command
        assert f"usage: busshare {command}" in err, (command, err)
        assert err.strip().splitlines()[-1].startswith(f"busshare {command}: error: "), err


def test_a_bad_master_id_is_refused_before_the_bus_is_opened() -> None:
    """No python-can shutdown warning (the bus was never opened) and no epoch the user never gave."""
    r = subprocess.run([sys.executable, "-m", "busshare", "master", "--config", str(SITE), "--master-id", "300"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert "not properly shut down" not in r.stderr and "epoch" not in last, r.stderr
    assert last == "busshare master: error: argument --master-id: 300 must be 0-15"


@pytest.mark.parametrize("argv", [["monitor"], ["master", "--config", str(SITE)], ["servant", "--address", "1"]])
def test_a_bus_that_fails_to_open_leaves_one_line_and_no_python_can_warning(argv: list[str]) -> None:
    """A unicast address as the multicast group: python-can's constructor fails half-way, and the half-built bus
    warned "UdpMulticastBus was not properly shut down" under our one line."""
    r = subprocess.run([sys.executable, "-m", "busshare", *argv, "-c", "127.0.0.1", "--duration", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr == f"busshare {argv[0]}: cannot open CAN bus (udp_multicast channel 127.0.0.1): could not create " \
        "or configure socket\n", r.stderr


def test_a_servant_option_that_contradicts_another_names_the_option(capsys: pytest.CaptureFixture[str],
                                                                    tmp_path: Path) -> None:
    code, out, err = run(capsys, "servant", "--address", "1", "--min", "20", "--max", "10", "-i", "virtual")
    assert code == 2 and err == "busshare servant: --min 20 is above max_a 10 (given --max)\n"
    path = tmp_path / "site.toml"
    path.write_text("[site]\nbreaker_a = 80\n[[servant]]\naddress = 1\nmax_a = 32\nmin_a = 16\n")
    code, out, err = run(capsys, "servant", "--config", str(path), "--address", "1", "--max", "10", "-i", "virtual")
    assert code == 2 and err == f"busshare servant: {path}: servant[0].min_a 16 is above max_a 10 (given --max)\n"


@pytest.mark.parametrize("command", [["master", "--config", str(SITE)], ["servant", "--address", "1"], ["monitor"]])
@pytest.mark.parametrize(("can_option", "named"), [
    (["-i", "socketcan"], "-i/--interface"), (["-c", "can0"], "-c/--channel"), (["-b", "250000"], "-b/--bitrate"),
    (["--bus-kwargs", "port=5000"], "--bus-kwargs"), (["--id-base", "0x200"], "--id-base"), (["--extended"], "--extended"),
])
def test_a_can_option_beside_modbus_is_refused_not_ignored(capsys: pytest.CaptureFixture[str], command: list[str],
                                                            can_option: list[str], named: str) -> None:
    """`--modbus PORT -i socketcan` ran on the line and ignored -i: one line naming it, before any port is opened."""
    code, out, err = run(capsys, *command, "--modbus", "/dev/ttyNONE9", *can_option, "--duration", "1")
    assert code == 2 and out == ""
    assert err == (f"busshare {command[0]}: {named} is a CAN option, but --modbus /dev/ttyNONE9 runs on a Modbus RTU "
                   "line: give one or the other\n"), err


def test_the_modbus_pilot_file_on_can_is_refused_not_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "servant", "--address", "1", "--pilot-file", "ev1", "-i", "virtual", "--duration", "1")
    assert code == 2 and out == ""
    assert err.startswith("busshare servant: --pilot-file is an option of the Modbus servant (--modbus PORT)"), err


# ---------------------------------------------------------------------------
# output paths: checked before the run, and written exactly as named


@pytest.mark.parametrize(("argv", "option", "why"), [
    (["sim", "--log", "/nonexistent/dir/run.log"], "--log", "cannot be written: no directory /nonexistent/dir"),
    (["sim", "--log", "run.pcap"], "--log", "is not a capture file name"),
    (["sim", "--plot", "x"], "--plot", "is not a plot file name: use .png, .svg, .pdf"),
    (["sim", "--plot", "/nonexistent/dir/x.png"], "--plot", "cannot be written"),
    (["decode", "-", "--plot", "x"], "--plot", "is not a plot file name"),
])
def test_output_paths_are_checked_before_the_run(capsys: pytest.CaptureFixture[str], argv: list[str], option: str,
                                                 why: str) -> None:
    code, out, err = run(capsys, *argv, "--speed", "max", "--quiet") if argv[0] == "sim" else run(capsys, *argv)
    assert code == 2 and out == "", out  # nothing ran
    assert f"argument {option}: " in err and why in err, err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("option", ["--log", "--plot"])
def test_an_output_path_that_only_looks_writable_is_refused_before_the_run(capsys: pytest.CaptureFixture[str],
                                                                          option: str) -> None:
    """As root every directory passes os.access: /proc let a whole run go by, then failed to write."""
    path = "/proc/busshare-test." + ("log" if option == "--log" else "png")
    code, out, err = run(capsys, "sim", "--speed", "max", "--quiet", "--duration", "5", option, path)
    assert code == 2 and out == "", out  # nothing ran
    assert f"argument {option}: {path} cannot be written: " in err, err


def test_an_output_that_fails_after_the_run_loses_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills during a long run: the summary is still shown, then the one line, exit 2."""
    from busshare.cli.commands import sim
    from busshare.errors import UserError

    def full(path: str, *args: object, **kwargs: object) -> None:
        raise UserError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(sim, "write_capture", full)
    log = tmp_path / "run.log"
    for extra in ([], ["--json"]):
        code, out, err = run(capsys, "sim", "--speed", "max", "--quiet", "--duration", "20", "--log", str(log), *extra)
        assert code == 2
        assert ("invariant violations: 0" in out) if not extra else ('"record": "summary"' in out.splitlines()[-1])
        assert err == f"busshare sim: cannot write {log}: No space left on device\n", err


@pytest.mark.parametrize("argv", [["sim", "--duration", "5", "--speed", "max", "--quiet"], ["decode", "-"]])
def test_a_plot_without_matplotlib_names_a_command_that_installs_it(argv: list[str], tmp_path: Path) -> None:
    """After a plain install (no plot extra); `pip install 'busshare[plot]'` asked for a package index's busshare,
    not this one."""
    code = ("import sys; sys.modules['matplotlib'] = None; from busshare.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, *argv, "--plot", str(tmp_path / "x.png")], capture_output=True,
                       text=True, cwd=ROOT, timeout=120, input="")
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.strip().splitlines()[-1] == (f"busshare {argv[0]}: error: argument --plot: needs matplotlib: "
                                                 "pip install matplotlib"), r.stderr


def test_a_plot_is_written_at_exactly_the_path_it_prints(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "timeline.svg"
    r = subprocess.run([sys.executable, "-m", "busshare", "sim", "--speed", "max", "--quiet", "--duration", "20",
                        "--plot", str(target)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"plot: {target}" in r.stdout
    assert target.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["timeline.svg"]
    assert target.read_text().lstrip().startswith(("<?xml", "<svg"))


# ---------------------------------------------------------------------------
# decode never copies control characters to the terminal


def test_decode_escapes_unprintable_bytes_of_bad_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capture = tmp_path / "evil.log"
    capture.write_bytes(b"(1.000000) vcan0 123#\x1b[2J\x07zz\n(1.1) junk\x1b]0;title\x07 \x9b31m here\n")
    code, out, err = run(capsys, "decode", str(capture))
    assert code == 0 and err == ""
    assert not any(ch in out for ch in "\x1b\x07\x9b"), repr(out)
    assert "\\x1b[2J\\x07zz" in out and "\\x1b]0;title\\x07" in out


def test_a_file_name_with_control_characters_is_escaped_in_every_message(capsys: pytest.CaptureFixture[str],
                                                                         tmp_path: Path) -> None:
    """A name from a glob (``busshare decode *.log``) may hold ESC or BEL: the messages escape it as decode does."""
    evil = "evil\x1b[2J\x07"
    missing = str(tmp_path / f"{evil}.toml")
    bad_site = tmp_path / f"{evil}-site.toml"
    bad_site.write_text("[site]\nbreaker_a = nan\n[[servant]]\naddress = 1\nmax_a = 32\n")
    for argv in (["check-config", missing], ["check-config", str(bad_site)], ["decode", missing], ["sim", missing],
                 ["master", "--config", missing, "-i", "virtual"], ["master", "--config", str(bad_site), "-i", "virtual"],
                 ["servant", "--config", str(bad_site), "--address", "1", "-i", "virtual"]):
        code, out, err = run(capsys, *argv)
        assert code in (1, 2), argv
        assert not any(ch in out + err for ch in "\x1b\x07"), (argv, out + err)
        assert "evil\\x1b[2J\\x07" in out + err, (argv, out + err)


# ---------------------------------------------------------------------------
# serial ports: one process per line


@pytest.fixture
def pty_port():  # type: ignore[no-untyped-def]
    controller, device = pty.openpty()
    yield os.ttyname(device)
    os.close(controller)
    os.close(device)


def test_a_busy_serial_port_is_refused_by_every_modbus_command(capsys: pytest.CaptureFixture[str],
                                                               pty_port: str) -> None:
    held = open_serial(pty_port, 19200)
    try:
        with pytest.raises(UserError, match="port busy"):
            open_serial(pty_port, 19200)
        for argv in (["master", "--config", str(SITE)], ["servant", "--address", "1"], ["monitor"]):
            code, out, err = run(capsys, *argv, "--modbus", pty_port, "--duration", "1")
            assert code == 2 and err == f"busshare {argv[0]}: cannot open {pty_port}: port busy (another process has it " \
                "open)\n", err
    finally:
        held.close()
    open_serial(pty_port, 19200).close()  # free again once the first one closed it


@pytest.mark.parametrize(("tool", "argv", "option"), [
    ("rs485", ["--baud", "0"], "--baud"),
    ("rs485", ["--baud", "7", "--duration", "0.1"], "--baud"),  # (no node runs on it: they take 300-1000000 baud)
    ("meter_emulator", ["--serial", "/dev/null", "--baud", "7"], "--baud"),
    ("rs485", ["--corrupt", "2"], "--corrupt"),
    ("rs485", ["--drop", "nan"], "--drop"),
    ("rs485", ["--duration", "-1"], "--duration"),
    ("rs485", ["--duration", "inf"], "--duration"),
    ("meter_emulator", ["--tcp", "127.0.0.1:0", "--speed", "-1"], "--speed"),
    ("meter_emulator", ["--tcp", "127.0.0.1:0", "--speed", "nan"], "--speed"),
    ("meter_emulator", ["--serial", "/dev/null", "--baud", "-1"], "--baud"),
    ("meter_emulator", ["--tcp", "127.0.0.1:0", "--at", "nan:freeze"], "--at"),
])
def test_the_bench_tools_refuse_a_bad_number_in_one_line_naming_it(capsys: pytest.CaptureFixture[str], tool: str,
                                                                    argv: list[str], option: str) -> None:
    """The RS-485 line and the meter emulator check their numbers before they open anything."""
    import importlib

    module = importlib.import_module(f"busshare.cli.{tool}")
    assert module.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err and "Traceback" not in err, err


def test_a_budget_too_quick_for_a_slow_modbus_line_is_one_line_naming_the_key(capsys: pytest.CaptureFixture[str],
                                                                              tmp_path: Path) -> None:
    """The line's timing lengthens the compliance window (rule 9); a raise hold that fits CAN may not fit it."""
    site = tmp_path / "site.toml"
    site.write_text(site_toml([1, 2], max_a=32, limit_a=40) + "\n[budget]\nmain_limit_a = 63.0\nfallback_a = 18.0\n"
                    "raise_hold_s = 7.0\n")
    assert run(capsys, "check-config", str(site))[0] == 0  # on CAN (the file's timing) it fits
    code, out, err = run(capsys, "master", "--config", str(site), "--modbus", "/nonexistent/tty", "--reply-timeout", "3")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(site) in err and "budget.raise_hold_s" in err and "Modbus line" in err, err
