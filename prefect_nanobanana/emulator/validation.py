"""Request validation for both APIs, as strict as the documentation allows (providers.md 1.3, 1.13, 2.3, 2.12).

Each validator either returns a normalized request or raises `InvalidRequest` naming the offending
field, so the ToAPIs route can answer with the documented `param`, and tests can see why.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from .config import EmulatorConfig
from .images import ImageFormat
from .spec import (
    EXTREME_RATIOS,
    OFFICIAL_HARM_CATEGORIES,
    OFFICIAL_HARM_THRESHOLDS,
    OFFICIAL_MIME_TYPES,
    OFFICIAL_PERSON_GENERATION,
    OFFICIAL_THINKING_LEVELS,
    TTAPI_IMAGE_SIZES,
    TTAPI_MODELS,
    TTAPI_THINKING_LEVELS,
    ToapisModel,
    TtapiModel,
    pixel_size,
    toapis_model,
)

__all__ = ["InvalidRequest", "ToapisRequest", "TtapiRequest", "validate_toapis", "validate_ttapi"]


class InvalidRequest(ValueError):
    """A request the provider would refuse with HTTP 400."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True)
class ToapisRequest:
    """A valid ToAPIs generation request, reduced to what the emulator acts on."""

    model: ToapisModel
    prompt: str
    size: str
    resolution: str
    pixels: tuple[int, int]
    fmt: ImageFormat
    image_urls: tuple[str, ...]
    client_business_id: str | None


@dataclass(frozen=True)
class TtapiRequest:
    """A valid TTAPI generation request, reduced to what the emulator acts on."""

    model: TtapiModel
    prompt: str
    aspect_ratio: str
    image_size: str
    pixels: tuple[int, int]
    refer_images: list[str] | None
    sync: bool
    hook_url: str | None


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but `true` is not a JSON number.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_http_url(value: str) -> bool:
    lowered = value.lower()
    return (lowered.startswith(("http://", "https://"))) and len(value.split("://", 1)[1]) > 0


def _check_number(
    metadata: dict[str, Any], key: str, low: float, high: float, *, integer: bool = False
) -> None:
    if key not in metadata:
        return
    value = metadata[key]
    if not _is_number(value) or (integer and not float(value).is_integer()) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise InvalidRequest(f"metadata.{key} must be {kind} between {low:g} and {high:g}", f"metadata.{key}")


def _check_official_metadata(model: ToapisModel, metadata: dict[str, Any]) -> ImageFormat | None:
    """Validate the Vertex-native metadata of 1.3.3; return the output format it asks for, if any."""
    _check_number(metadata, "temperature", 0.0, 2.0)
    _check_number(metadata, "topP", 0.0, 1.0)
    _check_number(metadata, "maxOutputTokens", 1, 1_000_000, integer=True)
    person = metadata.get("personGeneration")
    if person is not None and person not in OFFICIAL_PERSON_GENERATION:
        raise InvalidRequest(
            f"metadata.personGeneration must be one of {', '.join(OFFICIAL_PERSON_GENERATION)}",
            "metadata.personGeneration",
        )
    fmt: ImageFormat | None = None
    options = metadata.get("imageOutputOptions")
    if options is not None:
        if not isinstance(options, dict):
            raise InvalidRequest(
                "metadata.imageOutputOptions must be an object", "metadata.imageOutputOptions"
            )
        mime = options.get("mimeType")
        if mime is not None:
            if mime not in OFFICIAL_MIME_TYPES:
                raise InvalidRequest(
                    f"metadata.imageOutputOptions.mimeType must be one of {', '.join(OFFICIAL_MIME_TYPES)}",
                    "metadata.imageOutputOptions.mimeType",
                )
            fmt = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}[mime]  # type: ignore[assignment]
        _check_number(options, "compressionQuality", 0, 100, integer=True)
    thinking = metadata.get("thinkingConfig")
    if thinking is not None:
        if not model.thinking_config:
            raise InvalidRequest(
                f"metadata.thinkingConfig is not supported by {model.id}", "metadata.thinkingConfig"
            )
        if not isinstance(thinking, dict):
            raise InvalidRequest("metadata.thinkingConfig must be an object", "metadata.thinkingConfig")
        _check_number(thinking, "thinkingBudget", 0, 24576, integer=True)
        level = thinking.get("thinkingLevel")
        if level is not None and level not in OFFICIAL_THINKING_LEVELS:
            raise InvalidRequest(
                f"metadata.thinkingConfig.thinkingLevel must be one of {', '.join(OFFICIAL_THINKING_LEVELS)}",
                "metadata.thinkingConfig.thinkingLevel",
            )
    safety = metadata.get("safetySettings")
    if safety is not None:
        if not isinstance(safety, list):
            raise InvalidRequest("metadata.safetySettings must be an array", "metadata.safetySettings")
        for item in safety:
            if (
                not isinstance(item, dict)
                or item.get("category") not in OFFICIAL_HARM_CATEGORIES
                or item.get("threshold") not in OFFICIAL_HARM_THRESHOLDS
            ):
                raise InvalidRequest(
                    "metadata.safetySettings items need a known category and threshold",
                    "metadata.safetySettings",
                )
    return fmt


def _image_urls(model: ToapisModel, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest("image_urls must be an array", "image_urls")
    if len(value) > model.max_image_urls:
        raise InvalidRequest(
            f"image_urls accepts at most {model.max_image_urls} images for {model.id}", "image_urls"
        )
    urls: list[str] = []
    for item in value:
        # 1.3.1: the docs send both plain strings and {"url": ...} objects; accept both.
        url = item.get("url") if isinstance(item, dict) else item
        if not isinstance(url, str) or not url:
            raise InvalidRequest('image_urls items must be URL strings or {"url": ...} objects', "image_urls")
        if url.lower().startswith("data:"):
            raise InvalidRequest(
                "base64 images are not accepted in image_urls; upload the image and pass its URL",
                "image_urls",
            )
        if not _is_http_url(url):
            raise InvalidRequest("image_urls must be http(s) URLs", "image_urls")
        urls.append(url)
    return tuple(urls)


def validate_toapis(body: Any, config: EmulatorConfig) -> ToapisRequest:
    """Validate a `POST /v1/images/generations` body for a Gemini model (providers.md 1.3, 1.13)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model_name = body.get("model")
    if model_name is None:
        raise InvalidRequest("The 'model' field is required.", "model")
    model = toapis_model(model_name) if isinstance(model_name, str) else None
    if model is None:
        raise InvalidRequest(f"The model '{model_name}' is not supported.", "model")

    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("The 'prompt' field is required.", "prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("The 'prompt' field must be a non-empty string.", "prompt")
    cap = config.prompt_max_chars_25
    if model.prompt_cap and cap is not None and len(prompt) > cap:
        raise InvalidRequest(f"The 'prompt' field exceeds {cap} characters for {model.id}.", "prompt")

    if "n" in body:
        n = body["n"]
        if not _is_number(n):
            raise InvalidRequest("'n' must be a number (e.g. 1), not a string.", "n")
        if n != 1:
            raise InvalidRequest("'n' is fixed at 1 for this model.", "n")

    size = body.get("size")
    if size is None:
        size = "1:1"
    elif size not in model.sizes:
        raise InvalidRequest(
            f"size '{size}' is not supported by {model.id}; use one of {', '.join(model.sizes)}.", "size"
        )

    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object", "metadata")

    resolution = metadata.get("resolution")
    if resolution is None:
        resolution = "1K"
    elif resolution not in model.resolutions:
        raise InvalidRequest(
            f"metadata.resolution '{resolution}' is not supported by {model.id}; "
            f"use one of {', '.join(model.resolutions)}.",
            "metadata.resolution",
        )

    orientation = metadata.get("orientation")
    if orientation is not None:
        if not model.orientation:
            raise InvalidRequest(
                f"metadata.orientation is not supported by {model.id}", "metadata.orientation"
            )
        if orientation not in ("landscape", "portrait"):
            raise InvalidRequest(
                "metadata.orientation must be 'landscape' or 'portrait'", "metadata.orientation"
            )

    for flag in ("google_search", "google_image_search"):
        if flag in metadata and metadata[flag] is not None:
            if not model.google_search:
                raise InvalidRequest(f"metadata.{flag} is not supported by {model.id}", f"metadata.{flag}")
            if not isinstance(metadata[flag], bool):
                raise InvalidRequest(f"metadata.{flag} must be a boolean", f"metadata.{flag}")
    if metadata.get("google_image_search") is True and metadata.get("google_search") is not True:
        raise InvalidRequest(
            "metadata.google_image_search must be used together with google_search: true",
            "metadata.google_image_search",
        )

    fmt: ImageFormat = config.image_format
    if model.official:
        fmt = _check_official_metadata(model, metadata) or fmt

    image_urls = _image_urls(model, body.get("image_urls"))

    business_id = body.get("client_business_id")
    if business_id is None:
        business_id = metadata.get("client_business_id")
    if business_id is not None and (not isinstance(business_id, str) or not business_id):
        raise InvalidRequest("client_business_id must be a non-empty string", "client_business_id")

    if body.get("callback_url") is not None:
        # 1.6: no webhook is configured for any emulator token.
        raise InvalidRequest(
            "callback_url requires task webhooks to be configured for this token",
            "callback_url",
            code="webhook_not_configured",
        )

    return ToapisRequest(
        model=model,
        prompt=prompt,
        size=size,
        resolution=resolution,
        pixels=pixel_size(model.pixels, size, resolution),
        fmt=fmt,
        image_urls=image_urls,
        client_business_id=business_id,
    )


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidRequest(f"{key} must be 'true' or 'false'", key)


def _is_reference_image(value: str) -> bool:
    if _is_http_url(value):
        return True
    payload = value
    if value.lower().startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or ";base64" not in header.lower() or not header.lower().startswith("data:image/"):
            return False
    try:
        return len(base64.b64decode(payload, validate=True)) > 0
    except (binascii.Error, ValueError):
        return False


def validate_ttapi(body: Any) -> TtapiRequest:
    """Validate a `POST /gemini/image/generate` body (providers.md 2.3, 2.12)."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required", "prompt")
    # 2.2: older docs and clients send the model as `mode`.
    model_name = body["model"] if body.get("model") is not None else body.get("mode")
    model = TTAPI_MODELS.get(model_name) if isinstance(model_name, str) else None
    if model is None:
        raise InvalidRequest(f"unknown model {model_name!r}", "model")

    aspect_ratio = body.get("aspect_ratio")
    if aspect_ratio is None:
        aspect_ratio = "1:1"
    elif aspect_ratio not in model.aspect_ratios:
        why = (
            "only on gemini-3.1-flash-image-preview"
            if aspect_ratio in EXTREME_RATIOS
            else "not for this model"
        )
        raise InvalidRequest(f"aspect_ratio {aspect_ratio!r} is supported {why}", "aspect_ratio")

    image_size = body.get("image_size")
    if image_size is None:
        image_size = "1K"
    elif image_size not in TTAPI_IMAGE_SIZES:
        raise InvalidRequest("image_size must be 1K, 2K or 4K (uppercase K)", "image_size")

    _flag(body, "google_search", False)
    _flag(body, "image_search", False)
    sync = _flag(body, "sync_return", True)

    thinking = body.get("thinking_level")
    if thinking is not None and thinking not in TTAPI_THINKING_LEVELS:
        raise InvalidRequest("thinking_level must be Minimal or High", "thinking_level")

    refer_images = body.get("refer_images")
    if refer_images is not None:
        if not isinstance(refer_images, list) or not all(
            isinstance(item, str) and _is_reference_image(item) for item in refer_images
        ):
            raise InvalidRequest("refer_images must be URLs or base64 images", "refer_images")

    hook_url = body.get("hook_url")
    if hook_url is not None and (not isinstance(hook_url, str) or not _is_http_url(hook_url)):
        raise InvalidRequest("hook_url must be an http(s) URL", "hook_url")

    return TtapiRequest(
        model=model,
        prompt=prompt,
        aspect_ratio=aspect_ratio,
        image_size=image_size,
        pixels=pixel_size(model.pixels, aspect_ratio, image_size),
        refer_images=refer_images,
        sync=sync,
        hook_url=hook_url,
    )
