"""Reference images: what they are (by content, not by name), whether they may be sent, and how.

Shared by the ToAPIs client (which uploads local files and sends URLs) and the TTAPI client (which
sends local files inline as base64 data URIs). Every check runs before anything goes on the network.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Literal

from ..errors import RequestValidationError
from ..models import MAX_REFERENCE_BYTES, ImageRequest, is_url

ImageFormat = Literal["JPEG", "PNG", "WEBP", "GIF"]

SENDABLE_FORMATS: tuple[ImageFormat, ...] = ("JPEG", "PNG", "WEBP")
"""What Gemini takes as a reference image (ToAPIs `image_urls`: jpeg, jpg, png, webp)."""

MIME_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}

_SNIFF_BYTES = 16


def sniff_image_format(head: bytes) -> ImageFormat | None:
    """The image format of a file from its first 12+ bytes, or None if it is none of ours."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def _refuse(path: Path, message: str, allowed: object = None) -> RequestValidationError:
    return RequestValidationError(
        f"reference_images: {str(path)!r} {message}",
        field="reference_images",
        value=str(path),
        allowed=allowed,
    )


def check_reference_file(path: Path, *, max_bytes: int = MAX_REFERENCE_BYTES) -> ImageFormat:
    """Check that `path` is a readable JPEG, PNG or WebP of at most `max_bytes`; return its format.

    Raises `RequestValidationError` (field `reference_images`) otherwise. GIF is refused with its own
    message: the ToAPIs upload API takes GIFs, but Gemini does not take them as references, so the
    upload would be wasted.
    """
    try:
        if not path.exists():
            raise _refuse(path, "does not exist")
        if not path.is_file():
            raise _refuse(path, "is not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise _refuse(
                path, f"is {size / 1e6:.1f} MB; the limit is {max_bytes / (1024 * 1024):g} MB per image"
            )
        if size == 0:
            raise _refuse(path, "is empty")
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise _refuse(path, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    kind = sniff_image_format(head)
    if kind == "GIF":
        raise _refuse(
            path,
            "is a GIF: Gemini takes only JPEG, PNG or WebP reference images; convert it first",
            list(SENDABLE_FORMATS),
        )
    if kind is None:
        raise _refuse(path, "is not a JPEG, PNG or WebP image (checked by content)", list(SENDABLE_FORMATS))
    return kind


def read_reference(path: Path, *, max_bytes: int = MAX_REFERENCE_BYTES) -> tuple[bytes, ImageFormat]:
    """The checked bytes and format of a local reference image (see `check_reference_file`)."""
    kind = check_reference_file(path, max_bytes=max_bytes)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _refuse(path, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:  # grew between the check and the read
        raise _refuse(path, f"is larger than {max_bytes} bytes")
    return data, kind


def data_uri(path: Path, *, max_bytes: int = MAX_REFERENCE_BYTES) -> str:
    """`data:image/<type>;base64,...` for a checked local reference image; the type comes from content."""
    data, kind = read_reference(path, max_bytes=max_bytes)
    return f"data:{MIME_TYPES[kind]};base64,{base64.b64encode(data).decode('ascii')}"


def references_to_send(request: ImageRequest, reference_urls: list[str] | None) -> list[str]:
    """The request's references with the local files replaced by what was uploaded for them.

    `reference_urls` is either the complete list to send (one per reference, in order) or one entry
    per *local* reference (in order), which then replaces those files and keeps the URLs. Without it
    the references are returned as given (local paths included: the caller decides what to do).
    """
    refs = list(request.reference_images)
    if reference_urls is None:
        return refs
    replacements = list(reference_urls)
    if len(replacements) == len(refs):
        return replacements
    local = request.local_references()
    if len(replacements) == len(local):
        it = iter(replacements)
        return [ref if is_url(ref) else next(it) for ref in refs]
    raise ValueError(
        f"reference_urls has {len(replacements)} entries; expected {len(refs)} (all references) "
        f"or {len(local)} (the local ones)"
    )
