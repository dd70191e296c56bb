"""One emulator per test session over a real socket, reset to a fast known state before every test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from prefect_nanobanana.emulator import EmulatorConfig, EmulatorServer

from ._emulator_testkit import KEY

# Fast enough for a whole suite in well under a minute, slow enough to observe queued/in_progress.
BASE_CONFIG: dict[str, Any] = {
    "latency": 0.1,
    "latency_spread": 0.0,
    "latency_distribution": "fixed",
    "ttapi_latency": 0.05,
    "time_scale": 1.0,
    "seed": 7,
    "rate_limits": True,
    "submit_rate": 5.0,
    "submit_burst": 50,
    "query_rate": 50.0,
    "query_burst": 500,
    "ttapi_rate": None,
    "url_ttl": 86400.0,
    "balance_usd": None,
    "price_usd": 0.04,
    "ttapi_quota": 2,
    "ttapi_quota_as_string": False,
    "ttapi_async": True,
    "image_format": "png",
    "initial_status": "queued",
    "top_level_url": True,
    "api_key": None,
    "ttapi_api_key": None,
}


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(**BASE_CONFIG) as server:
        yield server


@pytest.fixture
def emu(emulator_server: EmulatorServer) -> EmulatorServer:
    """The session emulator, with config restored and tasks, ledger, stats and faults cleared."""
    emulator_server.configure(**{**EmulatorConfig().model_dump(), **BASE_CONFIG})
    emulator_server.reset()
    return emulator_server


@pytest.fixture
def client(emu: EmulatorServer) -> Iterator[httpx.Client]:
    """A plain httpx client with a ToAPIs Bearer key, based at the emulator root."""
    with httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
        yield http


@pytest.fixture
def tt(emu: EmulatorServer) -> Iterator[httpx.Client]:
    """A plain httpx client with a TTAPI key."""
    with httpx.Client(base_url=emu.url, headers={"TT-API-KEY": KEY}, timeout=10) as http:
        yield http
