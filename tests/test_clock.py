"""The clock seam: a fake clock moves only when told, so tests of time need no sleeping."""

from __future__ import annotations

from jobrunner.clock import SYSTEM_CLOCK, FakeClock


def test_fake_clock_moves_only_when_advanced() -> None:
    clock = FakeClock(start=100.0)
    assert (clock.time(), clock.monotonic()) == (100.0, 0.0)
    clock.advance(2.5)
    assert (clock.time(), clock.monotonic()) == (102.5, 2.5)


def test_system_clock_monotonic_never_goes_back() -> None:
    readings = [SYSTEM_CLOCK.monotonic() for _ in range(1000)]
    assert readings == sorted(readings)
    assert SYSTEM_CLOCK.time() > 1_600_000_000
