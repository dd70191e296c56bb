"""Running the emulator: in a background thread (`EmulatorServer`), in the foreground (`serve`), and
controlling one that runs in another process (`EmulatorControl`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from .app import create_app
from .config import EmulatorConfig, FaultConfig
from .state import EmulatorState
from .transport import protocol_class

__all__ = ["EmulatorControl", "EmulatorServer", "serve"]


def _bind(host: str, port: int) -> socket.socket:
    """Bind and listen before uvicorn starts, so port 0 resolves to a known free port at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _uvicorn_config(state: EmulatorState, graceful_seconds: int) -> uvicorn.Config:
    # Hundreds of concurrent clients are the point (benchmarks): no concurrency cap, a deep
    # backlog, and no access log. log_config=None leaves the host process's logging alone.
    return uvicorn.Config(
        create_app(state),
        http=protocol_class(),
        ws="none",
        lifespan="off",
        loop="asyncio",
        log_level="warning",
        log_config=None,
        access_log=False,
        limit_concurrency=None,
        backlog=2048,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=graceful_seconds,
        proxy_headers=False,
    )


def _faults(faults: FaultConfig | Mapping[str, Any] | None) -> FaultConfig | None:
    if faults is None or isinstance(faults, FaultConfig):
        return faults
    return FaultConfig.model_validate(dict(faults))


class EmulatorServer:
    """The emulator on 127.0.0.1 in a background thread, controlled in-process.

    Example:
        with EmulatorServer(latency=0.1) as emu:
            httpx.post(f"{emu.url}/v1/images/generations", ...)
            assert emu.ledger()["paid"] == 1

    `emu.url` is the base for both providers: the ToAPIs client appends `/v1`, the TTAPI client
    uses it as is. Keyword arguments are `EmulatorConfig` fields.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        faults: FaultConfig | Mapping[str, Any] | None = None,
        **config: Any,
    ) -> None:
        self.host = host
        self.state = EmulatorState(EmulatorConfig(api_key=api_key, **config), _faults(faults))
        self._requested_port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (no trailing slash)."""
        if not self.port:
            raise RuntimeError("the emulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Start serving and return once the socket accepts connections. Raises if startup fails."""
        if self._thread is not None:
            return self
        sock = _bind(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(_uvicorn_config(self.state, graceful_seconds=2))
        # uvicorn only installs signal handlers in the main thread, so a thread is safe here.
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"nanobanana-emulator-{self.port}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            server.should_exit = True
            thread.join(2)
            sock.close()
            self.port = 0
            raise RuntimeError("the emulator did not start")
        self._server, self._thread, self._sock = server, thread, sock
        return self

    def stop(self, timeout: float = 10.0, grace: float = 0.5) -> None:
        """Stop serving and wait for the thread. Requests still running after `grace` seconds
        (a TTAPI generation, a slow download) are cancelled and their connections closed."""
        if self._server is None or self._thread is None:
            return
        self.state.begin_close()
        self._server.config.timeout_graceful_shutdown = grace  # type: ignore[assignment]
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self.state.end_close()
        self._server = None
        self._thread = None
        self.port = 0

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control, in-process --------------------------------------------------------------------

    def ledger(self) -> dict[str, Any]:
        """The paid-submission ledger (same JSON as `GET /_emulator/ledger`)."""
        return self.state.ledger_json()

    def stats(self) -> dict[str, Any]:
        """Request counters and concurrency (same JSON as `GET /_emulator/stats`)."""
        return self.state.stats_json()

    def set_faults(
        self, faults: FaultConfig | Mapping[str, Any] | None = None, /, *, merge: bool = False, **kinds: Any
    ) -> FaultConfig:
        """Replace the faults (or, with `merge=True`, only the kinds given); kinds may also be keywords.

        `emu.set_faults(submit_error={"status": 503, "count": 2})` or `emu.set_faults({...})`.
        """
        update = dict(faults.model_dump() if isinstance(faults, FaultConfig) else (faults or {}))
        update.update(kinds)
        return self.state.set_faults(update, merge=merge)

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change config fields at runtime (e.g. `latency=0.5`, `rate_limits=False`)."""
        return self.state.configure(**changes)

    def reset(self) -> None:
        """Clear tasks, files, ledger, statistics, buckets and faults; keep the config."""
        self.state.reset()

    def advance(self, seconds: float) -> None:
        """Move the emulator clock forward (tasks finish, URLs expire, buckets refill)."""
        self.state.advance(seconds)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    faults: FaultConfig | Mapping[str, Any] | None = None,
    announce: bool = True,
    **config: Any,
) -> None:
    """Run the emulator in the foreground until interrupted (Ctrl-C / SIGTERM).

    With `announce`, prints `nanobanana emulator listening on <url>` once the socket is bound, so a
    parent process that passed port 0 can read the real port from the first line of stdout.
    """
    state = EmulatorState(EmulatorConfig(**config), _faults(faults))
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    if announce:
        shown = f"[{host}]" if ":" in host else host
        print(f"nanobanana emulator listening on http://{shown}:{bound_port}", flush=True)
    uvicorn.Server(_uvicorn_config(state, graceful_seconds=5)).run(sockets=[sock])


class EmulatorControl:
    """An httpx client for the control API of an emulator in another process (benchmarks, demos)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=f"{self.url}/_emulator", timeout=timeout)

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self._client.request(method, path, json=json, params=params)
        response.raise_for_status()
        return response.json()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the emulator answers, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "/health")
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no emulator answering at {self.url}") from None
                time.sleep(0.05)

    def ledger(self) -> dict[str, Any]:
        """The paid-submission ledger."""
        return self._call("GET", "/ledger")  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        """Request counters and concurrency."""
        return self._call("GET", "/stats")  # type: ignore[no-any-return]

    def faults(self) -> dict[str, Any]:
        """The current fault config, with remaining counts."""
        return self._call("GET", "/faults")  # type: ignore[no-any-return]

    def set_faults(
        self, faults: Mapping[str, Any] | None = None, /, *, merge: bool = False, **kinds: Any
    ) -> dict[str, Any]:
        """Replace the faults (or merge the kinds given) and return the new fault config."""
        body = {**(faults or {}), **kinds}
        return self._call("POST", "/faults", json=body, params={"merge": str(merge).lower()})  # type: ignore[no-any-return]

    def config(self) -> dict[str, Any]:
        """The current config."""
        return self._call("GET", "/config")  # type: ignore[no-any-return]

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change config fields and return the new config."""
        return self._call("POST", "/config", json=changes)  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Clear tasks, files, ledger, statistics, buckets and faults."""
        self._call("POST", "/reset")

    def advance(self, seconds: float) -> None:
        """Move the emulator clock forward."""
        self._call("POST", "/advance", json={"seconds": seconds})

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
