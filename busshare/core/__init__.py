"""Sans-IO pieces of the stack: no sockets, threads, sleeps or clocks (docs/ARCHITECTURE.md)."""
