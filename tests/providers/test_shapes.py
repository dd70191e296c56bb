"""Every JSON example of providers.md sections 1 (ToAPIs) and 2 (TTAPI), through the clients' parsers.

The JSON is copied from the document verbatim (placeholders such as `<int>` filled in), served by
respx, and read by the real client code paths; each test asserts what the client makes of it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest
import respx
from _provider_testkit import FAKE_KEY, FAST_POLL, TOAPIS, TTAPI, assert_no_secret

from prefect_nanobanana.errors import (
    AuthenticationError,
    ContentPolicyError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobFailedError,
    RateLimitedError,
    TransientError,
)
from prefect_nanobanana.models import ImageRequest, JobStatus
from prefect_nanobanana.providers.toapis import ToAPIsClient, parse_task
from prefect_nanobanana.providers.ttapi import TTAPIClient

GENERATIONS = f"{TOAPIS}/v1/images/generations"
UPLOADS = f"{TOAPIS}/v1/uploads/images"
GENERATE = f"{TTAPI}/gemini/image/generate"
FETCH = f"{TTAPI}/gemini/image/fetch"


def toapis() -> ToAPIsClient:
    return ToAPIsClient(FAKE_KEY, TOAPIS, poll=FAST_POLL)


def ttapi(**kw: object) -> TTAPIClient:
    return TTAPIClient(FAKE_KEY, TTAPI, **kw)  # type: ignore[arg-type]


def toapis_request() -> ImageRequest:
    return ImageRequest(provider="toapis", prompt="a cat", model="gemini-3-pro-image-preview")


def ttapi_request() -> ImageRequest:
    return ImageRequest(provider="ttapi", prompt="a cute cat", model="gemini-3-pro-image-preview")


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


# --- 1.3.2 example request ------------------------------------------------------------------------

DOC_1_3_2_REQUEST = json.loads("""
{
  "model": "gemini-3-pro-image-preview",
  "prompt": "Enhance the colors and details of this city photo",
  "size": "16:9",
  "n": 1,
  "metadata": { "resolution": "2K" },
  "image_urls": ["https://example.com/city.jpg"]
}
""")


def test_1_3_2_example_request_is_what_the_client_builds() -> None:
    request = ImageRequest(
        provider="toapis",
        prompt="Enhance the colors and details of this city photo",
        model="gemini-3-pro-image-preview",
        aspect_ratio="16:9",
        resolution="2K",
        reference_images=("https://example.com/city.jpg",),
    )
    payload = toapis().build_payload(request)
    assert payload == {**DOC_1_3_2_REQUEST, "client_business_id": request.row_key}
    assert json.dumps(payload).count('"n": 1') == 1


# --- 1.3.4 submit response ------------------------------------------------------------------------

DOC_1_3_4_SUBMIT = json.loads("""
{
  "id": "task_img_abc123def456",
  "object": "generation.task",
  "model": "gemini-3-pro-image-preview",
  "status": "queued",
  "progress": 0,
  "created_at": 1703884800,
  "metadata": {}
}
""")


@respx.mock
async def test_1_3_4_submit_response_gives_a_queued_job() -> None:
    respx.post(GENERATIONS).respond(200, json=DOC_1_3_4_SUBMIT)
    request = toapis_request()
    async with toapis() as client:
        job = await client.submit(request)
    assert job.job_id == "task_img_abc123def456"
    assert job.status is JobStatus.QUEUED
    assert job.progress == 0
    assert job.row_key == request.row_key
    assert job.submitted_at == utc(1703884800)
    assert job.result is None


# --- 1.4 task status --------------------------------------------------------------------------------

DOC_1_4_COMPLETED = json.loads("""
{
  "id": "img_5b8b19afe5c24ab3a92df996f1a33931",
  "client_business_id": "order_20260428_001",
  "object": "generation.task",
  "model": "gemini-3-pro-image-preview",
  "status": "completed",
  "progress": 100,
  "created_at": 1768381010,
  "completed_at": 1768381063,
  "expires_at": 1768467463,
  "result": {
    "type": "image",
    "data": [ { "url": "https://files.toapis.com/generated/1768381061_c55c1bbb.jpg" } ]
  }
}
""")

DOC_1_4_IN_PROGRESS = json.loads("""
{
  "id": "img_5b8b19afe5c24ab3a92df996f1a33931",
  "object": "generation.task",
  "model": "gemini-3-pro-image-preview",
  "status": "in_progress",
  "progress": 50,
  "created_at": 1768381010
}
""")

DOC_1_4_FAILED = json.loads("""
{
  "id": "img_73c450923a9a43e4aabf426e1c681d64",
  "object": "generation.task",
  "model": "gemini-3-pro-image-preview",
  "status": "failed",
  "progress": 0,
  "created_at": 1768215312,
  "error": {
    "code": "generation_failed",
    "message": "call upstream API failed: upstream returned status 422"
  }
}
""")

DOC_1_4_NOT_FOUND = json.loads(
    """{ "error": { "code": 404, "message": "Task not found", "type": "not_found_error" } }"""
)
DOC_1_4_BAD_KEY = json.loads(
    """{ "error": { "code": 401, "message": "Authentication failed, please check your API key", "type": "authentication_error" } }"""
)

TASK_ID = "img_5b8b19afe5c24ab3a92df996f1a33931"


@respx.mock
async def test_1_4_completed_gives_url_expiry_and_completion_time() -> None:
    respx.get(f"{GENERATIONS}/{TASK_ID}").respond(200, json=DOC_1_4_COMPLETED)
    async with toapis() as client:
        job = await client.get_job(TASK_ID)
    assert job.status is JobStatus.SUCCEEDED
    assert job.row_key == "order_20260428_001"
    assert job.result is not None
    assert job.result.image_url == "https://files.toapis.com/generated/1768381061_c55c1bbb.jpg"
    assert job.result.expires_at == utc(1768467463)
    assert job.result.completed_at == utc(1768381063)
    assert job.result.expires_at.tzinfo is not None
    assert (job.result.expires_at - job.result.completed_at).total_seconds() == 86400
    assert job.result.cost_usd is None


@respx.mock
async def test_1_4_completed_found_by_client_business_id() -> None:
    respx.get(f"{GENERATIONS}/order_20260428_001").respond(200, json=DOC_1_4_COMPLETED)
    async with toapis() as client:
        job = await client.find_job("order_20260428_001")
    assert job is not None
    assert job.job_id == TASK_ID
    assert job.reattached is True
    assert job.row_key == "order_20260428_001"


def test_1_4_top_level_url_is_the_fallback() -> None:
    body = {k: v for k, v in DOC_1_4_COMPLETED.items() if k != "result"}
    body["url"] = "https://files.toapis.com/generated/top.png"
    job = parse_task(body)
    assert job.result is not None
    assert job.result.image_url == "https://files.toapis.com/generated/top.png"


@respx.mock
async def test_1_4_in_progress() -> None:
    respx.get(f"{GENERATIONS}/{TASK_ID}").respond(200, json=DOC_1_4_IN_PROGRESS)
    async with toapis() as client:
        job = await client.get_job(TASK_ID)
    assert job.status is JobStatus.IN_PROGRESS
    assert job.progress == 50
    assert job.result is None


@respx.mock
async def test_1_4_in_progress_then_completed_through_wait() -> None:
    respx.get(f"{GENERATIONS}/{TASK_ID}").mock(
        side_effect=[
            httpx.Response(200, json=DOC_1_4_IN_PROGRESS),
            httpx.Response(200, json=DOC_1_4_COMPLETED),
        ]
    )
    async with toapis() as client:
        job = parse_task(DOC_1_4_IN_PROGRESS, row_key="r", model="gemini-3-pro-image-preview")
        result = await client.wait(job)
    assert result.image_url.endswith("1768381061_c55c1bbb.jpg")


@respx.mock
async def test_1_4_failed_raises_job_failed_with_code() -> None:
    respx.get(f"{GENERATIONS}/img_73c450923a9a43e4aabf426e1c681d64").respond(200, json=DOC_1_4_FAILED)
    async with toapis() as client:
        job = await client.get_job("img_73c450923a9a43e4aabf426e1c681d64")
        assert job.status is JobStatus.FAILED
        assert job.error_code == "generation_failed"
        assert job.error_message == "call upstream API failed: upstream returned status 422"
        with pytest.raises(JobFailedError) as info:
            await client.wait(job.model_copy(update={"status": JobStatus.QUEUED}))
    assert info.value.code == "generation_failed"
    assert "upstream returned status 422" in str(info.value)
    assert info.value.job_id == "img_73c450923a9a43e4aabf426e1c681d64"


@respx.mock
async def test_1_4_not_found() -> None:
    respx.get(f"{GENERATIONS}/nope").respond(404, json=DOC_1_4_NOT_FOUND)
    async with toapis() as client:
        assert await client.find_job("nope") is None
        with pytest.raises(InvalidRequestError) as info:
            await client.get_job("nope")
    assert info.value.status_code == 404
    assert info.value.code == "404"
    assert "Task not found" in str(info.value)


@respx.mock
async def test_1_4_bad_key() -> None:
    respx.get(f"{GENERATIONS}/{TASK_ID}").respond(401, json=DOC_1_4_BAD_KEY)
    async with toapis() as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_job(TASK_ID)
    assert "Authentication failed, please check your API key" in str(info.value)
    assert info.value.url == f"/v1/images/generations/{TASK_ID}"
    assert info.value.method == "GET"
    assert_no_secret(info.value)


# --- 1.5 uploads ------------------------------------------------------------------------------------

DOC_1_5_UPLOAD_OK = json.loads("""
{
  "success": true,
  "message": "",
  "data": {
    "id": "upload_abc12345",
    "url": "https://files.toapis.com/uploads/123/1737568800_abc12345.jpg",
    "mime_type": "image/jpeg",
    "size": 89234
  }
}
""")
DOC_1_5_UPLOAD_BAD_TYPE = json.loads(
    """{"success": false, "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF"}"""
)
DOC_1_5_UPLOAD_TOO_LARGE = json.loads(
    """{"success": false, "message": "Image too large. Maximum size is 10MB"}"""
)


@pytest.fixture
def jpeg_file(tmp_path):  # type: ignore[no-untyped-def]
    from _provider_testkit import image_bytes

    path = tmp_path / "ref.jpg"
    path.write_bytes(image_bytes("JPEG"))
    return path


@respx.mock
async def test_1_5_upload_success(jpeg_file) -> None:  # type: ignore[no-untyped-def]
    respx.post(UPLOADS).respond(200, json=DOC_1_5_UPLOAD_OK)
    async with toapis() as client:
        url = await client.upload_reference(jpeg_file)
    assert url == "https://files.toapis.com/uploads/123/1737568800_abc12345.jpg"


@pytest.mark.parametrize(
    "body", [DOC_1_5_UPLOAD_BAD_TYPE, DOC_1_5_UPLOAD_TOO_LARGE], ids=["unsupported-type", "too-large"]
)
@respx.mock
async def test_1_5_upload_errors(jpeg_file, body) -> None:  # type: ignore[no-untyped-def]
    respx.post(UPLOADS).respond(400, json=body)
    async with toapis() as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.upload_reference(jpeg_file)
    assert body["message"] in str(info.value)
    assert info.value.status_code == 400
    assert_no_secret(info.value)


@respx.mock
async def test_1_5_success_false_with_http_200_is_an_error(jpeg_file) -> None:  # type: ignore[no-untyped-def]
    respx.post(UPLOADS).respond(200, json=DOC_1_5_UPLOAD_BAD_TYPE)
    async with toapis() as client:
        with pytest.raises(InvalidRequestError, match="Unsupported image type"):
            await client.upload_reference(jpeg_file)


# --- 1.6 webhook payload (the task inside it) -----------------------------------------------------

DOC_1_6_WEBHOOK_COMPLETED = json.loads("""
{
  "id": "evt_01abcdef",
  "type": "generation.completed",
  "api_version": "v1",
  "created_at": 1783953302,
  "data": {
    "task_id": "tsk_01abcdef",
    "client_business_id": "order_123",
    "task_type": "image",
    "model": "model-name",
    "status": "SUCCESS",
    "progress": "100%",
    "result": { "type": "image", "data": [ { "url": "https://cdn.example/result.png" } ] },
    "error": null,
    "submitted_at": 1783953000,
    "finished_at": 1783953300
  }
}
""")


def test_1_6_webhook_task_shape_parses() -> None:
    job = parse_task(DOC_1_6_WEBHOOK_COMPLETED["data"])
    assert job.job_id == "tsk_01abcdef"
    assert job.row_key == "order_123"
    assert job.status is JobStatus.SUCCEEDED
    assert job.progress == 100
    assert job.result is not None and job.result.image_url == "https://cdn.example/result.png"
    failed = dict(DOC_1_6_WEBHOOK_COMPLETED["data"])
    failed.update(
        status="FAILURE",
        result=None,
        error={"code": "generation_failed", "message": "Generation failed after retries"},
    )
    job = parse_task(failed)
    assert job.status is JobStatus.FAILED
    assert job.error_code == "generation_failed"


# --- 1.7 error shapes -------------------------------------------------------------------------------

TOAPIS_ERROR_SHAPES = [
    pytest.param(
        401,
        {
            "error": {
                "code": 401,
                "message": "Authentication failed, please check your API key",
                "type": "authentication_error",
            }
        },
        {},
        AuthenticationError,
        id="int-code-authentication_error",
    ),
    pytest.param(
        404,
        {"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}},
        {},
        InvalidRequestError,
        id="int-code-not_found_error",
    ),
    pytest.param(
        429,
        {"error": {"code": 429, "message": "Too many requests", "type": "rate_limit_error"}},
        {"Retry-After": "3"},
        RateLimitedError,
        id="int-code-rate_limit_error",
    ),
    pytest.param(
        400,
        {
            "error": {
                "code": "invalid_request",
                "message": "The 'prompt' field is required.",
                "param": "prompt",
                "type": "invalid_request_error",
            }
        },
        {},
        InvalidRequestError,
        id="invalid_request-with-param",
    ),
    pytest.param(
        401,
        {"error": {"code": "unauthorized", "message": "Invalid API key", "type": "authentication_error"}},
        {},
        AuthenticationError,
        id="unauthorized",
    ),
    pytest.param(
        429,
        {"error": {"code": "rate_limit_exceeded", "message": "Async task request rate exceeded"}},
        {
            "Retry-After": "2",
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "2",
            "X-RateLimit-Category": "async_submit",
        },
        RateLimitedError,
        id="rate_limit_exceeded",
    ),
    pytest.param(
        503,
        {
            "error": {
                "code": "rate_limit_unavailable",
                "message": "The async task submit limiter is temporarily unavailable",
            }
        },
        {},
        RateLimitedError,
        id="rate_limit_unavailable",
    ),
    pytest.param(
        400,
        {"success": False, "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF"},
        {},
        InvalidRequestError,
        id="success-false",
    ),
    pytest.param(
        402,
        {
            "error": {
                "code": "insufficient_quota",
                "message": "Insufficient balance",
                "type": "insufficient_quota",
            }
        },
        {},
        InsufficientBalanceError,
        id="402-insufficient_quota",
    ),
    pytest.param(
        422,
        {
            "error": {
                "code": "content_policy_violation",
                "message": "Your request was rejected by the safety system",
            }
        },
        {},
        ContentPolicyError,
        id="422-content_policy_violation",
    ),
    pytest.param(500, {"error": {"code": "internal_error", "message": "boom"}}, {}, TransientError, id="500"),
]


@pytest.mark.parametrize(("status", "body", "headers", "error"), TOAPIS_ERROR_SHAPES)
@respx.mock
async def test_1_7_error_shapes_on_submit(status, body, headers, error) -> None:  # type: ignore[no-untyped-def]
    respx.post(GENERATIONS).respond(status, json=body, headers=headers)
    async with toapis() as client:
        with pytest.raises(error) as info:
            await client.submit(toapis_request())
    exc = info.value
    assert type(exc) is error
    assert exc.status_code == status
    assert exc.provider == "toapis"
    assert exc.method == "POST"
    assert exc.url == "/v1/images/generations"
    message = body["error"]["message"] if "error" in body else body["message"]
    assert message in str(exc)
    if "error" in body:
        assert exc.code == str(body["error"]["code"])
        if "param" in body["error"]:
            assert "param: prompt" in str(exc)
    if "Retry-After" in headers:
        assert exc.retry_after == float(headers["Retry-After"])
    assert_no_secret(exc)


@respx.mock
async def test_1_7_task_level_failure_with_http_200() -> None:
    body = {"status": "failed", "error": {"code": "generation_failed", "message": "upstream gave up"}}
    respx.get(f"{GENERATIONS}/t1").respond(200, json={"id": "t1", **body})
    async with toapis() as client:
        job = await client.get_job("t1")
        assert job.status is JobStatus.FAILED
        with pytest.raises(JobFailedError, match="upstream gave up"):
            await client.wait(job)


@pytest.mark.parametrize(
    ("status", "content", "ctype", "error"),
    [
        (
            502,
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
            TransientError,
        ),
        (500, "Internal Server Error", "text/plain", TransientError),
        (401, "Unauthorized", "text/plain", AuthenticationError),
        (400, "", "text/plain", InvalidRequestError),
    ],
    ids=["html", "plain-500", "plain-401", "empty-400"],
)
@respx.mock
async def test_1_7_plain_text_and_html_bodies(status, content, ctype, error) -> None:  # type: ignore[no-untyped-def]
    respx.get(f"{GENERATIONS}/t1").respond(status, content=content, headers={"Content-Type": ctype})
    async with toapis() as client:
        with pytest.raises(error) as info:
            await client.get_job("t1")
    text = str(info.value)
    assert "<" not in text
    if status == 502:
        assert "502 Bad Gateway" in text
    if content and status != 502:
        assert content in text


# --- 1.11 inline result in the submit answer -----------------------------------------------------


@respx.mock
async def test_1_11_submit_answer_with_the_image_is_an_inline_result() -> None:
    respx.post(GENERATIONS).respond(200, json=DOC_1_4_COMPLETED)
    async with toapis() as client:
        job = await client.submit(toapis_request())
        assert job.status is JobStatus.SUCCEEDED
        result = await client.wait(job)  # no poll: no route for it
    assert result.image_url == "https://files.toapis.com/generated/1768381061_c55c1bbb.jpg"


# --- 2.1 TTAPI 401 ----------------------------------------------------------------------------------

DOC_2_1_BAD_KEY = json.loads(
    """{ "status": "FAILED", "message": "Wrong TT-API-KEY or email is not activated." }"""
)


@respx.mock
async def test_2_1_bad_key() -> None:
    respx.post(GENERATE).respond(401, json=DOC_2_1_BAD_KEY)
    async with ttapi() as client:
        with pytest.raises(AuthenticationError) as info:
            await client.submit(ttapi_request())
    assert "Wrong TT-API-KEY or email is not activated." in str(info.value)
    assert info.value.status_code == 401
    assert_no_secret(info.value)


# --- 2.3 example body -------------------------------------------------------------------------------

DOC_2_3_BODY = json.loads("""
{
  "prompt": "<string>",
  "model": "gemini-3-pro-image-preview",
  "refer_images": ["https://cdn.ttapi.io/xxx1.png", "https://cdn.ttapi.io/xxx2.png"],
  "aspect_ratio": "1:1",
  "image_size": "1K",
  "google_search": "false",
  "image_search": "false",
  "thinking_level": "Minimal"
}
""")


def test_2_3_example_body_is_what_the_client_builds() -> None:
    # The example pairs thinking_level and image_search with 3-pro; the catalogue allows them on
    # 3.1-flash only (providers.md 2.3), so the same body is built for 3.1-flash.
    request = ImageRequest(
        provider="ttapi",
        prompt="<string>",
        model="gemini-3.1-flash-image-preview",
        reference_images=("https://cdn.ttapi.io/xxx1.png", "https://cdn.ttapi.io/xxx2.png"),
        aspect_ratio="1:1",
        resolution="1K",
        google_search=False,
        image_search=False,
        thinking_level="Minimal",
    )
    payload = ttapi().build_payload(request)
    assert payload == {**DOC_2_3_BODY, "model": "gemini-3.1-flash-image-preview"}
    assert list(payload) == list(DOC_2_3_BODY)


# --- 2.4 responses ----------------------------------------------------------------------------------

DOC_2_4_SUCCESS = json.loads("""
{
  "status": "SUCCESS",
  "message": "success",
  "data": {
    "prompt": "a cute cat",
    "refer_images": null,
    "image_url": "https://cdn.ttapi.io/other/2025-09-10/8b46aa28-4433-455f-bf5c-f5ccea48baf2.png",
    "quota": 2
  }
}
""")
DOC_2_4_FAILED = json.loads("""{ "status": "FAILED", "message": "Parameter error", "data": null }""")


@pytest.mark.parametrize("quota", [2, "2"], ids=["number", "string"])
@respx.mock
async def test_2_4_success_with_quota_as_number_or_string(quota) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(json.dumps(DOC_2_4_SUCCESS))
    body["data"]["quota"] = quota
    respx.post(GENERATE).respond(200, json=body)
    request = ttapi_request()
    async with ttapi() as client:
        job = await client.submit(request)
        assert await client.wait(job) == job.result
    assert job.status is JobStatus.SUCCEEDED
    assert job.job_id == f"ttapi-{request.row_key}"
    assert job.result is not None
    assert job.result.image_url == DOC_2_4_SUCCESS["data"]["image_url"]
    assert job.result.cost_usd == pytest.approx(0.02)
    assert job.result.expires_at is None


@pytest.mark.parametrize(("status", "error"), [(200, InvalidRequestError), (400, InvalidRequestError)])
@respx.mock
async def test_2_4_generic_failed(status, error) -> None:  # type: ignore[no-untyped-def]
    respx.post(GENERATE).respond(status, json=DOC_2_4_FAILED)
    async with ttapi() as client:
        with pytest.raises(error, match="Parameter error") as info:
            await client.submit(ttapi_request())
    assert info.value.status_code == status


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Banned words in your prompt", ContentPolicyError),
        ("prompt violation", ContentPolicyError),
        ("insufficient quota", InsufficientBalanceError),
        ("upstream model error", JobFailedError),
    ],
)
@respx.mock
async def test_2_4_failed_with_http_200_is_classified_by_message(message, error) -> None:  # type: ignore[no-untyped-def]
    respx.post(GENERATE).respond(200, json={"status": "FAILED", "message": message, "data": None})
    async with ttapi() as client:
        with pytest.raises(error, match=message):
            await client.submit(ttapi_request())


# --- 2.5 async submit and fetch (experimental) ----------------------------------------------------

DOC_2_5_SUBMIT = json.loads(
    """{ "status": "SUCCESS", "message": "success", "data": { "jobId": "0ccf0606-3f32-4090-85bd-1786e4593be5" } }"""
)
DOC_2_5_FETCH = json.loads("""
{
  "status": "SUCCESS",
  "message": "success",
  "jobId": "5ecc5080-...",
  "data": {
    "prompt": "...",
    "referImages": ["..."],
    "imageUrl": "https://cdnc.ttapi.io/2025-03-31/....png",
    "quota": "2",
    "finishTime": "2025-03-31 04:25:33",
    "hookUrl": "https://..."
  }
}
""")


@respx.mock
async def test_2_5_async_submit_and_fetch() -> None:
    submit = respx.post(GENERATE).respond(200, json=DOC_2_5_SUBMIT)
    fetch = respx.get(FETCH).mock(
        side_effect=[
            httpx.Response(
                200, json={"status": "ON_QUEUE", "message": None, "jobId": "5ecc5080-...", "data": None}
            ),
            httpx.Response(200, json=DOC_2_5_FETCH),
        ]
    )
    async with ttapi(experimental_async=True, poll=FAST_POLL) as client:
        job = await client.submit(ttapi_request())
        assert job.status is JobStatus.QUEUED
        assert job.job_id == "0ccf0606-3f32-4090-85bd-1786e4593be5"
        assert json.loads(submit.calls.last.request.content)["sync_return"] == "false"
        result = await client.wait(job)
    assert result.image_url == "https://cdnc.ttapi.io/2025-03-31/....png"
    assert result.cost_usd == pytest.approx(0.02)
    assert fetch.call_count == 2
    assert fetch.calls.last.request.url.params["jobId"] == "0ccf0606-3f32-4090-85bd-1786e4593be5"
