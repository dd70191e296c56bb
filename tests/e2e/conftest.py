"""End-to-end set-up: a real Prefect server, the deployments of `deployments/prefect.yaml` on a process
work pool, and two process workers, all on 127.0.0.1 and started with the commands of
`deployments/README.md` (block registration, work pool, `prefect deploy --all`, workers).

Everything runs in a temporary Prefect home, removed at the end of the session; every process
started here is stopped by its id, and its log is kept in out/e2e-logs/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from nb_testing import FAKE_KEY

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCREENSHOTS = ROOT / "out" / "e2e-screenshots"
LOGS = ROOT / "out" / "e2e-logs"
POOL = "nanobanana-pool"  # the pool named in deployments/prefect.yaml
WORKERS = ("e2e-worker-a", "e2e-worker-b")
WORKER_LIMIT = 2  # a parent run and one chunk, or two chunks, per worker
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "e2e-fake-access-key-id",
    "AWS_SECRET_ACCESS_KEY": "e2e-fake-secret-access-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a process started here in its own session, with the children it started (flow runs)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    except ProcessLookupError:
        pass


@dataclass
class PrefectStack:
    """A running Prefect server with the project's deployments and two process workers."""

    home: Path
    api_url: str
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    # -- commands, as a user types them ----------------------------------------------------------
    def run(self, *args: str, timeout: float = 180, extra_env: dict[str, str] | None = None) -> str:
        """Run a command from the project root with this stack's environment; return its output."""
        cmd = [str(BIN / args[0]) if (BIN / args[0]).exists() else args[0], *args[1:]]
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise AssertionError(f"command failed ({done.returncode}): {' '.join(args)}\n{output}")
        return output

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start a long-running command in its own session, output to `<home>/<name>.log`."""
        log = self.home / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def save_toapis_block(self, name: str, base_url: str) -> None:
        """A ToAPIs credentials block with a made-up key, pointed at the emulator, polling quickly."""
        code = (
            "from prefect_nanobanana import ToAPIsCredentials; "
            f"ToAPIsCredentials(api_key={FAKE_KEY!r}, base_url={base_url!r}, poll_first_delay=0.3, "
            f"poll_min_interval=0.3, poll_max_interval=0.6).save({name!r}, overwrite=True)"
        )
        self.run("python", "-c", code)

    def trigger(self, deployment: str, parameters: dict[str, Any]) -> str:
        """`prefect deployment run NAME --params JSON`; return the new flow run's id."""
        output = self.run("prefect", "deployment", "run", deployment, "--params", json.dumps(parameters))
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
        assert found, f"no flow run id in the output of prefect deployment run:\n{output}"
        return found.group(1)

    # -- the REST API -----------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def deployment(self, name: str) -> dict[str, Any]:
        return self.api("GET", f"/deployments/name/{name}")  # type: ignore[no-any-return]

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/flow_runs/{flow_run_id}")  # type: ignore[no-any-return]

    def wait_for_flow_run(self, flow_run_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(flow_run_id)
            if run["state_type"] in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"flow run {flow_run_id} still {run['state_type']} after {timeout:.0f} s\n{self.report()}"
                )
            time.sleep(1)

    def flow_runs_of(self, deployment: str) -> list[dict[str, Any]]:
        dep = self.deployment(deployment)
        body = {"deployments": {"id": {"any_": [dep["id"]]}}, "limit": 200}
        return self.api("POST", "/flow_runs/filter", body)  # type: ignore[no-any-return]

    def workers_of(self, flow_run_ids: list[str], timeout: float = 20) -> dict[str, str]:
        """The worker that ran each flow run, from the workers' own logs: a worker writes "Worker
        'NAME' submitting flow run 'ID'" before it claims a run, and "Aborted submission of flow run
        'ID'" when another worker claimed it first (both poll the same queue), so the winner is the
        one that submitted and did not abort."""
        submitting = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")
        aborted = re.compile(r"Aborted submission of flow run '([0-9a-f-]{36})'")
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, str] = {}
            for name in WORKERS:
                text = self.logs[name].read_text(errors="replace")
                lost = set(aborted.findall(text))
                found.update({run: worker for worker, run in submitting.findall(text) if run not in lost})
            if set(found) >= set(flow_run_ids) or time.monotonic() > deadline:
                return {run: found[run] for run in flow_run_ids if run in found}
            time.sleep(1)

    def report(self) -> str:
        """The tail of every server and worker log, for failure messages."""
        return "\n".join(f"--- {name} ---\n{tail(path)}" for name, path in self.logs.items())


def _wait_until(check: Any, timeout: float, what: str, stack: PrefectStack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in stack.procs):
            raise AssertionError(f"a process exited while waiting for {what}\n{stack.report()}")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{stack.report()}")


@pytest.fixture(scope="session")
def prefect_stack() -> Iterator[PrefectStack]:
    """Server, blocks, work pool, deployments and two workers, set up as deployments/README.md says."""
    home = Path(tempfile.mkdtemp(prefix="nanobanana-e2e-"))
    api_url = f"http://127.0.0.1:{free_port()}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "TOAPIS_", "TTAPI_"))}
    env.update(
        PREFECT_HOME=str(home / "prefect-home"),
        PREFECT_API_URL=api_url,
        PREFECT_UI_API_URL=api_url,  # the UI is served with the API address it calls
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",  # workers notice new chunk runs within a second
        PREFECT_LOGGING_LEVEL="INFO",
        PWD=str(ROOT),  # `prefect deploy` fills the pull step's {{ $PWD }} with it, as a shell would
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
        **FAKE_AWS,
    )
    stack = PrefectStack(home, api_url, env)
    try:
        port = api_url.split(":")[2].split("/")[0]
        stack.start("server", "prefect", "server", "start", "--host", "127.0.0.1", "--port", port)
        _wait_until(
            lambda: httpx.get(f"{api_url}/health", timeout=2).status_code == 200, 120, "the server", stack
        )
        stack.run("prefect", "block", "register", "-m", "prefect_nanobanana")
        stack.run("prefect", "work-pool", "create", POOL, "--type", "process")
        stack.run("prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
        for name in WORKERS:
            stack.start(
                name,
                "prefect",
                "worker",
                "start",
                "--pool",
                POOL,
                "--name",
                name,
                "--limit",
                str(WORKER_LIMIT),
            )

        def workers_online() -> bool:
            workers = stack.api("POST", f"/work_pools/{POOL}/workers/filter", {})
            return {w["name"] for w in workers if w.get("status") == "ONLINE"} >= set(WORKERS)

        _wait_until(workers_online, 60, "both workers", stack)
        yield stack
    finally:
        for proc in reversed(stack.procs):
            stop_process(proc)
        # Keep the server's and workers' logs where a failure can be looked into; drop the rest.
        LOGS.mkdir(parents=True, exist_ok=True)
        for name, path in stack.logs.items():
            if path.exists():
                shutil.copyfile(path, LOGS / f"{name}.log")
        shutil.rmtree(home, ignore_errors=True)
