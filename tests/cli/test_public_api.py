"""The public API (``busshare.__all__``) and the one error base the command line relies on (issue 12, point 8)."""

from __future__ import annotations

import argparse

import pytest

import busshare
from busshare import cli
from busshare.cli.commands import check_config
from busshare.errors import BusshareError
from busshare.errors import ConfigError
from busshare.errors import UserError
from busshare.frames import FrameError
from busshare.sim.scenario import ScenarioError
from busshare.transport.modbus.rtu import RtuError
from tests.support.fresh import packages_loaded


def test_every_public_name_resolves() -> None:
    for name in busshare.__all__:
        assert getattr(busshare, name) is not None, name
    assert {"Master", "Servant", "Link", "Config", "ServantConfig", "Timing", "config_from_mapping", "parse_config",
            "SetLimit", "Heartbeat", "Status", "EvseHardware", "Runtime", "BusshareError"} <= set(busshare.__all__)
    assert busshare.Master.__module__ == "busshare.master" and busshare.Link.__module__ == "busshare.protocol.link"
    with pytest.raises(AttributeError):
        busshare.NoSuchName  # noqa: B018


def test_import_busshare_pulls_in_no_bus_or_plot_library() -> None:
    """``import busshare`` (and using a sans-IO name) loads neither python-can, pymodbus nor matplotlib."""
    code = "import busshare\nbusshare.Master, busshare.Servant, busshare.Link, busshare.Config, busshare.SetLimit"
    assert packages_loaded(code, ("can", "pymodbus", "matplotlib", "serial")) == []


def test_one_error_base() -> None:
    for cls in (UserError, ConfigError, FrameError, RtuError, ScenarioError):
        assert issubclass(cls, BusshareError), cls


@pytest.mark.parametrize("exc", [UserError("bad option"), ConfigError("bad key", "site.limit_a"),
                                 FileNotFoundError(2, "No such file or directory", "x.toml")])
def test_cli_prints_a_user_error_as_one_line(exc: Exception, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def run(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(check_config, "run", run)
    monkeypatch.delenv("BUSSHARE_DEBUG", raising=False)
    assert cli.main(["check-config", "site.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("busshare check-config: ") and err.count("\n") == 1


def test_cli_lets_a_bug_keep_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ValueError (or any other exception that is not a BusshareError or OSError) is a bug, not a user error."""
    def run(args: argparse.Namespace) -> int:
        raise ValueError("a bug")

    monkeypatch.setattr(check_config, "run", run)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["check-config", "site.toml"])


def test_all_is_the_lazy_table() -> None:
    assert busshare.__all__ == ["__version__", *busshare._WHERE]
