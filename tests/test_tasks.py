"""The Prefect tasks in a user's own flow: cached submit, polling in one task run, checked download."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nb_testing import FAKE_KEY
from PIL import Image
from prefect import flow

from prefect_nanobanana import ImageRequest, ToAPIsCredentials, TTAPICredentials
from prefect_nanobanana.tasks import download_image, submit_image, upload_reference_image, wait_for_image

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"poll_first_delay": 0.1, "poll_min_interval": 0.1, "poll_max_interval": 0.2}


@flow
async def one_image(request: ImageRequest, creds: Any, out: str, name: str) -> dict[str, Any]:
    job = await submit_image(request, creds, output=out, name=name)
    result = await wait_for_image(job, creds, request=request)
    image = await download_image(result, creds, destination=out, name=name, row_key=request.row_key)
    return image.model_dump()


def request(prompt: str = "a banana in a task") -> ImageRequest:
    return ImageRequest(provider="toapis", prompt=prompt, model="nano-banana-2", aspect_ratio="3:2")


async def test_same_inputs_twice_pay_once(emulator: Any, tmp_path: Path) -> None:
    creds = ToAPIsCredentials(api_key=FAKE_KEY, base_url=emulator.url, **FAST)
    first = await one_image(request(), creds, str(tmp_path), "banana")
    with Image.open(first["path"]) as image:
        assert image.size == (first["width"], first["height"]) == (1264, 848)
    second = await one_image(request(), creds, str(tmp_path), "banana")
    assert second["sha256"] == first["sha256"]
    assert emulator.ledger()["paid"] == 1


async def test_a_deleted_image_is_downloaded_again_not_paid_again(emulator: Any, tmp_path: Path) -> None:
    creds = ToAPIsCredentials(api_key=FAKE_KEY, base_url=emulator.url, **FAST)
    first = await one_image(request("deleted later"), creds, str(tmp_path), "gone")
    Path(first["path"]).unlink()
    again = await one_image(request("deleted later"), creds, str(tmp_path), "gone")
    assert Path(again["path"]).exists()
    assert emulator.ledger()["paid"] == 1


async def test_wait_polls_inside_one_task_run(emulator: Any, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    emulator.configure(latency=1.0)
    creds = ToAPIsCredentials(api_key=FAKE_KEY, base_url=emulator.url, **FAST)
    await one_image(request("slow one"), creds, str(tmp_path), "slow")
    polls = emulator.stats()["polls_by_task"]
    assert len(polls) == 1
    job_id, count = next(iter(polls.items()))
    assert count >= 3  # several polls of this one job ...
    async with get_client() as client:
        waits = await client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[f"wait-toapis-{job_id}"]))
        )
    assert len(waits) == 1  # ... all inside one wait task run


async def test_dropped_submit_inside_the_task_reattaches(emulator: Any, tmp_path: Path) -> None:
    emulator.set_faults(submit_drop={"count": 1})
    creds = ToAPIsCredentials(api_key=FAKE_KEY, base_url=emulator.url, **FAST)
    image = await one_image(request("dropped"), creds, str(tmp_path), "dropped")
    assert Path(image["path"]).exists()
    assert emulator.ledger()["paid"] == 1


async def test_upload_reference_is_cached_on_file_content(emulator: Any, tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), (200, 180, 20)).save(ref)
    creds = ToAPIsCredentials(api_key=FAKE_KEY, base_url=emulator.url, **FAST)

    @flow
    async def upload_twice() -> list[str]:
        return [await upload_reference_image(str(ref), creds), await upload_reference_image(str(ref), creds)]

    urls = await upload_twice()
    assert urls[0] == urls[1] and urls[0].startswith("http")
    assert emulator.stats()["requests"].get("POST /v1/uploads/images", 0) == 1
    tt = TTAPICredentials(api_key=FAKE_KEY, base_url=emulator.url)

    @flow
    async def ttapi_upload() -> str:
        return await upload_reference_image(str(ref), tt)

    assert (await ttapi_upload()).startswith("data:image/png;base64,")


def test_rerun_of_the_tasks_with_a_fresh_prefect_home_pays_nothing(emulator: Any, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    out = tmp_path / "out"
    code = (
        "import asyncio\n"
        "from prefect import flow\n"
        "from prefect_nanobanana import ImageRequest, ToAPIsCredentials\n"
        "from prefect_nanobanana.tasks import submit_image, wait_for_image, download_image\n"
        "@flow\n"
        "async def f():\n"
        f"    creds = ToAPIsCredentials(api_key={FAKE_KEY!r}, base_url={emulator.url!r}, poll_first_delay=0.1, poll_min_interval=0.1, poll_max_interval=0.2)\n"
        "    req = ImageRequest(provider='toapis', prompt='fresh home', model='nano-banana-2')\n"
        f"    job = await submit_image(req, creds, output={str(out)!r}, name='fresh')\n"
        "    res = await wait_for_image(job, creds)\n"
        f"    await download_image(res, creds, destination={str(out)!r}, name='fresh', row_key=req.row_key)\n"
        "asyncio.run(f())\n"
    )
    for home in ("home-a", "home-b"):
        env = {
            **os.environ,
            "PREFECT_HOME": str(tmp_path / home),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        }
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert emulator.ledger()["paid"] == 1
    assert (out / "fresh.png").exists()
