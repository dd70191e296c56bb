"""What the benchmark and chaos drivers share: child processes, the emulator, a Prefect server,
generated tables, the ideal bound, and reading the emulator's ledger.

The emulator and the Prefect server each run in a process of their own (started here), so that
neither their CPU time nor their memory is counted against the process that runs our code, and so
that a SIGKILLed run leaves the provider (the emulator) and its ledger intact.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from prefect_nanobanana.emulator import EmulatorControl

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable


@dataclass(frozen=True)
class Limits:
    """A ToAPIs account's limits and the emulated task latency, in real (already scaled) seconds.

    The defaults are the documented `default` group (providers.md 1.8: submit 5/s, burst 50; query
    50/s, burst 500) and a typical 10 s task (the docs give 5-30 s) with a +-2 s spread, all scaled 4x
    in time, so a 400-row benchmark takes seconds instead of minutes while keeping every ratio.
    """

    submit_rate: float = 20.0
    submit_burst: int = 200
    query_rate: float = 200.0
    query_burst: int = 2000
    latency: float = 2.5
    latency_spread: float = 0.5
    poll_first: float = 1.25
    poll_min: float = 1.25
    poll_max: float = 2.5

    def emulator_config(self) -> dict[str, Any]:
        """The `EmulatorConfig` fields that set these limits and latencies."""
        return {
            "submit_rate": self.submit_rate,
            "submit_burst": self.submit_burst,
            "query_rate": self.query_rate,
            "query_burst": self.query_burst,
            "latency": self.latency,
            "latency_spread": self.latency_spread,
            "latency_distribution": "uniform",
        }

    def client_args(self) -> list[str]:
        """The same limits and the poll schedule as `benchmarks/ours.py` arguments."""
        return [
            "--submit-rate", str(self.submit_rate), "--submit-burst", str(self.submit_burst),
            "--query-rate", str(self.query_rate), "--query-burst", str(self.query_burst),
            "--poll-first", str(self.poll_first), "--poll-min", str(self.poll_min), "--poll-max", str(self.poll_max),
        ]  # fmt: skip


def ideal_seconds(rows: int, limits: Limits, download_s: float) -> float:
    """The fastest any client could finish `rows` images under these limits.

    The last submit gets through the provider's bucket after the burst and then one token per
    `1/submit_rate` seconds; its task then takes the mean latency, and its image one download. Polling
    delays, the client's own work and the spread of latencies are all left out, so no real client
    reaches this bound; `ideal_over_ours` says how close we come.
    """
    submit_s = max(0, rows - limits.submit_burst) / limits.submit_rate
    return submit_s + limits.latency + download_s


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM the process we started (by its pid), then SIGKILL if it does not go."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@contextlib.contextmanager
def emulator_process(
    limits: Limits | None,
    *,
    faults: dict[str, Any] | None = None,
    seed: int | None = None,
    extra_config: dict[str, Any] | None = None,
    log: Path | None = None,
) -> Iterator[tuple[str, EmulatorControl]]:
    """Run `python -m prefect_nanobanana.emulator` on 127.0.0.1 in its own process; yield its base URL
    and a control client. `limits=None` keeps the emulator's own (documented, unscaled) defaults."""
    port = free_port()
    config = {**(limits.emulator_config() if limits else {}), **(extra_config or {})}
    cmd = [PYTHON, "-m", "prefect_nanobanana.emulator", "--host", "127.0.0.1", "--port", str(port)]
    if config:
        cmd += ["--config", json.dumps(config)]
    if faults:
        cmd += ["--faults", json.dumps(faults)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    control = EmulatorControl(url)
    try:
        control.wait_ready(timeout=30)
        yield url, control
    finally:
        control.close()
        stop_process(proc)
        if log:
            out.close()  # type: ignore[union-attr]


@dataclass
class PrefectServer:
    """A `prefect server start` process with a private PREFECT_HOME."""

    proc: subprocess.Popen[bytes]
    api_url: str
    home: str
    startup_s: float

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a process that should use this server."""
        env = dict(base if base is not None else os.environ)
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=self.home,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        return env


@contextlib.contextmanager
def prefect_server(log: Path | None = None, timeout: float = 120.0) -> Iterator[PrefectServer]:
    """Start `prefect server start` on 127.0.0.1 with a fresh PREFECT_HOME; yield once it is healthy."""
    home = tempfile.mkdtemp(prefix="nanobanana-bench-prefect-")
    port = free_port()
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=home,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_ENABLED="false",
    )
    env.pop("PREFECT_API_URL", None)
    prefect = str(Path(PYTHON).with_name("prefect"))
    cmd = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    out = open(log, "wb") if log else subprocess.DEVNULL
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {proc.returncode}" + (f"; see {log}" if log else "")
                )
            try:
                if httpx.get(f"{api_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prefect server did not become healthy")
            time.sleep(0.25)
        yield PrefectServer(proc, api_url, home, time.perf_counter() - started)
    finally:
        stop_process(proc, timeout=20)
        if log:
            out.close()  # type: ignore[union-attr]
        shutil.rmtree(home, ignore_errors=True)


def write_table(path: Path, rows: int, tag: str) -> Path:
    """A CSV prompt table of `rows` distinct prompts (nothing is deduplicated), tagged so the
    emulator's ledger can tell this table's submissions from any other's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt"])
        for i in range(1, rows + 1):
            writer.writerow([f"[{tag} {i:05d}] a ripe banana on a wooden table, studio light, variation {i}"])
    return path


def tagged(ledger: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """The ledger's submissions whose prompt carries `tag` (see `write_table`)."""
    marker = f"[{tag} "
    return [s for s in ledger["submissions"] if s["prompt"].startswith(marker)]


@dataclass
class ChildResult:
    """What `benchmarks/ours.py` reported, plus how its process ended."""

    returncode: int
    report: dict[str, Any] | None
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.report is not None and not self.report.get("error")


def run_ours(args: Sequence[str], env: dict[str, str], timeout: float = 900.0) -> ChildResult:
    """Run `benchmarks/ours.py` with `args` to completion and parse its `BENCH-RESULT` line."""
    proc = subprocess.run(
        [PYTHON, str(BENCH_DIR / "ours.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return ChildResult(proc.returncode, parse_report(proc.stdout), proc.stdout + proc.stderr)


def parse_report(stdout: str) -> dict[str, Any] | None:
    """The JSON of the last `BENCH-RESULT` line of `stdout`, if any."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("BENCH-RESULT "):
            report: dict[str, Any] = json.loads(line.removeprefix("BENCH-RESULT "))
            return report
    return None
