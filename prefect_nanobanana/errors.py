"""One error taxonomy for every provider.

Every failure a provider client can raise is one of the classes below, and every retry decision in
the tasks and flows is taken from the class's `disposition`, never from status codes or messages.
No exception text ever carries an API key: the clients build messages from the method, the URL
path and the provider's own error body, and `redact` scrubs anything that slipped through.
"""

from __future__ import annotations

import enum
import re
from typing import Any


class Disposition(str, enum.Enum):
    """What the caller must do after an error of a given class."""

    STOP_RUN = "stop_run"
    """Stop every row at once: nothing else can succeed (bad key, no balance)."""
    FAIL_ROW = "fail_row"
    """Fail this row and never retry it (invalid request, content policy)."""
    WAIT_AND_RETRY = "wait_and_retry"
    """Wait for the provider's `Retry-After`, then retry the same call."""
    RETRY_WITH_BACKOFF = "retry_with_backoff"
    """Retry with exponential backoff and jitter (5xx, network errors, queue full)."""
    RECONCILE = "reconcile"
    """The submit may or may not have been accepted: look the job up, never resend blindly."""
    RESUBMIT = "resubmit"
    """The job ended without an image: a new submission may be paid for, within a limit."""
    REDOWNLOAD = "redownload"
    """The image exists but its bytes did not arrive whole: download it again."""


_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*bearer\s+)[^\s'\"]+"),
    re.compile(r"(?i)(tt-api-key\s*[:=]\s*)[^\s'\"]+"),
    re.compile(r"(?i)(x-goog-api-key\s*[:=]\s*)[^\s'\"]+"),
    re.compile(r"(?i)([?&]key=)[^&\s'\"]+"),
]


def redact(text: str, *secrets: str | None) -> str:
    """Return `text` with any of `secrets`, and any credential-looking header value, replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class NanoBananaError(Exception):
    """Base class of every error this package raises.

    Attributes carry the request context a user needs to act: the provider, the HTTP method and
    path, the HTTP status and the provider's error code, and for rate limits how long to wait.
    """

    disposition: Disposition = Disposition.FAIL_ROW
    what_to_do: str = ""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        method: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        job_id: str | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.method = method
        self.url = url
        self.status_code = status_code
        self.code = code
        self.retry_after = retry_after
        self.job_id = job_id
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        where = " ".join(p for p in (self.method, self.url) if p)
        context = ", ".join(
            p
            for p in (
                self.provider,
                where,
                f"HTTP {self.status_code}" if self.status_code else "",
                f"code {self.code}" if self.code else "",
                f"job {self.job_id}" if self.job_id else "",
            )
            if p
        )
        if context:
            parts.append(f"({context})")
        if self.what_to_do:
            parts.append(self.what_to_do)
        return " ".join(parts)

    @property
    def error_type(self) -> str:
        """The class name, as recorded in manifests (`error_type` column)."""
        return type(self).__name__

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword attributes when errors cross process boundaries (Prefect results, pickling).
        return (
            _rebuild_error,
            (
                type(self),
                self.message,
                {
                    "provider": self.provider,
                    "method": self.method,
                    "url": self.url,
                    "status_code": self.status_code,
                    "code": self.code,
                    "retry_after": self.retry_after,
                    "job_id": self.job_id,
                },
            ),
        )


def _rebuild_error(cls: type[NanoBananaError], message: str, kwargs: dict[str, Any]) -> NanoBananaError:
    return cls(message, **kwargs)


class AuthenticationError(NanoBananaError):
    """The API key is missing, wrong or not activated (HTTP 401/403)."""

    disposition = Disposition.STOP_RUN
    what_to_do = (
        "Check the API key in the credentials block (no extra spaces) and that the account is active."
    )


class InsufficientBalanceError(NanoBananaError):
    """The account has no balance left (HTTP 402)."""

    disposition = Disposition.STOP_RUN
    what_to_do = "Top up the provider account, then rerun: finished images are kept and not paid again."


class InvalidRequestError(NanoBananaError):
    """The provider refused the request as malformed (HTTP 400, unknown model, bad parameter)."""

    disposition = Disposition.FAIL_ROW
    what_to_do = "Fix the row's parameters; retrying the same request cannot succeed."


class ContentPolicyError(NanoBananaError):
    """The provider refused the prompt or a reference image on content grounds (HTTP 422 and alike)."""

    disposition = Disposition.FAIL_ROW
    what_to_do = "Rephrase the prompt or change the reference images."


class RateLimitedError(NanoBananaError):
    """The provider's rate limit was hit (HTTP 429, or 503 `rate_limit_unavailable`)."""

    disposition = Disposition.WAIT_AND_RETRY
    what_to_do = "Retried after the provider's Retry-After."


class TransientError(NanoBananaError):
    """A server or network failure that may pass (5xx, 499 queue exhausted, connection refused)."""

    disposition = Disposition.RETRY_WITH_BACKOFF
    what_to_do = "Retried with exponential backoff."


class AmbiguousSubmitError(NanoBananaError):
    """A submit was sent but its outcome is unknown (timeout or disconnect after sending).

    The job may exist and may be billed: it must be looked up (ToAPIs: by `client_business_id`),
    never sent again blindly.
    """

    disposition = Disposition.RECONCILE
    what_to_do = "Look the job up by its client_business_id before any resubmission."


class JobFailedError(NanoBananaError):
    """The provider accepted the job, then reported that it failed without an image."""

    disposition = Disposition.RESUBMIT
    what_to_do = "A resubmission is allowed up to the configured limit."


class JobTimedOutError(NanoBananaError):
    """The job did not finish before the waiting deadline. It may still finish: look it up later."""

    disposition = Disposition.RECONCILE
    what_to_do = "Rerun later: the job is looked up by id, not submitted again."


class DownloadFailedError(NanoBananaError):
    """The image could not be fetched whole (network, truncated body, bytes that are not an image)."""

    disposition = Disposition.REDOWNLOAD
    what_to_do = "Download again; the job itself is not paid again."


class ImageExpiredError(DownloadFailedError):
    """The result URL has expired (ToAPIs keeps images 24 h): the paid image is gone."""

    disposition = Disposition.RESUBMIT
    what_to_do = "The image can only be regenerated by a new (paid) submission."


class RequestValidationError(NanoBananaError):
    """A request was refused before any call: the field, the value and the allowed values are named."""

    disposition = Disposition.FAIL_ROW

    def __init__(self, message: str, *, field: str, value: Any = None, allowed: Any = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # `field` is keyword-only, so the class cannot be rebuilt from positional args alone.
        return (
            _rebuild_error,
            (type(self), self.message, {"field": self.field, "value": self.value, "allowed": self.allowed}),
        )


class TableValidationError(NanoBananaError, ValueError):
    """A prompt table has bad rows. Every problem is listed, with its row number and column."""

    disposition = Disposition.STOP_RUN

    def __init__(self, problems: list[RowProblem], *, total_rows: int | None = None) -> None:
        self.problems = problems
        self.total_rows = total_rows
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        rows = len({p.row for p in problems})
        of = f" of {total_rows}" if total_rows is not None else ""
        super().__init__(
            f"The prompt table has {rows} invalid row(s){of}; nothing was submitted:\n{shown}{more}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,), {"total_rows": self.total_rows})

    def __setstate__(self, state: dict[str, Any] | None) -> None:  # type: ignore[override]
        self.__dict__.update(state or {})


class RowProblem:
    """One reason a table row is invalid: row number (1-based, as in a spreadsheet), column, reason."""

    __slots__ = ("column", "reason", "row")

    def __init__(self, row: int | None, column: str | None, reason: str) -> None:
        self.row = row
        self.column = column
        self.reason = reason

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "table"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"

    def __repr__(self) -> str:
        return f"RowProblem({self.row!r}, {self.column!r}, {self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowProblem) and (self.row, self.column, self.reason) == (
            other.row,
            other.column,
            other.reason,
        )

    def __hash__(self) -> int:
        return hash((self.row, self.column, self.reason))

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


class BudgetExceededError(NanoBananaError):
    """Submitting the next row would exceed `max_cost`."""

    disposition = Disposition.FAIL_ROW


ERROR_CLASSES: dict[str, type[NanoBananaError]] = {
    cls.__name__: cls
    for cls in (
        AuthenticationError,
        InsufficientBalanceError,
        InvalidRequestError,
        ContentPolicyError,
        RateLimitedError,
        TransientError,
        AmbiguousSubmitError,
        JobFailedError,
        JobTimedOutError,
        DownloadFailedError,
        ImageExpiredError,
        RequestValidationError,
        TableValidationError,
        BudgetExceededError,
    )
}
