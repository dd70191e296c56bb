"""Fixtures for the provider client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefect_nanobanana.ratelimit import reset_shared_buckets


@pytest.fixture(autouse=True)
def _fresh_buckets() -> Iterator[None]:
    """Every test starts with empty shared rate-limit buckets (a pause in one test must not leak)."""
    reset_shared_buckets()
    yield
    reset_shared_buckets()
