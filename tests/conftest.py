"""Shared test settings: hypothesis never asserts timings (machines here are shared and noisy)."""

from hypothesis import HealthCheck
from hypothesis import settings

settings.register_profile(
    "busshare",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("busshare")
