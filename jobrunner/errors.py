"""One exception root, with subclasses a caller can act on.

Control-flow signals a handler raises on purpose (``Retry``, ``DeadLetter``) live here too, so a
handler imports everything it needs to steer its own job from one place.
"""

from __future__ import annotations


class JobrunnerError(Exception):
    """Root of every error jobrunner raises on purpose."""


class ConfigError(JobrunnerError):
    """A setting is missing or invalid."""


class HandlerImportError(ConfigError):
    """A module named with ``--import`` could not be imported (the message says where)."""


class RedisUnavailable(JobrunnerError):
    """Redis could not be reached; nothing was written."""


class RedisFull(JobrunnerError):
    """Redis is at ``maxmemory`` (policy ``noeviction``) and refused the enqueue script.

    A refused script wrote nothing: one script writes a whole batch (up to ``BATCH_LIMIT``
    jobs; a library call with more is split, and only the part that failed is refused).
    """


class QueueFull(JobrunnerError):
    """A queue holds as many waiting jobs as its bound allows; nothing was written."""

    def __init__(self, queue: str, waiting: int, bound: int) -> None:
        super().__init__(
            f"queue {queue!r} holds {waiting} waiting jobs, its bound is {bound}; try again later"
        )
        self.queue, self.waiting, self.bound = queue, waiting, bound


class UnknownJobType(JobrunnerError, ValueError):
    """A producer that knows the handlers was asked to enqueue a type none of them serves."""


class UnknownJob(JobrunnerError, LookupError):
    """No job has that id (or its record expired)."""


class JobFailed(JobrunnerError):
    """A job ended dead: retrying did not help. ``error`` is its last error."""

    def __init__(self, job_id: str, error: str | None) -> None:
        super().__init__(f"job {job_id} is dead: {error or 'no error recorded'}")
        self.job_id, self.error = job_id, error


class WorkerFailed(JobrunnerError):
    """A loop of the worker (fetching, acking, start marks, heartbeat) ended on an error it
    did not expect; the worker handed its jobs back and stops, for its supervisor to restart."""


class EmbeddedRedisError(JobrunnerError):
    """The private redis-server could not be found or started."""


class PayloadDecodeError(JobrunnerError):
    """A stored job could not be decoded; it goes to the dead-letter queue."""


class JobTimeout(JobrunnerError):
    """A job ran past its deadline."""


class JobCancelled(JobrunnerError):
    """Raised by ``JobContext.check()`` once the job's cancellation was asked for."""


class Retry(JobrunnerError):
    """Raised by a handler to ask for another attempt, optionally after a given delay."""

    def __init__(self, reason: str = "retry requested", *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class DeadLetter(JobrunnerError):
    """Raised by a handler when retrying cannot help: the job goes straight to dead."""
