"""The ToAPIs client: asynchronous image tasks (providers.md section 1).

    POST /v1/images/generations              submit a task (always async; returns a task id)
    GET  /v1/images/generations/{id}         the task, by task id or by `client_business_id`
    POST /v1/uploads/images                  make a local reference image reachable by URL

Every request carries the row key as `client_business_id`, so that a submit whose answer was lost
can be found again (`find_job`) instead of being paid for twice. Submits and status queries draw from
the account's shared token buckets (`ratelimit.shared_bucket`). No Prefect import here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import anyio
import httpx

from ..catalog import ProviderName
from ..errors import (
    AmbiguousSubmitError,
    InvalidRequestError,
    RateLimitedError,
    RequestValidationError,
    TransientError,
    redact,
)
from ..models import ImageJob, ImageRequest, JobResult, JobStatus, is_url, utcnow
from ..ratelimit import (
    TOAPIS_QUERY_BURST,
    TOAPIS_QUERY_RATE,
    TOAPIS_SUBMIT_BURST,
    TOAPIS_SUBMIT_RATE,
    TokenBucket,
    bucket_key,
    shared_bucket,
    with_headroom,
)
from ._http import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_RETRY_AFTER,
    USER_AGENT,
    HttpImageProvider,
    check_base_url,
    classify_failure,
    error_body_from_json,
    json_object,
    send,
    text_or_none,
    unix_to_datetime,
)
from ._polling import note_unknown_status, poll_until_done, result_of
from ._references import MIME_TYPES, read_reference, references_to_send
from .base import PollPolicy

__all__ = ["DEFAULT_BASE_URL", "ToAPIsClient", "normalize_base_url", "parse_task"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://toapis.com"

PROVIDER: ProviderName = "toapis"

_STATUSES: dict[str, JobStatus] = {
    "queued": JobStatus.QUEUED,
    "submitted": JobStatus.QUEUED,
    "pending": JobStatus.QUEUED,
    "in_progress": JobStatus.IN_PROGRESS,
    "processing": JobStatus.IN_PROGRESS,
    "running": JobStatus.IN_PROGRESS,
    "completed": JobStatus.SUCCEEDED,
    "succeeded": JobStatus.SUCCEEDED,
    "success": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "failure": JobStatus.FAILED,
    "cancelled": JobStatus.FAILED,
    "canceled": JobStatus.FAILED,
}


def normalize_base_url(base_url: str) -> str:
    """`https://toapis.com`, `https://toapis.com/`, `https://toapis.cn/v1` -> the host root, without `/v1`."""
    url = check_base_url(base_url)
    if url.lower().endswith("/v1"):
        url = check_base_url(url[:-3])
    return url


def _progress(value: Any) -> int | None:
    """`50`, `50.0` or `"50%"` -> 50."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
    return max(0, min(100, int(number)))


def _image_url(task: dict[str, Any]) -> str | None:
    """`result.data[0].url` first, then the top-level `url` (providers.md 1.4)."""
    result = task.get("result")
    if isinstance(result, dict):
        data = result.get("data")
        if isinstance(data, list):
            for item in data:
                if isinstance(item, dict) and text_or_none(item.get("url")):
                    return text_or_none(item.get("url"))
                if isinstance(item, str) and item.strip():
                    return item.strip()
        if text_or_none(result.get("url")):
            return text_or_none(result.get("url"))
    return text_or_none(task.get("url"))


def parse_task(
    body: dict[str, Any], *, row_key: str | None = None, model: str | None = None, reattached: bool = False
) -> ImageJob:
    """An `ImageJob` from a task body (submit answer or status query), whatever its documented shape.

    Statuses: queued/submitted -> QUEUED, in_progress/processing -> IN_PROGRESS, completed ->
    SUCCEEDED (with the result URL, expiry and completion time), failed/cancelled -> FAILED (with the
    error code and message). An unknown status counts as in progress and is logged once. The task may
    also be wrapped in `data`.
    """
    task = body
    if "status" not in body and "id" not in body and isinstance(body.get("data"), dict):
        task = body["data"]
    job_id = text_or_none(task.get("id")) or text_or_none(task.get("task_id")) or ""
    raw_status = (text_or_none(task.get("status")) or "").lower()
    status = _STATUSES.get(raw_status)
    if status is None:
        if raw_status:
            note_unknown_status(PROVIDER, raw_status)
            status = JobStatus.IN_PROGRESS
        else:
            status = JobStatus.QUEUED
    url = _image_url(task)
    result = None
    if status is JobStatus.SUCCEEDED and url:
        result = JobResult(
            provider=PROVIDER,
            job_id=job_id,
            image_url=url,
            expires_at=unix_to_datetime(task.get("expires_at")),
            completed_at=unix_to_datetime(task.get("completed_at")),
        )
    error = task.get("error")
    error_code = error_message = None
    if isinstance(error, dict):
        error_code = text_or_none(error.get("code"))
        error_message = text_or_none(error.get("message"))
    elif text_or_none(error):
        error_message = text_or_none(error)
    if status is JobStatus.FAILED and not error_message:
        error_message = text_or_none(task.get("fail_reason")) or text_or_none(task.get("message"))
    created = unix_to_datetime(task.get("created_at"))
    return ImageJob(
        provider=PROVIDER,
        job_id=job_id,
        row_key=row_key or text_or_none(task.get("client_business_id")) or "",
        model=model or text_or_none(task.get("model")) or "",
        status=status,
        progress=_progress(task.get("progress")),
        submitted_at=created or utcnow(),
        result=result,
        error_code=error_code,
        error_message=error_message,
        reattached=reattached,
    )


class ToAPIsClient(HttpImageProvider):
    """Async client for ToAPIs' Gemini image models.

    Example:
        ```python
        async with ToAPIsClient(api_key) as client:
            job = await client.submit(request)
            result = await client.wait(job)
            image = await client.download(result, Path("out/cat.png"), row_key=request.row_key)
        ```

    `base_url` may be given with or without the trailing `/v1` (`https://toapis.cn/v1` works). API
    calls never follow redirects; downloads do, and never carry the API key. Pass `http` to share
    an `httpx.AsyncClient` (it is not closed by `aclose`); the key is sent per request, never set on it.
    """

    name: ClassVar[ProviderName] = "toapis"
    synchronous: ClassVar[bool] = False
    supports_lookup: ClassVar[bool] = True

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        poll: PollPolicy | None = None,
        submit_rate: float = TOAPIS_SUBMIT_RATE,
        submit_burst: float = TOAPIS_SUBMIT_BURST,
        query_rate: float = TOAPIS_QUERY_RATE,
        query_burst: float = TOAPIS_QUERY_BURST,
        http: httpx.AsyncClient | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("api_key is empty: set the ToAPIs API key in the credentials block")
        self._api_key = api_key.strip()
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self.poll_policy = poll or PollPolicy()
        self.max_download_bytes = max_download_bytes
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self.submit_bucket: TokenBucket = shared_bucket(
            bucket_key(PROVIDER, self.base_url, self._api_key, "submit"),
            submit_rate,
            with_headroom(submit_burst),
        )
        self.query_bucket: TokenBucket = shared_bucket(
            bucket_key(PROVIDER, self.base_url, self._api_key, "query"),
            query_rate,
            with_headroom(query_burst),
        )

    def __repr__(self) -> str:
        return f"ToAPIsClient(base_url={self.base_url!r})"

    # --- plumbing ----------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

    async def _query(
        self,
        path: str,
        *,
        job_id: str | None,
        max_wait: float | None = None,
        accept_status: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One status query through the shared query bucket; a 429 pauses the bucket for every client."""
        await self.query_bucket.acquire(max_wait=max_wait)
        try:
            return await send(
                self._http,
                "GET",
                self._url(path),
                headers=self._headers(),
                provider=PROVIDER,
                api_key=self._api_key,
                job_id=job_id,
                accept_status=accept_status,
            )
        except RateLimitedError as exc:
            self.query_bucket.pause(exc.retry_after or DEFAULT_RETRY_AFTER)
            raise

    # --- requests ----------------------------------------------------------------------------------

    def build_payload(
        self,
        request: ImageRequest,
        reference_urls: list[str] | None = None,
        *,
        client_business_id: str | None = None,
    ) -> dict[str, Any]:
        """The JSON body of `POST /v1/images/generations` for `request`, exactly as documented (1.3).

        `n` is the number 1; `image_urls` are plain URL strings; `metadata` holds only what was given
        (`resolution` only where the model has sizes, `thinkingConfig` only on `-official` models);
        `client_business_id` is the row key unless given. Local reference files must have been uploaded first
        (their URLs given in `reference_urls`); otherwise `RequestValidationError`.
        """
        if request.provider != PROVIDER:
            raise ValueError(f"a {request.provider} request cannot be sent to ToAPIs")
        spec = request.spec
        refs = references_to_send(request, reference_urls)
        local = [ref for ref in refs if not is_url(ref)]
        if local:
            raise RequestValidationError(
                f"reference_images: ToAPIs takes image URLs only; upload {local[0]!r} first "
                "(upload_reference) and pass the URLs as reference_urls",
                field="reference_images",
                value=local[0],
            )
        payload: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
        if request.aspect_ratio:
            payload["size"] = request.aspect_ratio
        payload["n"] = 1
        metadata: dict[str, Any] = {}
        if request.resolution and spec.resolutions:
            metadata["resolution"] = request.resolution
        if request.orientation:
            metadata["orientation"] = request.orientation
        if request.google_search is not None:
            metadata["google_search"] = bool(request.google_search)
        if request.image_search is not None:
            metadata["google_image_search"] = bool(request.image_search)
        if spec.official and request.thinking_level:
            metadata["thinkingConfig"] = {"thinkingLevel": request.thinking_level}
        if metadata:
            payload["metadata"] = metadata
        if refs:
            payload["image_urls"] = refs
        payload["client_business_id"] = client_business_id or request.row_key
        return payload

    async def submit(
        self,
        request: ImageRequest,
        *,
        reference_urls: list[str] | None = None,
        client_business_id: str | None = None,
    ) -> ImageJob:
        """Create the task for `request` (paid) and return it as soon as ToAPIs has accepted it.

        `client_business_id` (default: the row key) is sent with the task. Raises
        `AmbiguousSubmitError` when the request was sent but no usable answer came back: the task may
        exist; look it up with `find_job(client_business_id)`. A 429 pauses the shared submit
        bucket for `Retry-After` and raises `RateLimitedError`. An answer that already holds the image
        (status completed with a URL) is returned as a finished job with its `result`.
        """
        payload = self.build_payload(request, reference_urls, client_business_id=client_business_id)
        await self.submit_bucket.acquire()
        try:
            response = await send(
                self._http,
                "POST",
                self._url("/v1/images/generations"),
                json=payload,
                headers=self._headers(),
                provider=PROVIDER,
                api_key=self._api_key,
                sent_paid_request=True,
            )
        except RateLimitedError as exc:
            self.submit_bucket.pause(exc.retry_after or DEFAULT_RETRY_AFTER)
            raise
        body = json_object(response, provider=PROVIDER, api_key=self._api_key, sent_paid_request=True)
        job = parse_task(body, row_key=request.row_key, model=request.model)
        if not job.job_id:
            failure = error_body_from_json(body)
            if failure is not None and failure.message:
                cls = classify_failure(failure.code, failure.message, default=AmbiguousSubmitError)
                raise cls(
                    f"ToAPIs: {redact(failure.message, self._api_key)}",
                    provider=PROVIDER,
                    method="POST",
                    url="/v1/images/generations",
                    status_code=response.status_code,
                    code=failure.code,
                )
            raise AmbiguousSubmitError(
                "ToAPIs: the submit was answered without a task id; the task may exist",
                provider=PROVIDER,
                method="POST",
                url="/v1/images/generations",
                status_code=response.status_code,
            )
        logger.debug("ToAPIs accepted task %s for row %s", job.job_id, request.row_key)
        return job

    async def get_job(self, job_id: str) -> ImageJob:
        """The task's current state (`GET /v1/images/generations/{job_id}`); 404 -> `InvalidRequestError`."""
        return await self._fetch(job_id)

    async def _fetch(
        self,
        job_id: str,
        *,
        row_key: str | None = None,
        model: str | None = None,
        max_wait: float | None = None,
    ) -> ImageJob:
        response = await self._query(
            f"/v1/images/generations/{quote(job_id, safe='')}", job_id=job_id, max_wait=max_wait
        )
        body = json_object(response, provider=PROVIDER, api_key=self._api_key, job_id=job_id)
        job = parse_task(body, row_key=row_key, model=model)
        if not job.job_id:
            job = job.model_copy(update={"job_id": job_id})
        return job

    async def find_job(self, client_business_id: str) -> ImageJob | None:
        """The task submitted with `client_business_id`, or None when ToAPIs has none (404).

        Used after an `AmbiguousSubmitError` to re-attach to a task instead of paying for a new one.
        The job's `row_key` is the task's `client_business_id` as ToAPIs returns it (else the id
        looked up).
        """
        response = await self._query(
            f"/v1/images/generations/{quote(client_business_id, safe='')}", job_id=None, accept_status=(404,)
        )
        if response.status_code == 404:
            return None
        body = json_object(response, provider=PROVIDER, api_key=self._api_key)
        job = parse_task(body, reattached=True)
        if not job.row_key:
            job = job.model_copy(update={"row_key": client_business_id})
        if not job.job_id:
            raise TransientError(
                "ToAPIs: the task lookup was answered without a task id",
                provider=PROVIDER,
                method="GET",
                url="/v1/images/generations/{client_business_id}",
                status_code=response.status_code,
            )
        return job

    async def wait(self, job: ImageJob, policy: PollPolicy | None = None) -> JobResult:
        """Poll the task until it is terminal (see `_polling.poll_until_done`) and return its result.

        Polls go through the shared query bucket; a 429 pauses it for `Retry-After` and the wait goes
        on. Raises `JobFailedError` / `ContentPolicyError` for a failed task and `JobTimedOutError`
        after `policy.deadline` seconds.
        """
        if job.status.terminal:
            return result_of(job, api_key=self._api_key)

        async def fetch(max_wait: float) -> ImageJob:
            return await self._fetch(job.job_id, row_key=job.row_key, model=job.model, max_wait=max_wait)

        return await poll_until_done(fetch, job, policy or self.poll_policy, api_key=self._api_key)

    async def upload_reference(self, path: Path) -> str:
        """Upload a local reference image (`POST /v1/uploads/images`) and return its URL.

        Checked before anything is sent: the file exists, is at most 10 MB and is a JPEG, PNG or WebP
        by content (GIF is refused: Gemini does not take it). Raises `RequestValidationError` for a
        bad file, and the taxonomy errors for a refused upload.
        """
        path = Path(path)
        data, kind = await anyio.to_thread.run_sync(read_reference, path)
        url_path = "/v1/uploads/images"
        response = await send(
            self._http,
            "POST",
            self._url(url_path),
            files={"file": (path.name, data, MIME_TYPES[kind])},
            data={"purpose": "generation"},
            headers=self._headers(),
            provider=PROVIDER,
            api_key=self._api_key,
        )
        body = json_object(response, provider=PROVIDER, api_key=self._api_key)
        info = body.get("data")
        url = text_or_none(info.get("url")) if isinstance(info, dict) else None
        if body.get("success") is not True or not url:
            failure = error_body_from_json(body)
            message = (failure.message if failure else "") or "the upload was answered without a URL"
            cls = classify_failure(failure.code if failure else None, message, default=InvalidRequestError)
            if body.get("success") is True:
                cls = TransientError
            raise cls(
                f"ToAPIs: upload of {path.name!r} refused: {redact(message, self._api_key)}",
                provider=PROVIDER,
                method="POST",
                url=url_path,
                status_code=response.status_code,
            )
        return url
