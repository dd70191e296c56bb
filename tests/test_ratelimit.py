"""TokenBucket and the process-wide registry: burst, rate, FIFO order, no busy loop, pauses, threads."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from prefect_nanobanana import ratelimit
from prefect_nanobanana.ratelimit import (
    TOAPIS_QUERY_BURST,
    TOAPIS_QUERY_RATE,
    TOAPIS_SUBMIT_BURST,
    TOAPIS_SUBMIT_RATE,
    BucketTimeout,
    TokenBucket,
    bucket_key,
    reset_shared_buckets,
    shared_bucket,
)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_shared_buckets()
    yield
    reset_shared_buckets()


def test_documented_toapis_defaults() -> None:
    assert (TOAPIS_SUBMIT_RATE, TOAPIS_SUBMIT_BURST) == (5, 50)
    assert (TOAPIS_QUERY_RATE, TOAPIS_QUERY_BURST) == (50, 500)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0.5), (1, float("nan"))])
def test_invalid_configuration(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


async def test_burst_is_immediate_then_rate_applies() -> None:
    bucket = TokenBucket(rate=20, burst=5)
    started = time.monotonic()
    for _ in range(5):
        await bucket.acquire()
    assert time.monotonic() - started < 0.05
    for _ in range(4):
        await bucket.acquire()
    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 0.4  # 4 more tokens at 20/s


async def test_fifo_order_and_one_sleep_per_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def counting_sleep(delay: float) -> None:
        # asyncio.sleep is patched for the whole process: count only the bucket's own sleeps, not
        # those of background tasks other tests left on the shared event loop.
        if sys._getframe(1).f_code.co_filename == ratelimit.__file__:
            sleeps.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(ratelimit.asyncio, "sleep", counting_sleep)
    bucket = TokenBucket(rate=100, burst=1)
    done: list[int] = []

    async def worker(i: int) -> None:
        await bucket.acquire()
        done.append(i)

    tasks = []
    for i in range(20):
        tasks.append(asyncio.create_task(worker(i)))
        await real_sleep(0)  # make call order == creation order
    await asyncio.gather(*tasks)
    assert done == list(range(20))
    assert len(sleeps) <= 20  # each waiter sleeps at most once: no polling loop


async def test_multi_token_acquire_and_available() -> None:
    bucket = TokenBucket(rate=10, burst=10)
    assert bucket.available() == pytest.approx(10, abs=0.01)
    await bucket.acquire(10)
    assert bucket.available() < 0.5
    with pytest.raises(ValueError):
        await bucket.acquire(11)
    with pytest.raises(ValueError):
        await bucket.acquire(0)


async def test_max_wait_refuses_without_taking() -> None:
    bucket = TokenBucket(rate=5, burst=1)
    await bucket.acquire()  # the next token is 0.2 s away
    with pytest.raises(BucketTimeout):
        await bucket.acquire(max_wait=0.1)
    waited = await bucket.acquire(max_wait=0.5)
    assert waited < 0.3  # the refused call took nothing, or this would be 0.4 s


async def test_pause_makes_new_callers_wait() -> None:
    bucket = TokenBucket(rate=1000, burst=100)
    bucket.pause(0.2)
    assert bucket.available() == 0
    started = time.monotonic()
    await bucket.acquire()
    assert time.monotonic() - started >= 0.19


async def test_pause_pushes_back_callers_already_waiting_and_keeps_their_order() -> None:
    bucket = TokenBucket(rate=10, burst=1)
    await bucket.acquire()  # empty now; next token in 0.1 s
    done: list[tuple[int, float]] = []
    started = time.monotonic()

    async def worker(i: int) -> None:
        await bucket.acquire()
        done.append((i, time.monotonic() - started))

    tasks = [asyncio.create_task(worker(i)) for i in range(3)]
    await asyncio.sleep(0.02)
    bucket.pause(0.3)  # a 429 arrives while they wait
    late = asyncio.create_task(worker(99))
    await asyncio.gather(*tasks, late)
    assert [i for i, _ in done] == [0, 1, 2, 99]
    assert all(t >= 0.3 for _, t in done), done


async def test_shorter_pause_inside_a_longer_one_changes_nothing() -> None:
    bucket = TokenBucket(rate=1000, burst=10)
    bucket.pause(0.3)
    until = bucket.paused_until
    bucket.pause(0.1)
    assert bucket.paused_until == until
    bucket.pause(0)
    bucket.pause(float("nan"))
    assert bucket.paused_until == until


def test_one_bucket_serves_several_event_loops_and_threads() -> None:
    bucket = TokenBucket(rate=50, burst=1)
    stamps: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        async def take() -> None:
            for _ in range(5):
                await bucket.acquire()
                with lock:
                    stamps.append(time.monotonic())

        asyncio.run(take())

    threads = [threading.Thread(target=run) for _ in range(3)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 15
    # 15 tokens from a bucket of 1 at 50/s: at least 14 intervals of 20 ms, whichever loop asked.
    assert time.monotonic() - started >= 14 / 50 - 0.02


def test_shared_bucket_registry() -> None:
    key = bucket_key("toapis", "https://toapis.com/", "sk-test-SECRET-1234", "submit")
    assert "sk-test-SECRET-1234" not in key
    assert "SECRET" not in key
    assert key == bucket_key("toapis", "https://toapis.com", "sk-test-SECRET-1234", "submit")
    assert key != bucket_key("toapis", "https://toapis.com", "another-key", "submit")
    assert key != bucket_key("toapis", "https://toapis.com", "sk-test-SECRET-1234", "query")
    a = shared_bucket(key, 5, 50)
    assert shared_bucket(key, 5, 50) is a
    b = shared_bucket(key, 10, 20)  # reconfigured in place: every holder sees the new limits
    assert b is a and (a.rate, a.burst) == (10, 20)
    other = shared_bucket(bucket_key("toapis", "https://toapis.com", "k2", "submit"), 5, 50)
    assert other is not a
    reset_shared_buckets()
    assert shared_bucket(key, 5, 50) is not a


def test_clients_of_one_account_share_buckets() -> None:
    from prefect_nanobanana.providers.toapis import ToAPIsClient

    one = ToAPIsClient("sk-test-SECRET-1234", "https://toapis.com")
    two = ToAPIsClient("sk-test-SECRET-1234", "https://toapis.com/v1", query_rate=50, query_burst=500)
    three = ToAPIsClient("other-key", "https://toapis.com")
    assert one.submit_bucket is two.submit_bucket
    assert one.query_bucket is two.query_bucket
    assert one.submit_bucket is not one.query_bucket
    assert one.submit_bucket is not three.submit_bucket
    # The documented limits, less the headroom that keeps network jitter from meeting a 429.
    assert (one.submit_bucket.rate, one.submit_bucket.burst) == (5, 49)
    assert (one.query_bucket.rate, one.query_bucket.burst) == (50, 495)
    assert "SECRET" not in repr(one.submit_bucket)


def test_headroom_keeps_one_percent_and_at_least_one_token() -> None:
    from prefect_nanobanana.ratelimit import with_headroom

    assert with_headroom(200) == 198
    assert with_headroom(50) == 49
    assert with_headroom(5000) == 4950
    assert with_headroom(1) == 1
