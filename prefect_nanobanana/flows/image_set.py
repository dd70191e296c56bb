"""The `generate-image-set` flow: a prompt table in, an image set out, all of it visible in Prefect.

Rows run inside the flow run through the row engine (`engine.py`) rather than as one task run per
row: the Prefect API records only so many task runs per second, and a row's journal in the output
location is a stronger record of what was paid than a task cache. Prefect shows the run through a
progress artifact, a summary table, a gallery and the invalid rows, and scales it out with
`chunk_size` (each chunk its own flow run, in process or as deployment runs on a work pool) under a
global concurrency limit shared by every worker.
"""

# No `from __future__ import annotations` here: `flow.serve()` runs ship the flow function pickled
# by value, with only the globals its body uses, so string annotations such as "Optional[...]"
# could not be resolved there and every served run would fail parameter validation.
import asyncio
from contextlib import AsyncExitStack
from typing import Any, Literal, Optional, Union

from prefect import flow, get_run_logger
from prefect.concurrency.asyncio import concurrency
from prefect.context import get_run_context
from prefect.deployments import arun_deployment

from ..blocks.credentials import (
    CREDENTIALS_BY_PROVIDER,
    ENV_KEYS,
    ToAPIsCredentials,
    TTAPICredentials,
    client_for,
    credentials_from_env,
)
from ..catalog import PROVIDERS, all_model_names
from ..engine import EngineSettings
from ..errors import AuthenticationError, NanoBananaError, TableValidationError
from ..imageset import (
    ImageSetOptions,
    estimate_plan,
    finish_image_set,
    finish_run,
    plan_image_set,
    planned_records,
    run_image_set,
)
from ..journal import RowJournal, RowRecord
from ..providers.base import ImageProvider
from ..storage import OutputLocation
from .artifacts import (
    ProgressReporter,
    Thumbnails,
    artifact_key,
    publish_gallery,
    publish_problems,
    publish_summary,
)

ModelChoice = Literal[tuple(all_model_names())]  # type: ignore[valid-type]
AspectRatioChoice = Literal[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1"
]
ResolutionChoice = Literal["0.5K", "1K", "2K", "4K"]


class ImageSetIncomplete(Exception):
    """Some rows ended without an image; the manifest says which and why."""


async def resolve_credentials(
    provider: str, given: ToAPIsCredentials | TTAPICredentials | str | None
) -> ToAPIsCredentials | TTAPICredentials:
    """A credentials block for `provider`: the block given, the block of that name, or (for scripts
    and the CLI) one built from `TOAPIS_API_KEY` / `TTAPI_API_KEY`, never saved."""
    cls = CREDENTIALS_BY_PROVIDER[provider]
    if isinstance(given, cls):
        return given
    if isinstance(given, str) and given:
        return await cls.aload(given)  # type: ignore[return-value]
    if given is not None:
        raise TypeError(f"credentials for {provider} must be a {cls.__name__} block or its name")
    from_env = credentials_from_env(provider)
    if from_env is not None:
        return from_env
    raise AuthenticationError(
        f"no credentials for {provider}: pass a {cls.__name__} block (or its name), or set {ENV_KEYS[provider]}",
        provider=provider,
    )


def _flow_run_id() -> str | None:
    try:
        ctx = get_run_context()
        return str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else None  # type: ignore[union-attr]
    except Exception:
        return None


@flow(name="generate-image-set", log_prints=True, persist_result=False)
async def generate_image_set(
    table: Union[str, list[dict[str, Any]]] = "examples/prompts.csv",
    provider: Literal["toapis", "ttapi"] = "toapis",
    output: str = "out/images",
    toapis_credentials: Optional[Union[ToAPIsCredentials, str]] = None,
    ttapi_credentials: Optional[Union[TTAPICredentials, str]] = None,
    model: ModelChoice = "gemini-3-pro-image-preview",  # type: ignore[valid-type]
    aspect_ratio: Optional[AspectRatioChoice] = None,
    resolution: Optional[ResolutionChoice] = None,
    prompt_template: Optional[str] = None,
    name_template: Optional[str] = None,
    reference_base_dir: Optional[str] = None,
    google_search: Optional[bool] = None,
    image_search: Optional[bool] = None,
    thinking_level: Optional[str] = None,
    orientation: Optional[Literal["landscape", "portrait"]] = None,
    max_concurrency: int = 16,
    max_cost: Optional[float] = None,
    dry_run: bool = False,
    on_invalid: Literal["fail", "skip"] = "fail",
    max_resubmits: int = 1,
    ambiguous_without_lookup: Literal["fail", "resubmit"] = "fail",
    concurrency_limit: Optional[str] = None,
    chunk_size: Optional[int] = None,
    chunk_deployment: Optional[str] = None,
    row_range: Optional[list[int]] = None,
    base_url: Optional[str] = None,
    storage_options: Optional[dict[str, Any]] = None,
    price_overrides: Optional[dict[str, float]] = None,
    fail_on_row_errors: bool = True,
) -> dict[str, Any]:
    """Generate one image per row of a prompt table into an output location.

    Args:
        table: Path or URL (CSV, Parquet, JSON, JSONL; any fsspec URL, s3:// included) or inline rows.
        provider: Provider for rows without a `provider` column.
        output: Local directory or fsspec URL for images, `manifest.parquet`, `manifest.csv` and `index.html`.
        toapis_credentials: ToAPIs credentials block, or its name (or set TOAPIS_API_KEY).
        ttapi_credentials: TTAPI credentials block, or its name (or set TTAPI_API_KEY).
        model: Default model (id or alias); a `model` column overrides it per row.
        aspect_ratio: Default aspect ratio; an `aspect_ratio` column overrides it.
        resolution: Default resolution; a `resolution` column overrides it.
        prompt_template: For example "A {subject} in {style} style", filled from the table's columns.
        name_template: File name of each image, for example "{row:04d}-{subject}"; default "{row:05d}-{row_key8}".
        reference_base_dir: Directory that local reference images must lie under.
        google_search: Default for Google Search grounding, where the model has it.
        image_search: Default for Google Image Search grounding (3.1 Flash; needs google_search).
        thinking_level: Default thinking level where documented (TTAPI 3.1 Flash: Minimal or High).
        orientation: Default orientation where documented (ToAPIs 3 Pro and 2.5 Flash).
        max_concurrency: Images in flight at once in this flow run.
        max_cost: Budget in USD: no row is submitted that would take this run past it.
        dry_run: Validate the table, render the prompts and estimate the cost; call no provider.
        on_invalid: "fail" stops before any paid call when a row is invalid; "skip" runs the valid rows.
        max_resubmits: New paid submissions allowed for a row whose job failed or whose image expired.
        ambiguous_without_lookup: TTAPI only: after a lost answer, "fail" the row or "resubmit" (may pay twice).
        concurrency_limit: Name of a Prefect global concurrency limit shared by all workers (must exist).
        chunk_size: Split the table into chunks of this many rows, each its own flow run.
        chunk_deployment: Run the chunks as runs of this deployment ("flow-name/deployment-name") on its work pool.
        row_range: [start, end) table rows for this run (set by a chunked parent run).
        base_url: Override every provider's base URL (for example the local emulator).
        storage_options: fsspec options for the output location (no secrets: use environment credentials).
        price_overrides: USD per image by model or family, optionally suffixed `@<resolution>`, for estimates.
        fail_on_row_errors: End the flow run Failed when any row failed (after writing the manifest).
    """
    logger = get_run_logger()
    flow_run_id = _flow_run_id()
    key_base = artifact_key("image-set", flow_run_id[:8] if flow_run_id else "local")
    defaults = {
        k: v
        for k, v in dict(
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            google_search=google_search,
            image_search=image_search,
            thinking_level=thinking_level,
            orientation=orientation,
        ).items()
        if v is not None
    }
    options = ImageSetOptions(
        provider=provider,
        output=output,
        defaults=defaults,
        prompt_template=prompt_template,
        name_template=name_template,
        reference_base_dir=reference_base_dir,
        on_invalid=on_invalid,
        storage_options=storage_options,
        table_storage_options=storage_options,
        row_range=(row_range[0], row_range[1]) if row_range else None,
    )
    try:
        plan = await asyncio.to_thread(plan_image_set, table, options)
    except TableValidationError as exc:
        logger.error("%s", exc)
        await publish_problems(exc.problems, f"{key_base}-invalid-rows")
        raise
    if plan.table.problems:
        logger.warning(
            "%d invalid row(s) skipped: see the invalid-rows artifact", len(plan.table.invalid_rows)
        )
        await publish_problems(plan.table.problems, f"{key_base}-invalid-rows")
    location = OutputLocation(output, storage_options)
    logger.info(
        "%d valid rows (%d duplicates, %d invalid) -> %s",
        len(plan.rows),
        len(plan.duplicates),
        len(plan.table.invalid_rows),
        location.url,
    )

    if dry_run:
        estimate = await asyncio.to_thread(estimate_plan, plan, location, price_overrides)
        summary, _ = finish_image_set(plan, location, planned_records(plan, price_overrides), write=False)
        await publish_summary(summary, f"{key_base}-summary", dry_run=True, estimate=estimate)
        logger.info("dry run: %s", estimate)
        return {**summary.to_dict(), "dry_run": True, "estimate": estimate}

    if chunk_size and not row_range and len(plan.rows) > chunk_size:
        return await _run_chunks(plan, chunk_size, chunk_deployment, locals(), location, key_base)

    settings = EngineSettings(
        max_concurrency=max_concurrency,
        max_cost=max_cost,
        max_resubmits=max_resubmits,
        ambiguous_without_lookup=ambiguous_without_lookup,
        price_overrides=price_overrides,
    )
    given = {"toapis": toapis_credentials, "ttapi": ttapi_credentials}
    progress = ProgressReporter(len(plan.rows), f"{key_base}-progress")
    thumbnails = Thumbnails(location, [r.request.row_key for r in plan.rows])

    def on_record(record: RowRecord) -> None:
        progress.on_record(record)
        thumbnails.on_record(record)

    await progress.start()
    async with AsyncExitStack() as stack:
        clients: dict[str, ImageProvider] = {}
        for name in plan.providers():
            creds = await resolve_credentials(name, given[name])
            clients[name] = await stack.enter_async_context(client_for(creds, base_url))
        if concurrency_limit:
            # One acquisition for the whole run: a per-image acquisition would cost more than the image's
            # own API calls on a busy Prefect server, and `occupy` still bounds jobs in flight across workers.
            await stack.enter_async_context(
                concurrency(concurrency_limit, occupy=max_concurrency, strict=True)
            )
        outcome = await run_image_set(
            plan, clients, location, settings, listener=on_record, flow_run_id=flow_run_id
        )
    if row_range:  # a chunk: the parent compiles the manifest of the whole table
        summary, _ = finish_run(plan, location, outcome, write=False)
        await asyncio.gather(progress.finish(), publish_summary(summary, f"{key_base}-summary"))
    else:
        summary, frame = await asyncio.to_thread(finish_run, plan, location, outcome)
        await asyncio.gather(
            progress.finish(),
            publish_gallery(frame, location, f"{key_base}-gallery", thumbnails),
            publish_summary(summary, f"{key_base}-summary"),
        )
    logger.info("%s", summary.text())
    if outcome.stop_error is not None:
        raise outcome.stop_error
    if fail_on_row_errors and summary.failed:
        raise ImageSetIncomplete(f"{summary.failed} row(s) failed: {summary.text()}; see {summary.manifest}")
    return summary.to_dict()


async def _run_chunks(
    plan: Any,
    chunk_size: int,
    deployment: str | None,
    params: dict[str, Any],
    location: OutputLocation,
    key_base: str,
) -> dict[str, Any]:
    """Run the table as chunks, each its own flow run, then compile one manifest for all of them."""
    logger = get_run_logger()
    rows = sorted(r.row for r in plan.rows)
    ranges = [
        [rows[i], rows[min(i + chunk_size, len(rows)) - 1] + 1] for i in range(0, len(rows), chunk_size)
    ]
    keep = {k: params[k] for k in generate_image_set.parameters.properties if k in params}
    child = {**keep, "chunk_size": None, "chunk_deployment": None}
    for name in ("toapis_credentials", "ttapi_credentials"):
        value = child.get(name)
        if value is not None and not isinstance(value, str):
            # Pass blocks to other workers by name, never by value: a value would carry the key.
            block_name = getattr(value, "_block_document_name", None)
            if not block_name:
                raise ValueError(f"{name} must be a saved block to run chunks on other workers")
            child[name] = block_name
    logger.info(
        "%d chunks of up to %d rows%s",
        len(ranges),
        chunk_size,
        f" on deployment {deployment}" if deployment else "",
    )

    async def one(bounds: list[int]) -> Any:
        if deployment:
            run = await arun_deployment(deployment, parameters={**child, "row_range": bounds}, timeout=None)
            state = run.state
            return {"flow_run": str(run.id), "state": state.type.value if state else None, "rows": bounds}
        return await generate_image_set.with_options(flow_run_name=f"chunk-{bounds[0]}-{bounds[1]}")(
            **{**child, "row_range": bounds, "fail_on_row_errors": False}
        )

    results = await asyncio.gather(*(one(b) for b in ranges), return_exceptions=True)
    records = RowJournal(location).load_all()
    ordered = [records[r.request.row_key] for r in plan.rows if r.request.row_key in records]
    paid = sum(r.get("paid_submissions", 0) for r in results if isinstance(r, dict))
    spent = sum(r.get("spent_usd", 0.0) for r in results if isinstance(r, dict))
    summary, frame = await asyncio.to_thread(
        finish_image_set, plan, location, ordered, paid_submissions=paid, spent_usd=spent
    )
    await publish_gallery(frame, location, f"{key_base}-gallery")
    await publish_summary(summary, f"{key_base}-summary")
    errors = [r for r in results if isinstance(r, BaseException)]
    logger.info("%s", summary.text())
    if errors:
        raise errors[0]
    if params.get("fail_on_row_errors", True) and summary.failed:
        raise ImageSetIncomplete(f"{summary.failed} row(s) failed: {summary.text()}; see {summary.manifest}")
    return {**summary.to_dict(), "chunks": [r if isinstance(r, dict) else str(r) for r in results]}


def generate_image_set_from_dataframe(frame: Any, **parameters: Any) -> Any:
    """Run `generate_image_set` over a pandas DataFrame (flow parameters stay JSON: the rows are
    passed as records)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return generate_image_set(table=records, **parameters)


__all__ = [
    "PROVIDERS",
    "ImageSetIncomplete",
    "NanoBananaError",
    "generate_image_set",
    "generate_image_set_from_dataframe",
    "resolve_credentials",
]
