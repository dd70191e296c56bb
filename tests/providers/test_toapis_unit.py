"""ToAPIsClient against respx mocks: payloads, headers, polling, rate limits, ambiguity, uploads, secrets."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
import respx
from _provider_testkit import FAKE_KEY, FAST_POLL, TOAPIS, assert_no_secret, image_bytes

from prefect_nanobanana.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentPolicyError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobFailedError,
    JobTimedOutError,
    NanoBananaError,
    RateLimitedError,
    RequestValidationError,
    TransientError,
)
from prefect_nanobanana.models import ImageJob, ImageRequest, JobStatus
from prefect_nanobanana.providers.base import PollPolicy
from prefect_nanobanana.providers.toapis import ToAPIsClient, normalize_base_url, parse_task

GENERATIONS = f"{TOAPIS}/v1/images/generations"
UPLOADS = f"{TOAPIS}/v1/uploads/images"
QUEUED = {
    "id": "task_1",
    "object": "generation.task",
    "status": "queued",
    "progress": 0,
    "created_at": 1703884800,
}
IN_PROGRESS = {**QUEUED, "status": "in_progress", "progress": 40}
COMPLETED = {
    **QUEUED,
    "status": "completed",
    "progress": 100,
    "completed_at": 1768381063,
    "expires_at": 1768467463,
    "result": {"type": "image", "data": [{"url": "https://files.toapis.test/generated/a.png"}]},
}


def client(**kw: object) -> ToAPIsClient:
    kw.setdefault("poll", FAST_POLL)
    return ToAPIsClient(FAKE_KEY, TOAPIS, **kw)  # type: ignore[arg-type]


def req(**kw: object) -> ImageRequest:
    fields: dict[str, object] = {
        "provider": "toapis",
        "prompt": "a cat",
        "model": "gemini-3-pro-image-preview",
    }
    fields.update(kw)
    return ImageRequest(**fields)  # type: ignore[arg-type]


def queued_job(request: ImageRequest | None = None) -> ImageJob:
    request = request or req()
    return ImageJob(provider="toapis", job_id="task_1", row_key=request.row_key, model=request.model)


# --- payloads and headers -------------------------------------------------------------------------


@respx.mock
async def test_submit_sends_the_documented_body_and_headers() -> None:
    route = respx.post(GENERATIONS).respond(200, json=QUEUED)
    request = req(aspect_ratio="16:9", resolution="2k", reference_images=("https://example.com/a.jpg",))
    async with client() as c:
        await c.submit(request)
    sent = route.calls.last.request
    body = json.loads(sent.content)
    assert body == {
        "model": "gemini-3-pro-image-preview",
        "prompt": "a cat",
        "size": "16:9",
        "n": 1,
        "metadata": {"resolution": "2K"},
        "image_urls": ["https://example.com/a.jpg"],
        "client_business_id": request.row_key,
    }
    assert type(body["n"]) is int
    assert b'"n":1' in sent.content.replace(b" ", b"")
    assert all(isinstance(u, str) for u in body["image_urls"])
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.url.query == b""


def test_payload_31_flash_search_booleans_and_extreme_ratio() -> None:
    request = req(
        model="gemini-3.1-flash-image-preview",
        aspect_ratio="8:1",
        resolution="0.5K",
        google_search=True,
        image_search="true",
    )
    payload = client().build_payload(request)
    assert payload["size"] == "8:1"
    assert payload["metadata"] == {"resolution": "0.5K", "google_search": True, "google_image_search": True}


def test_payload_orientation_on_3_pro() -> None:
    payload = client().build_payload(req(orientation="Landscape"))
    assert payload["metadata"] == {"resolution": "1K", "orientation": "landscape"}


def test_payload_official_thinking_config_and_no_resolution_on_25_official() -> None:
    payload = client().build_payload(req(model="nano-banana-pro-official", thinking_level="high"))
    assert payload["model"] == "gemini-3-pro-image-preview-official"
    assert payload["metadata"] == {"resolution": "1K", "thinkingConfig": {"thinkingLevel": "HIGH"}}
    payload = client().build_payload(req(model="gemini-2.5-flash-image-official"))
    assert "metadata" not in payload
    assert "size" not in payload


def test_payload_client_business_id_override() -> None:
    request = req()
    assert client().build_payload(request)["client_business_id"] == request.row_key
    assert client().build_payload(request, client_business_id="abc-1")["client_business_id"] == "abc-1"


def test_local_references_must_be_uploaded_first(tmp_path: Path) -> None:
    path = tmp_path / "ref.png"
    path.write_bytes(image_bytes("PNG"))
    request = req(reference_images=("https://example.com/a.jpg", str(path)))
    with pytest.raises(RequestValidationError) as info:
        client().build_payload(request)
    assert info.value.field == "reference_images"
    only_local = client().build_payload(request, ["https://files.toapis.test/u/1.png"])
    assert only_local["image_urls"] == ["https://example.com/a.jpg", "https://files.toapis.test/u/1.png"]
    full = client().build_payload(request, ["https://x.test/1.jpg", "https://x.test/2.png"])
    assert full["image_urls"] == ["https://x.test/1.jpg", "https://x.test/2.png"]
    with pytest.raises(ValueError, match="reference_urls"):
        client().build_payload(request, ["a", "b", "c"])


def test_provider_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        client().build_payload(ImageRequest(provider="ttapi", prompt="x", model="nano-banana-2"))


@pytest.mark.parametrize(
    "base",
    [
        "https://toapis.cn",
        "https://toapis.cn/",
        "https://toapis.cn/v1",
        "https://toapis.cn/v1/",
        " https://toapis.cn/V1 ",
    ],
)
def test_base_url_with_or_without_v1(base: str) -> None:
    assert normalize_base_url(base) == "https://toapis.cn"


@respx.mock
async def test_base_url_with_v1_hits_the_same_paths() -> None:
    route = respx.post("https://toapis.cn/v1/images/generations").respond(200, json=QUEUED)
    async with ToAPIsClient(FAKE_KEY, "https://toapis.cn/v1") as c:
        await c.submit(req())
    assert route.called


def test_bad_construction() -> None:
    with pytest.raises(ValueError):
        ToAPIsClient("  ")
    with pytest.raises(ValueError):
        ToAPIsClient(FAKE_KEY, "toapis.com")
    assert FAKE_KEY not in repr(ToAPIsClient(FAKE_KEY))


# --- submit outcomes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.WriteTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
    ids=["read-timeout", "write-timeout", "disconnect", "read-error"],
)
@respx.mock
async def test_submit_sent_without_answer_is_ambiguous(failure: Exception) -> None:
    respx.post(GENERATIONS).mock(side_effect=failure)
    async with client() as c:
        with pytest.raises(AmbiguousSubmitError) as info:
            await c.submit(req())
    assert info.value.method == "POST"
    assert info.value.url == "/v1/images/generations"
    assert_no_secret(info.value)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("timed out"), httpx.PoolTimeout("pool")],
    ids=["connect-error", "connect-timeout", "pool-timeout"],
)
@respx.mock
async def test_submit_that_never_left_is_transient(failure: Exception) -> None:
    respx.post(GENERATIONS).mock(side_effect=failure)
    async with client() as c:
        with pytest.raises(TransientError):
            await c.submit(req())


@pytest.mark.parametrize(
    ("status", "content", "error"),
    [
        (504, b"gateway timeout", AmbiguousSubmitError),
        (200, b"<html>oops</html>", AmbiguousSubmitError),
        (200, b'{"object": "generation.task"}', AmbiguousSubmitError),
        (200, b'{"success": false, "message": "Insufficient balance"}', InsufficientBalanceError),
        (500, b"boom", TransientError),
        (502, b"bad gateway", TransientError),
        (307, b"", InvalidRequestError),
    ],
)
@respx.mock
async def test_submit_answers_that_are_not_a_task(
    status: int, content: bytes, error: type[Exception]
) -> None:
    headers = {"Location": "https://elsewhere.test/v1/images/generations?token=abc"} if status == 307 else {}
    respx.post(GENERATIONS).respond(status, content=content, headers=headers)
    async with client() as c:
        with pytest.raises(error) as info:
            await c.submit(req())
    assert "token=abc" not in str(info.value)


@respx.mock
async def test_submit_429_pauses_the_shared_submit_bucket() -> None:
    respx.post(GENERATIONS).respond(
        429, json={"error": {"code": "rate_limit_exceeded", "message": "Async task request rate exceeded"}},
        headers={"Retry-After": "0.3"},
    )  # fmt: skip
    async with client() as c, client() as other:
        assert other.submit_bucket is c.submit_bucket
        with pytest.raises(RateLimitedError) as info:
            await c.submit(req())
        assert info.value.retry_after == pytest.approx(0.3)
        started = time.monotonic()
        await other.submit_bucket.acquire()
        assert time.monotonic() - started >= 0.25


@respx.mock
async def test_submit_429_without_retry_after_uses_x_ratelimit_reset() -> None:
    respx.post(GENERATIONS).respond(
        429,
        json={"error": {"code": "rate_limit_exceeded", "message": "x"}},
        headers={"X-RateLimit-Reset": "4"},
    )
    async with client() as c:
        with pytest.raises(RateLimitedError) as info:
            await c.submit(req())
    assert info.value.retry_after == 4


@respx.mock
async def test_submit_content_policy_422() -> None:
    respx.post(GENERATIONS).respond(
        422, json={"error": {"code": "content_policy_violation", "message": "no"}}
    )
    async with client() as c:
        with pytest.raises(ContentPolicyError):
            await c.submit(req())


@respx.mock
async def test_submit_400_with_a_content_message_is_content_policy() -> None:
    respx.post(GENERATIONS).respond(
        400, json={"error": {"code": "invalid_request", "message": "prompt blocked by content moderation"}}
    )
    async with client() as c:
        with pytest.raises(ContentPolicyError):
            await c.submit(req())


# --- lookup ----------------------------------------------------------------------------------------


@respx.mock
async def test_find_job_404_is_none_and_hit_is_reattached() -> None:
    request = req()
    miss = respx.get(f"{GENERATIONS}/{request.row_key}").respond(
        404, json={"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}}
    )
    async with client() as c:
        assert await c.find_job(request.row_key) is None
        assert miss.called
        miss.respond(200, json={**IN_PROGRESS, "client_business_id": request.row_key})
        job = await c.find_job(request.row_key)
    assert job is not None
    assert job.reattached
    assert job.job_id == "task_1"
    assert job.row_key == request.row_key
    assert job.status is JobStatus.IN_PROGRESS


@respx.mock
async def test_find_job_auth_error_is_raised_not_none() -> None:
    respx.get(f"{GENERATIONS}/abc").respond(
        401, json={"error": {"code": "unauthorized", "message": "Invalid API key"}}
    )
    async with client() as c:
        with pytest.raises(AuthenticationError):
            await c.find_job("abc")


# --- polling ---------------------------------------------------------------------------------------


@respx.mock
async def test_polling_schedule_first_delay_then_jittered_intervals() -> None:
    times: list[float] = []
    answers = iter([QUEUED, IN_PROGRESS, IN_PROGRESS, COMPLETED])

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return httpx.Response(200, json=next(answers))

    respx.get(f"{GENERATIONS}/task_1").mock(side_effect=answer)
    policy = PollPolicy(first_delay=0.15, min_interval=0.05, max_interval=0.1, deadline=5)
    async with client() as c:
        started = time.monotonic()
        result = await c.wait(queued_job(), policy)
    assert result.image_url == "https://files.toapis.test/generated/a.png"
    assert result.expires_at is not None
    assert len(times) == 4
    assert times[0] - started >= 0.15
    gaps = [times[i + 1] - times[i] for i in range(len(times) - 1)]
    assert all(0.045 <= g <= 0.3 for g in gaps), gaps


@respx.mock
async def test_polling_deadline_raises_timed_out() -> None:
    route = respx.get(f"{GENERATIONS}/task_1").respond(200, json=IN_PROGRESS)
    policy = PollPolicy(first_delay=0.01, min_interval=0.02, max_interval=0.03, deadline=0.2)
    async with client() as c:
        started = time.monotonic()
        with pytest.raises(JobTimedOutError) as info:
            await c.wait(queued_job(), policy)
    assert time.monotonic() - started < 1.0
    assert route.call_count >= 3
    assert info.value.job_id == "task_1"
    assert "in_progress" in str(info.value)


@respx.mock
async def test_poll_429_honours_retry_after_and_keeps_waiting() -> None:
    times: list[float] = []
    answers = iter(
        [
            httpx.Response(
                429,
                json={"error": {"code": "rate_limit_exceeded", "message": "slow"}},
                headers={"Retry-After": "0.3"},
            ),
            httpx.Response(200, json=COMPLETED),
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return next(answers)

    respx.get(f"{GENERATIONS}/task_1").mock(side_effect=answer)
    async with client() as c:
        result = await c.wait(queued_job())
    assert result.image_url.endswith("a.png")
    assert times[1] - times[0] >= 0.28


@respx.mock
async def test_poll_429_pauses_every_waiter_of_the_process() -> None:
    respx.get(f"{GENERATIONS}/task_1").respond(
        429,
        json={"error": {"code": "rate_limit_exceeded", "message": "slow"}},
        headers={"Retry-After": "0.4"},
    )
    async with client() as c, client() as other:
        with pytest.raises(RateLimitedError):
            await c.get_job("task_1")
        started = time.monotonic()
        await other.query_bucket.acquire()
        assert time.monotonic() - started >= 0.35


@respx.mock
async def test_poll_transient_errors_are_retried_within_the_deadline() -> None:
    respx.get(f"{GENERATIONS}/task_1").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(502, text="bad gateway"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json=COMPLETED),
        ]
    )
    async with client() as c:
        result = await c.wait(queued_job())
    assert result.image_url.endswith("a.png")


@respx.mock
async def test_poll_auth_error_ends_the_wait_at_once() -> None:
    route = respx.get(f"{GENERATIONS}/task_1").respond(
        401, json={"error": {"code": 401, "message": "bad key"}}
    )
    async with client() as c:
        with pytest.raises(AuthenticationError):
            await c.wait(queued_job())
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        ("failed", {"code": "generation_failed", "message": "upstream gave up"}, JobFailedError),
        ("cancelled", None, JobFailedError),
        ("failed", {"code": "content_policy_violation", "message": "blocked"}, ContentPolicyError),
        (
            "failed",
            {"code": "generation_failed", "message": "Prompt was blocked by the safety filter"},
            ContentPolicyError,
        ),
    ],
)
@respx.mock
async def test_terminal_failures(
    status: str, error: dict[str, str] | None, expected: type[Exception]
) -> None:
    body = {**QUEUED, "status": status}
    if error:
        body["error"] = error
    respx.get(f"{GENERATIONS}/task_1").respond(200, json=body)
    async with client() as c:
        with pytest.raises(expected) as info:
            await c.wait(queued_job())
    assert type(info.value) is expected
    assert info.value.job_id == "task_1"


@respx.mock
async def test_completed_without_url_is_a_failure() -> None:
    respx.get(f"{GENERATIONS}/task_1").respond(200, json={**QUEUED, "status": "completed"})
    async with client() as c:
        with pytest.raises(JobFailedError, match="without an image URL"):
            await c.wait(queued_job())


@respx.mock
async def test_unknown_status_counts_as_in_progress_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    respx.get(f"{GENERATIONS}/task_1").mock(
        side_effect=[
            httpx.Response(200, json={**QUEUED, "status": "warming_up_xyz"}),
            httpx.Response(200, json={**QUEUED, "status": "warming_up_xyz"}),
            httpx.Response(200, json={**QUEUED, "status": "submitted"}),
            httpx.Response(200, json={**QUEUED, "status": "processing"}),
            httpx.Response(200, json=COMPLETED),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="prefect_nanobanana"):
        async with client() as c:
            await c.wait(queued_job())
    assert sum("warming_up_xyz" in r.getMessage() for r in caplog.records) == 1


async def test_wait_on_a_finished_job_makes_no_call() -> None:
    with respx.mock(assert_all_called=False) as mock:
        async with client() as c:
            job = queued_job().model_copy(
                update={"status": JobStatus.FAILED, "error_code": "x", "error_message": "gone"}
            )
            with pytest.raises(JobFailedError):
                await c.wait(job)
        assert not mock.calls


# --- uploads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("big.png", image_bytes("PNG")[:16] + b"\0" * (10 * 1024 * 1024), "limit is 10 MB"),
        ("anim.gif", image_bytes("GIF"), "GIF"),
        ("notes.png", b"just some text, not an image", "not a JPEG, PNG or WebP"),
        ("empty.png", b"", "empty"),
    ],
)
async def test_upload_checks_before_sending(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(UPLOADS).respond(200, json={})
        async with client() as c:
            with pytest.raises(RequestValidationError, match=match) as info:
                await c.upload_reference(path)
        assert not route.called
    assert info.value.field == "reference_images"


async def test_upload_missing_file_never_hits_the_network(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as mock:
        async with client() as c:
            with pytest.raises(RequestValidationError, match="does not exist"):
                await c.upload_reference(tmp_path / "missing.png")
            with pytest.raises(RequestValidationError, match="not a file"):
                await c.upload_reference(tmp_path)
        assert not mock.calls


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
@respx.mock
async def test_upload_sends_multipart_file_and_purpose(tmp_path: Path, fmt: str, mime: str) -> None:
    path = tmp_path / "ref.bin"
    path.write_bytes(image_bytes(fmt))
    route = respx.post(UPLOADS).respond(
        200,
        json={"success": True, "message": "", "data": {"id": "u1", "url": "https://files.toapis.test/u1"}},
    )
    async with client() as c:
        assert await c.upload_reference(path) == "https://files.toapis.test/u1"
    sent = route.calls.last.request
    assert sent.headers["Content-Type"].startswith("multipart/form-data")
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert b'name="purpose"\r\n\r\ngeneration' in sent.content
    assert b'name="file"; filename="ref.bin"' in sent.content
    assert f"Content-Type: {mime}".encode() in sent.content


@respx.mock
async def test_upload_success_without_url_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ref.png"
    path.write_bytes(image_bytes("PNG"))
    respx.post(UPLOADS).respond(200, json={"success": True, "message": "", "data": {}})
    async with client() as c:
        with pytest.raises(TransientError, match="without a URL"):
            await c.upload_reference(path)


# --- secrets ---------------------------------------------------------------------------------------

ECHO = f"Invalid API key {FAKE_KEY}; Authorization: Bearer {FAKE_KEY}"


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("submit", httpx.Response(401, json={"error": {"code": "unauthorized", "message": ECHO}})),
        ("submit", httpx.Response(402, json={"error": {"code": "insufficient_quota", "message": ECHO}})),
        (
            "submit",
            httpx.Response(400, json={"error": {"code": FAKE_KEY, "message": ECHO, "param": FAKE_KEY}}),
        ),
        (
            "submit",
            httpx.Response(422, json={"error": {"code": "content_policy_violation", "message": ECHO}}),
        ),
        ("submit", httpx.Response(429, json={"error": {"code": "rate_limit_exceeded", "message": ECHO}})),
        ("submit", httpx.Response(500, text=f"<html><title>{ECHO}</title></html>")),
        ("submit", httpx.Response(504, text=ECHO)),
        ("submit", httpx.Response(200, text=ECHO)),
        ("submit", httpx.ReadTimeout(ECHO)),
        ("submit", httpx.ConnectError(ECHO)),
        (
            "get",
            httpx.Response(200, json={**QUEUED, "status": "failed", "error": {"code": "x", "message": ECHO}}),
        ),
        ("get", httpx.Response(404, json={"error": {"code": 404, "message": ECHO}})),
        ("get", httpx.RemoteProtocolError(ECHO)),
        ("find", httpx.Response(403, text=ECHO)),
        ("upload", httpx.Response(400, json={"success": False, "message": ECHO})),
        ("upload", httpx.Response(200, json={"success": False, "message": ECHO})),
    ],
)
async def test_the_api_key_never_appears_in_an_error(tmp_path: Path, method: str, answer: object) -> None:
    path = tmp_path / "ref.png"
    path.write_bytes(image_bytes("PNG"))
    with respx.mock(assert_all_called=False) as mock:
        side = answer if isinstance(answer, Exception) else None
        for route in (mock.post(GENERATIONS), mock.get(url__startswith=GENERATIONS), mock.post(UPLOADS)):
            route.mock(side_effect=side) if side else route.mock(return_value=answer)
        async with client() as c:
            with pytest.raises(NanoBananaError) as info:
                if method == "submit":
                    await c.submit(req())
                elif method == "get":
                    await c.wait(await c.get_job("task_1"))
                elif method == "find":
                    await c.find_job("row")
                else:
                    await c.upload_reference(path)
    assert_no_secret(info.value)
    assert "***" in str(info.value) or isinstance(info.value, (AmbiguousSubmitError, TransientError))


# --- downloads through the client ------------------------------------------------------------------


@respx.mock
async def test_download_uses_no_credentials_and_follows_redirects(tmp_path: Path) -> None:
    png = image_bytes("PNG")
    respx.get("https://files.toapis.test/generated/a.png").respond(
        302, headers={"Location": "https://cdn.test/a.png"}
    )
    cdn = respx.get("https://cdn.test/a.png").respond(
        200, content=png, headers={"Content-Length": str(len(png))}
    )
    result = parse_task(COMPLETED).result
    assert result is not None
    async with client() as c:
        image = await c.download(result, tmp_path / "out.png", row_key="r1")
    assert image.format == "PNG"
    assert image.job_id == "task_1"
    assert "Authorization" not in cdn.calls.last.request.headers
    assert (tmp_path / "out.png").read_bytes() == png
