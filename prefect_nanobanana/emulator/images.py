"""Real image bytes of a requested pixel size, made fast and cached.

A task's image is a solid colour picked from a small palette by the task id, so that clients get
genuine, decodable files of exactly the documented size while thousands of tasks share a handful of
encodings: a 4K PNG costs ~0.2 s once and nothing afterwards.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from typing import Literal

from PIL import Image

__all__ = ["CONTENT_TYPES", "ImageFormat", "colour_for", "corrupt_bytes", "render_image", "sniff_image_type"]

ImageFormat = Literal["png", "jpeg", "webp"]

CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

_PALETTE: tuple[tuple[int, int, int], ...] = (
    (231, 76, 60),
    (46, 204, 113),
    (52, 152, 219),
    (241, 196, 15),
    (155, 89, 182),
    (26, 188, 156),
    (230, 126, 34),
    (52, 73, 94),
)

# Bounded so a long benchmark with many distinct sizes cannot grow memory without limit.
_CACHE_MAX_BYTES = 256 * 1024 * 1024
_cache: OrderedDict[tuple[int, int, str, tuple[int, int, int]], bytes] = OrderedDict()
_cache_bytes = 0
_cache_lock = threading.Lock()
# One lock per key, so that concurrent downloads of one new size encode it once, while different
# sizes still encode in parallel.
_key_locks: dict[tuple[int, int, str, tuple[int, int, int]], threading.Lock] = {}


def colour_for(seed: str) -> tuple[int, int, int]:
    """Return the palette colour for an id: stable across runs, spread across ids."""
    digest = hashlib.sha256(seed.encode()).digest()
    return _PALETTE[digest[0] % len(_PALETTE)]


def _encode(width: int, height: int, fmt: ImageFormat, colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    buffer = io.BytesIO()
    if fmt == "png":
        # compress_level=1: a solid 4K image stays ~230 kB and encodes in a fraction of a second.
        image.save(buffer, "PNG", compress_level=1)
    elif fmt == "jpeg":
        image.save(buffer, "JPEG", quality=80)
    else:
        image.save(buffer, "WEBP", quality=50, method=0)
    return buffer.getvalue()


def render_image(width: int, height: int, fmt: ImageFormat, colour: tuple[int, int, int]) -> bytes:
    """Return encoded image bytes of exactly `width` x `height` pixels. Thread-safe; cached.

    May take a few hundred milliseconds the first time a large size is asked for, so callers on an
    event loop should run it in a worker thread.
    """
    global _cache_bytes
    key = (width, height, fmt, colour)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None:
                return cached
        data = _encode(width, height, fmt, colour)
        with _cache_lock:
            _cache[key] = data
            _cache_bytes += len(data)
            while _cache_bytes > _CACHE_MAX_BYTES and len(_cache) > 1:
                _, evicted = _cache.popitem(last=False)
                _cache_bytes -= len(evicted)
            _key_locks.pop(key, None)
        return data


def corrupt_bytes(length: int) -> bytes:
    """Return `length` bytes that no image decoder accepts (no known magic number, no structure)."""
    pattern = b"CORRUPTED-IMAGE-DATA-"
    return (pattern * (length // len(pattern) + 1))[:length]


def sniff_image_type(data: bytes) -> str | None:
    """Return the MIME type of JPEG, PNG, WebP or GIF bytes by their magic number, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None
