"""The image set's manifest (`manifest.parquet`, `manifest.csv`) and contact sheet (`index.html`).

Both are compiled from the row journal (`journal.py`), which is written as each row moves on, so a
crash loses nothing: the next run, or `nanobanana manifest OUT`, compiles them again.
"""

from __future__ import annotations

import html
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .journal import RowRecord
from .storage import OutputLocation

MANIFEST_COLUMNS = [
    "row",
    "row_key",
    "name",
    "prompt",
    "provider",
    "model",
    "aspect_ratio",
    "resolution",
    "status",
    "job_id",
    "image_path",
    "sha256",
    "width",
    "height",
    "bytes",
    "cost",
    "cost_source",
    "attempts",
    "error_type",
    "error",
    "submitted_at",
    "completed_at",
    "duplicate_of",
]
STATUSES = ("succeeded", "failed", "invalid", "planned", "over_budget")


def manifest_status(record: RowRecord) -> str:
    """The manifest's status for a journal record (`submitting`/`submitted` rows did not finish)."""
    if record.status in STATUSES:
        return record.status
    return "failed" if record.error_type else "planned"


def manifest_frame(records: Iterable[RowRecord], duplicates: dict[int, int] | None = None) -> pd.DataFrame:
    """One line per table row (duplicates point at the row whose image they share), ordered by row."""
    lines: list[dict[str, Any]] = []
    by_row: dict[int, dict[str, Any]] = {}
    for record in records:
        line = record.model_dump(include=set(MANIFEST_COLUMNS))
        line["status"] = manifest_status(record)
        line["duplicate_of"] = None
        lines.append(line)
        if record.row is not None:
            by_row[record.row] = line
    for row, original in sorted((duplicates or {}).items()):
        if original in by_row:
            lines.append({**by_row[original], "row": row, "duplicate_of": original})
    frame = pd.DataFrame(lines, columns=MANIFEST_COLUMNS)
    for column in ("submitted_at", "completed_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ("row", "width", "height", "bytes", "attempts", "duplicate_of"):
        frame[column] = frame[column].astype("Int64")
    frame["cost"] = frame["cost"].astype("Float64")
    return frame.sort_values("row", na_position="last", kind="stable").reset_index(drop=True)


@dataclass
class Summary:
    """What a run did, in numbers."""

    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    spent_usd: float = 0.0
    paid_submissions: int = 0
    skipped_done: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    manifest: str | None = None
    index_html: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "by_status": dict(self.by_status),
            "spent_usd": round(self.spent_usd, 4),
            "paid_submissions": self.paid_submissions,
            "skipped_done": self.skipped_done,
            "duplicates": self.duplicates,
            "seconds": round(self.seconds, 2),
            "manifest": self.manifest,
            "index_html": self.index_html,
        }

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    def text(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.by_status.items()))
        return (
            f"{self.rows} rows: {counts or 'nothing'}; ${self.spent_usd:.3f} spent on {self.paid_submissions} "
            f"paid submissions; {self.skipped_done} already done; {self.seconds:.1f} s"
        )


def count_statuses(frame: pd.DataFrame) -> dict[str, int]:
    return dict(Counter(frame["status"].tolist()))


def write_manifests(location: OutputLocation, frame: pd.DataFrame) -> str:
    """Write `manifest.parquet` and `manifest.csv` whole; return the parquet's URL."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    url = location.write_bytes("manifest.parquet", buffer.getvalue())
    location.write_text("manifest.csv", frame.to_csv(index=False))
    return url


def contact_sheet_html(frame: pd.DataFrame, location: OutputLocation, *, title: str = "Image set") -> str:
    """A static page of every image with its prompt and status; image links are relative."""
    cards: list[str] = []
    for line in frame.itertuples(index=False):
        status = str(line.status)
        prompt = html.escape(line.prompt if isinstance(line.prompt, str) else "")
        meta = html.escape(
            " · ".join(str(v) for v in (line.model, line.aspect_ratio, line.resolution) if isinstance(v, str))
        )
        rel = location.relative(line.image_path) if isinstance(line.image_path, str) else None
        if status == "succeeded" and rel:
            src = html.escape(rel)
            media = f'<a href="{src}"><img loading="lazy" src="{src}" alt="{prompt[:80]}"></a>'
        else:
            error = html.escape(str(line.error or status))
            media = f'<div class="missing">{html.escape(status)}<br><small>{error[:200]}</small></div>'
        cards.append(
            f'<figure class="{html.escape(status)}">{media}<figcaption><b>#{line.row}</b> {prompt}'
            f"<br><small>{meta}</small></figcaption></figure>"
        )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(count_statuses(frame).items()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:1rem}}
figure{{margin:0;background:#fff;border:1px solid #ddd;border-radius:8px;overflow:hidden}}
figure img{{width:100%;height:200px;object-fit:contain;background:#eee;display:block}}
figure.failed,figure.invalid,figure.over_budget{{border-color:#d33}}
.missing{{height:200px;display:flex;flex-direction:column;align-items:center;justify-content:center;
background:#fee;color:#a00;text-align:center;padding:0 1rem}}
figcaption{{padding:.5rem;font-size:.85rem;line-height:1.3}}
</style></head><body>
<h1>{html.escape(title)}</h1><p>{len(frame)} rows: {html.escape(counts)}. Manifest:
<a href="manifest.csv">manifest.csv</a>, <a href="manifest.parquet">manifest.parquet</a>.</p>
<div class="grid">
{chr(10).join(cards)}
</div></body></html>
"""


def write_contact_sheet(location: OutputLocation, frame: pd.DataFrame, *, title: str = "Image set") -> str:
    return location.write_text("index.html", contact_sheet_html(frame, location, title=title))
