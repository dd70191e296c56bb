"""A local server that speaks both provider APIs (ToAPIs and TTAPI), for tests, benchmarks and the demo.

It implements `providers.md` independently of the clients (no import of the client's models,
providers or catalogue), adds fault injection, a ledger of paid submissions and request statistics,
and is controlled through `/_emulator/*` or the `EmulatorServer` / `EmulatorControl` helpers.

In-process:

    with EmulatorServer(latency=0.2, rate_limits=False) as emu:   # any EmulatorConfig field
        ...  # ToAPIs base = f"{emu.url}/v1", TTAPI base = emu.url
        emu.set_faults(submit_drop={"count": 1}, download_corrupt={"match": "cat"})
        assert emu.ledger()["paid"] == 1

Out of process: `python -m prefect_nanobanana.emulator --port 8765` (or `nanobanana emulator`), then
`EmulatorControl("http://127.0.0.1:8765").set_faults(...)`.

Faults (`FaultConfig`): each kind takes one rule or a list; a rule fires on `count` (the next N
occurrences), `rate` (a probability, seeded by `seed`), `match` (a prompt substring), or always when
none is given. Kinds: submit_error, submit_drop, content_policy, task_failure, query_error,
upload_error, download_error, download_slow, download_truncated, download_corrupt, ttapi_error,
ttapi_drop, ttapi_failed. Connection drops need the emulator's own uvicorn protocol, i.e. a server
started by `EmulatorServer` or `serve`.
"""

from __future__ import annotations

from .app import create_app
from .config import (
    ContentPolicyFault,
    DropFault,
    EmulatorConfig,
    FaultConfig,
    FaultRule,
    HttpErrorFault,
    SlowDownloadFault,
    TaskFailureFault,
    TruncatedDownloadFault,
    TtapiFailedFault,
)
from .server import EmulatorControl, EmulatorServer, serve
from .state import EmulatorState

__all__ = [
    "ContentPolicyFault",
    "DropFault",
    "EmulatorConfig",
    "EmulatorControl",
    "EmulatorServer",
    "EmulatorState",
    "FaultConfig",
    "FaultRule",
    "HttpErrorFault",
    "SlowDownloadFault",
    "TaskFailureFault",
    "TruncatedDownloadFault",
    "TtapiFailedFault",
    "create_app",
    "serve",
]
