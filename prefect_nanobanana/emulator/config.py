"""Typed configuration of the emulator: timing, limits, money, and the fault-injection rules.

Both models are plain pydantic, so the same shapes travel as JSON through the control API
(`POST /_emulator/config`, `POST /_emulator/faults`), the CLI (`--faults JSON`) and Python keywords.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ContentPolicyFault",
    "DropFault",
    "EmulatorConfig",
    "FaultConfig",
    "FaultRule",
    "HttpErrorFault",
    "SlowDownloadFault",
    "TaskFailureFault",
    "TruncatedDownloadFault",
    "TtapiFailedFault",
]


class EmulatorConfig(BaseModel):
    """Everything about the emulator that is not per-request state. All durations are in seconds.

    `time_scale` divides every duration the emulator waits on its own (task latency, TTAPI latency,
    injected delays) and multiplies every refill rate, so `time_scale=4` runs the same scenario four
    times faster. It never changes `url_ttl`, which is reported to clients as wall-clock timestamps.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    api_key: str | None = Field(
        default=None, description="Only key accepted (both APIs); None accepts any non-empty key."
    )
    ttapi_api_key: str | None = Field(default=None, description="TTAPI key when it differs from `api_key`.")

    latency: float = Field(
        default=2.0, ge=0, description="Mean ToAPIs task duration (submit to terminal state)."
    )
    latency_spread: float = Field(
        default=0.0, ge=0, description="Uniform half-width, or lognormal std deviation."
    )
    latency_distribution: Literal["fixed", "uniform", "lognormal"] = "uniform"
    queue_fraction: float = Field(
        default=0.2, ge=0, le=1, description="Share of a task's duration spent queued."
    )
    ttapi_latency: float | None = Field(
        default=None, ge=0, description="Mean TTAPI generation time; None = `latency`."
    )
    ttapi_latency_spread: float | None = Field(default=None, ge=0, description="None = `latency_spread`.")
    time_scale: float = Field(default=1.0, gt=0)
    seed: int | None = Field(default=None, description="Seeds latency sampling and probabilistic faults.")

    url_ttl: float = Field(
        default=86400.0, gt=0, description="ToAPIs result URL lifetime (providers.md 1.9)."
    )
    ttapi_url_ttl: float = Field(
        default=30 * 86400.0, gt=0, description="TTAPI cdn URL lifetime (2.9: 1 month+)."
    )
    upload_url_ttl: float | None = Field(
        default=None, gt=0, description="Undocumented upstream; None = never expires."
    )
    expired_status: Literal[403, 404] = 404

    rate_limits: bool = True
    submit_rate: float = Field(default=5.0, gt=0, description="ToAPIs `default` group, providers.md 1.8.")
    submit_burst: int = Field(default=50, ge=1)
    query_rate: float = Field(default=50.0, gt=0)
    query_burst: int = Field(default=500, ge=1)
    ttapi_rate: float | None = Field(
        default=None, gt=0, description="TTAPI publishes no numbers: off unless set."
    )
    ttapi_burst: int = Field(default=10, ge=1)

    balance_usd: float | None = Field(default=None, description="Shared prepaid balance; None = unlimited.")
    price_usd: float = Field(default=0.04, ge=0, description="What one ToAPIs image costs.")
    ttapi_quota: int = Field(default=2, ge=0, description="TTAPI quota per image (100 quota = 1 USD).")
    ttapi_quota_as_string: bool = Field(
        default=False, description='Send `"quota": "2"` like other TTAPI endpoints.'
    )
    ttapi_async: bool = Field(
        default=True, description="Honour `sync_return=false` (experimental, providers.md 2.5)."
    )

    image_format: Literal["png", "jpeg"] = "png"
    initial_status: Literal["queued", "submitted"] = Field(
        default="queued", description="`submitted` exercises the undocumented-but-listed non-final status."
    )
    top_level_url: bool = Field(
        default=True, description="Also put the image URL at the top level of a task."
    )
    prompt_max_chars_25: int | None = Field(
        default=1000, description="The 2.5-flash page's cap; None disables it."
    )
    upload_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    download_chunk_size: int = Field(default=64 * 1024, ge=1)
    public_url: str | None = Field(
        default=None, description="Base of file URLs; None = the URL the client used."
    )

    def scaled(self, seconds: float) -> float:
        """Return `seconds` of emulated time as real seconds under `time_scale`."""
        return seconds / self.time_scale


class FaultRule(BaseModel):
    """When a fault fires. A rule with none of `rate`, `count`, `match` fires every time.

    `match` restricts the rule to prompts containing the substring; within those, `count` fires the
    next N occurrences (then the rule goes quiet unless `rate` is set too) and `rate` fires with that
    probability. Counts are decremented in place, so `GET /_emulator/faults` shows what is left.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    rate: float | None = Field(default=None, ge=0, le=1)
    count: int | None = Field(default=None, ge=0)
    match: str | None = None


class HttpErrorFault(FaultRule):
    """Answer with an HTTP error and the documented body for `status`.

    On TTAPI, `paid=True` lets the generation finish (and be recorded as paid) before the error is
    returned: the "504 after the upstream already charged" case. `delay` waits before answering.
    """

    status: int = Field(default=500, ge=400, le=599)
    message: str | None = None
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds on an injected 429.")
    delay: float = Field(default=0.0, ge=0)
    paid: bool = False


class DropFault(FaultRule):
    """Close the connection without a response. The work (task or generation) is done and paid."""

    delay: float = Field(default=0.0, ge=0, description="Extra wait before the connection is closed.")


class ContentPolicyFault(FaultRule):
    """A content-policy refusal: HTTP 422 at submit, or a task that ends `failed`."""

    at: Literal["submit", "task"] = "submit"
    message: str = "The request was rejected by the content safety policy"


class TaskFailureFault(FaultRule):
    """The task is created (and paid) but ends `failed` with `error.code`."""

    code: str = "generation_failed"
    message: str = "call upstream API failed: upstream returned status 422"


class TtapiFailedFault(FaultRule):
    """TTAPI answers HTTP 200 with `{"status": "FAILED"}` after the generation time; nothing is paid."""

    message: str = "generation failed"


class SlowDownloadFault(FaultRule):
    """Serve the file in `chunk_size` pieces with `delay` seconds between them."""

    delay: float = Field(default=0.1, ge=0)
    chunk_size: int = Field(default=16 * 1024, ge=1)


class TruncatedDownloadFault(FaultRule):
    """Announce the full Content-Length, send `fraction` of the bytes, then close the connection."""

    fraction: float = Field(default=0.5, ge=0, lt=1)


def _as_rule_list(value: Any) -> Any:
    """Accept one rule (a mapping or model) wherever a list of rules is expected."""
    if value is None:
        return []
    if isinstance(value, dict | BaseModel):
        return [value]
    return value


class FaultConfig(BaseModel):
    """Every injectable fault, each a list of rules (a single rule is accepted and wrapped).

    The first rule of a kind that fires wins; kinds are checked in a fixed order per route.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # ToAPIs
    submit_error: list[HttpErrorFault] = []
    submit_drop: list[DropFault] = []
    content_policy: list[ContentPolicyFault] = []
    task_failure: list[TaskFailureFault] = []
    query_error: list[HttpErrorFault] = []
    upload_error: list[HttpErrorFault] = []
    # Files (both providers)
    download_error: list[HttpErrorFault] = []
    download_slow: list[SlowDownloadFault] = []
    download_truncated: list[TruncatedDownloadFault] = []
    download_corrupt: list[FaultRule] = []
    # TTAPI
    ttapi_error: list[HttpErrorFault] = []
    ttapi_drop: list[DropFault] = []
    ttapi_failed: list[TtapiFailedFault] = []

    @field_validator("*", mode="before")
    @classmethod
    def _wrap_single_rule(cls, value: Any) -> Any:
        return _as_rule_list(value)

    def merged(self, update: dict[str, Any]) -> FaultConfig:
        """Return a copy where every kind named in `update` is replaced; other kinds are kept."""
        data = self.model_dump()
        data.update(update)
        return FaultConfig.model_validate(data)
