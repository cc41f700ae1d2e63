"""Process edges: the clocks, threads and sockets around the sans-IO core."""
