"""The `nanobanana` command: generate an image set from a terminal, estimate it, run the emulator.

`nanobanana generate` does what the `generate-image-set` flow does (same validation, engine,
journal and manifests), without needing a Prefect server: it starts in a second, not twenty.
Exit codes: 0 when every valid row succeeded, 1 when some rows failed, 2 for invalid input or
usage (nothing paid), 3 when the run was stopped (bad key, no balance).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any, cast

from .blocks.credentials import ENV_KEYS
from .catalog import PROVIDERS, RESOLUTIONS, all_model_names
from .engine import EngineSettings
from .errors import NanoBananaError, TableValidationError
from .imageset import ImageSetOptions, estimate_plan, finish_run, plan_image_set, run_image_set
from .journal import RowRecord
from .providers.base import ImageProvider
from .storage import OutputLocation

EXIT_OK, EXIT_ROWS_FAILED, EXIT_INVALID, EXIT_STOPPED = 0, 1, 2, 3


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="CSV, Parquet, JSON or JSONL file, or an fsspec URL")
    p.add_argument(
        "--provider", choices=PROVIDERS, default="toapis", help="provider for rows without a provider column"
    )
    p.add_argument("--out", default="out/images", help="output directory or fsspec URL")
    p.add_argument("--base-url", help="override the providers' base URL (e.g. the emulator)")
    p.add_argument(
        "--credentials-block", help="name of a saved credentials block (else TOAPIS_API_KEY / TTAPI_API_KEY)"
    )
    p.add_argument("--model", choices=all_model_names(), metavar="MODEL", help="default model (id or alias)")
    p.add_argument("--aspect-ratio", help="default aspect ratio, e.g. 16:9")
    p.add_argument("--resolution", choices=[*RESOLUTIONS, "512"], help="default resolution")
    p.add_argument("--prompt-template", help='e.g. "A {subject} in {style} style"')
    p.add_argument("--name-template", help='file names, e.g. "{row:04d}-{subject}"')
    p.add_argument("--reference-base-dir", help="local reference images must lie under this directory")
    p.add_argument("--max-concurrency", type=int, default=16)
    p.add_argument("--max-cost", type=float, help="budget in USD for this run")
    p.add_argument("--on-invalid", choices=["fail", "skip"], default="fail")
    p.add_argument("--max-resubmits", type=int, default=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanobanana", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate an image set from a prompt table")
    _add_table_args(gen)
    gen.add_argument("--dry-run", action="store_true", help="validate and estimate; no provider call")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    est = sub.add_parser("estimate", help="validate a table and estimate its cost (a dry run)")
    _add_table_args(est)
    sub.add_parser("emulator", help="run the local emulator of both APIs (see `nanobanana emulator --help`)")
    serve = sub.add_parser("serve", help="serve the generate-image-set flow as a deployment (no work pool)")
    serve.add_argument("--name", default="nanobanana-serve")
    serve.add_argument("--cron", help="optional schedule, e.g. '0 2 * * *'")
    man = sub.add_parser(
        "manifest", help="recompile manifest.parquet, manifest.csv and index.html of an output"
    )
    man.add_argument("out")
    return parser


def _options(args: argparse.Namespace) -> ImageSetOptions:
    defaults = {
        k: v
        for k, v in {
            "model": args.model,
            "aspect_ratio": args.aspect_ratio,
            "resolution": args.resolution,
        }.items()
        if v
    }
    return ImageSetOptions(
        provider=args.provider,
        output=args.out,
        defaults=defaults,
        prompt_template=args.prompt_template,
        name_template=args.name_template,
        reference_base_dir=args.reference_base_dir,
        on_invalid=args.on_invalid,
    )


def _client(provider: str, args: argparse.Namespace) -> ImageProvider:
    from .blocks.credentials import CREDENTIALS_BY_PROVIDER, client_for, credentials_from_env

    if args.credentials_block:
        # `_sync=True`: this runs inside the event loop, where `load` would return a coroutine.
        creds = cast(Any, CREDENTIALS_BY_PROVIDER[provider]).load(args.credentials_block, _sync=True)
    else:
        creds = credentials_from_env(provider)
        if creds is None:
            raise SystemExit(
                f"nanobanana: set {ENV_KEYS[provider]} or pass --credentials-block for {provider} rows"
            )
    return client_for(creds, args.base_url)


class _Progress:
    """A terminal progress bar (rich), or nothing when output is not a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.failed = 0
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("images"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._task = self._bar.add_task("images", total=total, failed=0)

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()

    def on_record(self, record: RowRecord) -> None:
        if record.status != "succeeded":
            self.failed += 1
        if self.enabled:
            self._bar.update(self._task, advance=1, failed=self.failed)


async def _generate(args: argparse.Namespace, dry_run: bool) -> int:
    options = _options(args)
    try:
        plan = plan_image_set(args.table, options)
    except TableValidationError as exc:
        print(f"nanobanana: {exc}", file=sys.stderr)
        return EXIT_INVALID
    location = OutputLocation(args.out)
    for problem in plan.table.problems:
        print(f"skipped {problem}", file=sys.stderr)
    if dry_run:
        print(json.dumps(estimate_plan(plan, location), indent=2))
        return EXIT_OK
    settings = EngineSettings(
        max_concurrency=args.max_concurrency, max_cost=args.max_cost, max_resubmits=args.max_resubmits
    )
    async with AsyncExitStack() as stack:
        clients = {p: await stack.enter_async_context(_client(p, args)) for p in plan.providers()}
        with _Progress(len(plan.rows), not getattr(args, "no_progress", False)) as progress:
            outcome = await run_image_set(plan, clients, location, settings, listener=progress.on_record)
    summary, _ = finish_run(plan, location, outcome)
    print(summary.text())
    print(f"manifest: {summary.manifest}\ncontact sheet: {summary.index_html}")
    if outcome.stop_error is not None:
        print(f"nanobanana: stopped: {outcome.stop_error}", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_ROWS_FAILED if summary.failed else EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from .flows import generate_image_set

    generate_image_set.serve(name=args.name, cron=args.cron)  # type: ignore[attr-defined]
    return EXIT_OK


def _manifest(args: argparse.Namespace) -> int:
    from .journal import RowJournal
    from .manifest import manifest_frame, write_contact_sheet, write_manifests

    location = OutputLocation(args.out)
    frame = manifest_frame(RowJournal(location).load_all().values())
    print(write_manifests(location, frame))
    print(write_contact_sheet(location, frame))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:  # its options are the emulator's own: hand them over untouched
        from .emulator.cli import main as emulator_main

        return int(emulator_main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("generate", "estimate"):
            return asyncio.run(_generate(args, dry_run=args.command == "estimate" or args.dry_run))
        if args.command == "serve":
            return _serve(args)
        if args.command == "manifest":
            return _manifest(args)
    except NanoBananaError as exc:
        print(f"nanobanana: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    parser.error(f"unknown command {args.command}")
    return EXIT_INVALID


def run() -> Any:  # pragma: no cover - console entry point
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
