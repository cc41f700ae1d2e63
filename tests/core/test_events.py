"""Node events carry a typed kind that still prints, and serialises, as the slug logs and records always showed."""

from __future__ import annotations

import json

from busshare.core.events import Event
from busshare.core.events import EventKind
from busshare.core.events import EventLog


def test_a_kind_prints_and_serialises_as_its_slug() -> None:
    ev = Event(12.5, EventKind.CUT_ACKED, 3, "txn 7: 16.0 A")
    assert str(ev) == "    12.500 cut-acked          3 txn 7: 16.0 A"
    assert f"{EventKind.SECOND_MASTER}" == str(EventKind.SECOND_MASTER) == "second-master"
    assert json.dumps({"event": ev.kind}) == '{"event": "cut-acked"}'  # as a JSON record writes it


def test_every_slug_is_one_kind() -> None:
    slugs = [k.value for k in EventKind]
    assert len(set(slugs)) == len(slugs)
    assert all(s == s.lower() and " " not in s for s in slugs)


def test_the_log_keeps_the_kind_it_was_given() -> None:
    log = EventLog()
    log.add(1.0, EventKind.TWIN, 2, "two units")
    (ev,) = log.drain()
    assert ev.kind is EventKind.TWIN and log.drain() == ()
