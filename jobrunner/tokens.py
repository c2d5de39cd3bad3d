"""API tokens: bearer credentials with scopes, optionally bound to queues, stored hashed.

A token reads ``jrt_<id>_<secret>``: the id finds its record in one HASH (``jr:tokens``), and
the record holds only the SHA-256 of the secret, so a copy of Redis (or of its logs) yields no
usable token. The secret is 32 random bytes, so a fast hash is enough: there is nothing to guess
that a slow hash would protect (a slow hash is for low-entropy passwords). Compared in constant
time. ``jobrunner token create|list|revoke`` manages them; the API checks them (``api/auth.py``).

Scopes: ``enqueue`` (POST /jobs), ``read`` (jobs, queues, dead letters, schedules, the
dashboard's feed, the OpenAPI docs), ``admin`` (requeue, cancel, pause, debug routes, the
dashboard's actions) and ``metrics`` (only GET /metrics, for a Prometheus scraper).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from jobrunner.job import check_queue_name
from jobrunner.keys import PREFIX

SCOPES = ("enqueue", "read", "admin", "metrics")
TOKEN_PREFIX = "jrt_"


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What is stored for a token (never the token itself)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    queues: tuple[str, ...] = ()  # empty: every queue
    created: float = 0.0
    secret_sha256: str = ""

    def allows(self, queue: str) -> bool:
        return not self.queues or queue in self.queues

    def public(self) -> dict[str, Any]:
        """The record without its hash, for listing."""
        out = msgspec.structs.asdict(self)
        out.pop("secret_sha256")
        return out


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TokenRecord)


def tokens_key(prefix: str = PREFIX) -> str:
    """HASH token id -> its record (JSON, the secret's SHA-256 only)."""
    return f"{prefix}:tokens"


def new_token(
    name: str, scopes: Iterable[str], queues: Sequence[str] = ()
) -> tuple[str, TokenRecord]:
    """A fresh token and the record to store for it. The token is shown once, never stored."""
    scopes = tuple(dict.fromkeys(scopes))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}, not {list(scopes)}")
    for queue in queues:
        check_queue_name(queue)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    record = TokenRecord(id=token_id, name=name, scopes=scopes, queues=tuple(queues),
                         created=time.time(), secret_sha256=_digest(secret))  # fmt: skip
    return f"{TOKEN_PREFIX}{token_id}_{secret}", record


def encode_record(record: TokenRecord) -> bytes:
    return _encoder.encode(record)


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    return (token_id, secret) if sep and token_id and secret else None


def matches(record: TokenRecord, secret: str) -> bool:
    return hmac.compare_digest(record.secret_sha256, _digest(secret))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Tokens in Redis, on an asyncio client."""

    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.key = tokens_key(prefix)

    async def create(
        self, name: str, scopes: Iterable[str], queues: Sequence[str] = ()
    ) -> tuple[str, TokenRecord]:
        token, record = new_token(name, scopes, queues)
        await self.redis.hset(self.key, record.id, encode_record(record))
        return token, record

    async def list(self) -> list[TokenRecord]:
        raw = await self.redis.hgetall(self.key)
        return sorted((_decoder.decode(v) for v in raw.values()), key=lambda r: r.created)

    async def revoke(self, token_id: str) -> bool:
        return bool(await self.redis.hdel(self.key, token_id))

    async def verify(self, token: str) -> TokenRecord | None:
        """The record of a valid token, else None (malformed, unknown, revoked or wrong)."""
        parts = split_token(token)
        if parts is None:
            return None
        raw = await self.redis.hget(self.key, parts[0])
        if raw is None:
            return None
        record = _decoder.decode(raw)
        return record if matches(record, parts[1]) else None
