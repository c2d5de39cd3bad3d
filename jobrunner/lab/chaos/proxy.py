"""A TCP proxy in front of Redis that can drop a connection at the worst moment.

``drop_replies(marker, count)``: the next ``count`` commands whose bytes contain ``marker`` (an
ack script's SHA, say) reach Redis and run there, but the connection is cut before the reply
comes back: the caller cannot know whether its write happened. ``cut_all()`` drops every open
connection (a network blip); ``set_down(True)`` drops them and refuses new ones until
``set_down(False)`` (the server gone a while; any TCP server, PostgreSQL too). Runs its own
event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import threading
from collections.abc import Callable

from jobrunner.dev.redis_server import free_port
from jobrunner.scripts import script_source


def script_sha(name: str) -> bytes:
    """The SHA1 redis-py sends with EVALSHA for ``lua/<name>.lua``."""
    return hashlib.sha1(script_source(name).encode()).hexdigest().encode()


class _Link:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.drop_next_reply = False

    def close(self) -> None:
        for writer in (self.client, self.server):
            with contextlib.suppress(Exception):
                writer.close()


class _Delayed:
    """Writes chunks to ``writer`` in order, each at its due time (see the module's doc)."""

    def __init__(self, writer: asyncio.StreamWriter, proxy: RedisProxy) -> None:
        self.writer = writer
        self.proxy = proxy
        self.last_due = 0.0
        self.queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._deliver())

    def put(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.proxy.latency
        self.proxy.chunks += 1
        if self.proxy.loss and self.proxy.rng.random() < self.proxy.loss:
            due += self.proxy.rng.uniform(*self.proxy.stall)
            self.proxy.stalls += 1
        self.last_due = max(due, self.last_due)  # nothing overtakes a held chunk
        self.queue.put_nowait((self.last_due, data))

    async def finish(self) -> None:
        """Deliver what is queued, then stop."""
        self.queue.put_nowait(None)
        await self.task

    async def _deliver(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError, OSError):  # the link closed: nothing to do
            while (item := await self.queue.get()) is not None:
                due, data = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)  # the link's delay is the point
                self.writer.write(data)
                await self.writer.drain()


class RedisProxy:
    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
        listen_port: int | None = None, latency: float = 0.0, loss: float = 0.0,
        stall: tuple[float, float] = (0.2, 0.4), seed: int | None = None,
        thread_setup: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.target = (target_host, target_port)
        self.host = listen_host
        self.port = listen_port or free_port()
        self.latency = latency
        self.loss = loss
        self.stall = stall
        self.rng = random.Random(seed)
        self.chunks = 0  # chunks forwarded through the delay (either way)
        self.stalls = 0  # of those, held as if lost and sent again
        self._thread_setup = thread_setup
        self.dropped = 0
        self._marker = b""
        self._drops_left = 0
        self.down = False  # new connections are closed at once, as a server that is gone
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="redis-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def drop_replies(self, marker: bytes, count: int = 1) -> None:
        with self._lock:
            self._marker, self._drops_left = marker, count

    def cut_all(self) -> None:
        def cut() -> None:
            for link in list(self._links):
                link.close()

        self._loop.call_soon_threadsafe(cut)

    def set_down(self, down: bool) -> None:
        """Down: every open connection dropped, every new one closed at once; up: pass again."""
        self.down = down
        if down:
            self.cut_all()

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for link in list(self._links):
                link.close()
            await asyncio.sleep(0)  # let the closed transports finish closing

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> RedisProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _serve(self) -> None:
        if self._thread_setup is not None:
            self._thread_setup()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, self.host, self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        # always through the delay: latency and loss may be turned on while connections live
        to_server, to_client = _Delayed(up_writer, self), _Delayed(writer, self)
        try:
            await asyncio.gather(self._upstream(reader, link, to_server),
                                 self._downstream(up_reader, link, to_client))  # fmt: skip
        finally:
            self._links.discard(link)
            link.close()
            for delayed in (to_server, to_client):
                delayed.task.cancel()

    async def _upstream(self, reader: asyncio.StreamReader, link: _Link, delayed: _Delayed) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                with self._lock:
                    # one drop per link: a second marked command pipelined on a link already
                    # doomed must not use up a drop the count will never see
                    if (self._drops_left and self._marker and self._marker in data
                            and not link.drop_next_reply):  # fmt: skip
                        self._drops_left -= 1
                        link.drop_next_reply = True
                delayed.put(data)
            await delayed.finish()
        link.close()

    async def _downstream(
        self, reader: asyncio.StreamReader, link: _Link, delayed: _Delayed
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if link.drop_next_reply:  # the command ran; its caller never hears of it
                    self.dropped += 1
                    link.close()
                    return
                delayed.put(data)
            await delayed.finish()
        link.close()
