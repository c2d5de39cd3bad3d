"""One Redis connection shared by every concurrent caller, each command written at once and its
reply matched by order (Redis answers a connection's commands in order): many awaits in flight
are pipelined without anyone asking, as ioredis and Lettuce do, and a lone caller pays one
round trip and no pool.

Why not redis-py's client here: its asyncio side spends about 80 µs of CPU on a call (pool
checkout, retry wrapper, event dispatch, a parser that awaits a stream), more than the enqueue
script costs Redis; a round trip on this connection is a ``transport.write`` and a
``data_received`` callback, with hiredis (redis-py's own C parser) doing the protocol. The
transition scripts use it, a producer's and a worker's (``ReliableQueue(pipelined=True)``; the
blocking ``SyncPipelinedConnection`` for ``SyncClient`` sits on a redis-py connection); blocking
waits, reads and everything else stay on redis-py. It speaks RESP2 and does what those calls
need of a connection: TCP, TLS or a unix socket, AUTH (ACL user and password), SELECT, a reply
deadline, and a reconnect on the next call after a failure (whose callers are told the reply
may have been lost).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import threading
import time
from typing import Any

import hiredis
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What an error reply's first word means, as redis-py's exceptions (callers handle those).
ERRORS: dict[str, type[ResponseError]] = {
    "NOSCRIPT": NoScriptError,
    "OOM": OutOfMemoryError,
    "READONLY": ReadOnlyError,
    "LOADING": BusyLoadingError,  # type: ignore[dict-item]
    "NOAUTH": AuthenticationError,  # type: ignore[dict-item]
    "WRONGPASS": AuthenticationError,  # type: ignore[dict-item]
}

# A cluster node's refusals, made from what follows the first word as redis-py makes them (a
# MOVED or ASK carries "slot host:port"): routed.py sends the call again once the map is fresh.
REFUSALS: dict[str, type[ResponseError]] = {
    "MOVED": MovedError,
    "ASK": AskError,
    "TRYAGAIN": TryAgainError,
    "CLUSTERDOWN": ClusterDownError,
}


class ConnectFailed(RedisConnectionError):
    """No connection could be made: nothing was sent, so the call may be made again."""


class NotReplicated(RedisConnectionError):
    """A write ran on the primary, but ``WAIT`` saw fewer replicas take it than asked: a
    failover now could lose it. ``reply`` is what the script returned."""

    def __init__(self, reply: Any, replicas: int, wanted: int) -> None:
        super().__init__(f"written, but acknowledged by {replicas} of {wanted} replicas")
        self.reply = reply
        self.replicas = replicas


def error_of(reply: hiredis.ReplyError) -> Exception:
    message = str(reply)
    word, _, rest = message.partition(" ")
    if word in REFUSALS:
        return REFUSALS[word](rest)
    return ERRORS.get(word, ResponseError)(message)


class _Protocol(asyncio.Protocol):
    """Replies, in order, to the futures of the commands written."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future, _ = self.waiting.popleft()
            if future.done():  # its caller was cancelled: the reply is read and dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(error_of(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(self.lost or RedisConnectionError(f"connection to Redis lost ({exc})"))

    def fail(self, exc: Exception) -> None:
        self.lost = exc
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)


class PipelinedConnection:
    """One shared connection: ``await conn.execute("EVALSHA", ...)`` from any number of tasks.

    Built from a redis-py client's settings (``from_redis``), so it reaches the same server
    with the same credentials.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._address = (host, port, path)
        self._db, self._username, self._password = db, username, password
        self._ssl = ssl_context
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    def from_redis(cls, redis: Redis) -> PipelinedConnection:
        """The server, credentials and timeout a redis-py asyncio client was given."""
        pool = redis.connection_pool
        tls = pool.connection_class.__name__.startswith("SSL")
        return cls.from_kwargs(pool.connection_kwargs, tls=tls)

    @classmethod
    def from_kwargs(
        cls, kw: dict[str, Any], *, tls: bool = False, host: str | None = None,
        port: int | None = None,
    ) -> PipelinedConnection:  # fmt: skip
        """From redis-py connection settings (a cluster node's: its ``host`` and ``port``)."""
        context = None
        if tls or "ssl_cert_reqs" in kw or kw.get("ssl"):
            context = ssl.create_default_context(cafile=kw.get("ssl_ca_certs"))
            if kw.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if kw.get("ssl_certfile"):
                context.load_cert_chain(kw["ssl_certfile"], kw.get("ssl_keyfile"))
        return cls(
            host=host or kw.get("host", "127.0.0.1"), port=int(port or kw.get("port", 6379)),
            path=kw.get("path"), db=int(kw.get("db", 0) or 0), username=kw.get("username"),
            password=kw.get("password"), ssl_context=context,
            timeout=float(kw.get("socket_timeout") or 10.0),
        )  # fmt: skip

    async def execute(self, *args: Any) -> Any:
        """Send one command and await its reply; error replies raise redis-py's exceptions."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        return await self._send(protocol, args)

    async def evalsha(
        self, sha: str, source: Any, keys: list[Any], args: list[Any],
        wait: tuple[int, int] | None = None,
    ) -> Any:  # fmt: skip
        """Run a script by its SHA, loading it first where Redis does not know it (a restart,
        a SCRIPT FLUSH). ``wait`` = (replicas, timeout ms): a ``WAIT`` follows the script on
        this connection, in the same write; fewer replicas than asked raise ``NotReplicated``
        (the script's writes are on the primary, not yet known to be on its replicas)."""
        try:
            return await self._evalsha(sha, keys, args, wait)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", source)
            return await self._evalsha(sha, keys, args, wait)

    async def _evalsha(
        self, sha: str, keys: list[Any], args: list[Any], wait: tuple[int, int] | None
    ) -> Any:
        if wait is None:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        ran = self._send(protocol, ("EVALSHA", sha, len(keys), *keys, *args))
        acked = self._send(protocol, ("WAIT", *wait))  # the same write, the same connection
        try:
            reply = await ran
        finally:
            await asyncio.gather(acked, return_exceptions=True)  # its reply is read either way
        if (replicas := int(acked.result())) < wait[0]:
            raise NotReplicated(reply, replicas, wait[0])
        return reply

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.fail(RedisConnectionError("connection closed by the client"))
            self._protocol.transport.close()
        self._protocol = None

    def _send(self, protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.waiting.append((future, time.monotonic()))
        assert protocol.transport is not None
        protocol.transport.write(hiredis.pack_command(args))
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(
                self.timeout / 2, self._check_deadline
            )
        return future

    def _check_deadline(self) -> None:
        """Every timeout/2 while replies are awaited: one awaited longer than ``timeout`` means
        the server or the path to it is gone; every caller waiting is told so."""
        self._watchdog = None
        protocol = self._protocol
        if protocol is None or not protocol.waiting:
            return
        if time.monotonic() - protocol.waiting[0][1] > self.timeout:
            protocol.fail(RedisTimeoutError(f"no reply from Redis in {self.timeout} s"))
            if protocol.transport is not None:
                protocol.transport.abort()
            return
        self._watchdog = asyncio.get_running_loop().call_later(
            self.timeout / 2, self._check_deadline
        )

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            host, port, path = self._address
            try:
                async with asyncio.timeout(self.timeout):
                    if path:
                        _, protocol = await loop.create_unix_connection(_Protocol, path)
                    else:
                        _, protocol = await loop.create_connection(
                            _Protocol, host, port, ssl=self._ssl
                        )
            except (OSError, TimeoutError) as exc:
                raise ConnectFailed(f"cannot connect to Redis: {exc}") from exc
            try:
                async with asyncio.timeout(self.timeout):
                    if self._password is not None:
                        user = [self._username] if self._username else []
                        await self._send(protocol, ("AUTH", *user, self._password))
                    if self._db:
                        await self._send(protocol, ("SELECT", self._db))
            except BaseException as exc:
                assert protocol.transport is not None
                protocol.transport.close()
                if isinstance(exc, TimeoutError):
                    raise RedisTimeoutError("Redis did not answer AUTH/SELECT in time") from exc
                raise
            self._protocol = protocol
            return protocol


class _Call:
    """One command of a ``SyncPipelinedConnection``: its outcome, and a flag for its thread."""

    __slots__ = ("args", "done", "error", "lead", "value")

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args = args
        self.value: Any = None
        self.error: BaseException | None = None
        self.done: threading.Event | None = None  # made only for a thread that waits
        self.lead = False  # handed the connection: send what is pending

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class SyncPipelinedConnection:
    """The blocking twin, for ``SyncClient``: one connection (redis-py's, so TLS, AUTH and
    reconnects are its), shared by threads. A thread that finds the connection idle sends its
    command and every other pending one in one write and reads their replies; threads that
    arrive meanwhile wait, and the first of them sends the next batch. One thread alone pays a
    plain round trip; sixty-four pay one round trip per batch.
    """

    def __init__(self, redis: SyncRedis) -> None:
        self._conn: Any = redis.connection_pool.make_connection()  # redis-py leaves it untyped
        self._lock = threading.Lock()
        self._pending: list[_Call] = []
        self._driving = False

    def execute(self, *args: Any) -> Any:
        call = _Call(args)
        with self._lock:
            self._pending.append(call)
            lead = not self._driving
            if lead:
                self._driving = True
            else:
                call.done = threading.Event()
        if not lead:
            assert call.done is not None
            call.done.wait()
            if not call.lead:
                return call.outcome()
        self._drive()
        return call.outcome()

    def evalsha(self, sha: str, source: Any, keys: list[Any], args: list[Any]) -> Any:
        """As ``PipelinedConnection.evalsha``."""
        try:
            return self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            self.execute("SCRIPT", "LOAD", source)
            return self.execute("EVALSHA", sha, len(keys), *keys, *args)

    def close(self) -> None:
        with self._lock:
            self._conn.disconnect()

    def _drive(self) -> None:
        """Send everything pending in one write, read the replies, then hand the connection to
        the first thread that arrived meanwhile (or leave it idle)."""
        with self._lock:
            batch, self._pending = self._pending, []
        self._round_trip(batch)
        with self._lock:
            if not self._pending:
                self._driving = False
                return
            following = self._pending[0]
        following.lead = True
        assert following.done is not None
        following.done.set()

    def _round_trip(self, batch: list[_Call]) -> None:
        conn = self._conn
        try:
            # hiredis packs in C what redis-py's encoder packs an argument at a time in Python
            conn.send_packed_command([b"".join([hiredis.pack_command(c.args) for c in batch])])
            for call in batch:
                try:
                    call.value = conn.read_response()
                except ResponseError as exc:  # an error reply: the stream is still in step
                    call.error = exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            conn.disconnect()  # the next call connects again
            for call in batch:
                if call.value is None and call.error is None:
                    call.error = RedisConnectionError(f"connection to Redis lost ({exc})")
        finally:
            for call in batch:
                if call.done is not None:
                    call.done.set()
