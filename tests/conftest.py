"""Shared test set-up: an isolated Prefect home, no analytics, and a local emulator on a free port."""

from __future__ import annotations

import os
import tempfile

# Before anything imports prefect: every test session gets its own Prefect home, so caches and
# results never leak between runs, and nothing talks to anything but 127.0.0.1.
_HOME = tempfile.mkdtemp(prefix="nanobanana-prefect-home-")
os.environ["PREFECT_HOME"] = _HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from nb_testing import FAKE_KEY  # noqa: E402,F401


@pytest.fixture
def emulator() -> Iterator[Any]:
    """Both provider APIs on a free port of 127.0.0.1, fast enough for tests, no rate limits."""
    from prefect_nanobanana.emulator import EmulatorServer

    with EmulatorServer(latency=0.3, latency_spread=0.1, ttapi_latency=0.2, rate_limits=False, seed=7) as emu:
        yield emu


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API for the whole session (about 25 s to start here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"
