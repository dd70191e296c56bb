"""The error taxonomy: dispositions, messages with request context, redaction, pickling."""

from __future__ import annotations

import pickle

import pytest

from prefect_nanobanana.errors import (
    ERROR_CLASSES,
    AmbiguousSubmitError,
    AuthenticationError,
    BudgetExceededError,
    ContentPolicyError,
    Disposition,
    DownloadFailedError,
    ImageExpiredError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobFailedError,
    JobTimedOutError,
    NanoBananaError,
    RateLimitedError,
    RequestValidationError,
    RowProblem,
    TableValidationError,
    TransientError,
    redact,
)

KEY = "sk-test-SECRET-1234"

EXPECTED_DISPOSITIONS = {
    AuthenticationError: Disposition.STOP_RUN,
    InsufficientBalanceError: Disposition.STOP_RUN,
    InvalidRequestError: Disposition.FAIL_ROW,
    ContentPolicyError: Disposition.FAIL_ROW,
    RateLimitedError: Disposition.WAIT_AND_RETRY,
    TransientError: Disposition.RETRY_WITH_BACKOFF,
    AmbiguousSubmitError: Disposition.RECONCILE,
    JobFailedError: Disposition.RESUBMIT,
    JobTimedOutError: Disposition.RECONCILE,
    DownloadFailedError: Disposition.REDOWNLOAD,
    ImageExpiredError: Disposition.RESUBMIT,
    RequestValidationError: Disposition.FAIL_ROW,
    TableValidationError: Disposition.STOP_RUN,
    BudgetExceededError: Disposition.FAIL_ROW,
}


@pytest.mark.parametrize(
    ("cls", "disposition"), EXPECTED_DISPOSITIONS.items(), ids=lambda v: getattr(v, "__name__", v)
)
def test_every_class_has_its_disposition(cls: type[NanoBananaError], disposition: Disposition) -> None:
    assert cls.disposition is disposition


def test_error_classes_registry_is_complete() -> None:
    assert set(ERROR_CLASSES.values()) == set(EXPECTED_DISPOSITIONS)
    assert all(name == cls.__name__ for name, cls in ERROR_CLASSES.items())


def test_expired_is_a_download_failure_that_needs_a_new_submission() -> None:
    assert issubclass(ImageExpiredError, DownloadFailedError)
    assert ImageExpiredError.disposition is not DownloadFailedError.disposition


def test_message_carries_the_request_context_and_what_to_do() -> None:
    error = RateLimitedError(
        "ToAPIs: Async task request rate exceeded",
        provider="toapis",
        method="POST",
        url="/v1/images/generations",
        status_code=429,
        code="rate_limit_exceeded",
        retry_after=2.0,
        job_id="task_1",
    )
    text = str(error)
    for part in ("Async task request rate exceeded", "toapis", "POST /v1/images/generations", "HTTP 429",
                 "code rate_limit_exceeded", "job task_1", "Retry-After"):  # fmt: skip
        assert part in text
    assert error.retry_after == 2.0
    assert error.error_type == "RateLimitedError"


def test_bare_message_renders_without_empty_context() -> None:
    assert str(NanoBananaError("plain")) == "plain"


@pytest.mark.parametrize(
    "cls", [c for c in EXPECTED_DISPOSITIONS if c not in (RequestValidationError, TableValidationError)]
)
def test_errors_pickle_with_their_attributes(cls: type[NanoBananaError]) -> None:
    error = cls(
        "boom",
        provider="ttapi",
        method="GET",
        url="/x",
        status_code=500,
        code="c",
        retry_after=1.5,
        job_id="j",
    )
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(again) is cls
    assert str(again) == str(error)
    assert (again.provider, again.method, again.url, again.status_code, again.code, again.retry_after, again.job_id) == (
        "ttapi", "GET", "/x", 500, "c", 1.5, "j",
    )  # fmt: skip


def test_request_validation_error_names_field_and_pickles() -> None:
    error = RequestValidationError(
        "aspect_ratio: '1:4' is not available", field="aspect_ratio", value="1:4", allowed=["1:1"]
    )
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (again.field, again.value, again.allowed) == ("aspect_ratio", "1:4", ["1:1"])
    assert str(again) == str(error)


def test_table_validation_error_lists_every_problem() -> None:
    problems = [
        RowProblem(2, "model", "unknown model"),
        RowProblem(5, None, "empty prompt"),
        RowProblem(None, "x", "bad"),
    ]
    error = TableValidationError(problems, total_rows=10)
    text = str(error)
    assert "3 invalid row(s) of 10" in text
    assert "row 2, column 'model': unknown model" in text
    assert "row 5: empty prompt" in text
    assert "table, column 'x': bad" in text
    assert isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert again.problems == problems and again.total_rows == 10
    assert problems[0].to_dict() == {"row": 2, "column": "model", "reason": "unknown model"}
    many = TableValidationError([RowProblem(i, None, "x") for i in range(60)])
    assert "... and 10 more" in str(many)


@pytest.mark.parametrize(
    "text",
    [
        f"key {KEY} leaked",
        f"Authorization: Bearer {KEY}",
        f"authorization=bearer {KEY}",
        f"TT-API-KEY: {KEY}",
        f"x-goog-api-key: {KEY}",
        f"https://api.test/v1/models?key={KEY}&alt=json",
    ],
)
def test_redact_removes_keys_and_credential_headers(text: str) -> None:
    assert KEY not in redact(text, KEY)
    assert "***" in redact(text, KEY)


def test_redact_removes_header_values_even_without_knowing_the_key() -> None:
    assert "abc123" not in redact("Authorization: Bearer abc123")
    assert "abc123" not in redact("TT-API-KEY: abc123")
    assert "zzz" not in redact("GET /x?key=zzz")


def test_redact_leaves_ordinary_text_alone() -> None:
    assert redact("nothing secret here", KEY, None, "") == "nothing secret here"
    assert redact("a b c", "a") == "a b c"  # secrets shorter than 4 characters are ignored
