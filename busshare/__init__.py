"""busshare: wired EV-charger current sharing over CAN and Modbus RTU."""

__version__ = "0.1.0"
