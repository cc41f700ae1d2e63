"""I/O edges: bind the sans-IO nodes to real buses (CAN, Modbus RTU)."""
