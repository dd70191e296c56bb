"""`nanobanana emulator`: run the provider emulator in the foreground.

`main(argv)` takes the arguments after `emulator`; `python -m prefect_nanobanana.emulator` calls it
with the command line. Prints `nanobanana emulator listening on <url>` once the port is bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import EmulatorConfig, FaultConfig
from .server import serve

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "nanobanana emulator") -> argparse.ArgumentParser:
    """Return the argument parser of the emulator command."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Local emulator of the ToAPIs and TTAPI image APIs (ToAPIs base: URL + /v1; TTAPI base: URL).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)"
    )
    parser.add_argument("--api-key", default=None, help="only accept this key (default: any non-empty key)")
    parser.add_argument("--latency", type=float, default=None, help="mean task/generation time in seconds")
    parser.add_argument("--latency-spread", type=float, default=None, help="spread of the latency in seconds")
    parser.add_argument(
        "--latency-distribution",
        choices=["fixed", "uniform", "lognormal"],
        default=None,
        help="default uniform",
    )
    parser.add_argument(
        "--ttapi-latency", type=float, default=None, help="TTAPI generation time (default: --latency)"
    )
    parser.add_argument(
        "--time-scale", type=float, default=None, help="run N times faster (latencies / N, rates * N)"
    )
    parser.add_argument(
        "--url-ttl", type=float, default=None, help="ToAPIs result URL lifetime (default 86400 s)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for latencies and probabilistic faults")
    parser.add_argument("--no-rate-limits", action="store_true", help="turn the ToAPIs token buckets off")
    parser.add_argument("--faults", default=None, help="fault config as JSON, or @path to a JSON file")
    parser.add_argument("--config", default=None, help="further EmulatorConfig fields as JSON, or @path")
    return parser


def _json_arg(value: str | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"{what} must be a JSON object")
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the command line), then serve until interrupted. Returns an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _json_arg(args.config, "--config")
        faults = FaultConfig.model_validate(_json_arg(args.faults, "--faults"))
        flags = {
            "api_key": args.api_key,
            "latency": args.latency,
            "latency_spread": args.latency_spread,
            "latency_distribution": args.latency_distribution,
            "ttapi_latency": args.ttapi_latency,
            "time_scale": args.time_scale,
            "url_ttl": args.url_ttl,
            "seed": args.seed,
        }
        config.update({key: value for key, value in flags.items() if value is not None})
        if args.no_rate_limits:
            config["rate_limits"] = False
        EmulatorConfig.model_validate(config)  # fail here, with a usage error, not inside uvicorn
    except (OSError, ValueError, ValidationError) as error:
        parser.error(str(error))
    try:
        serve(args.host, args.port, faults=faults, **config)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
