"""The `nanobanana` command: same behaviour as the flow, with exit codes a script can rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from nb_testing import FAKE_KEY


def nanobanana(*args: str, key: str | None = FAKE_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TOAPIS_API_KEY", "TTAPI_API_KEY")}
    if key:
        env |= {"TOAPIS_API_KEY": key, "TTAPI_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "prefect_nanobanana.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def table(tmp_path: Path, rows: list[dict[str, Any]]) -> str:
    path = tmp_path / "prompts.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_generate_exits_0_when_every_row_succeeds(emulator: Any, tmp_path: Path) -> None:
    t = table(tmp_path, [{"prompt": f"cli banana {i}"} for i in range(3)])
    done = nanobanana(
        "generate",
        t,
        "--provider",
        "toapis",
        "--out",
        str(tmp_path / "out"),
        "--base-url",
        emulator.url,
        "--model",
        "nano-banana-2",
        "--aspect-ratio",
        "9:16",
    )
    assert done.returncode == 0, done.stderr
    assert "3 succeeded" in done.stdout
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert list(manifest["status"]) == ["succeeded"] * 3 and set(manifest["aspect_ratio"]) == {"9:16"}
    assert emulator.ledger()["paid"] == 3
    assert FAKE_KEY not in done.stdout + done.stderr


def test_generate_exits_1_when_some_rows_fail(emulator: Any, tmp_path: Path) -> None:
    emulator.set_faults(content_policy={"match": "forbidden"})
    t = table(tmp_path, [{"prompt": "fine banana"}, {"prompt": "forbidden banana"}])
    done = nanobanana(
        "generate", t, "--out", str(tmp_path / "out"), "--base-url", emulator.url, "--model", "nano-banana-2"
    )
    assert done.returncode == 1, done.stderr
    assert "1 failed" in done.stdout and "1 succeeded" in done.stdout


def test_invalid_table_exits_2_naming_rows_and_pays_nothing(emulator: Any, tmp_path: Path) -> None:
    t = table(
        tmp_path,
        [
            {"prompt": "ok", "model": "nano-banana-pro"},
            {"prompt": "x", "model": "nano-banana-pro", "resolution": "0.5K"},
        ],
    )
    done = nanobanana("generate", t, "--out", str(tmp_path / "out"), "--base-url", emulator.url)
    assert done.returncode == 2
    assert "row 2, column 'resolution'" in done.stderr
    assert emulator.ledger()["paid"] == 0


def test_usage_error_exits_2(tmp_path: Path) -> None:
    assert nanobanana("generate").returncode == 2
    assert nanobanana("generate", "t.csv", "--provider", "dalle").returncode == 2


def test_estimate_is_a_dry_run(emulator: Any, tmp_path: Path) -> None:
    t = table(tmp_path, [{"prompt": f"estimate {i}", "resolution": "4K"} for i in range(4)])
    done = nanobanana(
        "estimate", t, "--out", str(tmp_path / "out"), "--base-url", emulator.url, "--model", "nano-banana-2"
    )
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)
    assert estimate["to_submit"] == 4 and estimate["estimated_cost_usd"] == pytest.approx(4 * 0.04)
    assert emulator.ledger()["paid"] == 0 and not (tmp_path / "out").exists()


def test_missing_key_is_a_clear_error(emulator: Any, tmp_path: Path) -> None:
    t = table(tmp_path, [{"prompt": "no key"}])
    done = nanobanana(
        "generate",
        t,
        "--out",
        str(tmp_path / "out"),
        "--base-url",
        emulator.url,
        "--model",
        "nano-banana-2",
        key=None,
    )
    assert done.returncode != 0 and "TOAPIS_API_KEY" in done.stderr
    assert emulator.ledger()["paid"] == 0


def test_bad_key_stops_with_exit_3(tmp_path: Path) -> None:
    from prefect_nanobanana.emulator import EmulatorServer

    with EmulatorServer(api_key="the-right-key", latency=0.2, rate_limits=False) as emu:
        t = table(tmp_path, [{"prompt": f"wrong key {i}"} for i in range(3)])
        done = nanobanana(
            "generate", t, "--out", str(tmp_path / "out"), "--base-url", emu.url, "--model", "nano-banana-2"
        )
        assert done.returncode == 3
        assert "AuthenticationError" in done.stdout + done.stderr or "API key" in done.stderr
        assert emu.ledger()["paid"] == 0
        assert FAKE_KEY not in done.stdout + done.stderr


def test_nanobanana_emulator_serves_the_documented_example() -> None:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect_nanobanana.cli", "emulator", "--port", "0", "--latency", "0.2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        body = {
            "model": "gemini-3-pro-image-preview",
            "prompt": "Enhance the colors and details of this city photo",
            "size": "16:9",
            "n": 1,
            "metadata": {"resolution": "2K"},
            "image_urls": ["https://example.com/city.jpg"],
        }
        task = httpx.post(
            f"{url}/v1/images/generations", json=body, headers={"Authorization": "Bearer any-key"}
        ).json()
        assert task["object"] == "generation.task" and task["status"] == "queued"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
