"""TTAPIClient against respx mocks: payload, header, status mapping, ambiguity, async mode, secrets."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest
import respx
from _provider_testkit import FAKE_KEY, FAST_POLL, TTAPI, assert_no_secret, image_bytes

from prefect_nanobanana.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentPolicyError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobFailedError,
    NanoBananaError,
    RateLimitedError,
    RequestValidationError,
    TransientError,
)
from prefect_nanobanana.models import ImageRequest, JobStatus
from prefect_nanobanana.providers.ttapi import TTAPIClient, quota_to_usd

GENERATE = f"{TTAPI}/gemini/image/generate"
FETCH = f"{TTAPI}/gemini/image/fetch"
URL = "https://cdn.ttapi.io/other/2025-09-10/x.png"
SUCCESS = {
    "status": "SUCCESS",
    "message": "success",
    "data": {"prompt": "p", "refer_images": None, "image_url": URL, "quota": 2},
}


def client(**kw: object) -> TTAPIClient:
    return TTAPIClient(FAKE_KEY, TTAPI, **kw)  # type: ignore[arg-type]


def req(**kw: object) -> ImageRequest:
    fields: dict[str, object] = {
        "provider": "ttapi",
        "prompt": "a cat",
        "model": "gemini-3-pro-image-preview",
    }
    fields.update(kw)
    return ImageRequest(**fields)  # type: ignore[arg-type]


@respx.mock
async def test_submit_sends_the_documented_body_and_header() -> None:
    route = respx.post(GENERATE).respond(200, json=SUCCESS)
    request = req(
        model="gemini-3.1-flash-image-preview",
        aspect_ratio="4:1",
        resolution="2k",
        google_search=True,
        image_search=False,
        thinking_level="high",
        reference_images=("https://cdn.ttapi.io/a.png",),
    )
    async with client() as c:
        job = await c.submit(request)
    sent = route.calls.last.request
    assert json.loads(sent.content) == {
        "prompt": "a cat",
        "model": "gemini-3.1-flash-image-preview",
        "refer_images": ["https://cdn.ttapi.io/a.png"],
        "aspect_ratio": "4:1",
        "image_size": "2K",
        "google_search": "true",
        "image_search": "false",
        "thinking_level": "High",
    }
    assert sent.headers["TT-API-KEY"] == FAKE_KEY
    assert "Authorization" not in sent.headers
    assert sent.headers["Content-Type"] == "application/json"
    assert job.status is JobStatus.SUCCEEDED
    assert job.row_key == request.row_key
    assert job.result is not None and job.result.cost_usd == pytest.approx(0.02)


def test_payload_has_only_what_is_set() -> None:
    payload = client().build_payload(req(model="nano-banana"))
    assert payload == {"prompt": "a cat", "model": "gemini-2.5-flash-image"}
    payload = client().build_payload(req())
    assert payload == {"prompt": "a cat", "model": "gemini-3-pro-image-preview", "image_size": "1K"}


def test_local_references_are_sent_as_data_uris_typed_by_content(tmp_path: Path) -> None:
    png = image_bytes("PNG")
    path = tmp_path / "looks-like.jpg"  # a PNG behind a .jpg name: the type comes from the bytes
    path.write_bytes(png)
    request = req(reference_images=("https://cdn.ttapi.io/a.png", str(path)))
    payload = client().build_payload(request)
    assert payload["refer_images"][0] == "https://cdn.ttapi.io/a.png"
    assert payload["refer_images"][1] == "data:image/png;base64," + base64.b64encode(png).decode()
    replaced = client().build_payload(request, ["data:image/png;base64,AAAA"])
    assert replaced["refer_images"] == ["https://cdn.ttapi.io/a.png", "data:image/png;base64,AAAA"]


def test_timeouts_are_long_read_short_connect() -> None:
    c = client()
    timeout = c._http.timeout
    assert timeout.read == 600.0
    assert timeout.connect == 10.0
    c2 = client(timeout=120, connect_timeout=3)
    assert c2._http.timeout.read == 120 and c2._http.timeout.connect == 3
    assert FAKE_KEY not in repr(c)


@pytest.mark.parametrize(
    ("quota", "usd"),
    [(2, 0.02), ("2", 0.02), (4.5, 0.045), ("  7 ", 0.07), (None, None), ("n/a", None), (True, None)],
)
def test_quota_to_usd(quota: object, usd: float | None) -> None:
    assert quota_to_usd(quota) == (pytest.approx(usd) if usd is not None else None)


@respx.mock
async def test_job_id_is_data_job_id_when_present() -> None:
    respx.post(GENERATE).respond(200, json={**SUCCESS, "data": {**SUCCESS["data"], "jobId": "j-42"}})
    async with client() as c:
        job = await c.submit(req())
    assert job.job_id == "j-42"
    assert job.result is not None and job.result.job_id == "j-42"


@respx.mock
async def test_job_id_falls_back_to_client_business_id() -> None:
    respx.post(GENERATE).respond(200, json=SUCCESS)
    async with client() as c:
        job = await c.submit(req(), client_business_id="rowkey-r1")
    assert job.job_id == "ttapi-rowkey-r1"


@respx.mock
async def test_wait_on_a_sync_job_makes_no_call() -> None:
    respx.post(GENERATE).respond(200, json=SUCCESS)
    async with client() as c:
        job = await c.submit(req())
        assert await c.wait(job) is job.result
    assert len(respx.calls) == 1


@respx.mock
async def test_success_without_image_url_is_a_failure() -> None:
    respx.post(GENERATE).respond(200, json={"status": "SUCCESS", "message": "success", "data": {"quota": 2}})
    async with client() as c:
        with pytest.raises(JobFailedError, match="no image_url"):
            await c.submit(req())


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"status": "FAILED", "message": "Parameter error", "data": None}, InvalidRequestError),
        (
            400,
            {"status": "FAILED", "message": "Banned words in your prompt", "data": None},
            ContentPolicyError,
        ),
        (
            401,
            {"status": "FAILED", "message": "Wrong TT-API-KEY or email is not activated."},
            AuthenticationError,
        ),
        (402, {"status": "FAILED", "message": "insufficient balance"}, InsufficientBalanceError),
        (403, {"status": "FAILED", "message": "Account Block"}, AuthenticationError),
        (429, {"status": "FAILED", "message": "Short-term request rate exceeded"}, RateLimitedError),
        (499, {"status": "FAILED", "message": "Queue exhausted"}, TransientError),
        (500, {"status": "FAILED", "message": "server error"}, TransientError),
        (
            504,
            {"status": "FAILED", "message": "Long-running synchronous request timed out"},
            AmbiguousSubmitError,
        ),
        (524, "<html><title>A timeout occurred</title></html>", AmbiguousSubmitError),
    ],
)
@respx.mock
async def test_http_status_mapping(status: int, body: object, error: type[Exception]) -> None:
    if isinstance(body, dict):
        respx.post(GENERATE).respond(status, json=body)
    else:
        respx.post(GENERATE).respond(status, text=str(body), headers={"Content-Type": "text/html"})
    async with client() as c:
        with pytest.raises(error) as info:
            await c.submit(req())
    assert type(info.value) is error
    assert info.value.status_code == status
    assert info.value.provider == "ttapi"
    assert info.value.url == "/gemini/image/generate"
    assert_no_secret(info.value)


@respx.mock
async def test_429_retry_after_and_shared_bucket_pause() -> None:
    respx.post(GENERATE).respond(
        429, json={"status": "FAILED", "message": "slow down"}, headers={"Retry-After": "0.3"}
    )
    async with client(rate=100) as c, client(rate=100) as other:
        assert c.bucket is not None and c.bucket is other.bucket
        with pytest.raises(RateLimitedError) as info:
            await c.submit(req())
        assert info.value.retry_after == pytest.approx(0.3)
        started = time.monotonic()
        await other.bucket.acquire()  # type: ignore[union-attr]
        assert time.monotonic() - started >= 0.25


def test_no_bucket_without_rate() -> None:
    assert client().bucket is None


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected"),
        httpx.ReadError("reset"),
    ],
)
@respx.mock
async def test_lost_answer_is_ambiguous(failure: Exception) -> None:
    respx.post(GENERATE).mock(side_effect=failure)
    async with client() as c:
        with pytest.raises(AmbiguousSubmitError) as info:
            await c.submit(req())
    assert not c.supports_lookup
    assert_no_secret(info.value)


@respx.mock
async def test_connect_failure_is_transient() -> None:
    respx.post(GENERATE).mock(side_effect=httpx.ConnectError("refused"))
    async with client() as c:
        with pytest.raises(TransientError):
            await c.submit(req())


@respx.mock
async def test_find_job_is_not_supported_and_sync_jobs_cannot_be_fetched() -> None:
    async with client() as c:
        assert await c.find_job("anything") is None
        with pytest.raises(InvalidRequestError, match="cannot be fetched"):
            await c.get_job("ttapi-abc")
    assert not respx.calls


# --- experimental async mode -----------------------------------------------------------------------


@respx.mock
async def test_async_mode_polls_fetch_until_success() -> None:
    respx.post(GENERATE).respond(
        200, json={"status": "SUCCESS", "message": "success", "data": {"jobId": "j1"}}
    )
    fetch = respx.get(FETCH).mock(
        side_effect=[
            httpx.Response(200, json={"status": "PENDING_QUEUE", "message": None, "jobId": "j1", "data": None}),
            httpx.Response(200, json={"status": "RUNNING", "message": None, "jobId": "j1", "data": None}),
            httpx.Response(200, json={"status": "ON_QUEUE", "message": None, "jobId": "j1", "data": None}),
            httpx.Response(200, json={"status": "SUCCESS", "message": "success", "jobId": "j1", "data": {"imageUrl": URL, "quota": "3"}}),
        ]
    )  # fmt: skip
    async with client(experimental_async=True, poll=FAST_POLL) as c:
        job = await c.submit(req())
        assert job.status is JobStatus.QUEUED and job.result is None
        result = await c.wait(job)
    assert result.image_url == URL
    assert result.cost_usd == pytest.approx(0.03)
    assert fetch.call_count == 4
    assert fetch.calls.last.request.headers["TT-API-KEY"] == FAKE_KEY


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("prompt violation", ContentPolicyError),
        ("insufficient quota", InsufficientBalanceError),
        ("oops", JobFailedError),
    ],
)
@respx.mock
async def test_async_mode_failed_fetch(message: str, error: type[Exception]) -> None:
    respx.get(FETCH).respond(200, json={"status": "FAILED", "message": message, "jobId": "j1", "data": None})
    async with client(experimental_async=True, poll=FAST_POLL) as c:
        job = await c.get_job("j1")
        assert job.status is JobStatus.FAILED
        with pytest.raises(error, match=message):
            await c.wait(job.model_copy(update={"status": JobStatus.QUEUED}))


@respx.mock
async def test_async_mode_submit_without_job_id_or_image_fails() -> None:
    respx.post(GENERATE).respond(200, json={"status": "SUCCESS", "message": "success", "data": {}})
    async with client(experimental_async=True) as c:
        with pytest.raises(JobFailedError):
            await c.submit(req())


# --- references ------------------------------------------------------------------------------------


async def test_upload_reference_returns_a_data_uri_without_network(tmp_path: Path) -> None:
    webp = image_bytes("WEBP")
    path = tmp_path / "ref.webp"
    path.write_bytes(webp)
    with respx.mock(assert_all_called=False) as mock:
        async with client() as c:
            uri = await c.upload_reference(path)
            gif = tmp_path / "a.gif"
            gif.write_bytes(image_bytes("GIF"))
            with pytest.raises(RequestValidationError, match="GIF"):
                await c.upload_reference(gif)
            big = tmp_path / "big.png"
            big.write_bytes(image_bytes("PNG") + b"\0" * (10 * 1024 * 1024))
            with pytest.raises(RequestValidationError, match="10 MB"):
                await c.upload_reference(big)
        assert not mock.calls
    assert uri == "data:image/webp;base64," + base64.b64encode(webp).decode()


# --- secrets ---------------------------------------------------------------------------------------

ECHO = f"Wrong TT-API-KEY: {FAKE_KEY}"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"status": "FAILED", "message": ECHO}),
        httpx.Response(402, json={"status": "FAILED", "message": ECHO}),
        httpx.Response(400, json={"status": "FAILED", "message": ECHO, "data": None}),
        httpx.Response(429, json={"status": "FAILED", "message": ECHO}),
        httpx.Response(499, text=ECHO),
        httpx.Response(504, text=ECHO),
        httpx.Response(200, json={"status": "FAILED", "message": ECHO}),
        httpx.Response(200, json={"status": "SUCCESS", "message": ECHO, "data": None}),
        httpx.Response(200, text=ECHO),
        httpx.ReadTimeout(ECHO),
        httpx.ConnectError(ECHO),
    ],
)
@respx.mock
async def test_the_api_key_never_appears_in_an_error(answer: object) -> None:
    route = respx.post(GENERATE)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    async with client() as c:
        with pytest.raises(NanoBananaError) as info:
            await c.submit(req())
    assert_no_secret(info.value)
