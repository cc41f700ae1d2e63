"""An emulated Eastron meter: a pymodbus server (Modbus TCP or RTU) serving a map from a load profile.

It serves the input registers 0x0000-0x004F of the map (function 4, float32, high word first):
voltages, phase currents (magnitudes), signed phase powers and the total power, computed from
the profile at each read.  Holding registers (the meter's settings) are not emulated: a function
3 read is answered with exception 2, as is any address outside the block.  Only its own device
id is answered; any other id (and a broadcast) gets no reply, as on a shared RS-485 line.

Faults on command (``command()``, driven by ``python -m busshare.cli.meter_emulator``):
``freeze`` (the registers stop changing), ``silent`` (no reply at all), ``garbage`` (random
register values), ``error`` (Modbus exception 4, device failure), ``normal``; ``set L1 [L2 L3]``
holds given currents, ``profile`` returns to the profile.

It uses pymodbus's ``SimDevice``/``SimData`` with an action called on every read: the supported
datastore since pymodbus 3.10 (``ModbusDeviceContext`` and the data blocks log deprecation
warnings and go in v4).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from enum import StrEnum

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType
from pymodbus.simulator import SimData
from pymodbus.simulator import SimDevice

from ..core.meter_maps import Function
from ..core.meter_maps import MeterMap
from ..core.source_settings import SerialLine
from ..core.source_settings import TcpEndpoint
from .load_profile import LoadProfile

SERVED = 0x50  # input registers 0x0000-0x004F: every parameter up to 30080 (Eastron reads at most 80 at once)
POWER_FACTOR = 0.97
Record = dict[str, object]


class Mode(StrEnum):
    NORMAL = "normal"
    FROZEN = "frozen"
    SILENT = "silent"
    GARBAGE = "garbage"
    ERROR = "error"


_COMMANDS = {"normal": Mode.NORMAL, "freeze": Mode.FROZEN, "silent": Mode.SILENT, "garbage": Mode.GARBAGE,
             "error": Mode.ERROR}
HELP = "commands: normal | freeze | silent | garbage | error | set L1 [L2 L3] | profile | status | quit"


async def _not_this_meter(function_code: int, start_address: int, address: int, count: int,
                          current_registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
    """Another device id: a real meter on a shared line stays silent (the server is told to ignore this)."""
    raise NoSuchIdException("not this meter")


class MeterEmulator:
    """The meter's registers and fault modes.  Not thread-safe: drive it from the server's event loop."""

    def __init__(self, meter_map: MeterMap, profile: LoadProfile, *, device_id: int = 1, seed: int = 1,
                 speed: float = 1.0, start_s: float = 0.0, voltage: float = 230.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if profile.phases != meter_map.phases:
            raise ValueError(f"the profile has {profile.phases} phases, an {meter_map.name} {meter_map.phases}")
        if not 1 <= device_id <= 247:
            raise ValueError(f"device id {device_id} must be 1-247")
        for r in (*meter_map.polled, *meter_map.voltages, *([meter_map.total_power] if meter_map.total_power else [])):
            if r.function is not Function.INPUT or r.address + r.words > SERVED:
                raise ValueError(f"{meter_map.name}: register {r.address:#06x} is outside the served input block")
        self.meter_map = meter_map
        self.profile = profile
        self.device_id = device_id
        self.speed = speed
        self.start_s = start_s
        self.voltage = voltage
        self.clock = clock
        self.mode = Mode.NORMAL
        self.hold: tuple[float, ...] | None = None
        self.answered = 0
        self.unanswered = 0
        self._rng = random.Random(seed)
        self._t0 = clock()
        self._fresh = False  # whether the block has been filled once (a freeze keeps what was last served)

    # -- values -------------------------------------------------------------------

    def profile_time(self) -> float:
        return self.start_s + (self.clock() - self._t0) * self.speed

    def currents(self) -> tuple[float, ...]:
        """Net current per phase now (A, + import, - export)."""
        return self.hold if self.hold is not None else self.profile.currents(self.profile_time())

    def registers(self) -> list[int]:
        """The served block as the meter would show it now."""
        words = [0] * SERVED
        m = self.meter_map
        net = self.currents()
        t = self.profile_time()
        volts = [self.voltage + 2.0 * math.sin(t / 37.0 + i) for i in range(m.phases)]
        powers = [v * i * POWER_FACTOR for v, i in zip(volts, net, strict=True)]

        def put(reg_address: int, regs: tuple[int, ...]) -> None:
            words[reg_address:reg_address + len(regs)] = regs

        for reg, v in zip(m.voltages, volts, strict=False):
            put(reg.address, reg.encode(v))
        for reg, i in zip(m.currents, net, strict=True):
            put(reg.address, reg.encode(abs(i)))
        for reg, p in zip(m.powers, powers, strict=False):
            put(reg.address, reg.encode(p))
        if m.total_power is not None:
            put(m.total_power.address, m.total_power.encode(sum(powers)))
        return words

    # -- the pymodbus side --------------------------------------------------------

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     current_registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """Called by pymodbus on every request to this device id, before it answers from ``current_registers``."""
        if function_code != Function.INPUT or set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS  # the settings (holding registers) are not emulated
        if self.mode is Mode.SILENT:
            self.unanswered += 1
            raise NoSuchIdException("silent")  # with ignore_missing_devices: no reply at all
        if self.mode is Mode.ERROR:
            self.answered += 1
            return ExcCodes.DEVICE_FAILURE
        first = address - start_address
        if self.mode is Mode.GARBAGE:
            current_registers[first:first + count] = [self._rng.randrange(0x10000) for _ in range(count)]
        elif self.mode is Mode.NORMAL or not self._fresh:
            current_registers[:SERVED] = self.registers()
            self._fresh = True
        self.answered += 1
        return None

    def devices(self) -> list[SimDevice]:
        block = [SimData(address=0, count=SERVED, datatype=DataType.REGISTERS)]
        every = [SimData(address=0, count=0x10000, datatype=DataType.REGISTERS)]
        return [SimDevice(id=self.device_id, simdata=block, action=self.action),
                SimDevice(id=0, simdata=every, action=_not_this_meter)]  # id 0: every other id

    async def serve(self, link: TcpEndpoint | SerialLine) -> tuple[ModbusTcpServer | ModbusSerialServer, str]:
        """Start serving in the running loop; returns the server and where it listens (the real TCP port)."""
        if isinstance(link, SerialLine):
            serial_server = ModbusSerialServer(self.devices(), framer=FramerType.RTU, port=link.port,
                                               baudrate=link.baud, parity=link.parity.value,
                                               stopbits=link.stopbits, bytesize=8, ignore_missing_devices=True)
            await serial_server.serve_forever(background=True)
            return serial_server, link.port
        tcp_server = ModbusTcpServer(self.devices(), address=(link.host, link.port), ignore_missing_devices=True)
        await tcp_server.serve_forever(background=True)
        sockets = getattr(tcp_server.transport, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else link.port
        return tcp_server, str(TcpEndpoint(link.host, port))

    # -- commands -----------------------------------------------------------------

    def status(self) -> Record:
        t = self.profile_time()
        return {"event": "status", "t": round(time.monotonic(), 6), "mode": self.mode.value,
                "currents_a": [round(i, 3) for i in self.currents()],
                "source": "set" if self.hold is not None else "profile",
                "on": [] if self.hold is not None else self.profile.active(t),
                "profile_time_s": round(t, 1), "answered": self.answered, "unanswered": self.unanswered}

    def command(self, line: str) -> Record | None:
        """One control command -> the record to print (None: nothing to do).  ``quit`` is the caller's."""
        words = line.split()
        if not words or words[0].startswith("#"):
            return None
        verb, args = words[0].lower(), words[1:]
        now = round(time.monotonic(), 6)
        if verb in _COMMANDS and not args:
            self.mode = _COMMANDS[verb]
            return {"event": "mode", "t": now, "mode": self.mode.value}
        if verb == "set":
            try:
                amps = tuple(float(a) for a in args)
            except ValueError:
                amps = ()
            if len(amps) != self.meter_map.phases or not all(math.isfinite(a) for a in amps):
                return {"event": "error", "t": now,
                        "detail": f"set takes {self.meter_map.phases} current(s) in A, got {' '.join(args)!r}"}
            self.hold = amps
            return {"event": "set", "t": now, "currents_a": list(amps)}
        if verb == "profile" and not args:
            self.hold = None
            return {"event": "profile", "t": now}
        if verb == "status" and not args:
            return self.status()
        return {"event": "error", "t": now, "detail": f"unknown command {line.strip()!r}; {HELP}"}


def dumps(record: Record) -> str:
    return json.dumps(record, separators=(", ", ": "))
