"""Server-side token buckets, the way ToAPIs describes its async-task limiter (providers.md 1.8).

A bucket holds up to `burst` tokens and refills at `rate` tokens per second. A request takes one
token; a request refused with 429 takes none ("Requests rejected with 429 do not" consume allowance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Decision", "TokenBucket"]


@dataclass(frozen=True)
class Decision:
    """The outcome of one `TokenBucket.take`, with what the rate-limit headers need."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until one token is available; 0 when allowed

    def headers(self, category: str, now_wall: float) -> dict[str, str]:
        """Return the documented `X-RateLimit-*` headers (plus `Retry-After` when refused).

        `X-RateLimit-Reset` is the Unix time at which the next request will be accepted; the docs
        name the header without defining it, and this is the reading a client can act on.
        """
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(now_wall + self.retry_after)),
            "X-RateLimit-Category": category,
        }
        if not self.allowed:
            # HTTP wants whole seconds; never 0, or a client would hammer a refusing server.
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


@dataclass
class TokenBucket:
    """A token bucket starting full. Not thread-safe: the caller holds the state lock."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float = field(init=False, default=-1.0)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> Decision:
        """Take one token if there is one at monotonic time `now`; never takes one on refusal."""
        if self.updated >= 0:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return Decision(True, self.burst, math.floor(self.tokens), 0.0)
        return Decision(False, self.burst, 0, (1.0 - self.tokens) / self.rate)
