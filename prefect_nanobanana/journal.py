"""The row journal: what happened to each row, kept in the output location itself.

Each row has one small JSON record at `.nanobanana/rows/<row_key>.json`, rewritten whole at every
step (`submitting` before a paid call, `submitted` with the job id as soon as it exists, then
`succeeded` or `failed`). Because it lives beside the images, not in Prefect's local result
storage, a rerun on another machine (a fresh Prefect home) knows what was already paid for and
what is already done, and several workers sharing one location never write the same file.
The manifests (`manifest.py`) are compiled from these records.
"""

from __future__ import annotations

import builtins
import json
from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from .models import utcnow
from .storage import OutputLocation

RowStatus = Literal[
    "planned",  # validated, nothing sent
    "submitting",  # a paid request is about to be sent / was sent without an answer yet
    "submitted",  # the provider accepted the job: job_id is known
    "succeeded",  # the image is in the output location
    "failed",  # the row ended without an image this run
    "invalid",  # the row never passed validation
    "over_budget",  # not submitted: it would have exceeded max_cost
]

JOURNAL_DIR = ".nanobanana/rows"


class RowRecord(BaseModel):
    """Everything known about one row; also one manifest line."""

    model_config = ConfigDict(extra="ignore")

    row: int | None = None
    row_key: str
    name: str | None = None
    prompt: str | None = None
    provider: str | None = None
    model: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    status: RowStatus = "planned"
    job_id: str | None = None
    client_business_id: str | None = None
    attempts: int = Field(default=0, description="Paid submissions made for this row, all runs together.")
    image_path: str | None = None
    image_url: str | None = Field(default=None, description="The provider's URL of the finished image.")
    expires_at: datetime | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: Optional[int] = None
    cost: float | None = None
    cost_source: Literal["reported", "estimated"] | None = None
    error_type: str | None = None
    error: str | None = None
    submitted_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    flow_run_id: str | None = None

    def to_json(self) -> builtins.bytes:
        return self.model_dump_json(exclude_none=False).encode("utf-8")


class RowJournal:
    """Reads and writes row records in an output location."""

    def __init__(self, location: OutputLocation) -> None:
        self.location = location

    @staticmethod
    def record_path(row_key: str) -> str:
        return f"{JOURNAL_DIR}/{row_key}.json"

    def write(self, record: RowRecord, **changes: Any) -> RowRecord:
        """Store `record` with `changes` applied (and a fresh `updated_at`); return what was stored."""
        updated = record.model_copy(update={**changes, "updated_at": utcnow()})
        self.location.write_bytes(self.record_path(updated.row_key), updated.to_json())
        return updated

    def get(self, row_key: str) -> RowRecord | None:
        try:
            data = self.location.read_bytes(self.record_path(row_key))
        except FileNotFoundError:
            return None
        return RowRecord.model_validate_json(data)

    def is_finished(self, record: RowRecord | None, existing: set[str] | None = None) -> bool:
        """True when `record` says succeeded and its image is still in the location (`existing`, a set
        of relative paths listed once, saves one existence check per row)."""
        if record is None or record.status != "succeeded" or not record.image_path:
            return False
        rel = self.location.relative(record.image_path)
        if rel is None:
            return False
        return rel in existing if existing is not None else self.location.exists(rel)

    def load_all(self) -> dict[str, RowRecord]:
        """Every record in the location, by row key (unreadable records are skipped, not fatal)."""
        files = [f for f in self.location.list_files(JOURNAL_DIR) if f.endswith(".json")]
        records: dict[str, RowRecord] = {}
        for data in self.location.read_many(files).values():
            try:
                record = RowRecord.model_validate(json.loads(data))
            except ValueError:
                continue
            records[record.row_key] = record
        return records
