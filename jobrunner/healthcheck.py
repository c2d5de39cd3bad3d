"""Container health checks with nothing but Python: ``python -m jobrunner.healthcheck URL``.

Slim images have no curl. Exit 0 when ``URL`` answers 2xx, 1 otherwise, with the reason on
stderr. ``--fresh NAME=SECONDS`` also requires the Prometheus gauge ``NAME`` in the body to hold a
timestamp at most that old: a worker whose metrics thread still answers but whose event loop has
stopped beating is then unhealthy too (``worker_last_heartbeat_timestamp_seconds=30``).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families


def gauge_value(body: str, name: str) -> float | None:
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


def check(url: str, fresh: Sequence[tuple[str, float]], timeout: float) -> str | None:
    """None when healthy, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} does not answer: {exc}"
    for name, max_age in fresh:
        value = gauge_value(body, name)
        if value is None:
            return f"{url} has no {name}"
        age = time.time() - value
        if age > max_age:
            return f"{name} is {age:.0f}s old (limit {max_age:.0f}s)"
    return None


def parse_fresh(text: str) -> tuple[str, float]:
    name, sep, seconds = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=SECONDS, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobrunner.healthcheck", description=__doc__)
    parser.add_argument("url")
    parser.add_argument(
        "--fresh", type=parse_fresh, action="append", default=[], metavar="NAME=SECONDS",
        help="a timestamp gauge at most this old",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    problem = check(args.url, args.fresh, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
