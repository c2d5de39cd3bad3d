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
import threading

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


class RedisProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
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
        return f"redis://127.0.0.1:{self.port}/0"

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
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port)
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
        try:
            await asyncio.gather(self._upstream(reader, link), self._downstream(up_reader, link))
        finally:
            self._links.discard(link)
            link.close()

    async def _upstream(self, reader: asyncio.StreamReader, link: _Link) -> None:
        while data := await reader.read(65536):
            with self._lock:
                if self._drops_left and self._marker and self._marker in data:
                    self._drops_left -= 1
                    link.drop_next_reply = True
            link.server.write(data)
            await link.server.drain()
        link.close()

    async def _downstream(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if link.drop_next_reply:  # the command ran; its caller never hears of it
                    self.dropped += 1
                    link.close()
                    return
                link.client.write(data)
                await link.client.drain()
        link.close()
