"""Prompt table -> image set, without Prefect: the work shared by the flow, the CLI and the demo.

`plan_image_set` loads and validates the whole table before anything is paid for; `run_image_set`
runs the valid rows through one `RowEngine` per provider; `finish_image_set` compiles the manifests
and the contact sheet from the row journal. The flow adds Prefect's artifacts and concurrency
limits around these, the CLI a progress bar.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .catalog import estimate_price
from .engine import EngineSettings, RowEngine, RowListener, RowWork, RunStopped
from .errors import NanoBananaError
from .journal import RowJournal, RowRecord
from .manifest import Summary, count_statuses, manifest_frame, write_contact_sheet, write_manifests
from .models import ImageRequest, is_url
from .providers.base import ImageProvider
from .storage import OutputLocation
from .tables import PlannedRow, TablePlan, TableSource, load_table, plan_table

logger = logging.getLogger("prefect_nanobanana.imageset")


@dataclass
class ImageSetOptions:
    """Everything that shapes an image set, apart from credentials."""

    provider: str = "toapis"
    output: str = "out/images"
    defaults: dict[str, Any] = field(default_factory=dict)
    """Default request fields (model, aspect_ratio, resolution, provider options); table columns win."""
    prompt_template: str | None = None
    name_template: str | None = None
    reference_base_dir: str | None = None
    on_invalid: Literal["fail", "skip"] = "fail"
    storage_options: dict[str, Any] | None = None
    """fsspec options for the output location (for example an S3 `endpoint_url`)."""
    table_storage_options: dict[str, Any] | None = None
    row_range: tuple[int, int] | None = None
    """Only rows `start <= row < end` (1-based table rows): one chunk of a scaled-out run."""


@dataclass
class ImageSetPlan:
    """A validated table: the rows to run, the duplicates and the invalid rows."""

    table: TablePlan
    rows: list[PlannedRow]
    options: ImageSetOptions

    @property
    def invalid_records(self) -> list[RowRecord]:
        reasons: dict[int, list[str]] = {}
        for problem in self.table.problems:
            if problem.row is not None:
                reasons.setdefault(problem.row, []).append(str(problem))
        return [
            RowRecord(
                row=row,
                row_key=f"invalid-row-{row}",
                status="invalid",
                error_type="TableValidationError",
                error="; ".join(reasons.get(row, ["invalid"])),
            )
            for row in self.table.invalid_rows
            if self._in_range(row)
        ]

    def _in_range(self, row: int) -> bool:
        r = self.options.row_range
        return r is None or r[0] <= row < r[1]

    @property
    def duplicates(self) -> dict[int, int]:
        return {dup: orig for dup, orig in self.table.duplicates if self._in_range(dup)}

    def providers(self) -> list[str]:
        return sorted({r.request.provider for r in self.rows})


def plan_image_set(table: TableSource, options: ImageSetOptions) -> ImageSetPlan:
    """Load and validate the whole table. Raises `TableValidationError` listing every bad row (row
    number, column, reason) when `on_invalid == "fail"`; nothing is paid before this returns."""
    frame = load_table(table, storage_options=options.table_storage_options)
    plan = plan_table(
        frame,
        provider=options.provider,
        defaults=options.defaults,
        prompt_template=options.prompt_template,
        name_template=options.name_template,
        reference_base_dir=options.reference_base_dir,
        on_invalid=options.on_invalid,
    )
    plan.raise_if_invalid()
    rows = [
        r
        for r in plan.rows
        if options.row_range is None or options.row_range[0] <= r.row < options.row_range[1]
    ]
    return ImageSetPlan(plan, rows, options)


def estimate_plan(
    plan: ImageSetPlan, location: OutputLocation, price_overrides: dict[str, float] | None = None
) -> dict[str, Any]:
    """What a run would do and cost: rows already done are free. Makes no provider call."""
    journal = RowJournal(location)
    done = journal.load_all()
    existing = set(location.list_files())
    to_submit = 0
    cost = 0.0
    already = 0
    for row in plan.rows:
        if journal.is_finished(done.get(row.request.row_key), existing):
            already += 1
            continue
        to_submit += 1
        cost += estimate_price(row.request.spec, row.request.resolution, price_overrides)
    return {
        "rows": plan.table.total_rows,
        "valid_rows": len(plan.rows),
        "invalid_rows": len(plan.table.invalid_rows),
        "duplicates": len(plan.duplicates),
        "already_done": already,
        "to_submit": to_submit,
        "estimated_cost_usd": round(cost, 4),
    }


def planned_records(plan: ImageSetPlan, price_overrides: dict[str, float] | None = None) -> list[RowRecord]:
    """Manifest lines for a dry run: every valid row as `planned` with its estimated cost."""
    return [
        RowRecord(
            row=r.row,
            row_key=r.request.row_key,
            name=r.name,
            prompt=r.request.prompt,
            provider=r.request.provider,
            model=r.request.model,
            aspect_ratio=r.request.aspect_ratio,
            resolution=r.request.resolution,
            status="planned",
            cost=estimate_price(r.request.spec, r.request.resolution, price_overrides),
            cost_source="estimated",
        )
        for r in plan.rows
    ]


def reference_uploader(client: ImageProvider) -> Callable[[ImageRequest], Awaitable[list[str] | None]]:
    """Turns a request's local reference files into what the provider takes (ToAPIs: uploaded URLs;
    TTAPI: base64), uploading each distinct file once per run."""
    cache: dict[str, asyncio.Future[str]] = {}

    async def one(path: str, digest: str) -> str:
        if digest not in cache:
            cache[digest] = asyncio.ensure_future(client.upload_reference(Path(path)))
        return await cache[digest]

    async def upload(request: ImageRequest) -> list[str] | None:
        if not request.local_references():
            return None
        return [
            ref if is_url(ref) else await one(ref, digest)
            for ref, digest in zip(request.reference_images, request.reference_digests, strict=True)
        ]

    return upload


@dataclass
class RunOutcome:
    records: list[RowRecord]
    paid_submissions: int
    stop_error: NanoBananaError | None
    seconds: float
    spent_usd: float = 0.0
    skipped_done: int = 0


async def run_image_set(
    plan: ImageSetPlan,
    clients: Mapping[str, ImageProvider],
    location: OutputLocation,
    settings: EngineSettings,
    *,
    listener: RowListener | None = None,
    flow_run_id: str | None = None,
) -> RunOutcome:
    """Run every planned row (one engine per provider, concurrently); never raises for row failures.

    A STOP_RUN error (bad key) is returned in `stop_error` after every in-flight row has settled."""
    started = time.monotonic()
    engines: list[tuple[RowEngine, list[RowWork]]] = []
    for provider in plan.providers():
        work = [RowWork(r.request, r.name, r.row) for r in plan.rows if r.request.provider == provider]
        client = clients[provider]
        engine = RowEngine(
            client,
            location,
            settings,
            listener=listener,
            flow_run_id=flow_run_id,
            reference_uploader=reference_uploader(client),
        )
        engines.append((engine, work))
    skipped = sum(1 for engine, work in engines for w in work if engine.done_record(w.request) is not None)

    async def run_one(engine: RowEngine, work: list[RowWork]) -> list[RowRecord]:
        try:
            return await engine.run(work)
        except RunStopped:
            return []

    await asyncio.gather(*(run_one(e, w) for e, w in engines))
    records: dict[str, RowRecord] = {}
    stop: NanoBananaError | None = None
    paid = 0
    spent = 0.0
    for engine, _ in engines:
        records.update(engine.records())
        stop = stop or engine.stop_error or engine.submissions_stopped
        paid += engine.paid_submissions
        spent += engine.budget.spent
    ordered = [records[r.request.row_key] for r in plan.rows if r.request.row_key in records]
    return RunOutcome(ordered, paid, stop, time.monotonic() - started, spent, skipped)


def finish_image_set(
    plan: ImageSetPlan,
    location: OutputLocation,
    records: Sequence[RowRecord],
    *,
    paid_submissions: int = 0,
    seconds: float = 0.0,
    skipped_done: int = 0,
    spent_usd: float | None = None,
    write: bool = True,
) -> tuple[Summary, Any]:
    """Compile the manifests and the contact sheet for this table; return the summary and the frame."""
    frame = manifest_frame([*records, *plan.invalid_records], plan.duplicates)
    summary = Summary(
        rows=len(frame),
        by_status=count_statuses(frame),
        spent_usd=spent_usd if spent_usd is not None else 0.0,
        paid_submissions=paid_submissions,
        skipped_done=skipped_done,
        duplicates=len(plan.duplicates),
        seconds=seconds,
    )
    if write:
        summary.manifest = write_manifests(location, frame)
        summary.index_html = write_contact_sheet(location, frame)
    return summary, frame


def finish_run(
    plan: ImageSetPlan, location: OutputLocation, outcome: RunOutcome, *, write: bool = True
) -> tuple[Summary, Any]:
    """`finish_image_set` for what `run_image_set` returned."""
    return finish_image_set(
        plan,
        location,
        outcome.records,
        paid_submissions=outcome.paid_submissions,
        seconds=outcome.seconds,
        skipped_done=outcome.skipped_done,
        spent_usd=outcome.spent_usd,
        write=write,
    )
