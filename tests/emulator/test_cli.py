"""The emulator as its own process: `python -m prefect_nanobanana.emulator`, driven by curl and EmulatorControl."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from prefect_nanobanana.emulator import EmulatorControl
from prefect_nanobanana.emulator.cli import build_parser, main

DOCUMENTED_EXAMPLE = (
    '{"model": "gemini-3-pro-image-preview", '
    '"prompt": "Enhance the colors and details of this city photo", '
    '"size": "16:9", "n": 1, "metadata": {"resolution": "2K"}, '
    '"image_urls": ["https://example.com/city.jpg"]}'
)


@pytest.fixture(scope="module")
def emulator_process() -> Iterator[str]:
    """Start `python -m prefect_nanobanana.emulator --port 0` and yield its URL from the first stdout line."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect_nanobanana.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--latency",
            "0.2",
            "--time-scale",
            "2",
            "--faults",
            json.dumps({"task_failure": {"match": "doomed"}}),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("nanobanana emulator listening on http://127.0.0.1:"), (
            line,
            process.stderr.read() if process.poll() is not None and process.stderr else "",
        )
        url = line.rsplit(" ", 1)[1].strip()
        with EmulatorControl(url) as control:
            control.wait_ready(timeout=20)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _curl(*args: str) -> tuple[int, bytes]:
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, check=True, timeout=30
    )
    body, _, code = result.stdout.rpartition(b"\n")
    return int(code), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_documented_example_against_the_cli_process(emulator_process: str) -> None:
    auth = ["-H", "Authorization: Bearer cli-key"]
    code, body = _curl(
        "-X", "POST", f"{emulator_process}/v1/images/generations",
        *auth, "-H", "Content-Type: application/json", "-d", DOCUMENTED_EXAMPLE,
    )  # fmt: skip
    assert code == 200, body
    task: dict[str, Any] = json.loads(body)
    assert task["object"] == "generation.task" and task["status"] == "queued"

    deadline = time.monotonic() + 10
    while True:
        code, body = _curl(f"{emulator_process}/v1/images/generations/{task['id']}", *auth)
        assert code == 200
        status = json.loads(body)
        if status["status"] == "completed":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, image = _curl(status["result"]["data"][0]["url"])
    assert code == 200
    with Image.open(io.BytesIO(image)) as decoded:
        assert decoded.size == (2752, 1536)

    code, body = _curl(
        f"{emulator_process}/v1/images/generations/{task['id']}", "-H", "Authorization: Bearer nope"
    )
    assert code == 401


def test_cli_flags_reach_the_process(emulator_process: str) -> None:
    with EmulatorControl(emulator_process) as control:
        config = control.config()
        assert config["api_key"] == "cli-key"
        assert config["latency"] == 0.2 and config["time_scale"] == 2.0
        assert control.faults()["task_failure"][0]["match"] == "doomed"


def test_parser_and_usage_errors() -> None:
    args = build_parser().parse_args(["--port", "9", "--no-rate-limits", "--latency-spread", "0.5"])
    assert args.port == 9 and args.no_rate_limits and args.latency_spread == 0.5
    with pytest.raises(SystemExit):
        main(["--faults", "{not json"])
    with pytest.raises(SystemExit):
        main(["--faults", '{"no_such_fault": {}}'])
    with pytest.raises(SystemExit):
        main(["--time-scale", "-1"])
