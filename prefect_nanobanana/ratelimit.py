"""Client-side rate limiting: token buckets shared by every client of one provider account in a process.

ToAPIs counts its limits per user in two independent token buckets, one for submits and one for status
queries (providers.md 1.8; `default` group: submit 5/s with a 10 s burst of 50, query 50/s with a burst
of 500). Every client of the same provider, base URL and API key in this process draws from the same
local buckets (`shared_bucket`), so that one process never exceeds the account's limits however many
tasks poll at once, and a 429 with `Retry-After` seen by one client makes every other client wait too.

The buckets do not depend on an event loop: state is guarded by a thread lock and waiting is a plain
`asyncio.sleep`, so the same bucket works from Prefect tasks running on different loops or threads.
No Prefect import here.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Callable

__all__ = [
    "TOAPIS_QUERY_BURST",
    "TOAPIS_QUERY_RATE",
    "TOAPIS_SUBMIT_BURST",
    "TOAPIS_SUBMIT_RATE",
    "BucketTimeout",
    "TokenBucket",
    "bucket_key",
    "reset_shared_buckets",
    "shared_bucket",
]

TOAPIS_SUBMIT_RATE = 5.0
TOAPIS_SUBMIT_BURST = 50.0
TOAPIS_QUERY_RATE = 50.0
TOAPIS_QUERY_BURST = 500.0


class BucketTimeout(TimeoutError):
    """`acquire(max_wait=...)` could not get its tokens in time; no token was taken."""


_EARLY_WAKE_TOLERANCE = 0.002


class TokenBucket:
    """A token bucket that hands out tokens in strict arrival order (FIFO) without polling.

    Tokens refill at `rate` per second up to `burst`; a full bucket lets `burst` calls through at
    once. `acquire` reserves its tokens at call time on a virtual timeline (the generic cell rate
    algorithm), so callers are served in the order they called and each sleeps exactly once until its
    slot, however many are waiting. `pause(seconds)` pushes the whole timeline back: every waiter,
    current and future, waits at least until the pause ends, and then the bucket restarts empty
    (the provider's own bucket is empty after a 429), refilling at `rate`.

    A caller cancelled while waiting forfeits its reservation: the tokens are not handed back, which
    can only make the bucket slower, never faster, than its rate.
    """

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of tokens per second, not {rate!r}")
        if not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"burst must be at least 1 token, not {burst!r}")
        self._lock = threading.Lock()
        self._clock = clock
        self._rate = float(rate)
        self._burst = float(burst)
        now = clock()
        # Theoretical arrival time: when the bucket would be full again if nobody took a token. A full
        # bucket has tat <= now; each token moves it 1/rate seconds later.
        self._tat = now
        self._paused_until = now
        self._shift = 0.0  # total seconds the timeline was pushed back by pauses

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """Capacity: how many tokens a full bucket holds."""
        return self._burst

    @property
    def paused_until(self) -> float:
        """The clock time before which nothing is handed out (in the past when not paused)."""
        return self._paused_until

    def configure(self, rate: float, burst: float) -> None:
        """Change rate and burst; reservations already made keep their slots."""
        if not (rate > 0 and math.isfinite(rate)) or not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"invalid rate/burst {rate!r}/{burst!r}")
        with self._lock:
            self._rate = float(rate)
            self._burst = float(burst)

    def available(self) -> float:
        """Tokens that could be taken right now without waiting (0 while paused)."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return 0.0
            return max(0.0, min(self._burst, self._burst - (self._tat - now) * self._rate))

    def _reserve(self, n: float, max_wait: float | None) -> tuple[float, float]:
        """Reserve `n` tokens; return (virtual ready time, shift at reservation)."""
        if n <= 0:
            raise ValueError("acquire() needs a positive number of tokens")
        if n > self._burst:
            raise ValueError(f"cannot acquire {n} tokens from a bucket of burst {self._burst}")
        with self._lock:
            now = self._clock()
            start = max(self._tat, now)
            new_tat = start + n / self._rate
            ready = max(new_tat - self._burst / self._rate, self._paused_until)
            if max_wait is not None and ready - now > max_wait:
                raise BucketTimeout(f"the next {n:g} token(s) are {ready - now:.3f} s away")
            self._tat = new_tat
            return ready, self._shift

    def _ready_time(self, ready: float, shift_at_reservation: float) -> float:
        with self._lock:
            return ready + (self._shift - shift_at_reservation)

    async def acquire(self, n: float = 1, *, max_wait: float | None = None) -> float:
        """Wait until `n` tokens are available and take them; return the seconds waited.

        Callers are served in call order. With `max_wait`, raise `BucketTimeout` at once (taking
        nothing) when the tokens cannot be had within that many seconds.
        """
        started = self._clock()
        ready, shift0 = self._reserve(n, max_wait)
        while True:
            target = self._ready_time(ready, shift0)
            delay = target - self._clock()
            # asyncio may wake a sleeper up to its clock resolution early: that is on time, not a
            # reason to sleep again.
            if delay <= _EARLY_WAKE_TOLERANCE:
                return self._clock() - started
            # A pause during the sleep pushes `target` back; the loop re-checks once after waking.
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hand out nothing for `seconds` (after a 429 with `Retry-After`), then restart empty.

        Every caller already waiting keeps its place in line, shifted back; pauses do not add up:
        a shorter pause inside a longer one changes nothing.
        """
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        with self._lock:
            now = self._clock()
            until = now + seconds
            if until <= self._paused_until:
                return
            delta = until - max(now, self._paused_until)
            self._paused_until = until
            self._shift += delta
            # Shift every pending reservation by `delta`, and start empty at the end of the pause.
            self._tat = max(max(self._tat, now) + delta, until + self._burst / self._rate)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self._rate:g}, burst={self._burst:g})"


_registry: dict[str, TokenBucket] = {}
_registry_lock = threading.Lock()


def bucket_key(provider: str, base_url: str, api_key: str, kind: str) -> str:
    """The registry key for one provider account's `kind` bucket ("submit" or "query").

    The API key appears only as a truncated SHA-256, so keys never end up in memory dumps of the
    registry, in logs or in error messages.
    """
    key_hash = hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]
    return f"{provider}|{base_url.rstrip('/')}|{key_hash}|{kind}"


def with_headroom(burst: float) -> float:
    """The burst a client should allow itself against a provider bucket of `burst`.

    A client bucket that copies the provider's exactly meets an occasional 429 when network jitter
    delivers a request a few milliseconds early, and a 429's Retry-After (whole seconds) then pauses
    every waiting row. Keeping 1% of the burst (at least one token) back absorbs that jitter for the
    cost of a few tokens once."""
    return max(1.0, burst - max(1.0, 0.01 * burst))


def shared_bucket(key: str, rate: float, burst: float) -> TokenBucket:
    """The process-wide bucket for `key`, created on first use.

    Every client built with the same key shares it. A later call with a different rate or burst
    reconfigures the shared bucket (the most recent configuration wins).
    """
    with _registry_lock:
        bucket = _registry.get(key)
        if bucket is None:
            bucket = _registry[key] = TokenBucket(rate, burst)
        elif bucket.rate != rate or bucket.burst != burst:
            bucket.configure(rate, burst)
        return bucket


def reset_shared_buckets() -> None:
    """Forget every shared bucket (for tests)."""
    with _registry_lock:
        _registry.clear()
