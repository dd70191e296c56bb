"""Fault injection, each kind over a real socket: what the client sees and what the ledger records."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image, UnidentifiedImageError

from prefect_nanobanana.emulator import EmulatorServer, FaultConfig

from ._emulator_testkit import submit, wait_for_task


def generate(tt: httpx.Client, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"prompt": "a cute cat", "model": "gemini-3-pro-image-preview"}
    payload.update(body)
    return tt.post("/gemini/image/generate", json=payload)


# -- ToAPIs submit errors -------------------------------------------------------------------------------

SUBMIT_ERROR_BODIES: dict[int, dict[str, Any]] = {
    401: {"error": {"code": "unauthorized", "message": "Invalid API key", "type": "authentication_error"}},
    402: {
        "error": {
            "code": "insufficient_quota",
            "message": "Insufficient balance",
            "type": "insufficient_quota",
        }
    },
    429: {"error": {"code": "rate_limit_exceeded", "message": "Async task request rate exceeded"}},
    503: {
        "error": {
            "code": "rate_limit_unavailable",
            "message": "The async task submit limiter is temporarily unavailable",
        }
    },
}


@pytest.mark.parametrize("status", [400, 401, 402, 422, 429, 500, 502, 503])
def test_submit_errors_have_documented_bodies_and_are_not_paid(
    client: httpx.Client, emu: EmulatorServer, status: int
) -> None:
    emu.set_faults(submit_error={"status": status, "count": 1})
    response = submit(client)
    assert response.status_code == status
    if status in SUBMIT_ERROR_BODIES:
        assert response.json() == SUBMIT_ERROR_BODIES[status]
    elif status == 400:
        assert response.json()["error"]["type"] == "invalid_request_error"
    elif status == 422:
        assert response.json()["error"]["code"] == "content_policy_violation"
    elif status == 500:
        assert response.json()["error"]["code"] == "internal_error"
    else:
        # A proxy's HTML error page, as an edge really answers: the client must cope with non-JSON.
        assert response.headers["content-type"].startswith("text/html")
    if status == 429:
        assert response.headers["Retry-After"] == "1"
        assert response.headers["X-RateLimit-Category"] == "async_submit"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert "X-RateLimit-Limit" in response.headers and "X-RateLimit-Reset" in response.headers
    assert emu.ledger()["paid"] == 0
    # count=1: the next submit goes through.
    assert submit(client).status_code == 200
    assert emu.stats()["faults_fired"] == {"submit_error": 1}


def test_submit_drop_disconnects_but_the_task_exists_and_is_paid(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    emu.set_faults(submit_drop={"count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        submit(client, client_business_id="row-7")
    ledger = emu.ledger()
    assert ledger["paid"] == 1
    entry = ledger["submissions"][0]
    assert entry["delivered"] is False and entry["client_business_id"] == "row-7"
    assert ledger["paid_by_client_business_id"] == {"row-7": 1}
    # The reconciliation path: look the task up by business id instead of resubmitting.
    found = client.get("/v1/images/generations/row-7")
    assert found.status_code == 200 and found.json()["id"] == entry["task_id"]
    assert wait_for_task(client, "row-7")["status"] == "completed"
    assert emu.stats()["responses"]["POST /v1/images/generations"] == {"dropped": 1}


def test_submit_drop_can_wait_first(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(submit_drop={"delay": 0.2})
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        submit(client)
    assert time.monotonic() - started >= 0.19


def test_content_policy_at_submit_is_422_and_unpaid(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(content_policy={"match": "forbidden"})
    refused = submit(client, prompt="something forbidden")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "content_policy_violation"
    assert submit(client, prompt="something fine").status_code == 200
    assert emu.ledger()["paid"] == 1


def test_content_policy_as_a_failed_task(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(content_policy={"at": "task"})
    task = submit(client).json()
    done = wait_for_task(client, task["id"])
    assert done["status"] == "failed"
    assert done["progress"] == 0
    assert done["error"]["code"] == "content_policy_violation"
    assert "result" not in done and "url" not in done


def test_task_failure_has_the_documented_failed_shape(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(task_failure={"count": 1})
    failed = wait_for_task(client, submit(client).json()["id"])
    assert set(failed) == {"id", "object", "model", "status", "progress", "created_at", "error"}
    assert failed["error"] == {
        "code": "generation_failed",
        "message": "call upstream API failed: upstream returned status 422",
    }
    assert emu.ledger()["submissions"][0]["status"] == "failed"
    assert wait_for_task(client, submit(client).json()["id"])["status"] == "completed"


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_query_errors(client: httpx.Client, emu: EmulatorServer, status: int) -> None:
    task_id = submit(client).json()["id"]
    emu.set_faults(query_error={"status": status, "count": 2, "retry_after": 3})
    for _ in range(2):
        response = client.get(f"/v1/images/generations/{task_id}")
        assert response.status_code == status
    if status == 429:
        assert response.headers["Retry-After"] == "3"
        assert response.headers["X-RateLimit-Category"] == "async_query"
    if status == 503:
        # The submit limiter's body is for submits; a query 503 is a plain service error.
        assert response.json()["error"]["code"] == "service_unavailable"
    assert client.get(f"/v1/images/generations/{task_id}").status_code == 200


# -- downloads ------------------------------------------------------------------------------------------


def completed_url(client: httpx.Client, prompt: str = "a red square") -> str:
    return str(wait_for_task(client, submit(client, prompt=prompt).json()["id"])["url"])


def test_truncated_download(client: httpx.Client, emu: EmulatorServer) -> None:
    url = completed_url(client)
    full = httpx.get(url).content
    emu.set_faults(download_truncated={"fraction": 0.25, "count": 1})
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        assert int(response.headers["content-length"]) == len(full)
        for chunk in response.iter_raw():
            received.extend(chunk)
    assert len(received) == int(len(full) * 0.25)
    assert bytes(received) == full[: len(received)]
    assert httpx.get(url).content == full


def test_corrupt_download_has_the_right_length_but_is_no_image(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    url = completed_url(client)
    full = httpx.get(url).content
    emu.set_faults(download_corrupt={"count": 1})
    corrupt = httpx.get(url)
    assert corrupt.status_code == 200
    assert corrupt.headers["content-type"] == "image/png"
    assert len(corrupt.content) == len(full) == int(corrupt.headers["content-length"])
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(corrupt.content))


def test_slow_download_streams_in_delayed_chunks(client: httpx.Client, emu: EmulatorServer) -> None:
    url = completed_url(client)
    size = len(httpx.get(url).content)
    emu.set_faults(download_slow={"delay": 0.05, "chunk_size": max(1, size // 4 + 1)})
    started = time.monotonic()
    assert len(httpx.get(url).content) == size
    assert time.monotonic() - started >= 0.14  # 4 chunks, 3 pauses


def test_download_error_and_match_on_the_task_prompt(client: httpx.Client, emu: EmulatorServer) -> None:
    bad = completed_url(client, prompt="cursed image")
    good = completed_url(client, prompt="blessed image")
    emu.set_faults(download_error={"status": 503, "match": "cursed"})
    assert httpx.get(bad).status_code == 503
    assert httpx.get(good).status_code == 200


# -- TTAPI ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Parameter error"),
        (402, "Insufficient quota"),
        (429, "Short-term request rate exceeded"),
        (499, "Queue exhausted"),
        (500, "Server error"),
        (504, "Long-running synchronous request timed out"),
    ],
)
def test_ttapi_errors(tt: httpx.Client, emu: EmulatorServer, status: int, message: str) -> None:
    emu.set_faults(ttapi_error={"status": status, "count": 1})
    response = generate(tt)
    assert response.status_code == status
    assert response.json() == {"status": "FAILED", "message": message, "data": None}
    assert emu.ledger()["paid"] == 0
    assert generate(tt).status_code == 200


def test_ttapi_401_fault(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(ttapi_error={"status": 401})
    response = generate(tt)
    assert response.status_code == 401
    assert response.json() == {"status": "FAILED", "message": "Wrong TT-API-KEY or email is not activated."}


def test_ttapi_paid_504_is_in_the_ledger_as_undelivered(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(ttapi_error={"status": 504, "paid": True, "count": 1})
    assert generate(tt).status_code == 504
    entry = emu.ledger()["submissions"][0]
    assert entry["provider"] == "ttapi" and entry["delivered"] is False


def test_ttapi_drop_disconnects_after_generating_and_is_paid(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(ttapi_drop={"count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        generate(tt)
    ledger = emu.ledger()
    assert ledger["paid"] == 1 and ledger["submissions"][0]["delivered"] is False
    assert emu.stats()["responses"]["POST /gemini/image/generate"] == {"dropped": 1}


def test_ttapi_failed_with_http_200(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(ttapi_failed={"message": "prompt violation"})
    response = generate(tt)
    assert response.status_code == 200
    assert response.json() == {"status": "FAILED", "message": "prompt violation", "data": None}
    assert emu.ledger()["paid"] == 0


def test_ttapi_async_failure_shows_in_fetch(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(ttapi_failed={"message": "prompt violation"})
    job_id = generate(tt, sync_return="false").json()["data"]["jobId"]
    time.sleep(0.1)
    fetched = tt.get("/gemini/image/fetch", params={"jobId": job_id}).json()
    assert fetched["status"] == "FAILED" and fetched["message"] == "prompt violation"


# -- balance --------------------------------------------------------------------------------------------


def test_balance_runs_out_with_402_on_both_apis(
    client: httpx.Client, tt: httpx.Client, emu: EmulatorServer
) -> None:
    emu.configure(balance_usd=0.10, price_usd=0.04, ttapi_quota=2)
    assert submit(client).status_code == 200
    assert submit(client).status_code == 200
    refused = submit(client)
    assert refused.status_code == 402
    assert refused.json() == SUBMIT_ERROR_BODIES[402]
    assert generate(tt).status_code == 200  # 0.02 left, exactly one TTAPI image
    tt_refused = generate(tt)
    assert tt_refused.status_code == 402
    assert tt_refused.json() == {"status": "FAILED", "message": "Insufficient quota", "data": None}
    ledger = emu.ledger()
    assert ledger["paid"] == 3
    assert ledger["spent_usd"] == pytest.approx(0.10)
    assert ledger["balance_usd"] == pytest.approx(0.0)


# -- rule semantics -------------------------------------------------------------------------------------


def test_rate_faults_are_reproducible_with_a_seed(client: httpx.Client, emu: EmulatorServer) -> None:
    def outcomes() -> list[int]:
        emu.configure(seed=123)
        emu.reset()
        emu.set_faults(submit_error={"status": 500, "rate": 0.5})
        return [submit(client).status_code for _ in range(20)]

    first = outcomes()
    assert first == outcomes()
    assert 2 <= first.count(500) <= 18


def test_rules_take_a_single_rule_or_a_list_and_merge_by_kind(emu: EmulatorServer) -> None:
    emu.set_faults(submit_error=[{"status": 500, "match": "a"}, {"status": 503, "count": 2}])
    emu.set_faults(merge=True, query_error={"status": 502})
    faults = emu.state.faults
    assert [rule.status for rule in faults.submit_error] == [500, 503]
    assert faults.query_error[0].status == 502
    emu.set_faults(task_failure={})
    assert emu.state.faults.submit_error == [] and len(emu.state.faults.task_failure) == 1
    emu.set_faults(FaultConfig(submit_drop=[{"count": 1}]))  # type: ignore[list-item]
    assert emu.state.faults.submit_drop[0].count == 1
    with pytest.raises(ValueError):
        emu.set_faults(submit_eror={"status": 500})
