"""The baseline: a plain asyncio + httpx script that turns a prompt table into images on ToAPIs.

This is what a careful user would write by hand, and what `benchmarks/run.py` holds our Prefect
flow against. It imports nothing from `prefect_nanobanana`, so any speed our code has or lacks is
ours alone. It does what the ToAPIs documentation asks (providers.md 1.4 and 1.8):

- submit every row with a `client_business_id`, at most `concurrency` rows in flight (a semaphore);
- honour `Retry-After` on 429 (a refused request is not billed, so it is simply sent again);
- after a 5xx or a lost connection on submit, look the task up by its `client_business_id` before
  sending it again, so that nothing is paid twice;
- poll with the documented schedule (a first poll after `first_poll`, then every
  `uniform(min_interval, max_interval)` seconds);
- stream each image to a temporary file and rename it into place.

It has no token bucket of its own: when the burst is spent it finds out from the 429s, which is what
a hand-written script typically does.

Run it on its own::

    python benchmarks/baseline.py --base-url http://127.0.0.1:8765 --api-key KEY --table t.csv --out out/
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SUFFIXES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@dataclass(frozen=True)
class BaselineSettings:
    """How the baseline talks to ToAPIs: what to generate, how many at once, how to poll."""

    model: str = "gemini-3-pro-image-preview"
    resolution: str | None = "1K"
    aspect_ratio: str | None = None
    concurrency: int = 256
    first_poll: float = 5.0
    min_interval: float = 5.0
    max_interval: float = 10.0
    timeout: float = 30.0
    deadline: float = 900.0
    """Give up on one row after this many seconds."""


@dataclass
class RowOutcome:
    """What happened to one row: its file (when it succeeded) and when it finished."""

    index: int
    prompt: str
    task_id: str | None = None
    path: str | None = None
    error: str | None = None
    finished_at: float | None = None
    """`time.time()` when the image was in place (or the row gave up)."""


@dataclass
class BaselineResult:
    """The whole run: one outcome per row, the wall time and the HTTP calls made."""

    rows: list[RowOutcome]
    started_at: float
    seconds: float
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        """Rows whose image is on disk."""
        return sum(1 for r in self.rows if r.path is not None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary (the completion times are kept for the plot)."""
        return {
            "rows": len(self.rows),
            "succeeded": self.succeeded,
            "failed": len(self.rows) - self.succeeded,
            "seconds": round(self.seconds, 3),
            "started_at": self.started_at,
            "finished_at": [r.finished_at for r in self.rows if r.path is not None],
            "calls": dict(self.calls),
        }


class _Retry(Exception):
    """A request to send again after `delay` seconds (429 or a transient failure)."""

    def __init__(self, delay: float, why: str) -> None:
        super().__init__(why)
        self.delay = delay


def _retry_after(response: httpx.Response, default: float = 1.0) -> float:
    """Seconds to wait from `Retry-After` (whole seconds on ToAPIs), or `default`."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


class BaselineClient:
    """The three ToAPIs calls the baseline needs, with the retry rules a careful user applies."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, api_key: str, settings: BaselineSettings
    ) -> None:
        self.http = http
        self.base = base_url.rstrip("/").removesuffix("/v1") + "/v1"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.settings = settings
        self.calls: dict[str, int] = {"submit": 0, "query": 0, "download": 0, "429": 0, "retry": 0}

    def _payload(self, prompt: str, business_id: str) -> dict[str, Any]:
        s = self.settings
        payload: dict[str, Any] = {
            "model": s.model,
            "prompt": prompt,
            "n": 1,
            "client_business_id": business_id,
        }
        if s.aspect_ratio:
            payload["size"] = s.aspect_ratio
        if s.resolution:
            payload["metadata"] = {"resolution": s.resolution}
        return payload

    async def _get_task(self, task_or_business_id: str) -> dict[str, Any] | None:
        """One status query; None on 404 (no such task)."""
        self.calls["query"] += 1
        try:
            response = await self.http.get(
                f"{self.base}/images/generations/{task_or_business_id}", headers=self.headers
            )
        except httpx.TransportError as exc:
            raise _Retry(1.0, f"query: {type(exc).__name__}") from exc
        if response.status_code == 429:
            self.calls["429"] += 1
            raise _Retry(_retry_after(response), "query: 429")
        if response.status_code == 404:
            return None
        if response.status_code >= 500:
            raise _Retry(1.0, f"query: HTTP {response.status_code}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def submit(self, prompt: str, business_id: str) -> str:
        """Create the task and return its id, paying at most once for `business_id`."""
        attempt = 0
        while True:
            attempt += 1
            self.calls["submit"] += 1
            try:
                response = await self.http.post(
                    f"{self.base}/images/generations",
                    json=self._payload(prompt, business_id),
                    headers=self.headers,
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 429:
                # Not billed: wait as told and send it again.
                self.calls["429"] += 1
                await asyncio.sleep(_retry_after(response) + random.uniform(0, 0.25))
                continue
            if response is not None and response.status_code < 300:
                task_id: str = response.json()["id"]
                return task_id
            if response is not None and response.status_code < 500:
                response.raise_for_status()
            # A lost answer or a 5xx: the task may exist. Look it up before paying again.
            self.calls["retry"] += 1
            await asyncio.sleep(min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
            found = await self._lookup(business_id)
            if found is not None:
                return found
            if attempt >= 6:
                raise RuntimeError(f"submit of {business_id} failed {attempt} times")

    async def _lookup(self, business_id: str) -> str | None:
        for _ in range(5):
            try:
                task = await self._get_task(business_id)
            except _Retry as retry:
                await asyncio.sleep(retry.delay)
                continue
            return str(task["id"]) if task else None
        return None

    async def wait(self, task_id: str) -> str:
        """Poll the task with the documented schedule; return its image URL."""
        s = self.settings
        deadline = time.monotonic() + s.deadline
        delay = s.first_poll
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = random.uniform(s.min_interval, s.max_interval)
            try:
                task = await self._get_task(task_id)
            except _Retry as retry:
                delay = max(delay, retry.delay)
                continue
            if task is None:
                raise RuntimeError(f"task {task_id} not found")
            status = task.get("status")
            if status == "completed":
                data = (task.get("result") or {}).get("data") or [{}]
                url = data[0].get("url") or task.get("url")
                if not url:
                    raise RuntimeError(f"task {task_id} completed without a URL")
                return str(url)
            if status == "failed":
                raise RuntimeError(f"task {task_id} failed: {task.get('error')}")
        raise TimeoutError(f"task {task_id} still running after {s.deadline} s")

    async def download(self, url: str, dest_stem: Path) -> Path:
        """Stream the image to a temporary file, check its length, rename it into place."""
        for attempt in range(4):
            self.calls["download"] += 1
            tmp = dest_stem.with_name(f".{dest_stem.name}.{attempt}.part")
            try:
                async with self.http.stream("GET", url) as response:
                    response.raise_for_status()
                    expected = int(response.headers.get("Content-Length", "0") or 0)
                    size = 0
                    # Plain writes, as most scripts do: 64 kB to a local disk is quicker than a thread hop.
                    with open(tmp, "wb") as fh:  # noqa: ASYNC230
                        async for chunk in response.aiter_bytes(64 * 1024):
                            fh.write(chunk)
                            size += len(chunk)
                if expected and size != expected:
                    raise httpx.ReadError(f"got {size} of {expected} bytes")
                suffix = SUFFIXES.get(response.headers.get("Content-Type", "").split(";")[0], "png")
                final = dest_stem.with_suffix(f".{suffix}")
                os.replace(tmp, final)
                return final
            except httpx.HTTPError:
                tmp.unlink(missing_ok=True)
                await asyncio.sleep(0.5 * 2**attempt)
        raise RuntimeError(f"download of {url} failed")


async def run_baseline(
    base_url: str,
    api_key: str,
    prompts: list[str],
    out_dir: Path,
    settings: BaselineSettings | None = None,
) -> BaselineResult:
    """Generate one image per prompt into `out_dir` (`00001.png`, ...); never raises for a row."""
    settings = settings or BaselineSettings()
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any request
    semaphore = asyncio.Semaphore(settings.concurrency)
    # One connection per row in flight: a smaller pool would queue requests inside httpx and make the
    # baseline look slower than the script a user would actually tune.
    limits = httpx.Limits(
        max_connections=settings.concurrency + 16, max_keepalive_connections=settings.concurrency
    )
    outcomes = [RowOutcome(i, p) for i, p in enumerate(prompts, start=1)]
    started_wall = time.time()
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=settings.timeout, limits=limits) as http:
        client = BaselineClient(http, base_url, api_key, settings)

        async def one(outcome: RowOutcome) -> None:
            async with semaphore:
                try:
                    business_id = f"baseline-{outcome.index:06d}-{hashlib.sha256(outcome.prompt.encode()).hexdigest()[:12]}"
                    outcome.task_id = await client.submit(outcome.prompt, business_id)
                    url = await client.wait(outcome.task_id)
                    path = await client.download(url, out_dir / f"{outcome.index:05d}")
                    outcome.path = str(path)
                except Exception as exc:  # one failed row must not stop the others
                    outcome.error = f"{type(exc).__name__}: {exc}"
                outcome.finished_at = time.time()

        await asyncio.gather(*(one(o) for o in outcomes))
        calls = dict(client.calls)
    return BaselineResult(outcomes, started_wall, time.perf_counter() - started, calls)


def read_prompts(table: Path) -> list[str]:
    """The `prompt` column of a CSV table."""
    with open(table, newline="", encoding="utf-8") as fh:
        return [row["prompt"] for row in csv.DictReader(fh)]


def main(argv: list[str] | None = None) -> int:
    """Command line: run the baseline over a CSV table and print its result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--table", type=Path, required=True, help="CSV with a prompt column")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=BaselineSettings.model)
    parser.add_argument("--resolution", default=BaselineSettings.resolution)
    parser.add_argument("--concurrency", type=int, default=BaselineSettings.concurrency)
    parser.add_argument("--first-poll", type=float, default=BaselineSettings.first_poll)
    parser.add_argument("--min-interval", type=float, default=BaselineSettings.min_interval)
    parser.add_argument("--max-interval", type=float, default=BaselineSettings.max_interval)
    args = parser.parse_args(argv)
    settings = BaselineSettings(
        model=args.model,
        resolution=args.resolution,
        concurrency=args.concurrency,
        first_poll=args.first_poll,
        min_interval=args.min_interval,
        max_interval=args.max_interval,
    )
    result = asyncio.run(
        run_baseline(args.base_url, args.api_key, read_prompts(args.table), args.out, settings)
    )
    print(json.dumps(result.to_dict()))
    return 0 if result.succeeded == len(result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
