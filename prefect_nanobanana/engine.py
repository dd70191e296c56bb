"""The row engine: one row from request to image on disk, paid once, never lost. No Prefect import.

Both the Prefect tasks (`tasks/`) and the image-set flow (`flows/`) run rows through the functions
here, so the payment and retry rules live in one place:

- Before a paid call the row's journal record says `submitting`, with the `client_business_id`
  that will be sent; as soon as the provider answers, it says `submitted` with the job id.
- A submit whose outcome is unknown (timeout, disconnect, or a 5xx that may have been accepted) is
  never resent blindly: on a provider that can look jobs up (ToAPIs) the job is looked up by its
  `client_business_id` first and re-attached; on one that cannot (TTAPI) the row fails as
  `AmbiguousSubmitError` unless `ambiguous_without_lookup="resubmit"` is chosen explicitly.
- A rerun finds the record: `succeeded` with its image present is skipped, `submitted` resumes
  waiting on the same job, `submitting` is looked up before anything is sent again.
- Every retry decision comes from the error's `Disposition` (errors.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from .catalog import estimate_price
from .errors import (
    ERROR_CLASSES,
    AmbiguousSubmitError,
    BudgetExceededError,
    Disposition,
    InsufficientBalanceError,
    JobTimedOutError,
    NanoBananaError,
    RateLimitedError,
    TransientError,
    redact,
)
from .journal import RowJournal, RowRecord
from .models import GeneratedImage, ImageJob, ImageRequest, JobResult, utcnow
from .providers.base import ImageProvider, PollPolicy
from .storage import OutputLocation

logger = logging.getLogger("prefect_nanobanana.engine")
T = TypeVar("T")

IMAGE_SUFFIX = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for transient errors; 429s wait for `Retry-After`."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass
class EngineSettings:
    """How rows are run. Every field has a safe default."""

    max_concurrency: int = 16
    """Rows in flight at once in this process (submitted and not yet downloaded)."""
    max_cost: float | None = None
    """Budget in USD for this run's new submissions: a row that would exceed it is not submitted."""
    poll: PollPolicy | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_resubmits: int = 1
    """New paid submissions allowed for a row after its job failed or its image expired."""
    max_download_attempts: int = 3
    ambiguous_without_lookup: Literal["fail", "resubmit"] = "fail"
    """What to do when a provider without lookup (TTAPI) may or may not have accepted a submit."""
    price_overrides: dict[str, float] | None = None
    image_dir: str = ""
    """Subdirectory of the output location for images ("" = the root)."""


class RunStopped(Exception):
    """A STOP_RUN error (bad key, no balance): no further row can succeed."""

    def __init__(self, cause: NanoBananaError) -> None:
        self.cause = cause
        super().__init__(str(cause))


async def with_retries(
    call: Callable[[], Awaitable[T]],
    retry: RetryPolicy,
    *,
    retry_on: tuple[type[NanoBananaError], ...] = (RateLimitedError, TransientError),
    what: str = "call",
) -> T:
    """Run `call`, waiting out rate limits (Retry-After) and backing off on transient errors.

    Anything else, and the last failure after `retry.max_attempts`, is raised unchanged."""
    attempt = 0
    while True:
        try:
            return await call()
        except retry_on as exc:
            attempt += 1
            if attempt >= retry.max_attempts:
                raise
            if exc.disposition is Disposition.WAIT_AND_RETRY and exc.retry_after is not None:
                delay = exc.retry_after + random.uniform(0, 0.25)
            else:
                delay = retry.delay(attempt)
            logger.info("%s: %s; retrying in %.1f s", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)


async def submit_once(
    provider: ImageProvider,
    request: ImageRequest,
    *,
    client_business_id: str,
    reference_urls: list[str] | None = None,
    retry: RetryPolicy | None = None,
    ambiguous_without_lookup: Literal["fail", "resubmit"] = "fail",
) -> ImageJob:
    """Submit `request`, paying at most once for `client_business_id`.

    429s are resent after `Retry-After` (a rejected request is not billed). A submit whose outcome is
    unknown is looked up by `client_business_id` before any resend; without lookup it is raised as
    `AmbiguousSubmitError` unless `ambiguous_without_lookup == "resubmit"`."""
    retry = retry or RetryPolicy()
    attempt = 0
    while True:
        try:
            return await provider.submit(
                request, reference_urls=reference_urls, client_business_id=client_business_id
            )
        except RateLimitedError as exc:
            attempt += 1
            if attempt >= retry.max_attempts * 3:
                raise
            await asyncio.sleep(
                (exc.retry_after if exc.retry_after is not None else retry.delay(attempt))
                + random.uniform(0, 0.25)
            )
        except (AmbiguousSubmitError, TransientError) as exc:
            attempt += 1
            if provider.supports_lookup:
                found = await find_job(provider, client_business_id, retry)
                if found is not None:
                    logger.info(
                        "re-attached to job %s for %s after %s",
                        found.job_id,
                        client_business_id,
                        type(exc).__name__,
                    )
                    return found.model_copy(update={"reattached": True})
            elif isinstance(exc, AmbiguousSubmitError) and ambiguous_without_lookup == "fail":
                raise
            if attempt >= retry.max_attempts:
                raise
            await asyncio.sleep(retry.delay(attempt))


async def find_job(provider: ImageProvider, client_business_id: str, retry: RetryPolicy) -> ImageJob | None:
    """Look a job up by the id we sent with it, retrying transient errors (a lookup is free)."""
    return await with_retries(lambda: provider.find_job(client_business_id), retry, what="lookup")


async def download_into(
    provider: ImageProvider,
    result: JobResult,
    location: OutputLocation,
    stem: str,
    *,
    row_key: str,
    retry: RetryPolicy | None = None,
    attempts: int = 3,
) -> GeneratedImage:
    """Download the image of `result` into `location` as `<stem>.<png|jpg|webp>`, whole and checked.

    The bytes land under a temporary name, are checked to be a complete image, then renamed (or
    uploaded) into place, so a crash never leaves a partial image under the final name."""
    staging = location.staging_dir()
    last: NanoBananaError | None = None
    for attempt in range(attempts):
        tmp = staging / f"{row_key}.{attempt}.download"
        try:
            image = await with_retries(
                lambda tmp=tmp: provider.download(result, tmp, row_key=row_key),  # type: ignore[misc]
                retry or RetryPolicy(max_attempts=3),
                what="download",
            )
        except NanoBananaError as exc:
            last = exc
            tmp.unlink(missing_ok=True)
            if exc.disposition is not Disposition.REDOWNLOAD:
                raise
            continue
        rel = f"{stem}.{IMAGE_SUFFIX.get(image.format.upper(), 'img')}"
        url = location.put_file(Path(tmp), rel)
        return image.model_copy(update={"path": url})
    assert last is not None
    raise last


class Budget:
    """A spending cap for one run: reserve an estimate before submitting, settle with the real cost."""

    def __init__(self, max_cost: float | None) -> None:
        self.max_cost = max_cost
        self.committed = 0.0
        self.reserved = 0.0

    def try_reserve(self, amount: float) -> bool:
        if self.max_cost is not None and self.committed + self.reserved + amount > self.max_cost + 1e-9:
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved -= reserved
        self.committed += actual

    @property
    def spent(self) -> float:
        return self.committed


@dataclass
class RowWork:
    """One row to run: its request, file stem and table row number."""

    request: ImageRequest
    name: str
    row: int | None = None


RowListener = Callable[[RowRecord], None]

# Failures after which the job itself holds no image: a rerun must submit again.
_JOB_HOLDS_NO_IMAGE = {Disposition.RESUBMIT, Disposition.FAIL_ROW}

# Failures that leave the row's job worth resuming within this run's bookkeeping.
_RESUMABLE = {
    Disposition.RECONCILE,
    Disposition.REDOWNLOAD,
    Disposition.RETRY_WITH_BACKOFF,
    Disposition.WAIT_AND_RETRY,
    Disposition.STOP_RUN,
}


def _disposition_of(error_type: str | None) -> Disposition | None:
    cls = ERROR_CLASSES.get(error_type or "")
    return cls.disposition if cls else None


@dataclass
class _Row:
    """What one row's run carries between steps."""

    work: RowWork
    record: RowRecord
    estimate: float
    reserved: float = 0.0


class RowEngine:
    """Runs rows against one provider into one output location, keeping the journal up to date."""

    def __init__(
        self,
        provider: ImageProvider,
        location: OutputLocation,
        settings: EngineSettings | None = None,
        *,
        listener: RowListener | None = None,
        flow_run_id: str | None = None,
        reference_uploader: Callable[[ImageRequest], Awaitable[list[str] | None]] | None = None,
    ) -> None:
        self.provider = provider
        self.location = location
        self.settings = settings or EngineSettings()
        self.journal = RowJournal(location)
        self.listener = listener
        self.flow_run_id = flow_run_id
        self.budget = Budget(self.settings.max_cost)
        self.stop_error: NanoBananaError | None = None
        """Set by an error that stops everything (bad key)."""
        self.submissions_stopped: NanoBananaError | None = None
        """Set by an error that stops new submissions only (no balance): in-flight jobs still finish."""
        self.paid_submissions = 0
        self._records: dict[str, RowRecord] | None = None
        self._existing_files: set[str] = set()
        self._uploader = reference_uploader

    # --- state ---------------------------------------------------------------------------------
    def _load_state(self) -> dict[str, RowRecord]:
        if self._records is None:
            self._records = self.journal.load_all()
            self._existing_files = set(self.location.list_files())
        return self._records

    def records(self) -> dict[str, RowRecord]:
        """Every journal record of the location as this engine last saw or wrote it."""
        return dict(self._load_state())

    async def _save(self, row: _Row, **changes: object) -> RowRecord:
        """Store the row's record in the journal; return once it is stored.

        The write (temporary file, fsync, rename: 1-4 ms on a local disk) runs in a worker thread.
        The row itself still waits for it (so `submitting` is stored before the paid call), but the
        other rows keep going: done in the event loop, the first `max_concurrency` rows' writes ran
        back to back before any of their submits reached the provider, 0.5-1.5 s at 256 rows."""
        row.record = await asyncio.to_thread(
            self.journal.write, row.record, flow_run_id=self.flow_run_id, **changes
        )
        self._load_state()[row.record.row_key] = row.record
        return row.record

    def _image_present(self, record: RowRecord) -> bool:
        return self.journal.is_finished(record, self._existing_files) or self.journal.is_finished(record)

    def done_record(self, request: ImageRequest) -> RowRecord | None:
        """The record of a row already finished with its image still in place, else None."""
        record = self._load_state().get(request.row_key)
        if record is not None and self._image_present(record):
            return record
        return None

    # --- running -------------------------------------------------------------------------------
    async def run(self, rows: Iterable[RowWork]) -> list[RowRecord]:
        """Run every row with at most `max_concurrency` in flight; return their final records in order.

        Raises `RunStopped` (after every in-flight row has settled) when a STOP_RUN error occurred."""
        self._load_state()
        work = list(rows)
        results: list[RowRecord | None] = [None] * len(work)
        next_index = iter(range(len(work)))

        async def worker() -> None:
            for i in next_index:
                results[i] = await self.run_row(work[i])

        count = max(1, min(self.settings.max_concurrency, len(work)))
        workers = [asyncio.ensure_future(worker()) for _ in range(count)]
        try:
            await asyncio.gather(*workers)
        finally:  # on an unexpected error (or cancellation) leave no orphan worker paying for rows
            for w in workers:
                w.cancel()
        if self.stop_error is not None:
            raise RunStopped(self.stop_error)
        return [r for r in results if r is not None]

    def _notify(self, record: RowRecord) -> RowRecord:
        if self.listener is not None:
            try:
                self.listener(record)
            except Exception:  # a progress display must never fail a paid row
                logger.exception("row listener failed")
        return record

    def _start(self, work: RowWork) -> _Row:
        req = work.request
        fields = {
            "row": work.row,
            "name": work.name,
            "prompt": req.prompt,
            "provider": req.provider,
            "model": req.model,
            "aspect_ratio": req.aspect_ratio,
            "resolution": req.resolution,
        }
        existing = self._load_state().get(req.row_key)
        record = existing.model_copy(update=fields) if existing else RowRecord(row_key=req.row_key, **fields)  # type: ignore[arg-type]
        estimate = estimate_price(req.spec, req.resolution, self.settings.price_overrides)
        return _Row(work, record, estimate)

    async def run_row(self, work: RowWork) -> RowRecord:
        """Take one row as far as it can go. Row-level failures end up in the record, never raised."""
        row = self._start(work)
        if self._image_present(row.record):
            return self._notify(row.record)
        if self.stop_error is not None:
            return self._notify(
                row.record.model_copy(
                    update={
                        "status": "failed",
                        "error_type": self.stop_error.error_type,
                        "error": f"not started: the run was stopped by {self.stop_error.error_type}",
                    }
                )
            )
        try:
            job = await self._job_for_row(row)
            if job is None:
                return self._notify(row.record)
            return self._notify(await self._finish(row, job))
        except NanoBananaError as exc:
            if exc.disposition is Disposition.STOP_RUN:
                if isinstance(exc, InsufficientBalanceError):
                    self.submissions_stopped = self.submissions_stopped or exc
                else:
                    self.stop_error = self.stop_error or exc
            self._settle(row, paid=exc.disposition in (Disposition.RECONCILE, Disposition.REDOWNLOAD))
            keep_job = row.record.job_id is not None and exc.disposition in _RESUMABLE
            status = "submitted" if keep_job and isinstance(exc, JobTimedOutError) else "failed"
            return self._notify(
                await self._save(
                    row, status=status, error_type=exc.error_type, error=str(exc), completed_at=utcnow()
                )
            )
        except Exception as exc:  # a bug or the environment (disk full): record it, keep the job id
            logger.exception("row %s failed unexpectedly", work.row)
            self._settle(row, paid=row.record.job_id is not None)
            return self._notify(
                await self._save(row, status="failed", error_type=type(exc).__name__, error=redact(str(exc)))
            )

    def _settle(self, row: _Row, *, paid: bool, actual: float | None = None) -> None:
        if row.reserved:
            self.budget.settle(
                row.reserved, (actual if actual is not None else row.estimate) if paid else 0.0
            )
            row.reserved = 0.0

    async def job_for(self, work: RowWork) -> ImageJob:
        """The job for one row (already submitted, found by lookup, or newly submitted), recorded in
        the journal; raises when the row cannot be submitted (invalid, over budget, stopped)."""
        row = self._start(work)
        job = await self._job_for_row(row)
        if job is None:
            raise BudgetExceededError(row.record.error or "not submitted", provider=work.request.provider)
        return job

    async def _job_for_row(self, row: _Row) -> ImageJob | None:
        """The row's job: the one already submitted, one found by lookup, or a new paid one (None when
        the row must not be submitted: over budget, or submissions stopped)."""
        record, req = row.record, row.work.request
        # A job that failed or was refused holds no image; after any other failure (including ones
        # this version does not know) the job may hold a paid image, so it is resumed, not resubmitted.
        resumable = record.status in ("submitted", "succeeded") or (
            record.status == "failed" and _disposition_of(record.error_type) not in _JOB_HOLDS_NO_IMAGE
        )
        if record.job_id and resumable:
            return ImageJob(
                provider=req.provider,
                job_id=record.job_id,
                row_key=req.row_key,
                model=req.model,
                submitted_at=record.submitted_at or utcnow(),
                reattached=True,
            )
        outcome_unknown = record.job_id is None and (
            record.status == "submitting" or record.error_type == AmbiguousSubmitError.__name__
        )
        if outcome_unknown and record.client_business_id:
            if self.provider.supports_lookup:
                found = await find_job(self.provider, record.client_business_id, self.settings.retry)
                if found is not None:
                    await self._save(
                        row, status="submitted", job_id=found.job_id, error_type=None, error=None
                    )
                    return found.model_copy(update={"reattached": True})
            elif self.settings.ambiguous_without_lookup == "fail":
                raise AmbiguousSubmitError(
                    "an earlier run sent this row and got no answer, and this provider cannot look jobs "
                    "up, so it is not sent again (ambiguous_without_lookup='resubmit' pays for it again)",
                    provider=req.provider,
                )
        return await self._submit(row)

    async def _submit(self, row: _Row) -> ImageJob | None:
        req = row.work.request
        if self.submissions_stopped is not None:
            await self._save(
                row,
                status="failed",
                error_type=self.submissions_stopped.error_type,
                error=f"not submitted: {self.submissions_stopped.message}",
            )
            return None
        if not self.budget.try_reserve(row.estimate):
            await self._save(
                row,
                status="over_budget",
                error_type="BudgetExceededError",
                error=f"not submitted: ${row.estimate:.3f} more would exceed max_cost "
                f"${self.settings.max_cost:.2f}",
            )
            return None
        row.reserved = row.estimate
        reference_urls = await self._uploader(req) if self._uploader else None
        attempts = row.record.attempts
        cbid = req.row_key if attempts == 0 else f"{req.row_key}-{attempts}"
        await self._save(
            row,
            status="submitting",
            client_business_id=cbid,
            attempts=attempts + 1,
            job_id=None,
            image_url=None,
            expires_at=None,
            error_type=None,
            error=None,
            submitted_at=utcnow(),
        )
        try:
            job = await submit_once(
                self.provider,
                req,
                client_business_id=cbid,
                reference_urls=reference_urls,
                retry=self.settings.retry,
                ambiguous_without_lookup=self.settings.ambiguous_without_lookup,
            )
        except NanoBananaError as exc:
            if exc.disposition in (Disposition.FAIL_ROW, Disposition.STOP_RUN):
                # Refused outright: no job exists and nothing was paid.
                await self._save(row, attempts=attempts)
                self._settle(row, paid=False)
            raise
        if not job.reattached:
            self.paid_submissions += 1
        await self._save(row, status="submitted", job_id=job.job_id)
        return job

    async def _finish(self, row: _Row, job: ImageJob) -> RowRecord:
        """Wait for the job and download its image; resubmit (within the limit) if the image is lost."""
        req = row.work.request
        stem = f"{self.settings.image_dir}/{row.work.name}" if self.settings.image_dir else row.work.name
        resubmits = 0
        while True:
            try:
                result = job.result or await self.provider.wait(job, self.settings.poll)
                await self._save(row, image_url=result.image_url, expires_at=result.expires_at)
                image = await download_into(
                    self.provider,
                    result,
                    self.location,
                    stem,
                    row_key=req.row_key,
                    retry=self.settings.retry,
                    attempts=self.settings.max_download_attempts,
                )
            except NanoBananaError as exc:
                if exc.disposition is not Disposition.RESUBMIT or resubmits >= self.settings.max_resubmits:
                    raise
                resubmits += 1
                self._settle(row, paid=False)
                logger.info(
                    "row %s: %s; submitting again (%d of %d)",
                    row.work.row,
                    exc.error_type,
                    resubmits,
                    self.settings.max_resubmits,
                )
                await self._save(row, status="failed", error_type=exc.error_type, error=str(exc))
                new_job = await self._submit(row)
                if new_job is None:
                    return row.record
                job = new_job
                continue
            cost = result.cost_usd if result.cost_usd is not None else row.estimate
            self._settle(row, paid=True, actual=cost)
            rel = self.location.relative(image.path)
            if rel:
                self._existing_files.add(rel)
            return await self._save(
                row,
                status="succeeded",
                job_id=job.job_id,
                image_path=image.path,
                sha256=image.sha256,
                width=image.width,
                height=image.height,
                bytes=image.bytes,
                cost=cost,
                cost_source="reported" if result.cost_usd is not None else "estimated",
                error_type=None,
                error=None,
                completed_at=result.completed_at or utcnow(),
            )
