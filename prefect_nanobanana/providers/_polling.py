"""Waiting for an asynchronous job: one polling loop for every provider that has job ids to poll.

The schedule follows the ToAPIs guidance (providers.md 1.4): a first poll after `first_delay`, then
every `min_interval` to `max_interval` seconds (placed by the job's reported progress when there is
one, see `next_poll_delay`), until `deadline` seconds have passed. Each poll
goes through the caller's `fetch`, which draws from the provider's shared query bucket, so that all
waits in a process stay under the provider's query rate. Rate limits and transient failures of a
poll are waited out within the deadline; anything else ends the wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from ..errors import (
    JobFailedError,
    JobTimedOutError,
    NanoBananaError,
    RateLimitedError,
    TransientError,
    redact,
)
from ..models import ImageJob, JobResult, JobStatus
from ..ratelimit import BucketTimeout
from ._http import classify_failure, provider_label
from .base import PollPolicy

logger = logging.getLogger("prefect_nanobanana.providers")

Fetch = Callable[[float], Awaitable[ImageJob]]
"""Fetch the job's current state; the argument is the longest it may wait for a rate-limit token."""

_warned_statuses: set[tuple[str, str]] = set()


def note_unknown_status(provider: str, status: str) -> None:
    """Log, once per provider and status per process, a status this client does not know."""
    key = (provider, status)
    if key not in _warned_statuses:
        _warned_statuses.add(key)
        logger.warning(
            "%s reported the unknown job status %r; treating it as in progress",
            provider_label(provider),
            status,
        )


def job_failure(job: ImageJob, *, api_key: str | None = None) -> NanoBananaError:
    """The error for a job the provider reported as failed: `ContentPolicyError` when its code or message
    says so, `JobFailedError` (or another class `classify_failure` picks) otherwise."""
    cls = classify_failure(job.error_code, job.error_message, default=JobFailedError)
    detail = job.error_message or job.error_code or "no reason given"
    return cls(
        f"{provider_label(job.provider)}: the job failed: {redact(detail, api_key)}",
        provider=job.provider,
        code=job.error_code,
        job_id=job.job_id,
    )


def result_of(job: ImageJob, *, api_key: str | None = None) -> JobResult:
    """The result of a terminal job, or the error that ends it."""
    if job.status is JobStatus.FAILED:
        raise job_failure(job, api_key=api_key)
    if job.result is None:
        raise JobFailedError(
            f"{provider_label(job.provider)}: the job finished without an image URL",
            provider=job.provider,
            code=job.error_code,
            job_id=job.job_id,
        )
    return job.result


def next_poll_delay(policy: PollPolicy, elapsed: float, progress: int | None) -> float:
    """How long to wait before the next poll: always within [min_interval, max_interval].

    When the provider reports progress, `p`% after `elapsed` seconds suggests `elapsed*(100-p)/p`
    more, and the poll is placed there (never sooner or later than the documented interval allows),
    which finds finished jobs sooner than a random point of the interval would; without progress,
    a random point of the interval (the documented jitter)."""
    if progress is not None and 0 < progress < 100 and elapsed > 0:
        expected = elapsed * (100 - progress) / progress * random.uniform(1.0, 1.1)
        return min(policy.max_interval, max(policy.min_interval, expected))
    return random.uniform(policy.min_interval, policy.max_interval)


async def poll_until_done(
    fetch: Fetch, job: ImageJob, policy: PollPolicy, *, api_key: str | None = None
) -> JobResult:
    """Poll `job` until it is terminal and return its result.

    Raises `JobFailedError` or `ContentPolicyError` (and the like) when the job failed,
    `JobTimedOutError` when `policy.deadline` seconds passed first (the job may still finish: look it
    up later), and any non-retryable error of a poll (authentication, for example) at once.
    Rate-limited polls wait at least the provider's `Retry-After`; transient failures are retried.
    """
    if job.status.terminal:
        return result_of(job, api_key=api_key)
    started = time.monotonic()
    deadline = started + policy.deadline
    delay = policy.first_delay
    polls = 0
    last_status = job.status.value
    last_problem: str | None = None
    while True:
        remaining = deadline - time.monotonic()
        if delay > 0 and remaining > 0:
            await asyncio.sleep(min(delay, remaining))
        delay = random.uniform(policy.min_interval, policy.max_interval)
        elapsed = time.monotonic() - started
        try:
            current = await fetch(max(0.0, deadline - time.monotonic()))
        except BucketTimeout:
            last_problem = "waiting for the provider's query rate limit"
        except RateLimitedError as exc:
            last_problem = str(exc)
            delay = max(delay, exc.retry_after or 0.0)
        except TransientError as exc:
            last_problem = str(exc)
            logger.info("poll of %s job %s failed, will retry: %s", job.provider, job.job_id, exc)
        else:
            polls += 1
            last_problem = None
            last_status = current.status.value
            if current.status.terminal:
                return result_of(current, api_key=api_key)
            delay = next_poll_delay(policy, elapsed, current.progress)
        if time.monotonic() >= deadline:
            why = f"; last problem: {last_problem}" if last_problem else ""
            raise JobTimedOutError(
                f"{provider_label(job.provider)}: the job was still {last_status} after {policy.deadline:g} s "
                f"({polls} polls){why}",
                provider=job.provider,
                job_id=job.job_id,
            )
