"""Token buckets per API key (providers.md 1.8), the documented 429 and its headers, and time scaling."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from prefect_nanobanana.emulator import EmulatorServer

from ._emulator_testkit import submit, wait_for_task

RATE_LIMITED = {"error": {"code": "rate_limit_exceeded", "message": "Async task request rate exceeded"}}


def test_default_group_allows_a_burst_of_50_submits(client: httpx.Client, emu: EmulatorServer) -> None:
    # The documented burst, with the refill slowed down so a loaded machine cannot sneak a token in.
    emu.configure(submit_rate=0.01)
    codes = [submit(client).status_code for _ in range(50)]
    assert codes == [200] * 50
    refused = submit(client)
    assert refused.status_code == 429
    assert refused.json() == RATE_LIMITED
    assert refused.headers["X-RateLimit-Category"] == "async_submit"
    assert refused.headers["X-RateLimit-Limit"] == "50"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert emu.ledger()["paid"] == 50
    assert emu.stats()["rate_limited"] == {"async_submit": 1}


def test_successful_responses_carry_the_remaining_allowance(client: httpx.Client) -> None:
    first = submit(client)
    second = submit(client)
    assert first.headers["X-RateLimit-Remaining"] == "49"
    assert second.headers["X-RateLimit-Remaining"] == "48"


def test_refused_requests_do_not_consume_and_business_failures_do(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    emu.configure(submit_rate=0.01, submit_burst=2)
    # A 400 is a business failure: it uses up allowance.
    assert submit(client, n="1").status_code == 400
    assert submit(client).status_code == 200
    assert submit(client).status_code == 429
    # Hammering while refused takes nothing: one refill interval later exactly one token is there.
    for _ in range(10):
        assert submit(client).status_code == 429
    emu.advance(100)  # one refill interval
    assert submit(client).status_code == 200
    assert submit(client).status_code == 429


def test_buckets_are_per_api_key(emu: EmulatorServer) -> None:
    emu.configure(submit_burst=1, submit_rate=0.01)

    def post(key: str) -> int:
        return httpx.post(
            f"{emu.url}/v1/images/generations",
            json={"model": "gemini-3-pro-image-preview", "prompt": "x"},
            headers={"Authorization": f"Bearer {key}"},
        ).status_code

    assert [post("alice"), post("alice"), post("bob"), post("bob")] == [200, 429, 200, 429]


def test_query_bucket_is_independent_of_the_submit_bucket(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(query_burst=3, query_rate=0.01, submit_burst=1, submit_rate=0.01)
    task_id = submit(client).json()["id"]
    assert submit(client).status_code == 429  # submit bucket empty...
    codes = [client.get(f"/v1/images/generations/{task_id}").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # ...queries still flow until their own bucket runs dry
    refused = client.get(f"/v1/images/generations/{task_id}")
    assert refused.json() == RATE_LIMITED
    assert refused.headers["X-RateLimit-Category"] == "async_query"
    assert refused.headers["X-RateLimit-Limit"] == "3"


def test_limiter_outage_blocks_submits_but_not_queries(client: httpx.Client, emu: EmulatorServer) -> None:
    task_id = submit(client).json()["id"]
    emu.set_faults(submit_error={"status": 503})
    down = submit(client)
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "rate_limit_unavailable"
    assert client.get(f"/v1/images/generations/{task_id}").status_code == 200


def test_rate_limits_can_be_switched_off(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(rate_limits=False, submit_burst=1)
    assert all(submit(client).status_code == 200 for _ in range(5))
    assert "X-RateLimit-Remaining" not in submit(client).headers


def test_ttapi_bucket_is_off_by_default_and_configurable(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(ttapi_latency=0.0)
    body: dict[str, Any] = {"prompt": "x", "model": "gemini-3-pro-image-preview"}
    assert all(tt.post("/gemini/image/generate", json=body).status_code == 200 for _ in range(12))
    emu.configure(ttapi_rate=0.01, ttapi_burst=2)
    codes = [tt.post("/gemini/image/generate", json=body).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = tt.post("/gemini/image/generate", json=body)
    assert refused.json() == {"status": "FAILED", "message": "Short-term request rate exceeded", "data": None}
    assert int(refused.headers["Retry-After"]) >= 1


def test_time_scale_speeds_up_latency_and_refill(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(time_scale=4.0, latency=0.4, submit_rate=0.5, submit_burst=1)
    task_id = submit(client).json()["id"]
    assert submit(client).status_code == 429
    refused = submit(client)
    # 0.5/s scaled to 2/s: a token is back within 0.5 s rather than 2 s.
    assert refused.headers["Retry-After"] == "1"
    time.sleep(0.55)
    assert submit(client).status_code == 200
    # 0.4 s scaled to 0.1 s.
    timeline = emu.state.tasks[task_id].timeline
    assert timeline.done_at - timeline.created_at == pytest.approx(0.1)
    assert wait_for_task(client, task_id)["status"] == "completed"


def test_advance_refills_buckets(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(submit_burst=1, submit_rate=0.01)
    assert submit(client).status_code == 200
    assert submit(client).status_code == 429
    emu.advance(200)
    assert submit(client).status_code == 200
