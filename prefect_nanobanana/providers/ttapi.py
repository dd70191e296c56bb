"""The TTAPI client: synchronous Nano Banana generation (providers.md section 2).

    POST /gemini/image/generate     generate; the answer holds the image URL (sync, slow)
    GET  /gemini/image/fetch        experimental: poll a job created with sync_return "false"

The generate call blocks until the image exists (tens of seconds, minutes at 4K), so the read
timeout is long and `https://api.ttapi.org` (the gateway TTAPI recommends for long calls) is the
default. TTAPI has no documented way to find a job again: a lost answer is an `AmbiguousSubmitError`
and the caller decides whether to pay again. No Prefect import here.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx

from ..catalog import ProviderName
from ..errors import InvalidRequestError, JobFailedError, RateLimitedError, redact
from ..models import ImageJob, ImageRequest, JobResult, JobStatus, is_url, utcnow
from ..ratelimit import TokenBucket, bucket_key, shared_bucket
from ._http import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_RETRY_AFTER,
    USER_AGENT,
    HttpImageProvider,
    check_base_url,
    classify_failure,
    json_object,
    send,
    text_or_none,
)
from ._polling import note_unknown_status, poll_until_done, result_of
from ._references import data_uri, references_to_send
from .base import PollPolicy

__all__ = ["DEFAULT_BASE_URL", "TTAPIClient", "parse_fetch", "parse_generate", "quota_to_usd"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.ttapi.org"
PROVIDER: ProviderName = "ttapi"
GENERATE_PATH = "/gemini/image/generate"
FETCH_PATH = "/gemini/image/fetch"
QUOTA_PER_USD = 100
"""TTAPI's unit: 1 USD = 100 quota (providers.md 2.4 / 2.7)."""

_RUNNING = {
    "ON_QUEUE": JobStatus.IN_PROGRESS,
    "PENDING_QUEUE": JobStatus.IN_PROGRESS,
    "RUNNING": JobStatus.IN_PROGRESS,
}


def quota_to_usd(quota: Any) -> float | None:
    """The charge in USD for a `quota` given as a number or a numeric string (`2` or `"2"` -> 0.02)."""
    if quota is None or isinstance(quota, bool):
        return None
    try:
        value = float(str(quota).strip())
    except ValueError:
        return None
    if value != value or value < 0:
        return None
    return round(value / QUOTA_PER_USD, 6)


def _failure(body: dict[str, Any], *, status_code: int, job_id: str | None, api_key: str | None) -> Exception:
    message = text_or_none(body.get("message")) or "no reason given"
    cls = classify_failure(None, message, default=JobFailedError)
    return cls(
        f"TTAPI: generation failed: {redact(message, api_key)}",
        provider=PROVIDER,
        method="POST",
        url=GENERATE_PATH,
        status_code=status_code,
        job_id=job_id,
    )


def parse_generate(
    body: dict[str, Any],
    *,
    row_key: str,
    model: str,
    client_business_id: str | None = None,
    status_code: int = 200,
    api_key: str | None = None,
) -> ImageJob:
    """The job from a `POST /gemini/image/generate` answer (HTTP 2xx).

    `SUCCESS` with `data.image_url` -> a SUCCEEDED job whose `result` holds the URL and the charge
    (`quota / 100` USD, quota as number or string). `SUCCESS` with only `data.jobId` (async mode) ->
    a QUEUED job. `FAILED` (even with HTTP 200) raises `ContentPolicyError` for banned words / prompt
    violations, `InsufficientBalanceError` for balance, `InvalidRequestError` for parameter errors and
    `JobFailedError` otherwise; `SUCCESS` without an image URL or job id raises `JobFailedError`.
    The job id is `data.jobId` when present, else the stable `ttapi-<client_business_id or row_key>`.
    """
    status = (text_or_none(body.get("status")) or "").upper()
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    real_id = (
        text_or_none(data.get("jobId")) or text_or_none(data.get("job_id")) or text_or_none(body.get("jobId"))
    )
    job_id = real_id or f"ttapi-{client_business_id or row_key}"
    if status in ("FAILED", "FAILURE", "ERROR"):
        raise _failure(body, status_code=status_code, job_id=real_id, api_key=api_key)
    image_url = text_or_none(data.get("image_url")) or text_or_none(data.get("imageUrl"))
    if image_url and status in ("SUCCESS", ""):
        result = JobResult(
            provider=PROVIDER,
            job_id=job_id,
            image_url=image_url,
            completed_at=utcnow(),
            cost_usd=quota_to_usd(data.get("quota")),
        )
        return ImageJob(
            provider=PROVIDER,
            job_id=job_id,
            row_key=row_key,
            model=model,
            status=JobStatus.SUCCEEDED,
            progress=100,
            result=result,
        )
    if real_id and (status == "SUCCESS" or status in _RUNNING):
        return ImageJob(
            provider=PROVIDER,
            job_id=real_id,
            row_key=row_key,
            model=model,
            status=JobStatus.QUEUED if status in ("SUCCESS", "PENDING_QUEUE") else JobStatus.IN_PROGRESS,
        )
    if status and status != "SUCCESS":
        note_unknown_status(PROVIDER, status)
    raise JobFailedError(
        f"TTAPI: the answer (status {status or 'missing'}) has no image_url: "
        f"{redact(text_or_none(body.get('message')) or 'no message', api_key)}",
        provider=PROVIDER,
        method="POST",
        url=GENERATE_PATH,
        status_code=status_code,
        job_id=real_id,
    )


def parse_fetch(body: dict[str, Any], *, job_id: str, row_key: str = "", model: str = "") -> ImageJob:
    """The job from an (experimental) `GET /gemini/image/fetch` answer.

    ON_QUEUE / PENDING_QUEUE / RUNNING -> IN_PROGRESS; SUCCESS -> SUCCEEDED with `data.imageUrl` (or
    `image_url`) and the charge; FAILED -> FAILED with the message. Unknown statuses count as in
    progress and are logged once.
    """
    status = (text_or_none(body.get("status")) or "").upper()
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    found_id = text_or_none(body.get("jobId")) or text_or_none(data.get("jobId")) or job_id
    common: dict[str, Any] = {"provider": PROVIDER, "job_id": found_id, "row_key": row_key, "model": model}
    if status == "SUCCESS":
        url = text_or_none(data.get("imageUrl")) or text_or_none(data.get("image_url"))
        result = None
        if url:
            result = JobResult(
                provider=PROVIDER, job_id=found_id, image_url=url, cost_usd=quota_to_usd(data.get("quota"))
            )
        return ImageJob(**common, status=JobStatus.SUCCEEDED, progress=100, result=result)
    if status in ("FAILED", "FAILURE", "ERROR"):
        return ImageJob(
            **common,
            status=JobStatus.FAILED,
            error_message=text_or_none(body.get("message")) or "no reason given",
        )
    if status not in _RUNNING:
        note_unknown_status(PROVIDER, status or "(missing)")
    return ImageJob(**common, status=JobStatus.IN_PROGRESS)


class TTAPIClient(HttpImageProvider):
    """Async client for TTAPI's Nano Banana endpoint.

    Example:
        ```python
        async with TTAPIClient(api_key) as client:
            job = await client.submit(request)          # blocks until the image exists
            result = await client.wait(job)             # returns job.result at once
            image = await client.download(result, Path("out/cat.png"), row_key=request.row_key)
        ```

    `timeout` is the read timeout of the generate call (it is synchronous and slow), `connect_timeout`
    the time to open a connection. `rate`/`burst` optionally cap calls per second for every client of
    this account in the process (TTAPI publishes no numbers). `experimental_async=True` sends
    `sync_return: "false"` and polls `GET /gemini/image/fetch`: this mode is **experimental and
    undocumented** for the Gemini image endpoint (providers.md 2.5); keep it off for real work.
    """

    name: ClassVar[ProviderName] = "ttapi"
    synchronous: ClassVar[bool] = True
    supports_lookup: ClassVar[bool] = False

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        rate: float | None = None,
        burst: float | None = None,
        http: httpx.AsyncClient | None = None,
        experimental_async: bool = False,
        poll: PollPolicy | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("api_key is empty: set the TTAPI API key in the credentials block")
        self._api_key = api_key.strip()
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.experimental_async = experimental_async
        self.poll_policy = poll or PollPolicy()
        self.max_download_bytes = max_download_bytes
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self.bucket: TokenBucket | None = None
        if rate is not None:
            self.bucket = shared_bucket(
                bucket_key(PROVIDER, self.base_url, self._api_key, "generate"), rate, burst or max(1.0, rate)
            )

    def __repr__(self) -> str:
        return f"TTAPIClient(base_url={self.base_url!r}, experimental_async={self.experimental_async})"

    def _headers(self) -> dict[str, str]:
        return {"TT-API-KEY": self._api_key, "Accept": "application/json"}

    def build_payload(self, request: ImageRequest, reference_urls: list[str] | None = None) -> dict[str, Any]:
        """The JSON body of `POST /gemini/image/generate` for `request`, as the documents show it (2.3).

        Optional fields are sent only when set; `google_search` / `image_search` are the strings
        `"true"` / `"false"`. Local reference files (unless replaced by `reference_urls`) are read,
        checked and sent inline as `data:image/...;base64,` URIs. Reads files: call it off the loop.
        """
        if request.provider != PROVIDER:
            raise ValueError(f"a {request.provider} request cannot be sent to TTAPI")
        refs = [ref if is_url(ref) or ref.startswith("data:") else data_uri(Path(ref))
                for ref in references_to_send(request, reference_urls)]  # fmt: skip
        payload: dict[str, Any] = {"prompt": request.prompt, "model": request.model}
        if refs:
            payload["refer_images"] = refs
        if request.aspect_ratio:
            payload["aspect_ratio"] = request.aspect_ratio
        if request.resolution:
            payload["image_size"] = request.resolution
        if request.google_search is not None:
            payload["google_search"] = "true" if request.google_search else "false"
        if request.image_search is not None:
            payload["image_search"] = "true" if request.image_search else "false"
        if request.thinking_level:
            payload["thinking_level"] = request.thinking_level
        if self.experimental_async:
            payload["sync_return"] = "false"
        return payload

    async def submit(
        self,
        request: ImageRequest,
        *,
        reference_urls: list[str] | None = None,
        client_business_id: str | None = None,
    ) -> ImageJob:
        """Generate the image for `request` (paid; blocks until TTAPI answers) and return the finished job.

        TTAPI takes no business id; `client_business_id` (default: the row key) only names the job
        when TTAPI returns no `jobId`: `ttapi-<client_business_id>`.

        The returned job is SUCCEEDED with its `result` (URL and cost). Raises `AmbiguousSubmitError`
        when the request was sent and the answer was lost (read timeout, disconnect, gateway
        timeout): TTAPI cannot be asked whether it made the image, so the caller decides whether to
        pay again. `FAILED` answers raise `ContentPolicyError` / `JobFailedError` and the like.
        In experimental async mode the job comes back QUEUED with TTAPI's job id.
        """
        payload = await anyio.to_thread.run_sync(partial(self.build_payload, request, reference_urls))
        if self.bucket is not None:
            await self.bucket.acquire()
        try:
            response = await send(
                self._http,
                "POST",
                f"{self.base_url}{GENERATE_PATH}",
                json=payload,
                headers=self._headers(),
                provider=PROVIDER,
                api_key=self._api_key,
                sent_paid_request=True,
            )
        except RateLimitedError as exc:
            if self.bucket is not None:
                self.bucket.pause(exc.retry_after or DEFAULT_RETRY_AFTER)
            raise
        body = json_object(response, provider=PROVIDER, api_key=self._api_key, sent_paid_request=True)
        return parse_generate(
            body,
            row_key=request.row_key,
            client_business_id=client_business_id,
            model=request.model,
            status_code=response.status_code,
            api_key=self._api_key,
        )

    async def get_job(self, job_id: str) -> ImageJob:
        """The state of an experimental async job (`GET /gemini/image/fetch?jobId=`).

        Synchronous jobs (`ttapi-...` ids) cannot be fetched: their result came with the submit.
        """
        return await self._fetch(job_id)

    async def _fetch(
        self, job_id: str, *, row_key: str = "", model: str = "", max_wait: float | None = None
    ) -> ImageJob:
        if job_id.startswith("ttapi-"):
            raise InvalidRequestError(
                "TTAPI: synchronous jobs cannot be fetched; their result came with the submit",
                provider=PROVIDER,
                job_id=job_id,
            )
        if self.bucket is not None:
            await self.bucket.acquire(max_wait=max_wait)
        try:
            response = await send(
                self._http,
                "GET",
                f"{self.base_url}{FETCH_PATH}",
                params={"jobId": job_id},
                headers=self._headers(),
                timeout=httpx.Timeout(30.0, connect=self.connect_timeout),
                provider=PROVIDER,
                api_key=self._api_key,
                job_id=job_id,
            )
        except RateLimitedError as exc:
            if self.bucket is not None:
                self.bucket.pause(exc.retry_after or DEFAULT_RETRY_AFTER)
            raise
        body = json_object(response, provider=PROVIDER, api_key=self._api_key, job_id=job_id)
        return parse_fetch(body, job_id=job_id, row_key=row_key, model=model)

    async def wait(self, job: ImageJob, policy: PollPolicy | None = None) -> JobResult:
        """The job's result: at once for synchronous jobs; by polling for experimental async ones."""
        if job.result is not None or job.status.terminal or job.job_id.startswith("ttapi-"):
            return result_of(job, api_key=self._api_key)

        async def fetch(max_wait: float) -> ImageJob:
            return await self._fetch(job.job_id, row_key=job.row_key, model=job.model, max_wait=max_wait)

        return await poll_until_done(fetch, job, policy or self.poll_policy, api_key=self._api_key)

    async def upload_reference(self, path: Path) -> str:
        """The `data:image/...;base64,` URI to send for a local reference image (checked first:
        exists, at most 10 MB, JPEG/PNG/WebP by content). Nothing is sent anywhere."""
        return await anyio.to_thread.run_sync(data_uri, Path(path))
