"""Tools for tests and demos that stand in for real equipment (a mains meter, an RS-485 line)."""
