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
