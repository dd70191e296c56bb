"""The row engine against the emulator over real sockets: paid once, never lost, errors by class.

The emulator's ledger counts every paid submission (including ones whose answer was dropped), so
these tests prove payment behaviour rather than trusting our own bookkeeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nb_testing import FAKE_KEY
from PIL import Image

from prefect_nanobanana.engine import EngineSettings, RetryPolicy, RowEngine, RowWork, RunStopped
from prefect_nanobanana.journal import RowJournal
from prefect_nanobanana.models import ImageRequest
from prefect_nanobanana.providers.base import PollPolicy
from prefect_nanobanana.providers.toapis import ToAPIsClient
from prefect_nanobanana.providers.ttapi import TTAPIClient
from prefect_nanobanana.storage import OutputLocation

FAST_POLL = PollPolicy(first_delay=0.1, min_interval=0.1, max_interval=0.2, deadline=30)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2)


def toapis(emu: Any) -> ToAPIsClient:
    return ToAPIsClient(
        FAKE_KEY,
        emu.url,
        poll=FAST_POLL,
        submit_rate=1000,
        submit_burst=1000,
        query_rate=1000,
        query_burst=1000,
    )


def ttapi(emu: Any) -> TTAPIClient:
    return TTAPIClient(FAKE_KEY, emu.url, timeout=30)


def rows(n: int, provider: str = "toapis", prefix: str = "a banana") -> list[RowWork]:
    model = "gemini-3.1-flash-image-preview"
    return [
        RowWork(
            ImageRequest(provider=provider, prompt=f"{prefix} #{i}", model=model, aspect_ratio="16:9"),
            f"img-{i:03d}",
            i + 1,
        )
        for i in range(n)
    ]


async def run(emu: Any, out: Path, work: list[RowWork], *, client: Any = None, **settings: Any) -> list[Any]:
    async with client or toapis(emu) as c:
        engine = RowEngine(
            c, OutputLocation(out), EngineSettings(retry=FAST_RETRY, poll=FAST_POLL, **settings)
        )
        return await engine.run(work)


def assert_valid_image(path: str, size: tuple[int, int] | None = None) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        if size:
            assert image.size == size


async def test_all_rows_succeed_with_real_images(emulator: Any, out_dir: Path) -> None:
    records = await run(emulator, out_dir, rows(5))
    assert [r.status for r in records] == ["succeeded"] * 5
    for record in records:
        assert_valid_image(record.image_path, (1376, 768))  # 16:9 at 1K, providers.md 3.5
        assert Path(record.image_path).parent == out_dir
    assert emulator.ledger()["paid"] == 5


async def test_second_run_pays_nothing(emulator: Any, out_dir: Path) -> None:
    await run(emulator, out_dir, rows(4))
    paid_before = emulator.ledger()["paid"]
    again = await run(emulator, out_dir, rows(4))
    assert all(r.status == "succeeded" for r in again)
    assert emulator.ledger()["paid"] == paid_before == 4


async def test_dropped_submit_is_paid_once_and_image_arrives(emulator: Any, out_dir: Path) -> None:
    emulator.set_faults(submit_drop={"count": 1})
    records = await run(emulator, out_dir, rows(1))
    ledger = emulator.ledger()
    assert records[0].status == "succeeded"
    assert_valid_image(records[0].image_path)
    assert ledger["paid"] == 1
    assert list(ledger["paid_by_client_business_id"].values()) == [1]


async def test_submit_5xx_is_looked_up_not_resent_blindly(emulator: Any, out_dir: Path) -> None:
    emulator.set_faults(submit_error={"status": 500, "count": 2})
    records = await run(emulator, out_dir, rows(1))
    assert records[0].status == "succeeded"
    assert emulator.ledger()["paid"] == 1


async def test_429_waits_for_retry_after(emulator: Any, out_dir: Path) -> None:
    emulator.set_faults(submit_error={"status": 429, "count": 1, "retry_after": 1})
    started = time.monotonic()
    records = await run(emulator, out_dir, rows(1))
    assert records[0].status == "succeeded"
    assert time.monotonic() - started >= 1.0  # waited the provider's Retry-After
    assert emulator.ledger()["paid"] == 1


async def test_poll_5xx_retries_then_succeeds(emulator: Any, out_dir: Path) -> None:
    emulator.set_faults(query_error={"status": 502, "count": 3})
    records = await run(emulator, out_dir, rows(1))
    assert records[0].status == "succeeded"
    assert emulator.ledger()["paid"] == 1


@pytest.mark.parametrize(
    "status,error_type", [(401, "AuthenticationError"), (402, "InsufficientBalanceError")]
)
async def test_auth_and_balance_stop_at_once_without_retry(
    emulator: Any, out_dir: Path, status: int, error_type: str
) -> None:
    emulator.set_faults(submit_error={"status": status})
    work = rows(6)
    if status == 401:
        with pytest.raises(RunStopped) as info:
            await run(emulator, out_dir, work, max_concurrency=2)
        assert type(info.value.cause).__name__ == error_type
    else:
        records = await run(emulator, out_dir, work, max_concurrency=2)
        assert {r.status for r in records} == {"failed"}
        assert {r.error_type for r in records} == {error_type}
    stats = emulator.stats()
    submits = stats["requests"].get("POST /v1/images/generations", 0)
    assert submits <= 2, f"{submits} submit attempts: a {status} must stop new submissions at once"
    assert emulator.ledger()["paid"] == 0


@pytest.mark.parametrize(
    "faults,error_type",
    [
        ({"submit_error": {"status": 400, "count": 1}}, "InvalidRequestError"),
        ({"content_policy": {"count": 1, "at": "submit"}}, "ContentPolicyError"),
        ({"content_policy": {"count": 1, "at": "task"}}, "ContentPolicyError"),
    ],
)
async def test_invalid_and_content_policy_fail_the_row_without_retry(
    emulator: Any, out_dir: Path, faults: dict[str, Any], error_type: str
) -> None:
    emulator.set_faults(**faults)
    records = await run(emulator, out_dir, rows(1))
    assert records[0].status == "failed"
    assert records[0].error_type == error_type
    assert emulator.stats()["requests"].get("POST /v1/images/generations", 0) == 1


async def test_failed_task_is_resubmitted_within_the_limit(emulator: Any, out_dir: Path) -> None:
    emulator.set_faults(task_failure={"count": 1})
    records = await run(emulator, out_dir, rows(1), max_resubmits=1)
    assert records[0].status == "succeeded"
    assert emulator.ledger()["paid"] == 2  # the failed task and its one resubmission
    emulator.reset()
    emulator.set_faults(task_failure={"rate": 1.0})
    records = await run(emulator, out_dir / "b", rows(1, prefix="fails"), max_resubmits=1)
    assert records[0].status == "failed" and records[0].error_type == "JobFailedError"
    assert emulator.ledger()["paid"] == 2


@pytest.mark.parametrize("fault", ["download_truncated", "download_corrupt"])
async def test_bad_download_is_fetched_again_not_paid_again(emulator: Any, out_dir: Path, fault: str) -> None:
    emulator.set_faults(**{fault: {"count": 1}})
    records = await run(emulator, out_dir, rows(1))
    assert records[0].status == "succeeded"
    assert_valid_image(records[0].image_path)
    assert emulator.ledger()["paid"] == 1
    assert not list(out_dir.glob("*.part")) and not list(out_dir.glob(".*.part"))


async def test_budget_stops_submitting_before_it_is_exceeded(emulator: Any, out_dir: Path) -> None:
    # 3.1-flash 1K at ToAPIs is estimated at $0.025: $0.06 allows two images, not three.
    records = await run(emulator, out_dir, rows(5), max_cost=0.06, max_concurrency=1)
    assert [r.status for r in records].count("succeeded") == 2
    assert [r.status for r in records].count("over_budget") == 3
    assert emulator.ledger()["paid"] == 2


async def test_ttapi_rows_succeed_and_report_quota_cost(emulator: Any, out_dir: Path) -> None:
    records = await run(emulator, out_dir, rows(3, provider="ttapi"), client=ttapi(emulator))
    assert [r.status for r in records] == ["succeeded"] * 3
    assert all(r.cost_source == "reported" and r.cost == pytest.approx(0.02) for r in records)
    assert emulator.ledger()["paid"] == 3


async def test_ttapi_dropped_answer_is_not_paid_twice_by_default(emulator: Any, out_dir: Path) -> None:
    emulator.set_faults(ttapi_drop={"count": 1})
    records = await run(emulator, out_dir, rows(1, provider="ttapi"), client=ttapi(emulator))
    assert records[0].status == "failed" and records[0].error_type == "AmbiguousSubmitError"
    assert emulator.ledger()["paid"] == 1
    again = await run(emulator, out_dir, rows(1, provider="ttapi"), client=ttapi(emulator))
    assert again[0].status == "failed"  # still not resent: the policy is explicit
    assert emulator.ledger()["paid"] == 1
    resent = await run(
        emulator,
        out_dir,
        rows(1, provider="ttapi"),
        client=ttapi(emulator),
        ambiguous_without_lookup="resubmit",
    )
    assert resent[0].status == "succeeded"
    assert emulator.ledger()["paid"] == 2


def _cli(emu: Any, table: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect_nanobanana.cli",
            "generate",
            str(table),
            "--provider",
            "toapis",
            "--out",
            str(out),
            "--base-url",
            emu.url,
            "--model",
            "nano-banana-2",
            "--no-progress",
            "--max-concurrency",
            "8",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_sigkill_between_submit_and_download_then_rerun_pays_each_row_once(tmp_path: Path) -> None:
    from prefect_nanobanana.emulator import EmulatorServer

    table = tmp_path / "t.csv"
    table.write_text("prompt\n" + "\n".join(f"kill test {i}" for i in range(8)) + "\n")
    out = tmp_path / "out"
    env = {**os.environ, "TOAPIS_API_KEY": FAKE_KEY}
    with EmulatorServer(latency=4.0, rate_limits=False) as emu:
        proc = _cli(emu, table, out, env)
        deadline = time.monotonic() + 60
        while emu.ledger()["paid"] < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert emu.ledger()["paid"] == 8, "every row should be submitted before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not list(out.glob("*.png")), "killed before any download"
        journal = RowJournal(OutputLocation(out)).load_all()
        assert {r.status for r in journal.values()} <= {"submitting", "submitted"}
        rerun = _cli(emu, table, out, env)
        _stdout, stderr = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, stderr.decode()
        ledger = emu.ledger()
    assert ledger["paid"] == 8
    assert set(ledger["paid_by_client_business_id"].values()) == {1}
    images = sorted(out.glob("*.png"))
    assert len(images) == 8
    for image in images:
        assert_valid_image(str(image))


async def test_an_unexpected_error_keeps_the_job_and_the_rerun_pays_nothing(
    emulator: Any, out_dir: Path
) -> None:
    class BrokenDownloads(ToAPIsClient):
        async def download(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError(28, "No space left on device")

    broken = BrokenDownloads(FAKE_KEY, emulator.url, poll=FAST_POLL, submit_rate=1000, submit_burst=1000)
    first = await run(emulator, out_dir, rows(2), client=broken)
    assert {r.status for r in first} == {"failed"} and {r.error_type for r in first} == {"OSError"}
    assert all(r.job_id for r in first)
    again = await run(emulator, out_dir, rows(2))
    assert {r.status for r in again} == {"succeeded"}
    assert emulator.ledger()["paid"] == 2
