"""The real clients against the emulator over real sockets: success and every error class.

The emulator implements providers.md independently of the clients, so these tests catch a misreading
on either side. Its ledger tells how many submissions were paid for, which is what "never pay twice"
is about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from _provider_testkit import FAKE_KEY, assert_no_secret, image_bytes

from prefect_nanobanana.emulator import EmulatorServer
from prefect_nanobanana.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentPolicyError,
    DownloadFailedError,
    ImageExpiredError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobFailedError,
    NanoBananaError,
    RateLimitedError,
    RequestValidationError,
    TransientError,
)
from prefect_nanobanana.models import ImageRequest, JobStatus
from prefect_nanobanana.providers.base import PollPolicy
from prefect_nanobanana.providers.toapis import ToAPIsClient
from prefect_nanobanana.providers.ttapi import TTAPIClient

POLL = PollPolicy(first_delay=0.05, min_interval=0.03, max_interval=0.06, deadline=10.0)
CONFIG: dict[str, Any] = {
    "latency": 0.15,
    "latency_spread": 0.0,
    "latency_distribution": "fixed",
    "ttapi_latency": 0.05,
    "seed": 11,
    "rate_limits": True,
    "url_ttl": 86400.0,
    "balance_usd": None,
    "api_key": None,
    "ttapi_quota": 2,
    "ttapi_quota_as_string": False,
    "image_format": "png",
    "initial_status": "queued",
    "top_level_url": True,
    "submit_rate": 5.0,
    "submit_burst": 50,
    "query_rate": 50.0,
    "query_burst": 500,
}


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(**CONFIG) as server:
        yield server


@pytest.fixture
def emu(emulator_server: EmulatorServer) -> EmulatorServer:
    emulator_server.reset()
    emulator_server.configure(**CONFIG)
    return emulator_server


def toapis(emu: EmulatorServer, **kw: Any) -> ToAPIsClient:
    kw.setdefault("poll", POLL)
    kw.setdefault("timeout", 5.0)
    return ToAPIsClient(FAKE_KEY, emu.url, **kw)


def ttapi(emu: EmulatorServer, **kw: Any) -> TTAPIClient:
    kw.setdefault("timeout", 5.0)
    return TTAPIClient(FAKE_KEY, emu.url, **kw)


def toapis_request(prompt: str = "a banana on a desk", **kw: Any) -> ImageRequest:
    kw.setdefault("model", "gemini-3-pro-image-preview")
    return ImageRequest(provider="toapis", prompt=prompt, **kw)


def ttapi_request(prompt: str = "a banana on a desk", **kw: Any) -> ImageRequest:
    kw.setdefault("model", "gemini-3.1-flash-image-preview")
    return ImageRequest(provider="ttapi", prompt=prompt, **kw)


# --- ToAPIs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{}, {"initial_status": "submitted", "image_format": "jpeg", "top_level_url": False}],
    ids=["png", "submitted-jpeg-no-top-url"],
)
async def test_toapis_success_end_to_end(emu: EmulatorServer, tmp_path: Path, config: dict[str, Any]) -> None:
    emu.configure(**config)
    request = toapis_request(aspect_ratio="16:9", resolution="1K")
    async with toapis(emu) as client:
        job = await client.submit(request)
        assert job.status is JobStatus.QUEUED and job.job_id
        result = await client.wait(job)
        image = await client.download(result, tmp_path / "out.img", row_key=request.row_key)
    assert result.expires_at is not None
    assert timedelta(hours=23) < result.expires_at - datetime.now(timezone.utc) <= timedelta(hours=24)
    assert result.completed_at is not None
    assert image.format == ("JPEG" if config else "PNG")
    assert image.width > image.height  # 16:9
    assert Path(image.path).stat().st_size == image.bytes
    ledger = emu.ledger()
    assert ledger["paid"] == 1
    assert ledger["paid_by_client_business_id"] == {request.row_key: 1}
    polls = emu.stats()["polls_by_task"][job.job_id]
    assert 1 <= polls <= 10


async def test_toapis_bad_key(emu: EmulatorServer) -> None:
    emu.configure(api_key="the-right-key")
    async with toapis(emu) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.submit(toapis_request())
        with pytest.raises(AuthenticationError):
            await client.get_job("task_x")
    assert_no_secret(info.value)
    assert emu.ledger()["paid"] == 0


async def test_toapis_insufficient_balance(emu: EmulatorServer) -> None:
    emu.configure(balance_usd=0.0)
    async with toapis(emu) as client:
        with pytest.raises(InsufficientBalanceError) as info:
            await client.submit(toapis_request())
    assert info.value.status_code == 402
    assert emu.ledger()["paid"] == 0


async def test_toapis_invalid_request(emu: EmulatorServer) -> None:
    emu.set_faults(submit_error={"status": 400, "message": "The 'size' field is invalid."})
    async with toapis(emu) as client:
        with pytest.raises(InvalidRequestError, match="size"):
            await client.submit(toapis_request())
    assert emu.ledger()["paid"] == 0


async def test_toapis_content_policy_at_submit_and_in_the_task(emu: EmulatorServer) -> None:
    emu.set_faults(content_policy=[{"match": "forbidden", "at": "submit"}, {"match": "murky", "at": "task"}])
    async with toapis(emu) as client:
        with pytest.raises(ContentPolicyError) as info:
            await client.submit(toapis_request("something forbidden"))
        assert info.value.status_code == 422
        job = await client.submit(toapis_request("something murky"))
        with pytest.raises(ContentPolicyError):
            await client.wait(job)


async def test_toapis_submit_429_carries_retry_after_and_pauses_the_bucket(emu: EmulatorServer) -> None:
    emu.set_faults(submit_error={"status": 429, "retry_after": 1, "count": 1})
    async with toapis(emu) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.submit(toapis_request())
        assert info.value.retry_after == 1
        assert client.submit_bucket.available() == 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        job = await client.submit(toapis_request())  # waits out the pause, then succeeds
        assert loop.time() - started >= 0.9
    assert job.job_id
    assert emu.ledger()["paid"] == 1


async def test_toapis_real_rate_limit_is_respected_by_the_shared_bucket(emu: EmulatorServer) -> None:
    emu.configure(submit_rate=10.0, submit_burst=2)
    # A little under the server's rate: network jitter must not turn an on-time request into a 429.
    async with toapis(emu, submit_rate=8.0, submit_burst=2) as client:
        jobs = await asyncio.gather(*(client.submit(toapis_request(f"banana {i}")) for i in range(6)))
    assert len({j.job_id for j in jobs}) == 6
    assert emu.stats()["rate_limited"].get("async_submit", 0) == 0


async def test_toapis_poll_429_is_waited_out(emu: EmulatorServer) -> None:
    emu.set_faults(query_error={"status": 429, "retry_after": 1, "count": 1})
    async with toapis(emu) as client:
        job = await client.submit(toapis_request())
        result = await client.wait(job)
    assert result.image_url


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, TransientError), (502, TransientError), (503, RateLimitedError), (504, AmbiguousSubmitError)],
)
async def test_toapis_submit_5xx(emu: EmulatorServer, status: int, error: type[Exception]) -> None:
    emu.set_faults(submit_error={"status": status})
    request = toapis_request()
    async with toapis(emu) as client:
        with pytest.raises(error) as info:
            await client.submit(request)
        assert type(info.value) is error
        assert "<" not in str(info.value)
        # Whatever the 5xx, a lookup tells whether the task exists (here it does not).
        assert await client.find_job(request.row_key) is None
    assert emu.ledger()["paid"] == 0


async def test_toapis_transient_poll_errors_are_retried(emu: EmulatorServer) -> None:
    emu.set_faults(query_error={"status": 502, "count": 2})
    async with toapis(emu) as client:
        job = await client.submit(toapis_request())
        assert (await client.wait(job)).image_url


async def test_toapis_dropped_submit_is_ambiguous_and_reattaches(emu: EmulatorServer, tmp_path: Path) -> None:
    emu.set_faults(submit_drop={"count": 1})
    request = toapis_request()
    async with toapis(emu) as client:
        with pytest.raises(AmbiguousSubmitError) as info:
            await client.submit(request)
        assert_no_secret(info.value)
        found = await client.find_job(request.row_key)
        assert found is not None and found.reattached
        result = await client.wait(found)
        image = await client.download(result, tmp_path / "a.png", row_key=request.row_key)
    ledger = emu.ledger()
    assert ledger["paid"] == 1
    assert ledger["paid_by_client_business_id"] == {request.row_key: 1}
    assert ledger["submissions"][0]["task_id"] == found.job_id
    assert ledger["submissions"][0]["delivered"] is False
    assert image.format == "PNG"


async def test_toapis_failed_task(emu: EmulatorServer) -> None:
    emu.set_faults(task_failure={"count": 1})
    async with toapis(emu) as client:
        job = await client.submit(toapis_request())
        with pytest.raises(JobFailedError) as info:
            await client.wait(job)
    assert info.value.code == "generation_failed"
    assert info.value.job_id == job.job_id


@pytest.mark.parametrize("fault", ["download_truncated", "download_corrupt"])
async def test_toapis_bad_downloads(emu: EmulatorServer, tmp_path: Path, fault: str) -> None:
    async with toapis(emu) as client:
        job = await client.submit(toapis_request())
        result = await client.wait(job)
        emu.set_faults({fault: {"count": 1}})
        with pytest.raises(DownloadFailedError) as info:
            await client.download(result, tmp_path / "a.png", row_key="r")
        assert type(info.value) is DownloadFailedError
        assert list(tmp_path.iterdir()) == []
        image = await client.download(result, tmp_path / "a.png", row_key="r")  # the retry works
    assert image.format == "PNG"


async def test_toapis_expired_download(emu: EmulatorServer, tmp_path: Path) -> None:
    emu.configure(url_ttl=0.01)
    async with toapis(emu) as client:
        result = await client.wait(await client.submit(toapis_request()))
        await asyncio.sleep(0.05)
        with pytest.raises(ImageExpiredError) as info:
            await client.download(result, tmp_path / "a.png", row_key="r")
    assert info.value.status_code == 404
    assert list(tmp_path.iterdir()) == []


async def test_toapis_upload_then_generate_with_the_reference(emu: EmulatorServer, tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(image_bytes("PNG"))
    request = toapis_request(reference_images=("https://example.com/x.png", str(ref)))
    async with toapis(emu) as client:
        url = await client.upload_reference(ref)
        assert url.startswith(emu.url)
        job = await client.submit(request, reference_urls=[url])
        assert (await client.wait(job)).image_url
    assert emu.stats()["uploads"] == 1


async def test_toapis_upload_errors(emu: EmulatorServer, tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(image_bytes("PNG"))
    big = tmp_path / "big.png"
    big.write_bytes(image_bytes("PNG") + b"\0" * (10 * 1024 * 1024))
    emu.set_faults(
        upload_error={"status": 400, "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF"}
    )
    async with toapis(emu) as client:
        with pytest.raises(InvalidRequestError, match="Unsupported image type"):
            await client.upload_reference(ref)
        with pytest.raises(RequestValidationError):
            await client.upload_reference(big)
    assert emu.stats()["uploads"] == 0


# --- TTAPI -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_string", [False, True], ids=["quota-number", "quota-string"])
async def test_ttapi_success_end_to_end(emu: EmulatorServer, tmp_path: Path, as_string: bool) -> None:
    emu.configure(ttapi_quota_as_string=as_string)
    request = ttapi_request(aspect_ratio="4:1", resolution="1K", google_search=True, thinking_level="High")
    async with ttapi(emu) as client:
        job = await client.submit(request)
        assert job.status is JobStatus.SUCCEEDED
        result = await client.wait(job)
        image = await client.download(result, tmp_path / "a.png", row_key=request.row_key)
    assert result.cost_usd == pytest.approx(0.02)
    assert image.width == 4 * image.height
    assert emu.ledger()["paid"] == 1


async def test_ttapi_local_reference_as_data_uri(emu: EmulatorServer, tmp_path: Path) -> None:
    ref = tmp_path / "ref.jpg"
    ref.write_bytes(image_bytes("JPEG"))
    async with ttapi(emu) as client:
        job = await client.submit(ttapi_request(reference_images=(str(ref),)))
    assert job.result is not None


async def test_ttapi_bad_key(emu: EmulatorServer) -> None:
    emu.configure(api_key="the-right-key")
    async with ttapi(emu) as client:
        with pytest.raises(AuthenticationError, match="Wrong TT-API-KEY") as info:
            await client.submit(ttapi_request())
    assert_no_secret(info.value)


async def test_ttapi_insufficient_balance(emu: EmulatorServer) -> None:
    emu.configure(balance_usd=0.0)
    async with ttapi(emu) as client:
        with pytest.raises(InsufficientBalanceError):
            await client.submit(ttapi_request())


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"ttapi_error": {"status": 400}}, InvalidRequestError),
        ({"ttapi_error": {"status": 403, "message": "Account Block"}}, AuthenticationError),
        ({"ttapi_error": {"status": 499}}, TransientError),
        ({"ttapi_error": {"status": 500}}, TransientError),
        ({"ttapi_failed": {"message": "Banned words in your prompt"}}, ContentPolicyError),
        ({"ttapi_failed": {"message": "generation failed"}}, JobFailedError),
    ],
)
async def test_ttapi_errors(emu: EmulatorServer, fault: dict[str, Any], error: type[Exception]) -> None:
    emu.set_faults(fault)
    async with ttapi(emu) as client:
        with pytest.raises(error) as info:
            await client.submit(ttapi_request())
    assert type(info.value) is error
    assert emu.ledger()["paid"] == 0


async def test_ttapi_429_with_retry_after(emu: EmulatorServer) -> None:
    emu.set_faults(ttapi_error={"status": 429, "retry_after": 2})
    async with ttapi(emu) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.submit(ttapi_request())
    assert info.value.retry_after == 2


@pytest.mark.parametrize(
    "fault",
    [{"ttapi_error": {"status": 504, "paid": True}}, {"ttapi_drop": {"count": 1}}],
    ids=["paid-504", "drop"],
)
async def test_ttapi_lost_answers_are_ambiguous(emu: EmulatorServer, fault: dict[str, Any]) -> None:
    emu.set_faults(fault)
    async with ttapi(emu) as client:
        with pytest.raises(AmbiguousSubmitError) as info:
            await client.submit(ttapi_request())
    assert_no_secret(info.value)
    ledger = emu.ledger()
    assert ledger["paid"] == 1  # the image was made and charged: the caller must know it is ambiguous
    assert ledger["submissions"][0]["delivered"] is False


async def test_ttapi_experimental_async_mode(emu: EmulatorServer, tmp_path: Path) -> None:
    async with ttapi(emu, experimental_async=True, poll=POLL) as client:
        job = await client.submit(ttapi_request())
        assert job.status is JobStatus.QUEUED and not job.job_id.startswith("ttapi-")
        result = await client.wait(job)
        image = await client.download(result, tmp_path / "a.png", row_key="r")
    assert result.cost_usd == pytest.approx(0.02)
    assert image.format == "PNG"


async def test_no_error_against_the_emulator_leaks_the_key(emu: EmulatorServer, tmp_path: Path) -> None:
    emu.configure(api_key="the-right-key")
    errors: list[NanoBananaError] = []
    async with toapis(emu) as a, ttapi(emu) as b:
        for call in (
            lambda: a.submit(toapis_request()),
            lambda: a.find_job("x"),
            lambda: b.submit(ttapi_request()),
        ):
            with pytest.raises(NanoBananaError) as info:
                await call()
            errors.append(info.value)
    for error in errors:
        assert_no_secret(error)
