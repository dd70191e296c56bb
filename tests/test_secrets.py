"""The API key never leaves the request headers: not in logs, results, artifacts, manifests, errors.

Every failure path runs with a recognizable fake key; then every place a user or an operator can
read is searched for it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from nb_testing import FAKE_KEY

from prefect_nanobanana import ToAPIsCredentials, TTAPICredentials
from prefect_nanobanana.flows import generate_image_set

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"poll_first_delay": 0.1, "poll_min_interval": 0.1, "poll_max_interval": 0.2}

FAILURE_PATHS: list[tuple[str, dict[str, Any]]] = [
    ("toapis", {"submit_error": {"status": 401}}),
    ("toapis", {"submit_error": {"status": 402}}),
    ("toapis", {"submit_error": {"status": 400}}),
    ("toapis", {"submit_error": {"status": 429, "count": 2, "retry_after": 0}}),
    ("toapis", {"submit_error": {"status": 500, "count": 2}}),
    ("toapis", {"submit_drop": {"count": 1}}),
    ("toapis", {"content_policy": {"at": "task"}}),
    ("toapis", {"task_failure": {}}),
    ("toapis", {"query_error": {"status": 503, "count": 2}}),
    ("toapis", {"download_truncated": {"count": 1}}),
    ("toapis", {"download_corrupt": {}}),
    ("ttapi", {"ttapi_error": {"status": 401}}),
    ("ttapi", {"ttapi_error": {"status": 402}}),
    ("ttapi", {"ttapi_error": {"status": 504}}),
    ("ttapi", {"ttapi_drop": {"count": 1}}),
    ("ttapi", {"ttapi_failed": {}}),
]


def _all_text_under(path: Path) -> str:
    chunks = []
    for file in path.rglob("*"):
        if file.is_file() and file.stat().st_size < 5_000_000:
            chunks.append(file.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


async def test_the_key_appears_nowhere(
    emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    for i, (provider, faults) in enumerate(FAILURE_PATHS):
        emulator.reset()
        emulator.set_faults(**faults)
        creds: Any = (
            ToAPIsCredentials(api_key=FAKE_KEY, base_url=emulator.url, **FAST)
            if provider == "toapis"
            else TTAPICredentials(api_key=FAKE_KEY, base_url=emulator.url)
        )
        try:
            await generate_image_set(
                table=[{"prompt": f"secret path {i}"}],
                provider=provider,
                output=str(tmp_path / f"out{i}"),
                toapis_credentials=creds if provider == "toapis" else None,
                ttapi_credentials=creds if provider == "ttapi" else None,
                model="nano-banana-2",
                max_resubmits=0,
            )
        except Exception as exc:  # failures are the point; their text is searched below
            errors.append(f"{exc!s}\n{exc!r}")

    from prefect.client.orchestration import get_client

    async with get_client() as client:
        logs = await client.read_logs()
        artifacts = await client.read_artifacts()
        runs = await client.read_flow_runs()
        task_runs = await client.read_task_runs()
    places = {
        "exceptions": "\n".join(errors),
        "python logs": caplog.text,
        "prefect logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(str(a.data) + str(a.description) for a in artifacts),
        "flow run parameters and states": "\n".join(f"{r.parameters} {r.state}" for r in runs),
        "task runs": "\n".join(f"{t.name} {t.state}" for t in task_runs),
        "outputs (images, journal, manifests)": _all_text_under(tmp_path),
        "prefect home (results, caches)": _all_text_under(Path(os.environ["PREFECT_HOME"])),
    }
    assert errors, "the failure paths should have produced errors"
    assert len(logs) > 0
    for place, text in places.items():
        assert FAKE_KEY not in text, f"the API key leaked into {place}"
        assert FAKE_KEY[8:] not in text, f"part of the API key leaked into {place}"
