"""Constants and helpers shared by the test modules (importable as `nb_testing`)."""

from __future__ import annotations

FAKE_KEY = "sk-test-FAKE-KEY-7f3a9c"
"""A made-up key, recognizable so that tests can prove it never leaks into any output."""
