"""Safe to expose: tokens and scopes on every route, queue-bound tokens, revocation, the
dashboard's session and CSRF, trusted hosts, and --no-auth kept to loopback.

Each finding of the safe-to-expose issue is reproduced here over real HTTP: before, every
route answered anyone, a cross-site form could requeue every dead job, and a foreign Host
header was served.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis

from jobrunner.config import Settings
from jobrunner.tokens import tokens_key
from tests.api_server import ApiUrl, bearer, make_token, running_api

QUEUES = ["default", "high"]


@pytest.fixture
def base(redis_url: str) -> Iterator[ApiUrl]:
    settings = Settings(redis_url=redis_url, queues=QUEUES, token_cache_seconds=0,
                        debug_routes=True)  # fmt: skip
    with running_api(settings) as url:
        yield url


GUARDED = [
    ("POST", "/jobs"), ("GET", "/jobs/abc"), ("GET", "/failed"), ("POST", "/failed/requeue"),
    ("POST", "/failed/abc/requeue"), ("GET", "/queues"), ("GET", "/schedules"),
    ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"),
    ("GET", "/dashboard/events"), ("GET", "/dashboard/snapshot"), ("GET", "/debug/heap"),
    ("GET", "/no-such-route"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_every_route_but_the_probes_needs_a_token(base: ApiUrl, method: str, path: str) -> None:
    for headers in ({}, bearer("jrt_nope_wrong"), bearer(base.token + "x"), {"authorization": "x"}):
        answer = httpx.request(method, f"{base}{path}", json={"type": "noop"}, headers=headers)
        assert answer.status_code == 401, (path, headers)
        assert answer.json()["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_the_probes_and_the_login_page_need_none(base: ApiUrl) -> None:
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 503  # answered: no worker yet
    assert "Sign in" in httpx.get(f"{base}/dashboard").text


@pytest.mark.parametrize(
    ("scopes", "allowed", "refused"),
    [
        (["enqueue"], [("POST", "/jobs")], [("GET", "/queues"), ("POST", "/failed/requeue")]),
        (["read"], [("GET", "/queues"), ("GET", "/failed"), ("GET", "/openapi.json"),
                    ("GET", "/metrics")], [("POST", "/jobs"), ("POST", "/failed/requeue")]),
        (["admin"], [("POST", "/failed/requeue"), ("GET", "/debug/heap")], [("POST", "/jobs")]),
        (["metrics"], [("GET", "/metrics")], [("GET", "/queues"), ("GET", "/jobs/x")]),
    ],
)  # fmt: skip
def test_each_route_needs_its_scope(
    base: ApiUrl,
    redis_url: str,
    scopes: list[str],
    allowed: list[tuple[str, str]],
    refused: list[tuple[str, str]],
) -> None:
    headers = bearer(make_token(redis_url, scopes))
    for method, path in allowed:
        answer = httpx.request(method, f"{base}{path}", json={"type": "noop"}, headers=headers)
        assert answer.status_code < 400, (path, answer.text)
    for method, path in refused:
        answer = httpx.request(method, f"{base}{path}", json={"type": "noop"}, headers=headers)
        assert answer.status_code == 403, path
        assert answer.json()["code"] == "forbidden"


def test_a_token_bound_to_a_queue_cannot_touch_another(
    base: ApiUrl, redis_url: str, sync_redis: redis.Redis
) -> None:
    other = httpx.post(f"{base}/jobs", json={"type": "noop"}, headers=base.headers)
    other_id = other.json()["ids"][0]
    headers = bearer(make_token(redis_url, ["enqueue", "read", "admin"], queues=["high"]))
    mine = httpx.post(f"{base}/jobs", json={"type": "noop", "queue": "high"}, headers=headers)
    assert mine.status_code == 202
    refused = httpx.post(f"{base}/jobs", headers=headers, json={"jobs": [
        {"type": "noop", "queue": "high"}, {"type": "noop", "queue": "default"}]})  # fmt: skip
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_queue")
    assert refused.json()["field"] == "jobs.1.queue"
    assert sync_redis.llen("jr:{high}:ready") == 1  # nothing of the refused batch
    assert httpx.get(f"{base}/jobs/{other_id}", headers=headers).status_code == 404
    assert [q["name"] for q in httpx.get(f"{base}/queues", headers=headers).json()] == ["high"]
    assert httpx.get(f"{base}/failed?queue=default", headers=headers).status_code == 403
    assert httpx.post(f"{base}/failed/requeue?queue=default", headers=headers).status_code == 403


def test_a_revoked_token_stops_working(base: ApiUrl, redis_url: str) -> None:
    token = make_token(redis_url, ["read"])
    assert httpx.get(f"{base}/queues", headers=bearer(token)).status_code == 200
    done = subprocess.run([sys.executable, "-m", "jobrunner.cli", "token", "revoke",
                           token.split("_")[1], "--redis-url", redis_url],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.startswith("revoked")
    assert httpx.get(f"{base}/queues", headers=bearer(token)).status_code == 401


def test_tokens_are_stored_hashed_never_in_clear(redis_url: str, sync_redis: redis.Redis) -> None:
    done = subprocess.run([sys.executable, "-m", "jobrunner.cli", "token", "create", "--name",
                           "ci", "--scope", "enqueue", "--redis-url", redis_url],
                          capture_output=True, text=True, check=True)  # fmt: skip
    token = done.stdout.strip()
    token_id, secret = token.removeprefix("jrt_").split("_", 1)
    stored = sync_redis.hget(tokens_key(), token_id)
    assert stored is not None
    assert secret.encode() not in stored
    dump = b"".join(sync_redis.dump(k) or b"" for k in sync_redis.keys("*"))
    assert secret.encode() not in dump
    listed = subprocess.run([sys.executable, "-m", "jobrunner.cli", "token", "list", "--redis-url",
                             redis_url], capture_output=True, text=True, check=True)  # fmt: skip
    assert "ci" in listed.stdout
    assert secret not in listed.stdout


def dead_jobs(sync_redis: redis.Redis, count: int) -> None:
    for i in range(count):
        spec = f'{{"id":"d{i}","type":"noop"}}'
        sync_redis.hset(f"jr:{{default}}:job:d{i}", mapping={"d": spec, "s": "dead", "a": 1})
        sync_redis.zadd("jr:{default}:dead", {f"d{i}": i})


@contextmanager
def signed_in(base: ApiUrl, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, follow_redirects=True) as client:
        assert client.get("/dashboard", params={"token": token}).status_code == 200
        yield client


def test_a_cross_site_post_with_the_session_cookie_is_refused(
    base: ApiUrl, redis_url: str, sync_redis: redis.Redis
) -> None:
    """A page elsewhere can make the browser send the cookie, never the CSRF header."""
    dead_jobs(sync_redis, 3)
    with signed_in(base, make_token(redis_url, ["read", "admin"])) as browser:
        cookie = browser.cookies.get("jr_session")
        assert cookie
        forged = browser.post("/failed/requeue?queue=default",
                              headers={"content-type": "application/x-www-form-urlencoded",
                                       "origin": "https://evil.example"})  # fmt: skip
        assert (forged.status_code, forged.json()["code"]) == (403, "csrf")
        assert sync_redis.zcard("jr:{default}:dead") == 3
        csrf = browser.get("/dashboard/session").json()["csrf"]
        done = browser.post("/failed/requeue?queue=default", headers={"x-csrf-token": csrf})
        assert done.json() == {"requeued": 3}
        assert browser.get("/queues").status_code == 200  # reads need no CSRF header
        browser.post("/dashboard/logout", headers={"x-csrf-token": csrf})
        assert browser.get("/queues").status_code == 401


def test_the_session_cookie_is_httponly_and_samesite_strict(base: ApiUrl, redis_url: str) -> None:
    answer = httpx.get(f"{base}/dashboard", params={"token": make_token(redis_url, ["read"])})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "jrt_" not in cookie  # the cookie is a session id, not the token


def test_login_needs_the_read_scope_and_this_origin(base: ApiUrl, redis_url: str) -> None:
    weak = httpx.post(f"{base}/dashboard/login", data={"token": make_token(redis_url, ["enqueue"])})
    assert weak.status_code == 401
    forged = httpx.post(f"{base}/dashboard/login", data={"token": base.token},
                        headers={"origin": "https://evil.example"})  # fmt: skip
    assert forged.status_code == 403
    fine = httpx.post(f"{base}/dashboard/login", data={"token": base.token},
                      headers={"origin": base})  # fmt: skip
    assert fine.status_code == 303


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.2", "[::2]:8000"])
def test_a_foreign_host_header_is_refused(base: ApiUrl, host: str) -> None:
    """DNS rebinding: a name the attacker controls pointed at 127.0.0.1 is not served."""
    answer = httpx.get(f"{base}/queues", headers={**base.headers, "host": host})
    assert (answer.status_code, answer.json()["code"]) == (400, "bad_host")
    port = base.rsplit(":", 1)[1]
    for good in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(f"{base}/queues", headers={**base.headers, "host": good}).is_success


def test_no_auth_is_refused_beyond_loopback_unless_forced(redis_url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "jobrunner.cli", "api", "--no-auth", "--host",
                           "0.0.0.0", "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "--no-auth on 0.0.0.0 would let anyone" in done.stderr


def test_with_auth_off_on_loopback_every_route_answers(redis_url: str) -> None:
    with running_api(Settings(redis_url=redis_url, auth=False)) as url:
        assert httpx.post(f"{url}/jobs", json={"type": "noop"}).status_code == 202
        assert httpx.get(f"{url}/queues").status_code == 200
