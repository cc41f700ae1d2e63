import threading

from busshare.core.source_settings import meter_settings_from_mapping
from busshare.io.meter import MeterClient
from busshare.io.meter import MeterEvent

seen: list[MeterEvent] = []
enough = threading.Event()


def show(event: MeterEvent) -> None:
    print(event)
    seen.append(event)
    if len(seen) == 15:
        enough.set()


settings = meter_settings_from_mapping(
    {"kind": "sdm630", "tcp": "127.0.0.1:5020", "poll_s": 1.0, "timeout_s": 5.0, "frozen_s": 2.5,
     "request_timeout_s": 0.5})
with MeterClient(settings, sink=show).start():
    enough.wait(60)
