"""A flaky downstream service to aim jobs at: capacity per second, latency that grows with
load, outages and random failures; it counts every call, so retries' extra work shows."""

from jobrunner.lab.dependency.client import (
    DependencyFailed,
    DependencyServer,
    HttpDependency,
    InProcessDependency,
)
from jobrunner.lab.dependency.model import CallResult, DependencyConfig, DependencyModel

__all__ = [
    "CallResult",
    "DependencyConfig",
    "DependencyFailed",
    "DependencyModel",
    "DependencyServer",
    "HttpDependency",
    "InProcessDependency",
]
