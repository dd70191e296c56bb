"""The control API and helpers: ledger, stats, faults, config, reset, and behaviour under concurrency."""

from __future__ import annotations

import ast
import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import prefect_nanobanana.emulator as emulator_package
from prefect_nanobanana.emulator import EmulatorControl, EmulatorServer

from ._emulator_testkit import submit, wait_for_task


def test_ledger_shape(client: httpx.Client, tt: httpx.Client, emu: EmulatorServer) -> None:
    task_id = submit(client, prompt="first", client_business_id="cb-1").json()["id"]
    tt.post("/gemini/image/generate", json={"prompt": "second", "model": "gemini-3.1-flash-image-preview"})
    ledger = emu.ledger()
    assert ledger["paid"] == 2
    assert ledger["paid_by_client_business_id"] == {"cb-1": 1}
    toapis, ttapi = ledger["submissions"]
    expected_keys = {"provider", "task_id", "client_business_id", "model", "prompt", "status", "at", "quota"}
    assert expected_keys <= set(toapis) and expected_keys <= set(ttapi)
    assert toapis["provider"] == "toapis" and toapis["task_id"] == task_id and toapis["prompt"] == "first"
    assert toapis["model"] == "gemini-3-pro-image-preview" and toapis["quota"] is None
    assert ttapi["provider"] == "ttapi" and ttapi["quota"] == 2 and ttapi["client_business_id"] is None
    assert ttapi["status"] == "completed" and ttapi["delivered"] is True
    assert abs(toapis["at"] - time.time()) < 5
    wait_for_task(client, task_id)
    assert emu.ledger()["submissions"][0]["status"] == "completed"


def test_stats_count_requests_polls_and_concurrency(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(latency=5.0)
    ids = [submit(client).json()["id"] for _ in range(4)]
    stats = emu.stats()
    assert stats["in_flight"] == 4 and stats["max_in_flight"] == 4
    client.get(f"/v1/images/generations/{ids[0]}")
    emu.advance(6)
    for task_id in ids:
        wait_for_task(client, task_id)
    client.get("/v1/images/generations/unknown")
    stats = emu.stats()
    assert stats["in_flight"] == 0 and stats["max_in_flight"] == 4
    assert stats["requests"]["POST /v1/images/generations"] == 4
    assert set(stats["polls_by_task"]) == set(ids)
    assert stats["polls_by_task"][ids[0]] >= 2
    assert stats["responses"]["GET /v1/images/generations/{task_id}"]["404"] == 1
    assert stats["tasks"] == 4
    # Control calls are not counted as traffic.
    assert not any(route.startswith(("GET /_emulator", "POST /_emulator")) for route in stats["requests"])


async def _raw_ttapi_generate(port: int, prompt: str) -> tuple[int, dict[str, Any]]:
    """One TTAPI request on its own plain socket (httpx's pool, not the server, limits at this scale)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"prompt": prompt, "model": "gemini-3-pro-image-preview"}).encode()
    writer.write(
        b"POST /gemini/image/generate HTTP/1.1\r\nHost: emulator\r\nTT-API-KEY: k\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload)


async def test_hundreds_of_concurrent_ttapi_requests(emu: EmulatorServer) -> None:
    emu.configure(ttapi_latency=1.0)
    started = time.monotonic()
    results = await asyncio.gather(*(_raw_ttapi_generate(emu.port, f"p{i}") for i in range(400)))
    elapsed = time.monotonic() - started
    assert all(status == 200 and body["status"] == "SUCCESS" for status, body in results)
    assert elapsed < 10
    assert emu.stats()["max_in_flight"] >= 300
    assert emu.ledger()["paid"] == 400


def test_thousands_of_tasks_cost_nothing_between_polls(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(rate_limits=False, latency=0.05)
    started = time.monotonic()
    for _ in range(300):
        emu.state.create_task(
            api_key="k",
            model="gemini-3-pro-image-preview",
            prompt="bulk",
            client_business_id=None,
            size=(1024, 1024),
            fmt="png",
            failure=None,
        )
    assert time.monotonic() - started < 3
    time.sleep(0.06)
    assert emu.stats()["in_flight"] == 0
    assert all(entry["status"] == "completed" for entry in emu.ledger()["submissions"])


def test_latency_distributions_are_seeded(emu: EmulatorServer) -> None:
    def draws(distribution: str) -> list[float]:
        emu.configure(seed=5, latency=2.0, latency_spread=0.5, latency_distribution=distribution)
        return [emu.state.sample_duration("toapis") for _ in range(200)]

    uniform = draws("uniform")
    assert uniform == draws("uniform")
    assert all(1.5 <= value <= 2.5 for value in uniform)
    lognormal = draws("lognormal")
    assert abs(sum(lognormal) / len(lognormal) - 2.0) < 0.2
    assert all(value > 0 for value in lognormal)
    assert set(draws("fixed")) == {2.0}
    emu.configure(time_scale=4.0)
    assert set(draws("fixed")) == {0.5}


def test_reset_clears_everything_but_config(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(latency=0.05)
    submit(client)
    emu.set_faults(submit_error={"status": 500})
    emu.reset()
    assert emu.ledger()["paid"] == 0
    assert emu.stats()["requests"] == {}
    assert emu.state.faults.submit_error == []
    assert emu.state.config.latency == 0.05


def test_configure_rejects_unknown_or_invalid_fields(emu: EmulatorServer) -> None:
    with pytest.raises(ValueError):
        emu.configure(latencyy=1)
    with pytest.raises(ValueError):
        emu.configure(time_scale=0)


def test_emulator_control_over_http(client: httpx.Client, emu: EmulatorServer) -> None:
    with EmulatorControl(emu.url) as control:
        control.wait_ready()
        assert control.configure(latency=0.05)["latency"] == 0.05
        assert control.config()["latency"] == 0.05
        faults = control.set_faults(submit_error={"status": 502, "count": 1})
        assert faults["submit_error"][0]["status"] == 502
        merged = control.set_faults(merge=True, task_failure={"count": 1})
        assert merged["submit_error"] and merged["task_failure"]
        assert submit(client).status_code == 502
        assert control.faults()["submit_error"][0]["count"] == 0
        task_id = submit(client).json()["id"]
        assert wait_for_task(client, task_id)["status"] == "failed"
        assert control.ledger()["paid"] == 1
        assert control.stats()["polls_by_task"][task_id] >= 1
        control.advance(10)
        control.reset()
        assert control.ledger()["paid"] == 0
        with pytest.raises(httpx.HTTPStatusError):
            control.configure(no_such_field=True)
        with pytest.raises(httpx.HTTPStatusError):
            control.set_faults(no_such_fault={})


def test_server_can_restart_on_its_own_port() -> None:
    server = EmulatorServer(latency=0.0, api_key="k").start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.url}/_emulator/health").json() == {"ok": True}
    finally:
        server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url


def test_stopping_drops_waiting_requests_at_once() -> None:
    server = EmulatorServer(ttapi_latency=30.0).start()
    outcome: list[BaseException] = []

    def long_generation() -> None:
        try:
            httpx.post(
                f"{server.url}/gemini/image/generate",
                json={"prompt": "x", "model": "gemini-3-pro-image-preview"},
                headers={"TT-API-KEY": "k"},
                timeout=30,
            )
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=long_generation)
    thread.start()
    deadline = time.monotonic() + 5
    while server.stats()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    thread.join(5)
    assert time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.RemoteProtocolError)
    assert server.ledger()["submissions"][0]["delivered"] is False


def test_emulator_is_an_independent_reading_of_the_docs() -> None:
    """No import of the client's models, providers or catalogue, and no Prefect."""
    forbidden = (
        "prefect_nanobanana.models",
        "prefect_nanobanana.providers",
        "prefect_nanobanana.catalog",
        "prefect",
    )
    package_dir = Path(emulator_package.__file__).parent
    for source in package_dir.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level >= 2:
                names = [f"prefect_nanobanana.{node.module or ''}"]
            for name in names:
                assert not any(name == bad or name.startswith(bad + ".") for bad in forbidden), (
                    source.name,
                    name,
                )
