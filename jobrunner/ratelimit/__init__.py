"""Rate and concurrency limits: token bucket, GCRA, sliding-window counter, leased semaphore.

Each algorithm exists twice behind one interface (``Limiter``): in Redis, shared by every
process (``redis_limiter``), and in-process (``local_limiter``). ``LimitSpec`` says what a limit
is; ``parse_limit("gcra:50/s")`` reads its text form.
"""

from jobrunner.ratelimit.base import Decision, Limiter
from jobrunner.ratelimit.distributed import RedisLimiter, limit_key, redis_limiter
from jobrunner.ratelimit.local import LocalLimiter, local_limiter
from jobrunner.ratelimit.spec import ALGORITHMS, LimitSpec, parse_limit, parse_limits

__all__ = [
    "ALGORITHMS",
    "Decision",
    "LimitSpec",
    "Limiter",
    "LocalLimiter",
    "RedisLimiter",
    "limit_key",
    "local_limiter",
    "parse_limit",
    "parse_limits",
    "redis_limiter",
]
