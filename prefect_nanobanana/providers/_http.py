"""HTTP plumbing shared by the provider clients: sending, error classification, and downloads.

- `send` makes one API call and turns every failure into the taxonomy of `errors.py` (via
  `error_from_exception` and `error_from_response`), so that no httpx exception and no raw status code
  escapes a client.
- `parse_error_body` reads every error body shape of providers.md 1.7 and 2.4; `classify_failure`
  decides what a provider's failure message means (content policy, balance, bad parameter, ...).
- `parse_retry_after` reads `Retry-After` (seconds or HTTP-date), falling back to `X-RateLimit-Reset`.
- `download_to_file` streams an image to a temporary file next to its destination, hashes and checks
  it, and renames it into place.

Error messages name the provider, the method and the URL path (never the query string, never a
header) and the provider's own message, and go through `errors.redact` with the API key.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import secrets
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx
from PIL import Image

from ..errors import (
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
    TransientError,
    redact,
)
from ..models import GeneratedImage, JobResult
from .base import ImageProvider

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_RETRY_AFTER",
    "USER_AGENT",
    "ErrorBody",
    "check_base_url",
    "classify_failure",
    "display_url",
    "download_to_file",
    "error_from_exception",
    "error_from_response",
    "is_content_policy",
    "json_object",
    "parse_error_body",
    "parse_retry_after",
    "provider_label",
    "send",
    "text_or_none",
    "unix_to_datetime",
    "validate_image",
]

USER_AGENT = "prefect-nanobanana/0.1 (+httpx)"
DEFAULT_RETRY_AFTER = 1.0
"""Seconds a shared bucket pauses after a 429 that names no delay (no Retry-After, no X-RateLimit-Reset)."""
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
CHUNK_SIZE = 64 * 1024
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")

_PROVIDER_LABELS = {"toapis": "ToAPIs", "ttapi": "TTAPI"}


def provider_label(provider: str | None) -> str:
    """How a provider is named in messages: `ToAPIs`, `TTAPI`."""
    return _PROVIDER_LABELS.get(provider or "", provider or "the provider")


def check_base_url(base_url: str) -> str:
    """`base_url` stripped of spaces and trailing slashes; `ValueError` unless it is http(s)."""
    url = base_url.strip().rstrip("/")
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, not {display_url(url)!r}")
    return url


# --- Retry-After ---------------------------------------------------------------------------------


def _seconds_from(value: str, now: datetime) -> float | None:
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(number) or number < 0:
        return None
    return number


def parse_retry_after(
    headers: Mapping[str, str] | httpx.Headers, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait before the next call, from `Retry-After` or else `X-RateLimit-Reset`; None if neither.

    `Retry-After` may be delta-seconds or an HTTP-date. `X-RateLimit-Reset` may be delta-seconds or
    a Unix timestamp (seconds, or milliseconds); timestamps are turned into a delay from `now`.
    Never negative.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    now = now or datetime.now(timezone.utc)
    retry_after = lowered.get("retry-after")
    if retry_after is not None:
        seconds = _seconds_from(retry_after, now)
        if seconds is not None:
            return seconds
    reset = lowered.get("x-ratelimit-reset")
    if reset is not None:
        seconds = _seconds_from(reset, now)
        if seconds is None:
            return None
        if seconds > 1e12:  # Unix milliseconds
            return max(0.0, seconds / 1000 - now.timestamp())
        if seconds > 1e9:  # Unix seconds
            return max(0.0, seconds - now.timestamp())
        return seconds
    return None


# --- error bodies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorBody:
    """What a provider said in an error (or failure) body, whatever its shape."""

    message: str
    code: str | None = None
    type: str | None = None
    param: str | None = None
    status: str | None = None
    """The body's own `status` (`FAILED`, `failed`), when it has one."""


_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")
_MAX_MESSAGE = 300


def text_or_none(value: Any) -> str | None:
    """A JSON scalar as stripped text (`404` -> "404"); None for null, empty strings, objects and lists."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float, bool)):
        return str(value)
    return None


def _plain(text: str) -> str:
    """Readable text from a plain or HTML body: tags stripped, whitespace collapsed, shortened."""
    title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
    if title and title.group(1).strip():
        text = title.group(1)
    else:
        text = re.sub(r"(?is)<(script|style)[^>]*>.*?</\1>", " ", text)
    text = _SPACE_RE.sub(" ", html.unescape(_TAG_RE.sub(" ", text))).strip()
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def error_body_from_json(body: Any) -> ErrorBody | None:
    """Read an error out of a decoded JSON body; None when it holds no error at all.

    Shapes (providers.md 1.7, 2.1, 2.4): `{"error": {"code": int|str, "message", "type", "param"}}`,
    `{"error": "text"}`, `{"success": false, "message"}`, `{"status": "FAILED", "message", "data"}`,
    `{"status": "failed", "error": {...}}`, and loose `{"code", "message"}` / `{"detail"}` bodies.
    """
    if not isinstance(body, dict):
        return None
    status = text_or_none(body.get("status"))
    error = body.get("error")
    if isinstance(error, dict):
        return ErrorBody(
            message=text_or_none(error.get("message")) or text_or_none(body.get("message")) or "",
            code=text_or_none(error.get("code")),
            type=text_or_none(error.get("type")),
            param=text_or_none(error.get("param")),
            status=status,
        )
    if isinstance(error, str) and error.strip():
        return ErrorBody(message=error.strip(), code=text_or_none(body.get("code")), status=status)
    failed = body.get("success") is False or (status is not None and status.upper() in ("FAILED", "FAILURE"))
    message = text_or_none(body.get("message")) or text_or_none(body.get("msg"))
    detail = body.get("detail")
    if message is None and detail is not None:
        message = text_or_none(detail) or str(detail)[:_MAX_MESSAGE]
    if failed or message is not None or body.get("code") is not None:
        return ErrorBody(
            message=message or "",
            code=text_or_none(body.get("code")),
            type=text_or_none(body.get("type")),
            status=status,
        )
    return None


def parse_error_body(response: httpx.Response) -> ErrorBody:
    """The provider's error from any response body: JSON of any documented shape, plain text or HTML.

    Always returns something: an empty or unreadable body gives the HTTP reason phrase.
    """
    try:
        raw = response.text
    except (httpx.HTTPError, UnicodeDecodeError, RuntimeError):
        raw = ""
    parsed: ErrorBody | None = None
    if raw.strip():
        try:
            parsed = error_body_from_json(response.json())
        except ValueError:
            parsed = ErrorBody(message=_plain(raw))
    if parsed is None:
        parsed = ErrorBody(message="")
    if not parsed.message:
        reason = response.reason_phrase or ""
        parsed = ErrorBody(
            message=reason or (_plain(raw) if raw.strip() else f"HTTP {response.status_code}"),
            code=parsed.code,
            type=parsed.type,
            param=parsed.param,
            status=parsed.status,
        )
    return parsed


# --- classification ------------------------------------------------------------------------------

_CONTENT_POLICY_CODES = frozenset(
    {
        "content_policy_violation",
        "content_policy",
        "content_filter",
        "content_violation",
        "prompt_violation",
        "policy_violation",
        "safety",
        "safety_violation",
        "moderation",
        "moderation_blocked",
        "image_safety",
        "image_prohibited_content",
        "prohibited_content",
        "sensitive_content",
        "blocklist",
    }
)
_CONTENT_POLICY_RE = re.compile(
    r"content[\s_-]*(policy|policies|filter|safety|moderation|violation)"
    r"|safety[\s_-]*(system|filter|policy|block|settings|reasons?)"
    r"|prohibited|banned[\s_-]*words?|sensitive[\s_-]*(words?|content)|nsfw|moderation"
    r"|(prompt|policy|usage|guidelines?)[\s_-]*violat"
    r"|violat\w*[\s_-]+(of[\s_-]+)?(the[\s_-]+|our[\s_-]+)?(content|usage|safety)"
    r"|image[\s_-]*safety|blocklist|responsible[\s_-]*ai|违规|敏感",
    re.IGNORECASE,
)
_BALANCE_CODES = frozenset({"insufficient_quota", "insufficient_balance", "insufficient_credits"})
_BALANCE_RE = re.compile(
    r"insufficient[\s_-]*(balance|quota|credits?|funds?)|not[\s_-]+enough[\s_-]+(balance|quota|credits?)"
    r"|balance[\s_-]+(is[\s_-]+)?(insufficient|too[\s_-]+low|not[\s_-]+enough)|余额不足",
    re.IGNORECASE,
)
_AUTH_CODES = frozenset({"unauthorized", "authentication_error", "invalid_api_key", "forbidden"})
_RATE_LIMIT_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error", "rate_limit_unavailable"})
_INVALID_RE = re.compile(r"parameter[\s_-]*error|invalid[\s_-]*param|missing[\s_-]*param", re.IGNORECASE)


def is_content_policy(code: str | None, message: str | None) -> bool:
    """True when a provider's error code or message says the prompt or an image was refused on content."""
    if code and (code.lower() in _CONTENT_POLICY_CODES or _CONTENT_POLICY_RE.search(code)):
        return True
    return bool(message and _CONTENT_POLICY_RE.search(message))


def _is_balance(code: str | None, message: str | None) -> bool:
    if code and code.lower() in _BALANCE_CODES:
        return True
    return bool(message and _BALANCE_RE.search(message))


def classify_failure(
    code: str | None, message: str | None, *, default: type[NanoBananaError] = JobFailedError
) -> type[NanoBananaError]:
    """The error class for a failure reported in a body (a failed task, a `FAILED` or `success: false` body).

    Content-policy refusals -> `ContentPolicyError`; "insufficient balance/quota" ->
    `InsufficientBalanceError`; an authentication code -> `AuthenticationError`; "Parameter error" ->
    `InvalidRequestError`; anything else -> `default`.
    """
    lowered = (code or "").lower()
    if is_content_policy(code, message):
        return ContentPolicyError
    if _is_balance(code, message):
        return InsufficientBalanceError
    if lowered in _AUTH_CODES:
        return AuthenticationError
    if lowered in _RATE_LIMIT_CODES:
        return RateLimitedError
    if lowered in ("invalid_request", "invalid_request_error") or (message and _INVALID_RE.search(message)):
        return InvalidRequestError
    return default


def display_url(url: httpx.URL | str, *, with_host: bool = False) -> str:
    """The path of `url` (optionally with its host) without query string, fragment or user info."""
    parts = urlsplit(str(url))
    if parts.scheme == "file":
        return f"file://{parts.path}"
    path = parts.path or "/"
    if with_host and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.hostname}{port}{path}"
    return path


def _status_class(status: int, body: ErrorBody, *, sent_paid_request: bool) -> type[NanoBananaError]:
    code = (body.code or "").lower()
    if 300 <= status < 400:
        return InvalidRequestError
    if status in (401, 403):
        return AuthenticationError
    if status == 402:
        return InsufficientBalanceError
    if status == 429 or code in ("rate_limit_exceeded", "rate_limit_error"):
        return RateLimitedError
    if status == 503 and code == "rate_limit_unavailable":
        return RateLimitedError
    if status == 422:
        return ContentPolicyError
    if status in (408, 499) or status >= 500:
        if sent_paid_request and status in (408, 504, 522, 524):
            # A gateway or server timeout after the request arrived: the provider may still run (and
            # bill) the job. Treat like a read timeout: look it up, never resend blindly.
            return AmbiguousSubmitError
        return TransientError
    if 400 <= status < 500:
        return classify_failure(body.code, body.message, default=InvalidRequestError)
    return classify_failure(body.code, body.message, default=TransientError)


def error_from_response(
    response: httpx.Response,
    *,
    provider: str,
    api_key: str | None,
    sent_paid_request: bool = False,
    job_id: str | None = None,
) -> NanoBananaError:
    """The taxonomy error for an unsuccessful API response (any status, any body shape).

    401/403 auth, 402 balance, 400 invalid (or content policy / balance by message), 404 invalid,
    422 content policy, 429 and 503 `rate_limit_unavailable` rate limited (with `retry_after`),
    408/499/5xx transient, 3xx a refused redirect. With `sent_paid_request`, a gateway timeout
    (504/524/408) is an `AmbiguousSubmitError`. A 2xx body that reports a failure is classified by
    its message (`classify_failure`).
    """
    body = parse_error_body(response)
    status = response.status_code
    cls = _status_class(status, body, sent_paid_request=sent_paid_request)
    message = body.message
    if 300 <= status < 400:
        target = response.headers.get("location", "")
        message = (
            f"the API answered with a redirect to {display_url(target, with_host=True) or '?'}; API calls do "
            "not follow redirects: set base_url to the final address"
        )
    elif cls is AmbiguousSubmitError:
        message = f"no definite answer to a paid request ({message}); the job may exist"
    if body.param:
        message = f"{message} (param: {body.param})"
    retry_after = parse_retry_after(response.headers) if cls is RateLimitedError else None
    return cls(
        f"{provider_label(provider)}: {redact(message, api_key)}",
        provider=provider,
        method=response.request.method,
        url=redact(display_url(response.request.url), api_key),
        status_code=status,
        code=redact(body.code, api_key) if body.code else None,
        retry_after=retry_after,
        job_id=job_id,
    )


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def error_from_exception(
    exc: BaseException,
    *,
    provider: str,
    method: str,
    url: httpx.URL | str,
    api_key: str | None,
    sent_paid_request: bool = False,
    job_id: str | None = None,
) -> NanoBananaError:
    """The taxonomy error for a network failure of one API call.

    Failures before the request left (connect errors and timeouts, pool timeouts) are transient.
    Failures after it may have arrived (read/write timeouts, read errors, the server closing the
    connection) are an `AmbiguousSubmitError` when `sent_paid_request`, else transient.
    """
    detail = str(exc).strip() or type(exc).__name__
    where = redact(display_url(url), api_key)
    name = type(exc).__name__
    if isinstance(exc, NanoBananaError):
        return exc
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
        cls: type[NanoBananaError] = InvalidRequestError
        message = f"bad API address ({name}: {detail}); check base_url"
    elif isinstance(exc, _NOT_SENT):
        cls = TransientError
        message = f"could not reach the API ({name}: {detail})"
    elif isinstance(exc, httpx.TooManyRedirects):
        cls = InvalidRequestError
        message = f"too many redirects ({detail})"
    elif sent_paid_request:
        cls = AmbiguousSubmitError
        message = f"the request was sent but no answer came back ({name}: {detail}); the job may exist"
    else:
        cls = TransientError
        message = f"network failure ({name}: {detail})"
    return cls(
        f"{provider_label(provider)}: {redact(message, api_key)}",
        provider=provider,
        method=method,
        url=where,
        job_id=job_id,
    )


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    api_key: str | None,
    sent_paid_request: bool = False,
    job_id: str | None = None,
    accept_status: Collection[int] = (),
    **kwargs: Any,
) -> httpx.Response:
    """Make one API call without following redirects; return the 2xx response (or one in `accept_status`).

    Every failure is raised as a taxonomy error (`error_from_exception`, `error_from_response`)
    without the original httpx exception attached, so that nothing of the request (headers
    included) travels with it.
    """
    kwargs.setdefault("follow_redirects", False)
    failure: NanoBananaError | None = None
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        failure = error_from_exception(
            exc,
            provider=provider,
            method=method,
            url=url,
            api_key=api_key,
            sent_paid_request=sent_paid_request,
            job_id=job_id,
        )
    if failure is not None:
        # Raised outside the `except` so that the httpx exception (which holds the request and its
        # headers) is not even attached as `__context__`.
        raise failure
    if response.is_success or response.status_code in accept_status:
        return response
    raise error_from_response(
        response, provider=provider, api_key=api_key, sent_paid_request=sent_paid_request, job_id=job_id
    )


def json_object(
    response: httpx.Response,
    *,
    provider: str,
    api_key: str | None,
    sent_paid_request: bool = False,
    job_id: str | None = None,
) -> dict[str, Any]:
    """The JSON object of a successful response.

    A body that is not a JSON object is an `AmbiguousSubmitError` after a paid request (the job may
    exist) and a `TransientError` otherwise.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    cls: type[NanoBananaError] = AmbiguousSubmitError if sent_paid_request else TransientError
    snippet = _plain(response.text) if response.content else "an empty body"
    return_msg = f"{provider_label(provider)}: expected a JSON object, got {redact(snippet, api_key)[:120]!r}"
    raise cls(
        return_msg,
        provider=provider,
        method=response.request.method,
        url=redact(display_url(response.request.url), api_key),
        status_code=response.status_code,
        job_id=job_id,
    )


# --- downloads -----------------------------------------------------------------------------------


class _PartFile:
    """A temporary file next to `dest` that is hashed and size-checked as it is written."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        self.path = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        self.max_bytes = max_bytes
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._fh: IO[bytes] | None = self.path.open("xb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise _TooLarge(self.size)
        self.sha256.update(chunk)
        assert self._fh is not None
        self._fh.write(chunk)

    def close(self) -> None:
        """Flush and fsync the data, then close."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def commit(self) -> None:
        """Atomically move the finished file to `dest` and make the rename durable."""
        os.replace(self.path, self.dest)
        try:
            dir_fd = os.open(self.dest.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class _NotAnImage(Exception):
    pass


_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_TAIL_BYTES = 1024


def _check_end_marker(path: Path, image_format: str, size: int) -> None:
    """Raise `_NotAnImage` when the file does not end the way a whole image of its format ends.

    Reads only the first 12 and last 1024 bytes: a truncated image almost always lacks its end marker.
    """
    with path.open("rb") as fh:
        head = fh.read(12)
        fh.seek(max(0, size - _TAIL_BYTES))
        tail = fh.read()
    if image_format == "PNG":
        if not tail.endswith(_PNG_IEND):
            raise _NotAnImage("the PNG has no IEND chunk at its end (truncated)")
    elif image_format == "JPEG":
        if not tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            raise _NotAnImage("the JPEG does not end with its EOI marker FFD9 (truncated)")
    elif image_format == "WEBP":
        declared = int.from_bytes(head[4:8], "little") + 8
        if size < declared:
            raise _NotAnImage(
                f"the WebP declares {declared} bytes in its RIFF header but has {size} (truncated)"
            )


def validate_image(
    path: Path, size: int, expected_formats: Collection[str] | None = None
) -> tuple[str, int, int]:
    """Check, without decoding the pixels, that `path` is a whole image; return (format, width, height).

    Pillow reads the header (`Image.open`) and checks the structure (`verify()`: chunk CRCs for PNG),
    then the end marker of the format is checked (PNG IEND, JPEG FFD9, WebP RIFF length).
    """
    allowed = [f.upper() for f in (expected_formats or IMAGE_FORMATS)]
    try:
        with Image.open(path, formats=allowed) as image:
            image_format = (image.format or "").upper()
            width, height = image.size
            image.verify()
    except Exception as exc:  # Pillow raises many types for bad data
        raise _NotAnImage(f"not a valid {'/'.join(allowed)} image ({type(exc).__name__}: {exc})") from None
    if image_format not in allowed:
        raise _NotAnImage(f"the image is {image_format}, expected {'/'.join(allowed)}")
    if width <= 0 or height <= 0:
        raise _NotAnImage(f"the image has no pixels ({width}x{height})")
    _check_end_marker(path, image_format, size)
    return image_format, width, height


def _read_file_chunks(path: Path, chunk_size: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            yield chunk


async def _stream_http(
    client: httpx.AsyncClient,
    url: str,
    part: _PartFile,
    fail: Any,
    expires_at: datetime | None,
    chunk_size: int,
) -> None:
    async with client.stream("GET", url, follow_redirects=True) as response:
        status = response.status_code
        if status != 200:
            body = ""
            if status < 500:
                await response.aread()
                body = parse_error_body(response).message
            expired = expires_at is not None and datetime.now(timezone.utc) >= expires_at
            if status in (403, 404, 410) and expired:
                raise fail(
                    f"the image URL expired at {expires_at.isoformat() if expires_at else '?'} "
                    f"(HTTP {status}: {body or response.reason_phrase})",
                    ImageExpiredError,
                    status,
                )
            raise fail(f"HTTP {status}: {body or response.reason_phrase}", DownloadFailedError, status)
        declared: int | None = None
        length = response.headers.get("content-length")
        if length is not None and length.strip().isdigit():
            declared = int(length)
            if declared > part.max_bytes:
                raise fail(
                    f"the image is {declared} bytes; the limit is {part.max_bytes}",
                    DownloadFailedError,
                    status,
                )
        async for chunk in response.aiter_bytes(chunk_size):
            part.write(chunk)
        if declared is not None and response.num_bytes_downloaded != declared:
            raise fail(
                f"truncated: received {response.num_bytes_downloaded} of {declared} bytes",
                DownloadFailedError,
                status,
            )


async def download_to_file(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    row_key: str,
    job_id: str | None,
    max_bytes: int | None = DEFAULT_MAX_DOWNLOAD_BYTES,
    expected_formats: Collection[str] | None = None,
    expires_at: datetime | None = None,
    provider: str | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> GeneratedImage:
    """Stream the image at `url` (http(s) or `file://`) to `dest` and return what was written.

    Promises: `dest` either does not change or holds the whole, checked image; the bytes are written
    to `.<name>.<random>.part` next to `dest` in `chunk_size` pieces (memory stays flat), hashed while
    streaming, fsynced, checked to be a real PNG/JPEG/WebP (or one of `expected_formats`) that ends
    where it should, then renamed over `dest`. The temporary file is removed on any failure.

    Raises `DownloadFailedError` (network failure, HTTP error, more than `max_bytes`, fewer bytes than
    Content-Length, bytes that are not a whole image) or `ImageExpiredError` (HTTP 403/404/410 after
    `expires_at`). Redirects are followed; no credentials are sent.
    """
    dest = Path(dest)
    limit = max_bytes or DEFAULT_MAX_DOWNLOAD_BYTES
    where = display_url(url, with_host=True)

    def fail(
        message: str, cls: type[DownloadFailedError] = DownloadFailedError, status: int | None = None
    ) -> DownloadFailedError:
        return cls(
            f"download failed: {message}",
            provider=provider,
            method="GET",
            url=where,
            status_code=status,
            job_id=job_id,
        )

    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise fail(f"unsupported URL scheme {scheme!r}")
    part = _PartFile(dest, limit)
    try:
        failure: DownloadFailedError | None = None
        try:
            if scheme == "file":
                source = Path(url2pathname(unquote(urlsplit(url).path)))
                for chunk in _read_file_chunks(source, chunk_size):
                    part.write(chunk)
            else:
                await _stream_http(client, url, part, fail, expires_at, chunk_size)
        except _TooLarge as exc:
            failure = fail(f"the image is larger than the limit of {limit} bytes (got {exc.size}+)")
        except httpx.HTTPError as exc:
            failure = fail(f"{type(exc).__name__}: {str(exc) or 'network failure'}")
        except OSError as exc:
            failure = fail(f"{type(exc).__name__}: {exc.strerror or exc}")
        if failure is not None:
            raise failure  # outside the `except`: the httpx exception (and its URL) is not attached
        part.close()
        if part.size == 0:
            raise fail("the body is empty")
        try:
            image_format, width, height = validate_image(part.path, part.size, expected_formats)
        except _NotAnImage as exc:
            failure = fail(str(exc))
        if failure is not None:
            raise failure
        part.commit()
    except BaseException:
        part.discard()
        raise
    return GeneratedImage(
        row_key=row_key,
        job_id=job_id,
        path=str(dest),
        sha256=part.sha256.hexdigest(),
        width=width,
        height=height,
        bytes=part.size,
        format=image_format,
    )


def unix_to_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from Unix seconds (int, float or numeric string); None when absent or bad."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    if seconds > 1e12:  # milliseconds
        seconds /= 1000
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


class HttpImageProvider(ImageProvider):
    """What every httpx-based provider client shares: the checked download and closing its client.

    Subclasses set `_http` (their `httpx.AsyncClient`), `_own_http` (whether to close it) and
    `max_download_bytes` in their constructor."""

    _http: httpx.AsyncClient
    _own_http: bool
    max_download_bytes: int

    async def download(
        self, result: JobResult, dest: Path, *, row_key: str, max_bytes: int | None = None
    ) -> GeneratedImage:
        """Stream the image to `dest` atomically and check it (see `download_to_file`).

        A 403/404/410 after `result.expires_at` raises `ImageExpiredError`."""
        return await download_to_file(
            self._http,
            result.image_url,
            Path(dest),
            row_key=row_key,
            job_id=result.job_id,
            max_bytes=max_bytes or self.max_download_bytes,
            expires_at=result.expires_at,
            provider=self.name,
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_http:
            await self._http.aclose()
