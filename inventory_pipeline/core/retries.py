"""Transient failures: which exceptions are worth retrying (network, throttling, a DuckDB file
lock held by another run) and the exponential backoff with jitter between attempts (plain
Python; the shell's `operational` wrapper turns them into Dagster retries)."""

from __future__ import annotations

import errno
import random

_TRANSIENT_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "RequestLimitExceeded",
}
_TRANSIENT_ERRNO = {
    errno.EAGAIN,
    errno.EBUSY,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EIO,
}


def is_transient(exc: BaseException) -> bool:
    """True for failures that a later attempt can clear: connection and timeout errors, S3
    throttling and 5xx answers, a DuckDB file lock held by another process. Contract violations,
    missing files and bugs are not transient (retrying them only delays the error)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the cause chain (a wrapped botocore error)
        seen.add(id(e))
        name = type(e).__name__
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if name in (
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ConnectionClosedError",
            "ProxyConnectionError",
            "IncompleteReadError",
            "ResponseStreamingError",
        ):
            return True
        if name == "ClientError":
            code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
            if code in _TRANSIENT_S3_CODES:
                return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNO:
            return True
        if "Could not set lock on file" in str(e) or "Conflicting lock is held" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def backoff_seconds(
    attempt: int, base: float = 2.0, cap: float = 120.0, jitter: float = 0.25, rng: random.Random | None = None
) -> float:
    """Exponential backoff before retry `attempt` (0 = the first retry): base x 2^attempt,
    capped, times a uniform factor in [1 - jitter, 1 + jitter] so parallel runs spread out."""
    delay = min(cap, base * 2.0 ** max(attempt, 0))
    r = (rng or random).uniform(1 - jitter, 1 + jitter) if jitter else 1.0
    return round(min(cap, delay * r), 3)
