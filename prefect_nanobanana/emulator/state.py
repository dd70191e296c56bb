"""All mutable emulator state: tasks, files, the paid-submission ledger, statistics, buckets, faults.

Tasks never run: each one is created with its whole timeline (queued until, done at, failing or
not) and its state is computed from the clock whenever someone looks, so thousands of tasks cost
nothing between polls. One re-entrant lock guards everything; it is held only for short,
non-awaiting sections, because the server's event loop and test threads (through `EmulatorServer`)
both touch the state.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import EmulatorConfig, FaultConfig, FaultRule
from .images import ImageFormat, colour_for
from .ratelimit import Decision, TokenBucket

__all__ = ["EmulatorState", "LedgerEntry", "StoredFile", "Task", "TtapiJob"]

Provider = Literal["toapis", "ttapi"]
BucketCategory = Literal["async_submit", "async_query", "ttapi"]


@dataclass
class StoredFile:
    """A file the emulator serves: a generated image (bytes rendered on demand) or an upload."""

    name: str
    content_type: str
    available_at: float
    expires_at: float | None
    prompt: str | None
    width: int = 0
    height: int = 0
    fmt: ImageFormat | None = None
    colour: tuple[int, int, int] = (0, 0, 0)
    data: bytes | None = None


@dataclass
class Timeline:
    """When a piece of paid work leaves the queue and when it reaches its terminal state."""

    created_at: float
    started_at: float
    done_at: float
    failure: tuple[str, str] | None = None  # (code, message) when it ends failed

    def status(self, now: float) -> Literal["queued", "in_progress", "completed", "failed"]:
        """Return the state at emulator time `now`."""
        if now < self.started_at:
            return "queued"
        if now < self.done_at:
            return "in_progress"
        return "failed" if self.failure else "completed"

    def progress(self, now: float) -> int:
        """Return the documented progress: 0 queued, 10-90 while running, 100 done (0 when failed)."""
        status = self.status(now)
        if status in ("queued", "failed"):
            return 0
        if status == "completed":
            return 100
        span = self.done_at - self.started_at
        share = (now - self.started_at) / span if span > 0 else 1.0
        return max(10, min(90, 10 + int(80 * share)))


@dataclass
class Task:
    """A ToAPIs image task."""

    id: str
    api_key: str
    model: str
    prompt: str
    client_business_id: str | None
    timeline: Timeline
    file_name: str | None


@dataclass
class TtapiJob:
    """A TTAPI generation in the experimental async mode (`sync_return=false`)."""

    id: str
    api_key: str
    model: str
    prompt: str
    refer_images: list[str] | None
    hook_url: str | None
    timeline: Timeline
    file_name: str | None


@dataclass
class LedgerEntry:
    """One paid submission. `delivered` is False when fault injection dropped its response."""

    provider: Provider
    task_id: str
    client_business_id: str | None
    model: str
    prompt: str
    timeline: Timeline
    quota: int | None
    cost_usd: float
    delivered: bool = True

    def as_json(self, now: float) -> dict[str, Any]:
        """Return the ledger row with the work's current status."""
        return {
            "provider": self.provider,
            "task_id": self.task_id,
            "client_business_id": self.client_business_id,
            "model": self.model,
            "prompt": self.prompt,
            "status": self.timeline.status(now),
            "at": self.timeline.created_at,
            "quota": self.quota,
            "cost_usd": self.cost_usd,
            "delivered": self.delivered,
        }


@dataclass
class Stats:
    """Request and behaviour counters, read through `GET /_emulator/stats`."""

    requests: Counter[str] = field(default_factory=Counter)
    responses: dict[str, Counter[str]] = field(default_factory=dict)
    polls_by_task: Counter[str] = field(default_factory=Counter)
    downloads_by_file: Counter[str] = field(default_factory=Counter)
    faults_fired: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    max_in_flight: int = 0


class EmulatorState:
    """The emulator's world. Safe to use from the server loop and from other threads at once."""

    def __init__(self, config: EmulatorConfig | None = None, faults: FaultConfig | None = None) -> None:
        self.lock = threading.RLock()
        self.config = config or EmulatorConfig()
        self._clock_offset = 0.0
        # Set while the server shuts down: waiting requests wake up and drop their connections
        # instead of holding the shutdown until uvicorn cancels them.
        self.closing = False
        self._closing_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reset()
        if faults is not None:
            self.faults = faults

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every task, job, file, ledger row, counter, bucket, fault and clock advance; keep the config."""
        with self.lock:
            self._clock_offset = 0.0
            self.tasks: dict[str, Task] = {}
            self.tasks_by_business_id: dict[tuple[str, str], Task] = {}
            self.ttapi_jobs: dict[str, TtapiJob] = {}
            self.files: dict[str, StoredFile] = {}
            self.uploads: dict[str, StoredFile] = {}
            self.ledger: list[LedgerEntry] = []
            self.stats = Stats()
            self.faults = FaultConfig()
            self.buckets: dict[tuple[BucketCategory, str], TokenBucket] = {}
            self.balance_usd = self.config.balance_usd
            self.spent_usd = 0.0
            self.rng = random.Random(self.config.seed)
            self._in_flight: list[float] = []

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Apply config changes (validated as a whole) and return the new config.

        Changing a rate or burst refills the buckets; changing `balance_usd` resets the balance;
        changing `seed` reseeds the random source.
        """
        with self.lock:
            new = EmulatorConfig.model_validate({**self.config.model_dump(), **changes})
            if any(
                key.endswith(("_rate", "_burst")) or key in ("rate_limits", "time_scale") for key in changes
            ):
                self.buckets.clear()
            if "balance_usd" in changes:
                self.balance_usd = new.balance_usd
            if "seed" in changes:
                self.rng = random.Random(new.seed)
            self.config = new
            return new

    def set_faults(
        self, faults: FaultConfig | Mapping[str, Any] | None, *, merge: bool = False
    ) -> FaultConfig:
        """Replace the fault config, or with `merge=True` replace only the kinds given."""
        with self.lock:
            if isinstance(faults, FaultConfig):
                update = faults.model_dump(exclude_unset=True) if merge else faults.model_dump()
            else:
                update = dict(faults or {})
            self.faults = self.faults.merged(update) if merge else FaultConfig.model_validate(update)
            return self.faults

    # -- shutdown --------------------------------------------------------------------------------

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds` real seconds on the server loop; return False if shutdown cut it short."""
        if self._closing_event is None:
            self._loop = asyncio.get_running_loop()
            self._closing_event = asyncio.Event()
        if self.closing:
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self._closing_event.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    def begin_close(self) -> None:
        """Wake every `pause` (from any thread): the server is about to stop."""
        self.closing = True
        if self._loop is not None and self._closing_event is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._closing_event.set)

    def end_close(self) -> None:
        """Forget the stopped loop, so the state can serve again from a new one."""
        self.closing = False
        self._closing_event = None
        self._loop = None

    # -- clock -----------------------------------------------------------------------------------

    def now(self) -> float:
        """Emulator wall-clock time in Unix seconds (real time plus any `advance`)."""
        return time.time() + self._clock_offset

    def monotonic(self) -> float:
        """Emulator monotonic time, for the buckets."""
        return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the emulator clock forward: tasks finish, URLs expire and buckets refill at once."""
        with self.lock:
            self._clock_offset += seconds

    # -- auth, limits, money ---------------------------------------------------------------------

    def toapis_key_ok(self, key: str | None) -> bool:
        """Whether a ToAPIs Bearer key is accepted."""
        if not key:
            return False
        return self.config.api_key is None or key == self.config.api_key

    def ttapi_key_ok(self, key: str | None) -> bool:
        """Whether a TTAPI `TT-API-KEY` is accepted."""
        if not key:
            return False
        expected = self.config.ttapi_api_key or self.config.api_key
        return expected is None or key == expected

    def take_token(self, category: BucketCategory, api_key: str) -> Decision | None:
        """Take a token from the key's bucket; None when that bucket is not enabled."""
        cfg = self.config
        if not cfg.rate_limits:
            return None
        if category == "async_submit":
            rate, burst = cfg.submit_rate, cfg.submit_burst
        elif category == "async_query":
            rate, burst = cfg.query_rate, cfg.query_burst
        elif cfg.ttapi_rate is not None:
            rate, burst = cfg.ttapi_rate, cfg.ttapi_burst
        else:
            return None
        with self.lock:
            bucket = self.buckets.get((category, api_key))
            if bucket is None:
                bucket = self.buckets[(category, api_key)] = TokenBucket(rate * cfg.time_scale, burst)
            decision = bucket.take(self.monotonic())
            if not decision.allowed:
                self.stats.rate_limited[category] += 1
            return decision

    def charge(self, cost_usd: float) -> bool:
        """Take `cost_usd` from the balance; False (and nothing taken) when it does not cover it."""
        with self.lock:
            if self.balance_usd is not None:
                if self.balance_usd + 1e-9 < cost_usd:
                    return False
                self.balance_usd -= cost_usd
            self.spent_usd += cost_usd
            return True

    # -- faults and timing -----------------------------------------------------------------------

    def fire(self, kind: str, prompt: str | None) -> Any:
        """Return the first rule of fault `kind` that fires for `prompt` (consuming its count), or None."""
        with self.lock:
            rules: list[FaultRule] = getattr(self.faults, kind)
            for rule in rules:
                if rule.match is not None and (prompt is None or rule.match not in prompt):
                    continue
                if rule.count is not None and rule.count > 0:
                    rule.count -= 1
                    fired = True
                elif rule.rate is not None:
                    fired = self.rng.random() < rule.rate
                else:
                    # No rate and no count (or a spent count): "always", unless the count ran out.
                    fired = rule.count is None
                if fired:
                    self.stats.faults_fired[kind] += 1
                    return rule
            return None

    def sample_duration(self, provider: Provider) -> float:
        """Draw one task duration in real seconds from the configured distribution."""
        cfg = self.config
        mean = cfg.latency
        spread = cfg.latency_spread
        if provider == "ttapi":
            mean = cfg.ttapi_latency if cfg.ttapi_latency is not None else mean
            spread = cfg.ttapi_latency_spread if cfg.ttapi_latency_spread is not None else spread
        with self.lock:
            if cfg.latency_distribution == "fixed" or spread == 0 or mean == 0:
                value = mean
            elif cfg.latency_distribution == "uniform":
                value = self.rng.uniform(mean - spread, mean + spread)
            else:
                # Parameters chosen so that the distribution's mean and std deviation are mean, spread.
                sigma2 = math.log(1 + (spread / mean) ** 2)
                value = self.rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
        return cfg.scaled(max(0.0, value))

    def timeline(self, duration: float, failure: tuple[str, str] | None = None) -> Timeline:
        """Return a timeline starting now, and count it as in flight until it ends."""
        now = self.now()
        started = now + duration * self.config.queue_fraction
        with self.lock:
            heapq.heappush(self._in_flight, now + duration)
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight_now(now))
        return Timeline(now, started, now + duration, failure)

    def _in_flight_now(self, now: float) -> int:
        while self._in_flight and self._in_flight[0] <= now:
            heapq.heappop(self._in_flight)
        return len(self._in_flight)

    # -- ToAPIs tasks ----------------------------------------------------------------------------

    def create_task(
        self,
        *,
        api_key: str,
        model: str,
        prompt: str,
        client_business_id: str | None,
        size: tuple[int, int],
        fmt: ImageFormat,
        failure: tuple[str, str] | None,
    ) -> Task:
        """Create a paid task with its whole timeline; its image becomes available when it completes."""
        task_id = f"task_img_{uuid.uuid4().hex[:24]}"
        timeline = self.timeline(self.sample_duration("toapis"), failure)
        file_name = None
        with self.lock:
            if failure is None:
                file_name = f"{int(timeline.created_at)}_{task_id[-12:]}.{'jpg' if fmt == 'jpeg' else fmt}"
                self.files[file_name] = StoredFile(
                    name=file_name,
                    content_type=f"image/{fmt}",
                    available_at=timeline.done_at,
                    expires_at=timeline.done_at + self.config.url_ttl,
                    prompt=prompt,
                    width=size[0],
                    height=size[1],
                    fmt=fmt,
                    colour=colour_for(task_id),
                )
            task = Task(task_id, api_key, model, prompt, client_business_id, timeline, file_name)
            self.tasks[task_id] = task
            if client_business_id:
                # A repeated business id makes a second (paid) task; lookups see the newest one.
                self.tasks_by_business_id[(api_key, client_business_id)] = task
            self.ledger.append(
                LedgerEntry(
                    "toapis",
                    task_id,
                    client_business_id,
                    model,
                    prompt,
                    timeline,
                    None,
                    self.config.price_usd,
                )
            )
        return task

    def find_task(self, api_key: str, task_or_business_id: str) -> Task | None:
        """Find a task of this key by id, else by its client_business_id (providers.md 1.4)."""
        with self.lock:
            task = self.tasks.get(task_or_business_id)
            if task is not None and task.api_key == api_key:
                return task
            return self.tasks_by_business_id.get((api_key, task_or_business_id))

    def mark_undelivered(self, task_id: str) -> None:
        """Record that the response announcing this paid work never reached the client."""
        with self.lock:
            for entry in reversed(self.ledger):
                if entry.task_id == task_id:
                    entry.delivered = False
                    return

    # -- TTAPI -----------------------------------------------------------------------------------

    def create_ttapi_generation(
        self,
        *,
        api_key: str,
        model: str,
        prompt: str,
        size: tuple[int, int],
        duration: float,
        paid: bool,
        failure: str | None = None,
    ) -> tuple[str, Timeline, str | None]:
        """Start one TTAPI generation; return (job id, timeline, file name or None when failing).

        A paid generation goes to the ledger at once: TTAPI charges for the image whether or not the
        client is still there to receive it.
        """
        job_id = str(uuid.uuid4())
        timeline = self.timeline(duration, ("generation_failed", failure) if failure else None)
        file_name = None
        quota = self.config.ttapi_quota
        with self.lock:
            if failure is None:
                file_name = f"{job_id}.png"
                self.files[file_name] = StoredFile(
                    name=file_name,
                    content_type="image/png",
                    available_at=timeline.done_at,
                    expires_at=timeline.done_at + self.config.ttapi_url_ttl,
                    prompt=prompt,
                    width=size[0],
                    height=size[1],
                    fmt="png",
                    colour=colour_for(job_id),
                )
            if paid:
                self.ledger.append(
                    LedgerEntry("ttapi", job_id, None, model, prompt, timeline, quota, quota / 100)
                )
        return job_id, timeline, file_name

    # -- files -----------------------------------------------------------------------------------

    def add_upload(self, data: bytes, content_type: str) -> StoredFile:
        """Store uploaded bytes under a fresh name like the documented `{ts}_{id}.{ext}`."""
        now = self.now()
        ext = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}[
            content_type
        ]
        ttl = self.config.upload_url_ttl
        name = f"{int(now)}_{uuid.uuid4().hex[:8]}.{ext}"
        stored = StoredFile(name, content_type, now, now + ttl if ttl else None, None, data=data)
        with self.lock:
            self.uploads[name] = stored
        return stored

    # -- reports ---------------------------------------------------------------------------------

    def record_response(self, route: str, status: str) -> None:
        """Count one request to `route` and its outcome (an HTTP status or `dropped`)."""
        with self.lock:
            self.stats.requests[route] += 1
            self.stats.responses.setdefault(route, Counter())[status] += 1

    def ledger_json(self) -> dict[str, Any]:
        """Return the paid-submission ledger (see `GET /_emulator/ledger`)."""
        with self.lock:
            now = self.now()
            by_business_id: Counter[str] = Counter(
                entry.client_business_id for entry in self.ledger if entry.client_business_id
            )
            return {
                "paid": len(self.ledger),
                "submissions": [entry.as_json(now) for entry in self.ledger],
                "paid_by_client_business_id": dict(by_business_id),
                "spent_usd": round(self.spent_usd, 6),
                "balance_usd": None if self.balance_usd is None else round(self.balance_usd, 6),
            }

    def stats_json(self) -> dict[str, Any]:
        """Return request counters and concurrency figures (see `GET /_emulator/stats`)."""
        with self.lock:
            stats = self.stats
            return {
                "requests": dict(stats.requests),
                "responses": {route: dict(counts) for route, counts in stats.responses.items()},
                "polls_by_task": dict(stats.polls_by_task),
                "downloads_by_file": dict(stats.downloads_by_file),
                "faults_fired": dict(stats.faults_fired),
                "rate_limited": dict(stats.rate_limited),
                "in_flight": self._in_flight_now(self.now()),
                "max_in_flight": stats.max_in_flight,
                "tasks": len(self.tasks),
                "ttapi_jobs": len(self.ttapi_jobs),
                "uploads": len(self.uploads),
            }
