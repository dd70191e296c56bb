"""A local server that speaks both provider APIs (ToAPIs and TTAPI), for tests, benchmarks and the demo.

It implements `providers.md` independently of the clients (no import of the client's models,
providers or catalogue), adds fault injection, a ledger of paid submissions and request statistics,
and is controlled through `/_emulator/*` or the `EmulatorServer` / `EmulatorControl` helpers.
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
