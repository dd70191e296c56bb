"""The shared HTTP helpers: Retry-After parsing, error bodies, classification, and checked downloads."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import respx
from _provider_testkit import FAKE_KEY, assert_no_secret, image_bytes
from PIL import Image

from prefect_nanobanana.errors import (
    AmbiguousSubmitError,
    ContentPolicyError,
    DownloadFailedError,
    ImageExpiredError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobFailedError,
    RateLimitedError,
    TransientError,
)
from prefect_nanobanana.providers._http import (
    classify_failure,
    download_to_file,
    error_from_exception,
    error_from_response,
    is_content_policy,
    parse_error_body,
    parse_retry_after,
    unix_to_datetime,
    validate_image,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
IMG = "https://files.test/generated/a.png"

# --- Retry-After -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "5"}, 5.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"Retry-After": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}, 0.0),
        ({"X-RateLimit-Reset": "7"}, 7.0),
        ({"X-RateLimit-Reset": str(int(NOW.timestamp()) + 12)}, 12.0),
        ({"X-RateLimit-Reset": str(int(NOW.timestamp() * 1000) + 3000)}, 3.0),
        ({"Retry-After": "garbage", "X-RateLimit-Reset": "4"}, 4.0),
        ({"Retry-After": "3", "X-RateLimit-Reset": "9"}, 3.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    got = parse_retry_after(headers, now=NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_retry_after_accepts_httpx_headers() -> None:
    assert parse_retry_after(httpx.Headers({"RETRY-AFTER": "2"})) == 2.0


# --- bodies and classification ---------------------------------------------------------------------


def response(
    status: int,
    *,
    json: object = None,
    text: str | None = None,
    method: str = "POST",
    url: str = "https://api.test/v1/x?key=sk",
) -> httpx.Response:
    request = httpx.Request(method, url)
    if json is not None:
        return httpx.Response(status, json=json, request=request)
    return httpx.Response(status, text=text or "", request=request)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"error": {"code": 401, "message": "bad"}}, "401", "bad"),
        ({"error": {"code": "invalid_request", "message": "m", "param": "prompt"}}, "invalid_request", "m"),
        ({"success": False, "message": "nope"}, None, "nope"),
        ({"status": "FAILED", "message": "Parameter error", "data": None}, None, "Parameter error"),
        (
            {"status": "failed", "error": {"code": "generation_failed", "message": "g"}},
            "generation_failed",
            "g",
        ),
        ({"error": "plain string"}, None, "plain string"),
        ({"code": 500, "msg": "short"}, "500", "short"),
        ({"detail": "Not Found"}, None, "Not Found"),
    ],
)
def test_parse_error_body_json_shapes(body: object, code: str | None, message: str) -> None:
    parsed = parse_error_body(response(400, json=body))
    assert parsed.code == code
    assert parsed.message == message


def test_parse_error_body_text_html_and_empty() -> None:
    assert (
        parse_error_body(response(502, text="<html><body><h1>Bad</h1> gateway</body></html>")).message
        == "Bad gateway"
    )
    assert parse_error_body(response(500, text="plain words")).message == "plain words"
    assert parse_error_body(response(503, text="")).message == "Service Unavailable"
    long = parse_error_body(response(500, text="x" * 5000)).message
    assert len(long) <= 300


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("content_policy_violation", None, ContentPolicyError),
        (None, "Banned words in your prompt", ContentPolicyError),
        (None, "prompt violation", ContentPolicyError),
        (None, "Request blocked by safety filter", ContentPolicyError),
        ("IMAGE_SAFETY", None, ContentPolicyError),
        ("insufficient_quota", None, InsufficientBalanceError),
        (None, "Insufficient balance", InsufficientBalanceError),
        (None, "Parameter error", InvalidRequestError),
        ("generation_failed", "call upstream API failed: upstream returned status 422", JobFailedError),
        (None, None, JobFailedError),
    ],
)
def test_classify_failure(code: str | None, message: str | None, expected: type) -> None:
    assert classify_failure(code, message) is expected


def test_is_content_policy_is_not_fooled_by_ordinary_failures() -> None:
    assert not is_content_policy("generation_failed", "upstream timeout")
    assert not is_content_policy(None, "Queue exhausted")


@pytest.mark.parametrize(
    ("status", "paid", "expected"),
    [
        (504, True, AmbiguousSubmitError),
        (504, False, TransientError),
        (408, True, AmbiguousSubmitError),
        (503, True, TransientError),
        (499, True, TransientError),
        (404, True, InvalidRequestError),
        (409, False, InvalidRequestError),
    ],
)
def test_error_from_response_statuses(status: int, paid: bool, expected: type) -> None:
    error = error_from_response(
        response(status, text="x"), provider="toapis", api_key=FAKE_KEY, sent_paid_request=paid
    )
    assert type(error) is expected
    assert error.url == "/v1/x"  # no query string


def test_error_from_response_503_rate_limit_unavailable_with_retry_after() -> None:
    r = httpx.Response(
        503,
        json={"error": {"code": "rate_limit_unavailable", "message": "limiter down"}},
        headers={"Retry-After": "2"},
        request=httpx.Request("POST", "https://api.test/v1/images/generations"),
    )
    error = error_from_response(r, provider="toapis", api_key=FAKE_KEY)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 2.0


@pytest.mark.parametrize(
    ("exc", "paid", "expected"),
    [
        (httpx.ConnectError("x"), True, TransientError),
        (httpx.PoolTimeout("x"), True, TransientError),
        (httpx.ReadTimeout("x"), True, AmbiguousSubmitError),
        (httpx.ReadTimeout("x"), False, TransientError),
        (httpx.RemoteProtocolError("x"), True, AmbiguousSubmitError),
        (httpx.ReadError("x"), False, TransientError),
        (httpx.UnsupportedProtocol("x"), True, InvalidRequestError),
        (httpx.TooManyRedirects("x"), False, InvalidRequestError),
    ],
)
def test_error_from_exception(exc: Exception, paid: bool, expected: type) -> None:
    error = error_from_exception(
        exc,
        provider="toapis",
        method="POST",
        url=f"https://api.test/v1/x?key={FAKE_KEY}",
        api_key=FAKE_KEY,
        sent_paid_request=paid,
    )
    assert type(error) is expected
    assert error.url == "/v1/x"
    assert_no_secret(error)


def test_unix_to_datetime() -> None:
    assert unix_to_datetime(1768467463) == datetime(2026, 1, 15, 8, 57, 43, tzinfo=timezone.utc)
    assert unix_to_datetime("1768467463") == unix_to_datetime(1768467463)
    assert unix_to_datetime(1768467463000) == unix_to_datetime(1768467463)
    assert unix_to_datetime(None) is None
    assert unix_to_datetime("soon") is None
    assert unix_to_datetime(True) is None


# --- downloads -------------------------------------------------------------------------------------


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


async def fetch(
    tmp_path: Path, content: bytes, *, headers: dict[str, str] | None = None, status: int = 200, **kw: object
):  # type: ignore[no-untyped-def]
    with respx.mock:
        respx.get(IMG).respond(status, content=content, headers=headers or {})
        async with httpx.AsyncClient() as http:
            return await download_to_file(
                http, IMG, tmp_path / "out" / "a.png", row_key="row1", job_id="job1", **kw
            )  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_download_writes_a_checked_image_atomically(tmp_path: Path, fmt: str) -> None:
    data = image_bytes(fmt, (320, 200))
    image = await fetch(tmp_path, data, headers={"Content-Length": str(len(data))})
    dest = tmp_path / "out" / "a.png"
    assert dest.read_bytes() == data
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert (image.width, image.height, image.bytes, image.format) == (320, 200, len(data), fmt)
    assert image.path == str(dest)
    assert image.row_key == "row1" and image.job_id == "job1"
    assert leftovers(dest.parent) == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_truncated_images_are_refused(tmp_path: Path, fmt: str) -> None:
    data = image_bytes(fmt, (256, 256), noise=True)
    with pytest.raises(DownloadFailedError) as info:
        await fetch(tmp_path, data[: len(data) - 40])
    assert type(info.value) is DownloadFailedError
    assert not (tmp_path / "out" / "a.png").exists()
    assert leftovers(tmp_path / "out") == []


async def test_fewer_bytes_than_content_length_is_truncated(tmp_path: Path) -> None:
    data = image_bytes("PNG")
    with pytest.raises(DownloadFailedError, match="truncated"):
        await fetch(tmp_path, data, headers={"Content-Length": str(len(data) + 100)})
    assert leftovers(tmp_path / "out") == []


async def test_corrupt_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadFailedError, match="not a valid"):
        await fetch(tmp_path, b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(DownloadFailedError, match="not a valid"):
        await fetch(tmp_path, b"<html>not an image</html>")
    with pytest.raises(DownloadFailedError, match="empty"):
        await fetch(tmp_path, b"")
    assert leftovers(tmp_path / "out") == []


async def test_unexpected_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadFailedError):
        await fetch(tmp_path, image_bytes("GIF"))
    with pytest.raises(DownloadFailedError):
        await fetch(tmp_path, image_bytes("JPEG"), expected_formats=["PNG"])


async def test_more_than_max_bytes_is_refused(tmp_path: Path) -> None:
    data = image_bytes("PNG", (300, 300), noise=True)
    with pytest.raises(DownloadFailedError, match="limit"):
        await fetch(tmp_path, data, max_bytes=1000)
    with pytest.raises(DownloadFailedError, match="limit"):
        await fetch(tmp_path, data, headers={"Content-Length": str(len(data))}, max_bytes=1000)
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_missing_after_expiry_is_expired(tmp_path: Path, status: int) -> None:
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    with pytest.raises(ImageExpiredError) as info:
        await fetch(tmp_path, b"gone", status=status, expires_at=past)
    assert info.value.status_code == status
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    with pytest.raises(DownloadFailedError) as info2:
        await fetch(tmp_path, b"gone", status=status, expires_at=future)
    assert type(info2.value) is DownloadFailedError


async def test_network_failure_mid_download_removes_the_part_file(tmp_path: Path) -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield image_bytes("PNG")[:50]
            raise httpx.ReadError("connection reset")

    with respx.mock:
        respx.get(IMG).mock(return_value=httpx.Response(200, stream=Broken()))
        async with httpx.AsyncClient() as http:
            with pytest.raises(DownloadFailedError, match="ReadError"):
                await download_to_file(http, IMG, tmp_path / "a.png", row_key="r", job_id=None)
    assert list(tmp_path.iterdir()) == []


async def test_existing_destination_is_untouched_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "a.png"
    dest.parent.mkdir()
    dest.write_bytes(b"previous")
    with pytest.raises(DownloadFailedError):
        await fetch(tmp_path, b"junk")
    assert dest.read_bytes() == b"previous"


async def test_file_urls_are_read_from_disk(tmp_path: Path) -> None:
    source = tmp_path / "staged image.webp"
    data = image_bytes("WEBP", (40, 30))
    source.write_bytes(data)
    async with httpx.AsyncClient() as http:
        image = await download_to_file(
            http, source.as_uri(), tmp_path / "final.webp", row_key="r", job_id=None
        )
        assert (image.format, image.width, image.height) == ("WEBP", 40, 30)
        assert (tmp_path / "final.webp").read_bytes() == data
        with pytest.raises(DownloadFailedError):
            await download_to_file(
                http, (tmp_path / "nope.png").as_uri(), tmp_path / "x.png", row_key="r", job_id=None
            )
        with pytest.raises(DownloadFailedError, match="scheme"):
            await download_to_file(http, "ftp://x/y.png", tmp_path / "x.png", row_key="r", job_id=None)
    assert leftovers(tmp_path) == []


async def test_download_errors_carry_host_and_path_but_no_query(tmp_path: Path) -> None:
    url = f"https://files.test/generated/a.png?sig={FAKE_KEY}"
    with respx.mock:
        respx.get(url).respond(500, text="boom")
        async with httpx.AsyncClient() as http:
            with pytest.raises(DownloadFailedError) as info:
                await download_to_file(http, url, tmp_path / "a.png", row_key="r", job_id="j")
    assert info.value.url == "files.test/generated/a.png"
    assert_no_secret(info.value)


async def test_memory_stays_flat_for_a_large_image(tmp_path: Path) -> None:
    big = image_bytes("PNG", (2048, 1536), noise=True)  # ~9 MB, incompressible
    assert len(big) > 8_000_000

    class Chunked(httpx.AsyncByteStream):  # a server sending 64 KB at a time, as a socket would
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

    with respx.mock:
        respx.get(IMG).mock(
            return_value=httpx.Response(200, stream=Chunked(), headers={"Content-Length": str(len(big))})
        )
        async with httpx.AsyncClient() as http:
            tracemalloc.start()
            try:
                image = await download_to_file(http, IMG, tmp_path / "big.png", row_key="r", job_id=None)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert image.bytes == len(big)
    assert peak < 1_500_000, f"peak {peak} bytes for a {len(big)} byte image"


def test_validate_image_reads_size_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (123, 45)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    assert validate_image(path, path.stat().st_size) == ("JPEG", 123, 45)
