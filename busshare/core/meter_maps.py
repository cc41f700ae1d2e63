"""Mains-meter register maps, and what a meter's answer means (pure: no I/O, no clock).

The Eastron SDM630 (three-phase) and SDM120 (single-phase) maps are the maker's published
register lists: IEEE-754 float32 input registers (function 4), high word first (docs/BUDGET.md
cites them).  A generic map describes any other meter register by register.

A poll either becomes a ``MeterReading`` or a ``MeterFailure``; nothing in between.  A read error,
a timeout, registers frozen for too long and impossible values (negative, NaN, infinite, above
any breaker) are all failures: a budget computed from a wrong current is worse than the fallback.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from enum import StrEnum

from ..frames import MAX_CIRCUIT_DA

#: A current above this cannot be real: no breaker busshare serves is that large, and no frame could carry it.
MAX_READING_DA = MAX_CIRCUIT_DA  # 1638.3 A
#: Per-phase power above this cannot be real either (1638.3 A at 1000 V).
MAX_POWER_W = MAX_READING_DA / 10 * 1000.0
#: Most registers read in one request: the Eastron limit (80), below Modbus's own (125).
MAX_READ_REGISTERS = 80


class Function(IntEnum):
    """The Modbus function that reads a register."""

    HOLDING = 3
    INPUT = 4


class RegisterType(StrEnum):
    FLOAT32 = "float32"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"

    @property
    def words(self) -> int:
        """How many 16-bit registers a value takes."""
        return 1 if self in (RegisterType.INT16, RegisterType.UINT16) else 2


_STRUCT = {
    RegisterType.FLOAT32: "f",
    RegisterType.INT16: "h",
    RegisterType.UINT16: "H",
    RegisterType.INT32: "i",
    RegisterType.UINT32: "I",
}


class Endian(StrEnum):
    """Byte order inside a register, or word order inside a 32-bit value."""

    BIG = "big"
    LITTLE = "little"


@dataclass(frozen=True)
class Register:
    """Where one value lives and how its registers become a number (``value = raw * scale``).

    byte_order/word_order big/big is "ABCD" (Modbus's own, and Eastron's); word_order little is
    "CDAB", byte_order little "BADC", both little "DCBA".
    """

    address: int  # 0-based, as on the wire (Eastron 30007 -> 0x0006)
    function: Function = Function.INPUT
    type: RegisterType = RegisterType.FLOAT32
    byte_order: Endian = Endian.BIG
    word_order: Endian = Endian.BIG
    scale: float = 1.0

    @property
    def words(self) -> int:
        return self.type.words

    def decode(self, registers: Sequence[int]) -> float:
        """The value of ``registers`` (exactly ``words`` of them, each 0-65535), scaled."""
        if len(registers) != self.words:
            raise ValueError(f"{self.type} needs {self.words} registers, got {len(registers)}")
        ordered = list(registers) if self.word_order is Endian.BIG else list(reversed(registers))
        data = b"".join(w.to_bytes(2, self.byte_order.value) for w in ordered)
        (raw,) = struct.unpack(">" + _STRUCT[self.type], data)
        return float(raw) * self.scale

    def encode(self, value: float) -> tuple[int, ...]:
        """The registers a meter would send for ``value`` (the emulator's side).  ValueError if it does not fit."""
        raw = value / self.scale
        packed: float | int = raw if self.type is RegisterType.FLOAT32 else round(raw)
        try:
            data = struct.pack(">" + _STRUCT[self.type], packed)
        except (struct.error, OverflowError) as exc:
            raise ValueError(f"{value!r} does not fit a {self.type}: {exc}") from None
        words = [int.from_bytes(data[i:i + 2], self.byte_order.value) for i in range(0, len(data), 2)]
        return tuple(words if self.word_order is Endian.BIG else reversed(words))


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus read request: ``count`` registers from ``address`` with ``function``."""

    function: Function
    address: int
    count: int


def plan_reads(registers: Sequence[Register]) -> tuple[ReadBlock, ...]:
    """The fewest requests that read ``registers``: adjacent or overlapping ones of one function are merged.

    Registers are never read across a gap: a meter may answer an undefined address with an exception.
    """
    spans = sorted({(int(r.function), r.address, r.words) for r in registers})
    blocks: list[ReadBlock] = []
    for function, address, words in spans:
        last = blocks[-1] if blocks else None
        if (last is not None and last.function == function and address <= last.address + last.count
                and max(last.address + last.count, address + words) - last.address <= MAX_READ_REGISTERS):
            end = max(last.address + last.count, address + words)
            blocks[-1] = ReadBlock(last.function, last.address, end - last.address)
        else:
            blocks.append(ReadBlock(Function(function), address, words))
    return tuple(blocks)


class MeterKind(StrEnum):
    SDM630 = "sdm630"
    SDM120 = "sdm120"
    GENERIC = "generic"


@dataclass(frozen=True)
class MeterMap:
    """What to read for the budget (currents, optional powers) and what else a meter of this kind shows."""

    name: str
    currents: tuple[Register, ...]  # A per phase, L1[, L2, L3]: magnitudes
    powers: tuple[Register, ...] = ()  # W per phase: + import, - export
    voltages: tuple[Register, ...] = ()  # V L-N per phase: served by the emulator, not polled
    total_power: Register | None = None  # W: served by the emulator, not polled

    def __post_init__(self) -> None:
        if len(self.currents) not in (1, 3):
            raise ValueError(f"{self.name}: {len(self.currents)} phases; a meter has 1 or 3")
        if self.powers and len(self.powers) != len(self.currents):
            raise ValueError(f"{self.name}: {len(self.powers)} powers for {len(self.currents)} phases")

    @property
    def phases(self) -> int:
        return len(self.currents)

    @property
    def polled(self) -> tuple[Register, ...]:
        """What every poll reads, in order: currents then powers."""
        return self.currents + self.powers

    def blocks(self) -> tuple[ReadBlock, ...]:
        return plan_reads(self.polled)


def _f(address: int) -> Register:
    return Register(address)  # Eastron: float32, function 4, high word first


#: Eastron SDM630: 30001-30005 L-N volts, 30007-30011 phase currents, 30013-30017 phase powers, 30053 total.
SDM630 = MeterMap(
    "sdm630",
    currents=(_f(0x0006), _f(0x0008), _f(0x000A)),
    powers=(_f(0x000C), _f(0x000E), _f(0x0010)),
    voltages=(_f(0x0000), _f(0x0002), _f(0x0004)),
    total_power=_f(0x0034),
)
#: Eastron SDM120: 30001 voltage, 30007 current, 30013 active power.
SDM120 = MeterMap("sdm120", currents=(_f(0x0006),), powers=(_f(0x000C),), voltages=(_f(0x0000),))
BUILT_IN_MAPS: dict[MeterKind, MeterMap] = {MeterKind.SDM630: SDM630, MeterKind.SDM120: SDM120}


# ---------------------------------------------------------------------------
# readings and failures


class FailureKind(StrEnum):
    READ_ERROR = "read-error"  # no connection, a Modbus exception, a malformed or short reply
    TIMEOUT = "timeout"  # no reply within the request timeout
    FROZEN = "frozen"  # the same raw registers for longer than frozen_s
    IMPOSSIBLE = "impossible"  # negative, NaN, infinite or above any breaker


@dataclass(frozen=True)
class MeterReading:
    """A trusted reading.  ``t`` is when the poll started: the values are at least that fresh."""

    t: float
    currents_da: tuple[int, ...]  # per phase, 0.1 A, rounded up
    powers_w: tuple[float, ...] | None = None  # per phase, + import, - export

    @property
    def worst_da(self) -> int:
        """The most loaded phase: headroom is taken on it (SmartEVSE does the same)."""
        return max(self.currents_da)


@dataclass(frozen=True)
class MeterFailure:
    """A poll that must not be used.  ``t`` is when the poll started."""

    t: float
    kind: FailureKind
    detail: str


MeterEvent = MeterReading | MeterFailure
#: What a poll brought back: (function, register address) -> 16-bit register value.
Words = Mapping[tuple[int, int], int]


def _deci_amps_up(amps: float) -> int:
    """Amps -> 0.1 A, rounded up (a meter's extra digits never hide load).

    Below 0.1 mA is float32 noise, not load: 12.3 A as a float32 is 12.3000002 A and stays 12.3 A.
    """
    return math.ceil(round(amps * 10, 3))


def _phase(i: int) -> str:
    return f"L{i + 1}"


def check_values(currents: Sequence[float], powers: Sequence[float]) -> str | None:
    """Why these values cannot be a real meter's, or None."""
    for i, a in enumerate(currents):
        if not math.isfinite(a):
            return f"{_phase(i)} current is {a}"
        if a < 0:
            return f"{_phase(i)} current {a:g} A is negative"
        if _deci_amps_up(a) > MAX_READING_DA:
            return f"{_phase(i)} current {a:g} A is above {MAX_READING_DA / 10:g} A"
    for i, w in enumerate(powers):
        if not math.isfinite(w):
            return f"{_phase(i)} power is {w}"
        if abs(w) > MAX_POWER_W:
            return f"{_phase(i)} power {w:g} W is beyond {MAX_POWER_W:g} W"
    return None


class MeterDecoder:
    """Poll results -> ``MeterReading`` or ``MeterFailure``.

    It keeps the one thing a single poll cannot show: how long the raw registers have not
    changed.  A live meter's float currents and powers always move a little; the same bits
    for longer than ``frozen_s`` mean a meter (or a gateway) serving a stale value.
    ``frozen_s = 0`` turns the check off.
    """

    def __init__(self, meter_map: MeterMap, frozen_s: float) -> None:
        self.meter_map = meter_map
        self.frozen_s = frozen_s
        self._last_raw: tuple[int, ...] | None = None
        self._unchanged_since = 0.0

    def decode(self, words: Words, t: float) -> MeterEvent:
        polled = self.meter_map.polled
        try:
            raw = tuple(words[(int(r.function), r.address + i)] for r in polled for i in range(r.words))
        except KeyError as exc:
            return MeterFailure(t, FailureKind.READ_ERROR, f"the reply lacks register {exc.args[0]}")
        if any(not 0 <= w <= 0xFFFF for w in raw):
            return MeterFailure(t, FailureKind.READ_ERROR, "a register value is not 16 bits")
        values: list[float] = []
        at = 0
        for r in polled:
            values.append(r.decode(raw[at:at + r.words]))
            at += r.words
        phases = self.meter_map.phases
        currents, powers = values[:phases], values[phases:]
        why = check_values(currents, powers)
        if why is not None:
            return MeterFailure(t, FailureKind.IMPOSSIBLE, why)
        if raw != self._last_raw:
            self._last_raw, self._unchanged_since = raw, t
        elif self.frozen_s > 0 and t - self._unchanged_since > self.frozen_s:
            return MeterFailure(t, FailureKind.FROZEN,
                                f"registers unchanged for {t - self._unchanged_since:.1f} s (> {self.frozen_s:g} s)")
        return MeterReading(t, tuple(_deci_amps_up(a) for a in currents), tuple(powers) if powers else None)


def words_of(blocks: Sequence[ReadBlock], replies: Sequence[Sequence[int]]) -> dict[tuple[int, int], int]:
    """The registers of ``replies`` (one per block, in order) keyed by (function, address)."""
    out: dict[tuple[int, int], int] = {}
    for block, regs in zip(blocks, replies, strict=True):
        for i, w in enumerate(regs[:block.count]):
            out[(int(block.function), block.address + i)] = w
    return out
