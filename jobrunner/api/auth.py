"""Who may call what: bearer tokens with scopes, dashboard sessions, CSRF, trusted hosts.

Every request but the probes (``/healthz``, ``/readyz``) and the dashboard's login page and
static files needs credentials: ``Authorization: Bearer jrt_...`` (see ``jobrunner.tokens``),
or the dashboard's session cookie (HttpOnly, SameSite=Strict), which logging in with a token
sets. A request made with the cookie that changes state must also carry ``X-CSRF-Token``, which
only a page of this origin can read (``GET /dashboard/session``): a cross-site form can send the
cookie but not the header. Each route needs one scope (``ROUTES``); a route not listed needs
``admin``, so a new route is closed until it is given a rule. Routes then check the token's
queues themselves (``principal.allows(queue)``).

Verified tokens are remembered for ``token_cache_seconds`` (5 s): a revoked token or its
sessions stop working within that time, and a request costs no Redis round trip for auth.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from jobrunner.api.errors import AUTH_UNAVAILABLE
from jobrunner.keys import PREFIX
from jobrunner.tokens import SCOPES, TokenRecord, TokenStore

PUBLIC = "public"  # no credentials
SIGNED_IN = "signed-in"  # any valid credentials, whatever the scopes
SESSION_COOKIE = "jr_session"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# (methods or "*", path regex, what it needs: a scope, several, PUBLIC or SIGNED_IN)
_RULES: list[tuple[str, str, frozenset[str] | str]] = [
    ("GET", r"/healthz|/readyz", PUBLIC),
    ("GET", r"/dashboard|/dashboard/static/.+", PUBLIC),
    ("POST", r"/dashboard/login", PUBLIC),
    ("*", r"/dashboard/(session|logout)", SIGNED_IN),
    ("POST", r"/jobs", frozenset({"enqueue"})),
    ("GET", r"/jobs/[^/]+", frozenset({"read"})),
    (
        "GET",
        r"/failed|/queues|/schedules|/scheduled|/running|/history|/dashboard/(events|snapshot)",
        frozenset({"read"}),
    ),
    # cancel, pause, resume, requeue and delete are not listed: they need admin
    ("GET", r"/metrics", frozenset({"metrics", "read"})),
    ("GET", r"/docs|/docs/oauth2-redirect|/redoc|/openapi\.json", frozenset({"read"})),
]
ROUTES = [(methods, re.compile(path), need) for methods, path, need in _RULES]
ADMIN = frozenset({"admin"})

EVERYTHING = TokenRecord(id="-", name="auth off", scopes=SCOPES)
NOBODY = TokenRecord(id="", name="anonymous", scopes=())
SCRAPER = TokenRecord(id="metrics", name="metrics token", scopes=("metrics",))


_EXACT: dict[tuple[str, str], frozenset[str] | str] = {}  # (method, path) seen, for exact rules


def need_of(method: str, path: str) -> frozenset[str] | str:
    """What a request needs; exact paths are remembered (job ids make the rest unbounded)."""
    found = _EXACT.get((method, path))
    if found is not None:
        return found
    for methods, pattern, need in ROUTES:
        if (methods == "*" or method == methods) and pattern.fullmatch(path):
            if "[" not in pattern.pattern and len(_EXACT) < 256:  # no variable part
                _EXACT[(method, path)] = need
            return need
    return ADMIN


class Session(msgspec.Struct, frozen=True):
    token_id: str
    csrf: str


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the token's record, and how it came (a session has a CSRF token)."""

    record: TokenRecord
    session: Session | None = None
    session_id: str | None = None

    def allows(self, queue: str) -> bool:
        return self.record.allows(queue)

    def has(self, scope: str) -> bool:
        return scope in self.record.scopes


class Authenticator:
    """Checks credentials against Redis, with a short in-process cache; opens sessions."""

    def __init__(
        self,
        prefix: str = PREFIX,
        cache_seconds: float = 5.0,
        session_ttl: float = 43_200.0,
        metrics_token: str = "",
    ) -> None:
        self.prefix = prefix
        self.metrics_token = metrics_token  # configured, not stored: good for /metrics only
        self.cache_seconds = cache_seconds
        self.session_ttl = session_ttl
        self._tokens: dict[str, tuple[float, TokenRecord | None]] = {}
        self._records: dict[str, tuple[float, TokenRecord | None]] = {}

    async def bearer(self, redis: Redis, token: str) -> TokenRecord | None:
        if self.metrics_token and secrets.compare_digest(token, self.metrics_token):
            return SCRAPER
        now = time.monotonic()
        cached = self._tokens.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await TokenStore(redis, self.prefix).verify(token)
        if len(self._tokens) > 10_000:  # many distinct bad tokens: forget, do not grow
            self._tokens.clear()
        self._tokens[token] = (now + self.cache_seconds, record)
        return record

    async def session(self, redis: Redis, session_id: str) -> Principal | None:
        raw = await redis.get(self._session_key(session_id))
        if raw is None:
            return None
        session = msgspec.json.decode(raw, type=Session)
        record = await self._record(redis, session.token_id)  # revoked token: no session
        return Principal(record, session, session_id) if record is not None else None

    async def open_session(self, redis: Redis, record: TokenRecord) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(token_id=record.id, csrf=secrets.token_urlsafe(24))
        await redis.set(self._session_key(session_id), msgspec.json.encode(session),
                        px=round(self.session_ttl * 1000))  # fmt: skip
        return session_id, session

    async def close_session(self, redis: Redis, session_id: str) -> None:
        await redis.delete(self._session_key(session_id))

    async def _record(self, redis: Redis, token_id: str) -> TokenRecord | None:
        now = time.monotonic()
        cached = self._records.get(token_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await redis.hget(TokenStore(redis, self.prefix).key, token_id)
        record = msgspec.json.decode(raw, type=TokenRecord) if raw is not None else None
        if len(self._records) > 10_000:
            self._records.clear()
        self._records[token_id] = (now + self.cache_seconds, record)
        return record

    def _session_key(self, session_id: str) -> str:
        # stored under a hash of the cookie: a copy of Redis yields no usable session
        return f"{self.prefix}:session:{hashlib.sha256(session_id.encode()).hexdigest()}"


Responder = Callable[[Send, int, str, str], Awaitable[None]]


class AuthMiddleware:
    """Authenticates each HTTP request and checks the scope its route needs."""

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, refuse: Responder, enabled: bool
    ) -> None:
        self.app = app
        self.auth = authenticator
        self.refuse = refuse
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.enabled:
            state["principal"] = Principal(EVERYTHING)
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        need = need_of(method, path)
        authorization = cookies = b""
        csrf = None
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                authorization = value
            elif name == b"cookie":
                cookies = value
            elif name == CSRF_HEADER:
                csrf = value
        try:
            principal = await self._principal(scope["app"].state.queue.redis, authorization,
                                              cookies)  # fmt: skip
        except RedisError:  # cannot check the credentials: refuse, and say why
            if need == PUBLIC:
                principal = None
            else:
                await self.refuse(send, 503, "redis_unavailable", AUTH_UNAVAILABLE)
                return
        state["principal"] = principal
        if need == PUBLIC:
            await self.app(scope, receive, send)
            return
        if principal is None:
            detail = "this route needs a token: Authorization: Bearer jrt_..."
            await self.refuse(send, 401, "unauthorized", detail)
            return
        if isinstance(need, frozenset) and not need & set(principal.record.scopes):
            detail = f"token {principal.record.name!r} lacks the {' or '.join(sorted(need))} scope"
            await self.refuse(send, 403, "forbidden", detail)
            return
        if principal.session is not None and method not in SAFE_METHODS:
            sent = (csrf or b"").decode(errors="replace")
            if not secrets.compare_digest(sent, principal.session.csrf):
                await self.refuse(send, 403, "csrf",
                                  "a change made with the session cookie needs the "
                                  "X-CSRF-Token header from GET /dashboard/session")  # fmt: skip
                return
        await self.app(scope, receive, send)

    async def _principal(
        self, redis: Redis, authorization: bytes, cookies: bytes
    ) -> Principal | None:
        scheme, _, token = authorization.decode(errors="replace").partition(" ")
        if scheme.lower() == "bearer" and token:
            record = await self.auth.bearer(redis, token.strip())
            return Principal(record) if record is not None else None
        session_id = cookie({b"cookie": cookies}, SESSION_COOKIE) if cookies else None
        if session_id:
            return await self.auth.session(redis, session_id)
        return None


def cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    for part in headers.get(b"cookie", b"").decode(errors="replace").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def principal_of(state: Any) -> Principal:
    """The request's principal; anonymous (no scope at all) when it presented no credentials."""
    found: Principal | None = getattr(state, "principal", None)
    return found if found is not None else Principal(NOBODY)


class TrustedHosts:
    """Answers 400 to a ``Host`` header not on the list: DNS rebinding cannot reach an API bound
    to 127.0.0.1 through a name the attacker controls."""

    def __init__(self, app: ASGIApp, allowed: list[str], refuse: Responder) -> None:
        self.app = app
        self.any = "*" in allowed
        self.allowed = {host.lower() for host in allowed if "/" not in host}
        # address ranges ("10.0.0.0/8"): a scraper that addresses each container by IP
        self.networks = [ipaddress.ip_network(n, strict=False) for n in allowed if "/" in n]
        self.refuse = refuse
        self._seen: dict[bytes, bool] = {}

    def allows(self, host: str) -> bool:
        if host in self.allowed:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def allows_header(self, raw: bytes) -> bool:
        """Whether a Host header value names an allowed host (remembered: few distinct ones)."""
        known = self._seen.get(raw)
        if known is None:
            host = raw.decode(errors="replace").lower()
            host = host[1 : host.index("]")] if host.startswith("[") and "]" in host else (
                host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            )  # fmt: skip
            known = self.allows(host)
            if len(self._seen) < 1024:
                self._seen[raw] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.any:
            raw = next((v for k, v in scope.get("headers") or () if k == b"host"), b"")
            if not self.allows_header(raw):
                raw_text = raw.decode(errors="replace")
                await self.refuse(send, 400, "bad_host",
                                  f"host {raw_text!r} is not one this API answers to "
                                  "(JOBRUNNER_ALLOWED_HOSTS)")  # fmt: skip
                return
        await self.app(scope, receive, send)


LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"]


def default_hosts(bind: str) -> list[str]:
    """Loopback names, and the address the API is bound to when that is a specific one."""
    extra = [] if bind in ("0.0.0.0", "::", "") else [bind]
    return list(dict.fromkeys([*LOOPBACK_NAMES, *extra]))
