"""Bus utilisation table: 4..62 servants at 125k..1M bit/s, steady state (exact stuffing) / worst case.

Run: python benchmarks/bench_busload.py [--extended]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from busshare.analysis.busload import busload

SERVANTS = (4, 8, 16, 32, 62)
BITRATES = (125_000, 250_000, 500_000, 1_000_000)


def main() -> None:
    extended = "--extended" in sys.argv
    first = busload(BITRATES[0], SERVANTS[0], extended)
    print(f"bus load, {'29' if extended else '11'}-bit ids, heartbeat {first.heartbeat_period:g} s, "
          f"status {first.status_period:g} s: steady % (exact stuffing) / worst % (stuffing bound)")
    print(f"{'servants':>8} {'frames/s':>9}" + "".join(f"{b // 1000:>13}k" for b in BITRATES))
    for n in SERVANTS:
        cells = []
        for b in BITRATES:
            r = busload(b, n, extended)
            cells.append(f"{r.steady_percent:6.2f}/{r.worst_percent:6.2f}")
        print(f"{n:>8} {busload(BITRATES[0], n, extended).frames_per_s:>9.1f}" + "".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
