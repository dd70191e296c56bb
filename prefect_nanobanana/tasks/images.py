"""Prefect tasks for one image: submit, wait, download, upload a reference.

Drop these into your own flows (sync or async). They share the row engine's payment rules
(`engine.py`): a submit is cached on the request's row key, an ambiguous submit is looked up and
re-attached rather than resent, and when `output` is given the row's journal in that location is
used, so a rerun on another machine (fresh Prefect home) pays nothing again.

```python
from prefect import flow
from prefect_nanobanana import ImageRequest, ToAPIsCredentials
from prefect_nanobanana.tasks import submit_image, wait_for_image, download_image

@flow
def one_image():
    creds = ToAPIsCredentials.load("my-toapis")
    request = ImageRequest(provider="toapis", prompt="a banana", model="nano-banana-pro")
    job = submit_image(request, creds, output="out/")
    result = wait_for_image(job, creds, request=request)
    return download_image(result, creds, destination="out/", name="banana", row_key=request.row_key)
```
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from ..blocks.credentials import ProviderCredentials
from ..engine import EngineSettings, RetryPolicy, RowEngine, RowWork, download_into, submit_once, with_retries
from ..errors import Disposition, NanoBananaError
from ..journal import RowJournal
from ..models import GeneratedImage, ImageJob, ImageRequest, JobResult, file_sha256
from ..storage import OutputLocation


def retry_by_error_class(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect `retry_condition_fn`: retry only what the error taxonomy says may be retried."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if isinstance(exc, NanoBananaError):
        return exc.disposition in (
            Disposition.WAIT_AND_RETRY,
            Disposition.RETRY_WITH_BACKOFF,
            Disposition.REDOWNLOAD,
        )
    # Errors outside the taxonomy (bugs, bad arguments) are not retried.
    return False


def _submit_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    request: ImageRequest = parameters["request"]
    return f"nanobanana-submit-{request.provider}-{request.row_key}"


@task(
    name="submit-image",
    task_run_name="submit-{request.provider}-{request.model}",
    cache_key_fn=_submit_cache_key,
    persist_result=True,
    result_serializer="json",
    retries=3,
    retry_delay_seconds=[5, 20, 60],
    retry_condition_fn=retry_by_error_class,
)
async def submit_image(
    request: ImageRequest,
    credentials: ProviderCredentials,
    output: str | None = None,
    name: str | None = None,
    ambiguous_without_lookup: Literal["fail", "resubmit"] = "fail",
) -> ImageJob:
    """Submit one request and return its `ImageJob`, paying at most once for it.

    Cached on the request's row key (credentials excluded). With `output` (a local directory or
    fsspec URL) the row's journal there is read first: a job submitted by an earlier run, on any
    machine, is returned instead of submitting again; a submit whose answer was lost is looked up
    (ToAPIs) before anything is sent. On TTAPI, which cannot look jobs up, an ambiguous submit
    fails unless `ambiguous_without_lookup="resubmit"`."""
    logger = get_run_logger()
    async with credentials.get_client() as client:
        if output is None:
            job = await submit_once(
                client,
                request,
                client_business_id=request.row_key,
                ambiguous_without_lookup=ambiguous_without_lookup,
            )
        else:
            engine = RowEngine(
                client,
                OutputLocation(output),
                EngineSettings(ambiguous_without_lookup=ambiguous_without_lookup),
            )
            job = await engine.job_for(RowWork(request, name or request.row_key))
    logger.info(
        "job %s for row %s (%s)", job.job_id, request.row_key, "re-attached" if job.reattached else "new"
    )
    return job


@task(
    name="wait-for-image",
    task_run_name="wait-{job.provider}-{job.job_id}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[10, 30],
    retry_condition_fn=retry_by_error_class,
)
async def wait_for_image(
    job: ImageJob,
    credentials: ProviderCredentials,
    request: ImageRequest | None = None,
    max_resubmits: int = 1,
    deadline_seconds: float | None = None,
) -> JobResult:
    """Poll the job inside this one task run until it is terminal, and return where its image is.

    Never cached: a job's state changes. All waits of a process share one query rate limiter, so
    any number of concurrent waits stays under the provider's query limit. If the job fails with an
    error that allows it and `request` is given, the request is submitted again (a new, paid job)
    at most `max_resubmits` times."""
    logger = get_run_logger()
    async with credentials.get_client() as client:
        policy = client.poll_policy if deadline_seconds is None else None
        if deadline_seconds is not None:
            from ..providers.base import PollPolicy

            base = client.poll_policy or PollPolicy()
            policy = PollPolicy(base.first_delay, base.min_interval, base.max_interval, deadline_seconds)
        resubmits = 0
        while True:
            try:
                return job.result or await client.wait(job, policy)
            except NanoBananaError as exc:
                if (
                    request is None
                    or exc.disposition is not Disposition.RESUBMIT
                    or resubmits >= max_resubmits
                ):
                    raise
                resubmits += 1
                logger.warning(
                    "job %s: %s; submitting again (%d of %d)",
                    job.job_id,
                    exc.error_type,
                    resubmits,
                    max_resubmits,
                )
                job = await submit_once(client, request, client_business_id=f"{request.row_key}-r{resubmits}")


def _download_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache on row key + destination, but only while the image is still there: a hit on a deleted
    file would return a path to nothing, so a missing file gets a key no earlier run can have."""
    row_key = parameters.get("row_key") or parameters["result"].job_id
    destination = str(parameters["destination"])
    key = hashlib.sha256(f"{row_key}|{destination}".encode()).hexdigest()[:32]
    journal = RowJournal(OutputLocation(destination))
    if row_key and journal.is_finished(journal.get(row_key)):
        return f"nanobanana-download-{key}"
    return f"nanobanana-download-{key}-{uuid.uuid4().hex}"


@task(
    name="download-image",
    task_run_name="download-{name}",
    cache_key_fn=_download_cache_key,
    persist_result=True,
    result_serializer="json",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_by_error_class,
)
async def download_image(
    result: JobResult,
    credentials: ProviderCredentials,
    destination: str,
    name: str,
    row_key: str | None = None,
) -> GeneratedImage:
    """Stream the image into `destination` (local directory or fsspec URL) as `<name>.<ext>`.

    The bytes go to a temporary name, are checked to be a whole image of a known kind, then renamed
    (or uploaded) into place. Returns path, sha256, width, height and size. When `row_key` is given
    the row's journal in `destination` is updated, so the image counts as done on any machine."""
    location = OutputLocation(destination)
    key = row_key or result.job_id
    if row_key:
        journal = RowJournal(location)
        done = journal.get(row_key)
        if done is not None and done.image_path and done.sha256 and journal.is_finished(done):
            get_run_logger().info("%s is already in place; nothing to download", done.image_path)
            return GeneratedImage(
                row_key=row_key,
                job_id=done.job_id,
                path=done.image_path,
                sha256=done.sha256,
                width=done.width or 0,
                height=done.height or 0,
                bytes=done.bytes or 0,
                format=done.image_path.rsplit(".", 1)[-1].upper().replace("JPG", "JPEG"),
            )
    async with credentials.get_client() as client:
        image = await download_into(client, result, location, name, row_key=key)
    if row_key:
        journal = RowJournal(location)
        record = journal.get(row_key)
        if record is not None:
            journal.write(
                record,
                status="succeeded",
                job_id=result.job_id,
                image_path=image.path,
                sha256=image.sha256,
                width=image.width,
                height=image.height,
                bytes=image.bytes,
                cost=result.cost_usd if result.cost_usd is not None else record.cost,
                completed_at=result.completed_at,
                error_type=None,
                error=None,
            )
    return image


def _upload_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    creds = parameters["credentials"]
    return f"nanobanana-upload-{creds.provider}-{file_sha256(parameters['path'])}"


@task(
    name="upload-reference-image",
    cache_key_fn=_upload_cache_key,
    cache_expiration=timedelta(hours=24),
    persist_result=True,
    result_serializer="json",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_by_error_class,
)
async def upload_reference_image(path: str, credentials: ProviderCredentials) -> str:
    """Make a local reference image usable by the provider and return what to send for it.

    ToAPIs takes URLs only: the file goes through its upload API, cached on the file's content hash
    for 24 h (the uploaded URL's lifetime is not documented). TTAPI takes base64: the data URI is
    returned (and is not logged)."""
    async with credentials.get_client() as client:
        return await with_retries(lambda: client.upload_reference(Path(path)), RetryPolicy(), what="upload")
