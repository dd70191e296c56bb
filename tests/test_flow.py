"""The generate-image-set flow end to end: a Prefect API, the emulator over sockets, real files."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from nb_testing import FAKE_KEY
from PIL import Image

from prefect_nanobanana.errors import TableValidationError
from prefect_nanobanana.flows import ImageSetIncomplete, generate_image_set

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"poll_first_delay": 0.1, "poll_min_interval": 0.1, "poll_max_interval": 0.2}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOAPIS_API_KEY", FAKE_KEY)
    monkeypatch.setenv("TTAPI_API_KEY", FAKE_KEY)


def toapis_block(emu: Any) -> Any:
    from prefect_nanobanana import ToAPIsCredentials

    return ToAPIsCredentials(api_key=FAKE_KEY, base_url=emu.url, **FAST)


def write_table(path: Path, rows: list[dict[str, Any]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def table_rows(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"prompt": f"a ripe banana number {i}", **extra} for i in range(n)]


async def test_all_rows_succeed_with_manifests_contact_sheet_and_artifacts(
    emulator: Any, tmp_path: Path
) -> None:
    rows = [
        *table_rows(3),
        {"prompt": "a banana on TTAPI", "provider": "ttapi", "model": "nano-banana-2", "aspect_ratio": "4:1"},
    ]
    table = write_table(tmp_path / "t.csv", rows)
    out = tmp_path / "out"
    summary = await generate_image_set(
        table=str(table),
        output=str(out),
        toapis_credentials=toapis_block(emulator),
        base_url=emulator.url,
        model="nano-banana-2",
        aspect_ratio="16:9",
    )
    assert summary["by_status"] == {"succeeded": 4}
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert list(manifest["status"]) == ["succeeded"] * 4
    assert set(pd.read_csv(out / "manifest.csv")["row_key"]) == set(manifest["row_key"])
    for line in manifest.itertuples():
        with Image.open(line.image_path) as image:
            assert image.size == (line.width, line.height)
    assert manifest.loc[manifest["provider"] == "ttapi", "width"].item() == 2048  # 4:1 at 1K
    assert "<img" in (out / "index.html").read_text()
    assert emulator.ledger()["paid"] == 4

    from prefect.client.orchestration import get_client

    async with get_client() as client:
        artifacts = await client.read_artifacts()
    kinds = {a.type for a in artifacts}
    assert {"progress", "table", "markdown"} <= kinds
    gallery = [a for a in artifacts if a.type == "markdown" and "Gallery" in str(a.data)]
    assert gallery and "data:image/jpeg;base64," in str(gallery[-1].data)


async def test_mixed_failures_are_recorded_and_fail_the_run_after_the_manifest(
    emulator: Any, tmp_path: Path
) -> None:
    emulator.set_faults(content_policy={"match": "forbidden", "at": "task"})
    rows = [*table_rows(3), {"prompt": "a forbidden banana"}]
    out = tmp_path / "out"
    with pytest.raises(ImageSetIncomplete, match="1 row"):
        await generate_image_set(
            table=rows, output=str(out), toapis_credentials=toapis_block(emulator), model="nano-banana-2"
        )
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["status"]) == ["failed", "succeeded", "succeeded", "succeeded"]
    failed = manifest[manifest["status"] == "failed"].iloc[0]
    assert failed["error_type"] == "ContentPolicyError" and failed["prompt"] == "a forbidden banana"


async def test_budget_stops_submitting_and_marks_rows_over_budget(emulator: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = await generate_image_set(
        table=table_rows(6),
        output=str(out),
        toapis_credentials=toapis_block(emulator),
        model="nano-banana-2",
        max_cost=0.1,
        max_concurrency=1,
    )
    assert summary["by_status"] == {"succeeded": 4, "over_budget": 2}  # $0.025 each at 1K
    assert summary["spent_usd"] <= 0.1
    assert emulator.ledger()["paid"] == 4


async def test_dry_run_validates_and_estimates_without_paying(emulator: Any, tmp_path: Path) -> None:
    summary = await generate_image_set(
        table=table_rows(5),
        output=str(tmp_path / "out"),
        toapis_credentials=toapis_block(emulator),
        model="nano-banana-pro",
        resolution="4K",
        dry_run=True,
    )
    assert summary["dry_run"] is True
    assert summary["estimate"]["to_submit"] == 5
    assert summary["estimate"]["estimated_cost_usd"] == pytest.approx(5 * 0.24)
    assert emulator.ledger()["paid"] == 0
    assert emulator.stats()["requests"] == {} or sum(emulator.stats()["requests"].values()) == 0


async def test_bad_table_is_reported_whole_before_any_paid_call(emulator: Any, tmp_path: Path) -> None:
    rows = [
        {"prompt": "fine", "model": "nano-banana-pro", "aspect_ratio": "16:9"},
        {"prompt": "", "model": "nano-banana-pro", "aspect_ratio": "16:9"},
        {"prompt": "too wide", "model": "nano-banana-pro", "aspect_ratio": "8:1"},
        {"prompt": "no such model", "model": "dall-e", "aspect_ratio": "1:1"},
        {"prompt": "fine too", "model": "nano-banana", "resolution": "4K"},
    ]
    with pytest.raises(TableValidationError) as info:
        await generate_image_set(
            table=rows, output=str(tmp_path / "out"), toapis_credentials=toapis_block(emulator)
        )
    text = str(info.value)
    for row, column in [(2, "prompt"), (3, "aspect_ratio"), (4, "model"), (5, "resolution")]:
        assert f"row {row}, column '{column}'" in text, text
    assert "row 1," not in text
    assert emulator.ledger()["paid"] == 0
    assert not (tmp_path / "out" / "manifest.parquet").exists()


async def test_skip_invalid_rows_runs_the_rest_and_lists_them_as_invalid(
    emulator: Any, tmp_path: Path
) -> None:
    rows = [*table_rows(2), {"prompt": "bad ratio", "aspect_ratio": "7:3"}]
    out = tmp_path / "out"
    summary = await generate_image_set(
        table=rows,
        output=str(out),
        toapis_credentials=toapis_block(emulator),
        model="nano-banana-2",
        on_invalid="skip",
    )
    assert summary["by_status"] == {"succeeded": 2, "invalid": 1}
    manifest = pd.read_csv(out / "manifest.csv")
    assert "aspect_ratio" in manifest.loc[manifest["status"] == "invalid", "error"].item()


async def test_duplicate_rows_are_generated_once(emulator: Any, tmp_path: Path) -> None:
    rows = table_rows(2) + table_rows(1)
    out = tmp_path / "out"
    summary = await generate_image_set(
        table=rows, output=str(out), toapis_credentials=toapis_block(emulator), model="nano-banana-2"
    )
    assert emulator.ledger()["paid"] == 2
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == 3 and summary["duplicates"] == 1
    dup = manifest[manifest["duplicate_of"].notna()].iloc[0]
    assert dup["image_path"] == manifest[manifest["row"] == dup["duplicate_of"]].iloc[0]["image_path"]


def _subprocess_flow(
    emu: Any, table: Path, out: Path, home: Path, kill_after_paid: int | None = None
) -> subprocess.CompletedProcess[str] | None:
    """Run the flow in another process with its own Prefect home, against this session's API."""
    from prefect.settings import PREFECT_API_URL

    code = (
        "import asyncio, sys\n"
        "from prefect_nanobanana.flows import generate_image_set\n"
        f"asyncio.run(generate_image_set(table={str(table)!r}, output={str(out)!r}, base_url={emu.url!r}, "
        "model='nano-banana-2', max_concurrency=4))\n"
    )
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "TOAPIS_API_KEY": FAKE_KEY,
    }
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


async def test_rerun_with_a_fresh_prefect_home_pays_nothing(emulator: Any, tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.csv", table_rows(4))
    out = tmp_path / "out"
    first = await asyncio.to_thread(_subprocess_flow, emulator, table, out, tmp_path / "home-a")
    assert first is not None and first.returncode == 0, first.stderr[-3000:] if first else ""
    assert emulator.ledger()["paid"] == 4
    second = await asyncio.to_thread(_subprocess_flow, emulator, table, out, tmp_path / "home-b")
    assert second is not None and second.returncode == 0, second.stderr[-3000:]
    assert emulator.ledger()["paid"] == 4


async def test_resume_after_a_crash_mid_run_pays_each_row_once(emulator: Any, tmp_path: Path) -> None:
    from prefect_nanobanana.journal import RowJournal
    from prefect_nanobanana.storage import OutputLocation

    # A first run that dies after submitting: every download fails hard, as if the process had gone.
    emulator.set_faults(download_error={"status": 500})
    out = tmp_path / "out"
    with pytest.raises(ImageSetIncomplete):
        await generate_image_set(
            table=table_rows(3),
            output=str(out),
            toapis_credentials=toapis_block(emulator),
            model="nano-banana-2",
        )
    journal = RowJournal(OutputLocation(out)).load_all()
    assert all(r.job_id for r in journal.values())
    emulator.set_faults(download_error=[])
    summary = await generate_image_set(
        table=table_rows(3), output=str(out), toapis_credentials=toapis_block(emulator), model="nano-banana-2"
    )
    assert summary["by_status"] == {"succeeded": 3}
    assert emulator.ledger()["paid"] == 3


async def test_output_to_s3_on_a_moto_server(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="images")
        options = {"client_kwargs": {"endpoint_url": endpoint}}
        summary = await generate_image_set(
            table=table_rows(3),
            output="s3://images/run1",
            toapis_credentials=toapis_block(emulator),
            model="nano-banana-2",
            storage_options=options,
        )
        assert summary["by_status"] == {"succeeded": 3}
        import s3fs

        fs = s3fs.S3FileSystem(**options)
        fs.invalidate_cache()
        names = {p.rsplit("/", 1)[-1] for p in fs.ls("images/run1")}
        assert {"manifest.parquet", "manifest.csv", "index.html"} <= names
        pngs = [p for p in fs.find("images/run1") if p.endswith(".png")]
        assert len(pngs) == 3
        for path in pngs:
            with fs.open(path, "rb") as fh, Image.open(fh) as image:
                image.verify()
        again = await generate_image_set(
            table=table_rows(3),
            output="s3://images/run1",
            toapis_credentials=toapis_block(emulator),
            model="nano-banana-2",
            storage_options=options,
        )
        assert again["skipped_done"] == 3 and emulator.ledger()["paid"] == 3
        assert json.dumps(again).count("testing") == 0
    finally:
        server.stop()
