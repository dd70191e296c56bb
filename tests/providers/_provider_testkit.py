"""Helpers for the provider client tests: a recognizable fake key, fast polling, test images."""

from __future__ import annotations

import io
import os

from PIL import Image

from prefect_nanobanana.providers.base import PollPolicy

FAKE_KEY = "sk-test-SECRET-1234"
TOAPIS = "https://toapis.test"
TTAPI = "https://ttapi.test"
FAST_POLL = PollPolicy(first_delay=0.01, min_interval=0.01, max_interval=0.02, deadline=5.0)


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), *, noise: bool = False) -> bytes:
    """A small, valid image of `fmt` (PNG, JPEG, WEBP, GIF)."""
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (200, 120, 40))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def assert_no_secret(exc: BaseException) -> None:
    """The fake API key appears nowhere in the exception's text, repr, args or attributes, and no
    httpx exception (which holds the request and its headers) rides along as its cause or context."""
    for text in (str(exc), repr(exc), repr(exc.args), repr(vars(exc))):
        assert FAKE_KEY not in text, text
    assert exc.__cause__ is None
    assert exc.__context__ is None, repr(exc.__context__)
