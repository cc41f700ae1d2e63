"""Reading plain mappings (parsed TOML) into typed values, with every problem kept and named by its key path.

An installation file or a scenario is data first: ``tomllib`` turns the text
into dicts, and a ``Reader`` turns those into typed values while it records,
for every key, what was written there and whether it could be read.  A
problem names its key path (``servant[2].min_a``, ``site.breaker_a``) and
shows the value as the file has it, so that ``min_a = -6`` is reported as
``-6``, not as whatever it became after conversion.

Rules that read several keys (``min_a`` against ``max_a``) say so in
``Problem.involves``; ``Reader.merge`` drops such a problem when one of those
keys could not be read, so a single mistake is reported once.

Every table of a site file (``[site]``, ``[timing]``, ``[[servant]]``,
``[budget]``, ``[budget.meter]``, ``[budget.mqtt]``) and of a scenario is read
with this one ``Reader``; ``raise_first`` turns the first problem into the
``ConfigError`` a program starting up stops with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from ..errors import ConfigError

T = TypeVar("T")
N = TypeVar("N", int, float)
E = TypeVar("E", bound=StrEnum)

#: the sub-tables and values of a parsed TOML document
Table = Mapping[str, object]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one key, as a line a user can act on."""

    key: str  # key path, e.g. "servant[2].min_a"; "" for the document as a whole
    message: str  # reads after the value: "is below 6 A", "is not an integer"
    value: str | None = None  # the value as written (TOML spelling); None: the message stands alone
    involves: frozenset[str] = frozenset()  # other keys the rule read

    @property
    def text(self) -> str:
        """The value as written, then the message: what follows the key in a one-line error."""
        return self.message if self.value is None else f"{self.value} {self.message}"

    def __str__(self) -> str:
        return f"{self.key}: {self.text}" if self.key else self.text


class Invalid(Exception):
    """Raised by a converter: the message reads after the written value ("is not an integer")."""


def written(value: object) -> str:
    """A parsed TOML value spelt as TOML writes it (``true``, ``"big"``, ``-6``, ``1e+308``, ``nan``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):  # quoted; letters as written, control and invisible characters escaped
        return "".join(c if c.isprintable() else json.dumps(c)[1:-1] if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
                       for c in json.dumps(value, ensure_ascii=False))
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return json.dumps(str(value))  # dates and times


def amps_text(da: int) -> str:
    """A current in 0.1 A as an installer writes it: 6, 16.5, -6 (for messages and rule values)."""
    return f"{da / 10:g}"


def seconds_text(seconds: float) -> str:
    return f"{seconds:g}"


def key_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def toml_key(key: str) -> str:
    """A key from a file as TOML spells it: bare when it can be, else quoted with control characters escaped."""
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else written(key)


def utf8(data: bytes) -> str:
    """A file's bytes as text; Invalid naming the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None


# ---------------------------------------------------------------------------
# converters: a written value -> a typed one, or Invalid


def integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("is not an integer")
    return value


def number(value: object) -> float:
    """A finite number (an integer or a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("is not a number")
    try:
        f = float(value)
    except OverflowError:
        raise Invalid("is out of range") from None
    if not math.isfinite(f):
        raise Invalid("is not a finite number")
    return f


def amps(value: object) -> float:
    """A finite current in A, any resolution (a breaker rating)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("is not a current in A")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("is not a finite current")
    return number(value)


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid("is not true or false")
    return value


def string(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid("is not a string")
    return value


def text(value: object) -> str:
    """A string with something in it (a host, a port name, a user name)."""
    if not string(value).strip():
        raise Invalid("is empty")
    return str(value)


def deciamps(value: object) -> int:
    """A current written in A with at most one decimal -> 0.1 A units (exact, whatever its size)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 10
    a = amps(value)  # a finite float
    if abs(a) >= 2.0**52:  # integral at this size; a * 10 could overflow
        return int(a) * 10
    da = round(a * 10)
    if abs(da - a * 10) > 1e-6:
        raise Invalid("has more than one decimal (0.1 A resolution)")
    return da


def within(convert: Callable[[object], N], low: float | None = None, high: float | None = None,
           low_open: bool = False, unit: str = "") -> Callable[[object], N]:
    """``convert`` and then a range check: ``low <= x <= high`` (``low < x`` when ``low_open``)."""

    def check(value: object) -> N:
        x = convert(value)
        too_low = low is not None and (x <= low if low_open else x < low)
        if too_low or (high is not None and x > high):
            raise Invalid(f"must be {_range(low, high, low_open, unit)}")
        return x

    return check


def _range(low: float | None, high: float | None, low_open: bool, unit: str) -> str:
    u = f" {unit}" if unit else ""
    if high is None:
        return f"{'above' if low_open else 'at least'} {_n(low)}{u}"
    if low is None:
        return f"at most {_n(high)}{u}"
    if low_open:
        return f"above {_n(low)} and at most {_n(high)}{u}"
    return f"{_n(low)}-{_n(high)}{u}"


def _n(x: float | None) -> str:
    """A bound as people write it: 0, 255, 4294967295, 0.5."""
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x:g}"


def one_of(choices: Sequence[str]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise Invalid(f"is not one of {', '.join(choices)}")
        return str(value)

    return check


def member(enum: type[E], aliases: Mapping[str, E] | None = None) -> Callable[[object], E]:
    """A string naming a member of ``enum`` by its value (any case), or one of ``aliases``."""

    def check(value: object) -> E:
        if isinstance(value, str):
            if aliases and value.lower() in aliases:
                return aliases[value.lower()]
            for e in enum:
                if e.value.lower() == value.lower():
                    return e
        raise Invalid(f"is not one of {', '.join(e.value for e in enum)}")

    return check


# ---------------------------------------------------------------------------
# the reader


class Reader:
    """Reads values out of nested tables, remembering what was written at each key path and what failed."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.bad: set[str] = set()
        self.written: dict[str, str] = {}

    def add(self, key: str, message: str, value: str | None = None) -> None:
        """A problem of ``key``, which from now on counts as unreadable."""
        self.problems.append(Problem(key, message, value))
        self.bad.add(key)

    def get(self, table: Table, key: str, path: str, convert: Callable[[object], T], default: T) -> T:
        """``table[key]`` converted, or ``default`` when absent; a problem (and ``default``) when it is invalid."""
        if key not in table:
            return default
        where = key_path(path, key)
        raw = table[key]
        self.written[where] = written(raw)
        try:
            return convert(raw)
        except Invalid as exc:
            self.add(where, str(exc), written(raw))
            return default

    def require(self, table: Table, key: str, path: str, convert: Callable[[object], T], placeholder: T,
                why: str = "") -> T:
        """Like ``get``, but a missing key is a problem too."""
        if key not in table:
            self.add(key_path(path, key), "is missing" + (f" ({why})" if why else ""))
            return placeholder
        return self.get(table, key, path, convert, placeholder)

    def table(self, parent: Table, key: str, path: str) -> Table:
        """A sub-table (``{}`` when absent, and when it is not a table: then a problem)."""
        value = parent.get(key, {})
        if not isinstance(value, Mapping):
            self.add(key_path(path, key), "must be a table", written(value))
            return {}
        return value

    def optional_table(self, parent: Table, key: str, path: str) -> Table | None:
        """A sub-table that may be absent (None); a problem, and None, when it is there but not a table."""
        if key not in parent:
            return None
        value = self.table(parent, key, path)
        return value if isinstance(parent[key], Mapping) else None

    def tables(self, parent: Table, key: str, path: str) -> list[tuple[str, Table]]:
        """An array of tables (``[[key]]``) as (key path, table) pairs; problems for what is not a table."""
        where = key_path(path, key)
        value = parent.get(key, [])
        if not isinstance(value, list):
            self.add(where, f"must be an array of tables, written [[{where}]]", written(value))
            return []
        out: list[tuple[str, Table]] = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                out.append((key_path(where, i), item))
            else:
                self.add(key_path(where, i), "is not a table", written(item))
        return out

    def unknown(self, table: Table, path: str, known: Iterable[str]) -> None:
        allowed = sorted(set(known))
        for key in sorted(set(table) - set(allowed)):
            self.add(key_path(path, toml_key(key)), f"unknown key (known: {', '.join(allowed)})")

    def merge(self, checks: Iterable[Problem]) -> list[Problem]:
        """The problems found while reading, then the rule checks that read only keys that could be read.

        A rule's value is shown as written when the file has one at its key.
        """
        out = list(self.problems)
        for p in checks:
            if p.key in self.bad or p.involves & self.bad:
                continue
            if p.key in self.written and p.value is not None:
                p = Problem(p.key, p.message, self.written[p.key], p.involves)
            if p not in out:
                out.append(p)
        return out


def raise_first(found: Sequence[Problem], path: str | None = None) -> None:
    """ConfigError (one line naming ``path``, the key and the problem) for the first of ``found``, if any."""
    if found:
        p = found[0]
        raise ConfigError(p.text, p.key, path)


def read_table(read: Callable[[Reader, Table, str], T], check: Callable[[T, str], list[Problem]], table: Table,
               path: str) -> T:
    """One table read on its own (``read`` then the rules of ``check``); ConfigError for its first problem."""
    r = Reader()
    value = read(r, table, path)
    raise_first(r.merge(check(value, path)))
    return value
