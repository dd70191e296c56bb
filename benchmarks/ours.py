"""Run our side of a benchmark in a process of its own, and report what that process cost.

`benchmarks/run.py` and `benchmarks/chaos.py` start this script as a child process, so that the
peak memory and CPU time it reports belong to our code alone (not to the emulator, the Prefect
server or the benchmark driver), and so that chaos can SIGKILL it. It runs either

- `--mode flow`: the `generate_image_set` Prefect flow, against the Prefect API in `PREFECT_API_URL`
  (the benchmark starts `prefect server start` for it), or
- `--mode cli`: what `nanobanana generate` runs (the same plan, engine and manifests) in process,
  without a Prefect API,

with a ToAPIs credentials block whose limits and poll schedule are given on the command line, and
prints one JSON line: wall time from the flow call to its return, CPU time of that call, and the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports ru_maxrss in KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / (1024 * 1024)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--mode", choices=["flow", "cli"], default="flow")
    p.add_argument("--table", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--model", default="gemini-3-pro-image-preview")
    p.add_argument("--resolution", default="1K")
    p.add_argument("--max-concurrency", type=int, default=256)
    p.add_argument("--submit-rate", type=float, default=20.0)
    p.add_argument("--submit-burst", type=float, default=200.0)
    p.add_argument("--query-rate", type=float, default=200.0)
    p.add_argument("--query-burst", type=float, default=2000.0)
    p.add_argument("--poll-first", type=float, default=1.25)
    p.add_argument("--poll-min", type=float, default=1.25)
    p.add_argument("--poll-max", type=float, default=2.5)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument(
        "--no-fail-on-row-errors", action="store_true", help="flow: end Completed even if rows failed"
    )
    p.add_argument(
        "--profile", help="write a pyinstrument profile of the run to this path (.txt: text, else HTML)"
    )
    return p


def _credentials(args: argparse.Namespace) -> Any:
    from prefect_nanobanana.blocks.credentials import ToAPIsCredentials

    return ToAPIsCredentials(
        api_key=args.api_key,
        base_url=args.base_url,
        timeout=args.timeout,
        submit_rate=args.submit_rate,
        submit_burst=args.submit_burst,
        query_rate=args.query_rate,
        query_burst=args.query_burst,
        poll_first_delay=args.poll_first,
        poll_min_interval=args.poll_min,
        poll_max_interval=args.poll_max,
    )


async def _run_flow(args: argparse.Namespace) -> dict[str, Any]:
    from prefect_nanobanana.flows.image_set import generate_image_set

    result: dict[str, Any] = await generate_image_set(
        table=args.table,
        provider="toapis",
        output=args.out,
        toapis_credentials=_credentials(args),
        model=args.model,
        resolution=args.resolution,
        max_concurrency=args.max_concurrency,
        fail_on_row_errors=not args.no_fail_on_row_errors,
    )
    return result


async def _run_cli(args: argparse.Namespace) -> dict[str, Any]:
    """What `nanobanana generate` runs (plan, engine, manifests), without Prefect and without its
    argument parsing: the CLI builds its block from `TOAPIS_API_KEY` with the documented (unscaled)
    limits and poll schedule, and the benchmark needs the scaled ones."""
    from prefect_nanobanana.engine import EngineSettings
    from prefect_nanobanana.imageset import ImageSetOptions, finish_run, plan_image_set, run_image_set
    from prefect_nanobanana.storage import OutputLocation

    options = ImageSetOptions(
        provider="toapis", output=args.out, defaults={"model": args.model, "resolution": args.resolution}
    )
    plan = plan_image_set(args.table, options)
    location = OutputLocation(args.out)
    settings = EngineSettings(max_concurrency=args.max_concurrency)
    async with _credentials(args).get_client() as client:
        outcome = await run_image_set(plan, {"toapis": client}, location, settings)
    summary, _ = finish_run(plan, location, outcome)
    return summary.to_dict()


def main(argv: list[str] | None = None) -> int:
    """Run once, print one JSON line with the timings, exit 0 (or 1 when the run raised)."""
    args = _parser().parse_args(argv)
    # Import everything before the clock starts: the benchmark measures the run, not Python's imports.
    if args.mode == "flow":
        import prefect_nanobanana.flows.image_set
    import prefect_nanobanana.imageset  # noqa: F401

    rss_before = _peak_rss_mb()
    profiler: Any = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
        profiler.start()
    started_wall = time.time()
    started = time.perf_counter()
    cpu_started = time.process_time()
    error: str | None = None
    result: dict[str, Any] = {}
    try:
        result = asyncio.run(_run_flow(args) if args.mode == "flow" else _run_cli(args))
    except BaseException as exc:  # report, then exit non-zero
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if profiler is not None:
        profiler.stop()
        with open(args.profile, "w", encoding="utf-8") as fh:
            text = args.profile.endswith(".txt")
            fh.write(profiler.output_text(show_all=False) if text else profiler.output_html())
    report = {
        "mode": args.mode,
        "pid": os.getpid(),
        "started_at": started_wall,
        "seconds": round(seconds, 4),
        "cpu_s": round(cpu, 4),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_after_imports_mb": round(rss_before, 1),
        "error": error,
        "result": result,
    }
    print("BENCH-RESULT " + json.dumps(report, default=str), flush=True)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
