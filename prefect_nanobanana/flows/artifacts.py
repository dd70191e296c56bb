"""What a run shows in the Prefect UI: progress, a summary table, a gallery, the invalid rows."""

from __future__ import annotations

import asyncio
import base64
import html
import io
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pandas as pd
from PIL import Image
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from ..errors import RowProblem
from ..journal import RowRecord
from ..manifest import Summary
from ..storage import OutputLocation

logger = logging.getLogger("prefect_nanobanana.artifacts")

GALLERY_MAX_IMAGES = 48
GALLERY_THUMB_PX = 128
GALLERY_MAX_BYTES = 400_000


def artifact_key(prefix: str, suffix: str) -> str:
    """Artifact keys may hold only lowercase letters, numbers and dashes."""
    raw = f"{prefix}-{suffix}".lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in raw).strip("-")[:100] or "image-set"


class ProgressReporter:
    """Keeps a progress artifact up to date as rows finish, at most once per `interval` seconds, so a
    large table does not flood the API; the final update is always sent."""

    def __init__(self, total: int, key: str, *, interval: float = 2.0) -> None:
        self.total = max(total, 1)
        self.key = key
        self.interval = interval
        self.done = 0
        self.failed = 0
        self._artifact_id: UUID | None = None
        self._last = 0.0
        self._pending: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._artifact_id = await acreate_progress_artifact(
            progress=0.0, key=self.key, description=f"Images finished out of {self.total} rows"
        )
        self._last = time.monotonic()

    def on_record(self, record: RowRecord) -> None:
        self.done += 1
        if record.status != "succeeded":
            self.failed += 1
        now = time.monotonic()
        if now - self._last >= self.interval and (self._pending is None or self._pending.done()):
            self._last = now
            self._pending = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        if self._artifact_id is None:
            return
        try:
            await aupdate_progress_artifact(
                self._artifact_id, progress=min(100.0, 100.0 * self.done / self.total)
            )
        except Exception:  # progress is best effort; the manifest is the record
            logger.debug("progress update failed", exc_info=True)

    async def finish(self) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        await self._send()


async def publish_problems(problems: list[RowProblem], key: str) -> None:
    await acreate_table_artifact(
        table=[p.to_dict() for p in problems],
        key=key,
        description=f"{len({p.row for p in problems})} invalid row(s): row number, column and reason",
    )


async def publish_summary(
    summary: Summary, key: str, *, dry_run: bool = False, estimate: dict[str, Any] | None = None
) -> None:
    rows: list[dict[str, Any]] = [{"metric": "rows", "value": summary.rows}]
    rows += [{"metric": f"status: {status}", "value": n} for status, n in sorted(summary.by_status.items())]
    rows += [
        {"metric": "spent (USD)", "value": round(summary.spent_usd, 4)},
        {"metric": "paid submissions", "value": summary.paid_submissions},
        {"metric": "already done (skipped)", "value": summary.skipped_done},
        {"metric": "duplicate rows", "value": summary.duplicates},
        {"metric": "seconds", "value": round(summary.seconds, 1)},
        {"metric": "manifest", "value": summary.manifest or ""},
        {"metric": "contact sheet", "value": summary.index_html or ""},
    ]
    if estimate:
        rows += [{"metric": f"estimate: {k}", "value": v} for k, v in estimate.items()]
    await acreate_table_artifact(
        table=rows,
        key=key,
        description=("Dry run: nothing was submitted. " if dry_run else "") + summary.text(),
    )


def _thumbnail_data_uri(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as source:
        source.draft("RGB", (GALLERY_THUMB_PX * 2, GALLERY_THUMB_PX * 2))
        # Shrink before converting: a PNG has no draft mode, so converting first would hold a second
        # full-size copy (48 MB more for a 4K image, on top of the 48 MB decoded one).
        source.thumbnail((GALLERY_THUMB_PX, GALLERY_THUMB_PX))
        thumb = source.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


class Thumbnails:
    """Makes the gallery's thumbnails while the run goes, in worker threads, so that publishing the
    gallery adds almost nothing after the last image. Only the rows the gallery will show (the first
    `GALLERY_MAX_IMAGES` of the plan) are thumbnailed."""

    def __init__(self, location: OutputLocation, row_keys: Sequence[str]) -> None:
        self.location = location
        self.wanted = set(row_keys[:GALLERY_MAX_IMAGES])
        self.uris: dict[str, str] = {}
        self._pending: list[asyncio.Future[None]] = []
        # One thread: a 4K image decodes to about 50 MB, and several at once would set the run's peak memory.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nanobanana-thumbnails")

    def on_record(self, record: RowRecord) -> None:
        if record.status == "succeeded" and record.image_path and record.row_key in self.wanted:
            self._pending.append(
                asyncio.get_running_loop().run_in_executor(
                    self._executor, self._make, record.row_key, record.image_path
                )
            )

    def _make(self, row_key: str, path: str) -> None:
        try:
            self.uris[row_key] = _thumbnail_data_uri(
                self.location.read_bytes(self.location.relative(path) or path)
            )
        except Exception:  # a missing or unreadable image is left to the gallery's own attempt
            logger.debug("no thumbnail for %s", path, exc_info=True)

    async def wait(self) -> dict[str, str]:
        await asyncio.gather(*self._pending, return_exceptions=True)
        self._executor.shutdown(wait=False)
        return self.uris


def gallery_markdown(
    frame: pd.DataFrame, location: OutputLocation, ready: Mapping[str, str] | None = None
) -> str:
    """Small inline thumbnails with their prompts, capped in count and size so the UI stays fast.

    `ready` holds thumbnails already made (by row key); the others are made here."""
    lines = ["| # | image | prompt | model |", "|---|---|---|---|"]
    used = 0
    shown = 0
    for line in frame.itertuples(index=False):
        if line.status != "succeeded" or not isinstance(line.image_path, str):
            continue
        if shown >= GALLERY_MAX_IMAGES or used >= GALLERY_MAX_BYTES:
            break
        rel = location.relative(line.image_path) or line.image_path
        try:
            uri = (ready or {}).get(str(line.row_key)) or _thumbnail_data_uri(location.read_bytes(rel))
        except Exception:  # a missing or unreadable image is left out of the gallery, not fatal
            logger.debug("no thumbnail for %s", rel, exc_info=True)
            continue
        used += len(uri)
        shown += 1
        prompt = html.escape(str(line.prompt or ""))[:160].replace("|", "\\|").replace("\n", " ")
        details = " ".join(
            str(v) for v in (line.model, line.aspect_ratio, line.resolution) if isinstance(v, str)
        )
        lines.append(f"| {line.row} | ![row {line.row}]({uri}) | {prompt} | {details} |")
    total = int((frame["status"] == "succeeded").sum())
    head = f"### Gallery\n\n{shown} of {total} images shown; all of them are in `{location.url}` (see `index.html`).\n\n"
    return head + "\n".join(lines)


async def publish_gallery(
    frame: pd.DataFrame, location: OutputLocation, key: str, thumbnails: Thumbnails | None = None
) -> None:
    ready = await thumbnails.wait() if thumbnails is not None else None
    markdown = await asyncio.to_thread(gallery_markdown, frame, location, ready)
    await acreate_markdown_artifact(
        markdown=markdown, key=key, description="Thumbnails of the generated images"
    )
