"""The records that flow between providers, tasks and flows: small, typed, JSON-serializable.

`ImageRequest` is one image to make, validated against the provider's documented rules
(`catalog.py`) when it is built, so that nothing invalid ever reaches a paid call. Its `row_key` is a
stable hash of everything that changes the image (the content of local reference files included)
and nothing else: it is the cache key, the ToAPIs `client_business_id` and the manifest key.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .catalog import (
    ALIASES,
    PROVIDERS,
    ModelSpec,
    ProviderName,
    model_ids,
    normalize_aspect_ratio,
    normalize_resolution,
    resolve_model,
)
from .errors import RequestValidationError

ROW_KEY_VERSION = "1"
MAX_REFERENCE_BYTES = 10 * 1024 * 1024
REFERENCE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _problem(field: str, value: Any, message: str, allowed: Any = None) -> RequestValidationError:
    return RequestValidationError(message, field=field, value=value, allowed=allowed)


def _allowed_text(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values)


class ImageRequest(BaseModel):
    """One image to generate, valid for its provider and model.

    Building one raises `RequestValidationError` naming the field, the value and the allowed values
    when a documented rule is broken (see `request_problems` for all of them at once).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: ProviderName = Field(description="`toapis` or `ttapi`.")
    prompt: str = Field(description="What to draw, or how to edit the reference images.")
    model: str = Field(description="Model id or alias; normalized to the provider's id.")
    aspect_ratio: str | None = Field(
        default=None, description="For example `16:9`; provider default if unset."
    )
    resolution: str | None = Field(
        default=None, description="`0.5K`, `1K`, `2K` or `4K` where the model has it."
    )
    reference_images: tuple[str, ...] = Field(default=(), description="http(s) URLs or local file paths.")
    reference_digests: tuple[str, ...] = Field(
        default=(), description="sha256 of each local reference file (the URL itself for URLs); filled in."
    )
    orientation: Literal["landscape", "portrait"] | None = None
    google_search: bool | None = None
    image_search: bool | None = None
    thinking_level: str | None = None
    variant: int = Field(
        default=0, ge=0, description="Ask deliberately for another image of the same prompt."
    )

    @model_validator(mode="before")
    @classmethod
    def _normalize_and_check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        normalized, problems = normalize_request_fields(data)
        if problems:
            first = problems[0]
            if len(problems) > 1:
                first = RequestValidationError(
                    "; ".join(p.message for p in problems), field=first.field, value=first.value
                )
            raise first
        return normalized

    @property
    def spec(self) -> ModelSpec:
        spec = resolve_model(self.provider, self.model)
        assert spec is not None  # guaranteed by validation
        return spec

    @property
    def row_key(self) -> str:
        """Stable hash of everything that changes the image; 32 hex characters, usable as an id anywhere."""
        return row_key_of(self)

    def image_fields(self) -> dict[str, Any]:
        """The fields that change the image, normalized: the input of `row_key`."""
        return {
            "v": ROW_KEY_VERSION,
            "provider": self.provider,
            "model": self.model,
            "prompt": self.prompt,
            "aspect_ratio": self.aspect_ratio,
            "resolution": self.resolution,
            "references": list(self.reference_digests),
            "orientation": self.orientation,
            "google_search": self.google_search,
            "image_search": self.image_search,
            "thinking_level": self.thinking_level,
            "variant": self.variant,
        }

    def local_references(self) -> list[str]:
        return [r for r in self.reference_images if not is_url(r)]


def row_key_of(request: ImageRequest) -> str:
    payload = json.dumps(request.image_fields(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _as_bool(field: str, value: Any, problems: list[RequestValidationError]) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "y"):
        return True
    if text in ("false", "no", "0", "n"):
        return False
    problems.append(_problem(field, value, f"{field}: {value!r} is not a boolean (true or false)"))
    return None


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN from pandas
        return True
    return isinstance(value, str) and not value.strip()


def normalize_request_fields(data: dict[str, Any]) -> tuple[dict[str, Any], list[RequestValidationError]]:
    """Normalize raw request fields and check every documented rule.

    Returns the normalized fields and every problem found (empty when the request is valid), so that
    a table can report all of a row's problems at once. Reads local reference files (to check them
    and hash their content); makes no network call.
    """
    problems: list[RequestValidationError] = []
    out = {k: v for k, v in data.items() if not _blank(v) or k in ("prompt",)}

    provider = out.get("provider")
    if provider not in PROVIDERS:
        problems.append(
            _problem(
                "provider", provider, f"provider: {provider!r} is not one of {_allowed_text(list(PROVIDERS))}"
            )
        )
        return out, problems

    prompt = out.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(_problem("prompt", prompt, "prompt: must be a non-empty text"))
    else:
        out["prompt"] = prompt.strip()

    raw_model = out.get("model")
    spec = resolve_model(provider, str(raw_model)) if isinstance(raw_model, str) else None
    if spec is None:
        allowed = model_ids(provider)
        problems.append(
            _problem(
                "model",
                raw_model,
                f"model: {raw_model!r} is not a {provider} model; allowed: {_allowed_text(allowed)}"
                f" (aliases: {_allowed_text(list(ALIASES[provider]))})",
                allowed,
            )
        )
        return out, problems
    out["model"] = spec.model

    if spec.max_prompt_chars and isinstance(prompt, str) and len(prompt.strip()) > spec.max_prompt_chars:
        problems.append(
            _problem(
                "prompt",
                f"{len(prompt)} characters",
                f"prompt: {len(prompt.strip())} characters; {spec.model} on {provider} takes at most "
                f"{spec.max_prompt_chars}",
            )
        )

    ratio = out.get("aspect_ratio")
    if ratio is not None:
        ratio = normalize_aspect_ratio(str(ratio))
        out["aspect_ratio"] = ratio
        if not spec.aspect_ratios:
            problems.append(
                _problem(
                    "aspect_ratio",
                    ratio,
                    f"aspect_ratio: {provider} takes no aspect ratio for {spec.model} (only gemini-3 and later)",
                    [],
                )
            )
        elif ratio not in spec.aspect_ratios:
            problems.append(
                _problem(
                    "aspect_ratio",
                    ratio,
                    f"aspect_ratio: {ratio!r} is not available for {spec.model} on {provider}; allowed: "
                    f"{_allowed_text(spec.aspect_ratios)}",
                    list(spec.aspect_ratios),
                )
            )

    resolution = out.get("resolution")
    if resolution is not None:
        resolution = normalize_resolution(str(resolution))
        if resolution not in spec.resolutions:
            if not spec.resolutions and resolution == "1K":
                resolution = None  # the model's only size; nothing to send
            else:
                allowed_res = spec.resolutions or ("(none: the model has one size)",)
                problems.append(
                    _problem(
                        "resolution",
                        resolution,
                        f"resolution: {resolution!r} is not available for {spec.model} on {provider}; "
                        f"allowed: {_allowed_text(allowed_res)}",
                        list(spec.resolutions),
                    )
                )
    if resolution is None and spec.default_resolution:
        resolution = spec.default_resolution
    if resolution is None:
        out.pop("resolution", None)
    else:
        out["resolution"] = resolution

    for option in ("google_search", "image_search"):
        if option in out:
            out[option] = _as_bool(option, out[option], problems)
            if out[option] is None:
                out.pop(option)
    if "google_image_search" in out:  # ToAPIs' name for image_search
        value = _as_bool("image_search", out.pop("google_image_search"), problems)
        if value is not None:
            out["image_search"] = value

    for option in ("orientation", "google_search", "image_search", "thinking_level"):
        value = out.get(option)
        if value is None or value is False:
            if value is False and option not in spec.options:
                out.pop(option)  # "false" for an option the model lacks asks for nothing
            continue
        if option not in spec.options:
            where = sorted(
                {m for m in model_ids(provider) if option in (resolve_model(provider, m) or spec).options}
            )
            problems.append(
                _problem(
                    option,
                    value,
                    f"{option}: not available for {spec.model} on {provider}; it is documented only for "
                    f"{_allowed_text(where) or 'no model'}",
                )
            )
    if out.get("image_search") and not out.get("google_search") and "image_search" in spec.options:
        problems.append(
            _problem("image_search", True, "image_search: must be used together with google_search: true")
        )
    orientation = out.get("orientation")
    if orientation is not None:
        text = str(orientation).strip().lower()
        if text not in ("landscape", "portrait"):
            problems.append(
                _problem(
                    "orientation",
                    orientation,
                    "orientation: must be landscape or portrait",
                    ["landscape", "portrait"],
                )
            )
        else:
            out["orientation"] = text
    level = out.get("thinking_level")
    if level is not None and "thinking_level" in spec.options:
        by_lower = {t.lower(): t for t in spec.thinking_levels}
        canonical = by_lower.get(str(level).strip().lower())
        if canonical is None:
            problems.append(
                _problem(
                    "thinking_level",
                    level,
                    f"thinking_level: {level!r} is not one of {_allowed_text(spec.thinking_levels)}",
                    list(spec.thinking_levels),
                )
            )
        else:
            out["thinking_level"] = canonical

    variant = out.get("variant", 0)
    try:
        variant_int = int(variant)
        if variant_int < 0 or float(variant) != variant_int:
            raise ValueError
        out["variant"] = variant_int
    except (TypeError, ValueError, OverflowError):
        problems.append(_problem("variant", variant, "variant: must be a whole number >= 0"))

    refs = out.get("reference_images", ())
    if isinstance(refs, str):
        refs = [r for r in (p.strip() for p in refs.split("|")) if r]
    refs = tuple(str(r).strip() for r in refs if not _blank(r))
    out["reference_images"] = refs
    if len(refs) > spec.max_references:
        problems.append(
            _problem(
                "reference_images",
                len(refs),
                f"reference_images: {len(refs)} images; {spec.model} on {provider} takes at most "
                f"{spec.max_references}",
            )
        )
    if not out.get("reference_digests") or len(out["reference_digests"]) != len(refs):
        digests: list[str] = []
        for ref in refs:
            if is_url(ref):
                digests.append(ref)
                continue
            if "://" in ref or ref.startswith("data:"):
                problems.append(
                    _problem(
                        "reference_images",
                        ref,
                        f"reference_images: {ref!r} is neither an http(s) URL nor a local file path",
                    )
                )
                continue
            digest, problem = check_reference_file(ref)
            if problem:
                problems.append(problem)
            else:
                digests.append(digest)
        out["reference_digests"] = tuple(digests)
    return out, problems


def check_reference_file(path: str) -> tuple[str, RequestValidationError | None]:
    """Check that a local reference image can be sent (exists, readable, <= 10 MB, jpeg/png/webp);
    return its sha256."""
    p = Path(path)
    if p.suffix.lower() not in REFERENCE_SUFFIXES:
        return "", _problem(
            "reference_images",
            path,
            f"reference_images: {path!r} must be a {', '.join(REFERENCE_SUFFIXES)} file",
            list(REFERENCE_SUFFIXES),
        )
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise IsADirectoryError(path)
        if size > MAX_REFERENCE_BYTES:
            return "", _problem(
                "reference_images",
                path,
                f"reference_images: {path!r} is {size / 1e6:.1f} MB; the limit is 10 MB",
            )
        return file_sha256(p), None
    except OSError as exc:
        return "", _problem(
            "reference_images",
            path,
            f"reference_images: cannot read {path!r}: {exc.strerror or type(exc).__name__}",
        )


class JobStatus(str, enum.Enum):
    """A provider job's state; `SUCCEEDED` and `FAILED` are terminal."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobResult(BaseModel):
    """Where a finished job's image is, and what it cost."""

    model_config = ConfigDict(frozen=True)

    provider: ProviderName
    job_id: str
    image_url: str = Field(description="Where the image can be fetched (provider CDN or emulator).")
    expires_at: datetime | None = Field(
        default=None, description="When the URL stops working (ToAPIs: 24 h)."
    )
    completed_at: datetime | None = None
    cost_usd: float | None = Field(
        default=None, description="The provider's reported charge, if it reports one."
    )


class ImageJob(BaseModel):
    """A job the provider accepted. Recorded as soon as it exists, so that it is never paid for twice."""

    model_config = ConfigDict(frozen=True)

    provider: ProviderName
    job_id: str
    row_key: str
    model: str
    status: JobStatus = JobStatus.QUEUED
    progress: int | None = None
    submitted_at: datetime = Field(default_factory=utcnow)
    result: JobResult | None = Field(default=None, description="Set when the job finished within the submit.")
    error_code: str | None = None
    error_message: str | None = None
    reattached: bool = Field(default=False, description="Found by lookup after an ambiguous submit.")


class GeneratedImage(BaseModel):
    """An image on disk or in object storage, checked to be a whole, real image."""

    model_config = ConfigDict(frozen=True)

    row_key: str
    job_id: str | None = None
    path: str = Field(description="Local path or fsspec URL of the image.")
    sha256: str
    width: int
    height: int
    bytes: int
    format: str = Field(description="PNG, JPEG or WEBP.")
