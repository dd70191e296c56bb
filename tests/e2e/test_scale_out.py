"""Scale-out on a real Prefect server: one table split into chunks that run as flow runs of the
`chunk` deployment on two process workers, under one global concurrency limit, writing into one
shared location (a local directory, then an S3 bucket on a local moto server).

Checked: every row paid exactly once (the emulator's ledger), never more images in flight than
the limit (the emulator's `max_in_flight`), one combined manifest with every row succeeded that
matches a single-process run, and chunks ran on both workers (from the workers' own logs).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest
from nb_testing import FAKE_KEY

from .conftest import FAKE_AWS, ROOT, WORKERS, PrefectStack, free_port

ROWS = 24
CHUNK_SIZE = 6  # four chunks
LIMIT = 4  # the global concurrency limit: images in flight across all workers
PER_CHUNK = 2  # each chunk's max_concurrency, so two chunks run at once
GCL = "nanobanana-e2e-provider"
BLOCK_NAME = "e2e-scale-toapis"
BUCKET = "nanobanana-e2e"
MODEL = "gemini-3.1-flash-image-preview"
COMPARED = ["row", "row_key", "status", "has_sha256"]


def _write_table(path: Path) -> list[str]:
    prompts = [f"scale-out row {i}: a banana wearing hat number {i}" for i in range(1, ROWS + 1)]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([("prompt",), *((p,) for p in prompts)])
    return prompts


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(has_sha256=frame["sha256"].notna() & (frame["sha256"].astype(str).str.len() == 64))
    return frame[COMPARED].sort_values("row").reset_index(drop=True)


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An S3 endpoint on 127.0.0.1 with made-up credentials (the workers get the same ones)."""
    from moto.server import ThreadedMotoServer

    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_chunks_on_two_workers_share_one_limit_and_one_location(
    prefect_stack: PrefectStack, moto_s3: str, tmp_path: Path
) -> None:
    from prefect_nanobanana.emulator import EmulatorServer

    stack = prefect_stack
    stack.run("prefect", "gcl", "create", GCL, "--limit", str(LIMIT))  # first: chunks fail on a missing limit
    table = tmp_path / "table.csv"
    prompts = _write_table(table)
    s3_options = {"client_kwargs": {"endpoint_url": moto_s3}}
    s3 = fsspec.filesystem("s3", **s3_options)
    s3.mkdir(BUCKET)
    s3.put_file(str(table), f"{BUCKET}/tables/table.csv")

    with EmulatorServer(latency=0.8, latency_spread=0.4, seed=11) as emulator:
        stack.save_toapis_block(BLOCK_NAME, emulator.url)

        # The reference: the same table in one process (`nanobanana generate`), no Prefect involved.
        reference_dir = tmp_path / "single-process"
        stack.run(
            "nanobanana", "generate", str(table), "--out", str(reference_dir), "--base-url", emulator.url,
            "--model", MODEL, "--resolution", "1K", "--max-concurrency", str(LIMIT), "--no-progress",
            extra_env={"TOAPIS_API_KEY": FAKE_KEY},
        )  # fmt: skip
        reference = _comparable(pd.read_parquet(reference_dir / "manifest.parquet"))
        assert len(reference) == ROWS and (reference["status"] == "succeeded").all()

        locations = [
            ("local directory", str(tmp_path / "shared"), str(table), None),
            ("S3 bucket (moto)", f"s3://{BUCKET}/scale-out", f"s3://{BUCKET}/tables/table.csv", s3_options),
        ]
        figures = []
        for label, output, table_url, storage_options in locations:
            emulator.reset()  # a fresh ledger and in-flight count for each location
            figures.append(
                _scaled_run(stack, emulator, label, output, table_url, storage_options, prompts, reference)
            )

    out = ROOT / "out" / "e2e-scale-out.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))


def _scaled_run(
    stack: PrefectStack,
    emulator: Any,
    label: str,
    output: str,
    table_url: str,
    storage_options: dict[str, Any] | None,
    prompts: list[str],
    reference: pd.DataFrame,
) -> dict[str, Any]:
    """Run the table as chunks on the work pool into `output`; check it; return its figures."""
    parameters = {
        "table": table_url,
        "output": output,
        "storage_options": storage_options,
        "toapis_credentials": BLOCK_NAME,
        "model": MODEL,
        "resolution": "1K",
        "prompt_template": None,
        "reference_base_dir": None,
        "on_invalid": "fail",
        "max_cost": None,
        "max_concurrency": PER_CHUNK,
        "concurrency_limit": GCL,
        "chunk_size": CHUNK_SIZE,
        "chunk_deployment": "generate-image-set/chunk",
    }
    parent = stack.wait_for_flow_run(stack.trigger("generate-image-set/adhoc", parameters), timeout=180)
    assert parent["state_type"] == "COMPLETED", f"{label}: parent {parent['state_name']}\n{stack.report()}"

    chunks = [
        r for r in stack.flow_runs_of("generate-image-set/chunk") if r["parameters"].get("output") == output
    ]
    ran_on = stack.workers_of([r["id"] for r in chunks])
    per_worker = Counter(ran_on.values())
    ledger, stats = emulator.ledger(), emulator.stats()
    paid_per_prompt = Counter(entry["prompt"] for entry in ledger["submissions"])
    if storage_options:
        manifest = pd.read_parquet(f"{output}/manifest.parquet", storage_options=storage_options)
        fs, root = fsspec.core.url_to_fs(output, **storage_options)
        images = [p for p in fs.find(root) if p.endswith(".png")]
    else:
        manifest = pd.read_parquet(Path(output) / "manifest.parquet")
        images = [str(p) for p in Path(output).glob("*.png")]
    figure = {
        "location": label,
        "rows": ROWS,
        "chunks": len(chunks),
        "chunk_runs_per_worker": dict(sorted(per_worker.items())),
        "max_in_flight": stats["max_in_flight"],
        "limit": LIMIT,
        "paid_submissions": ledger["paid"],
        "max_paid_per_row": max(paid_per_prompt.values(), default=0),
        "images": len(images),
    }
    print(
        f"\n[{label}] chunk runs per worker: {figure['chunk_runs_per_worker']}; "
        f"max in flight {stats['max_in_flight']} (limit {LIMIT}); "
        f"paid {ledger['paid']} for {ROWS} rows (at most {figure['max_paid_per_row']} per row); {len(images)} images"
    )

    assert len(chunks) == ROWS // CHUNK_SIZE and all(r["state_type"] == "COMPLETED" for r in chunks), chunks
    assert sorted(r["parameters"]["row_range"][0] for r in chunks) == list(range(1, ROWS + 1, CHUNK_SIZE))
    assert all(r["parameters"]["max_concurrency"] <= LIMIT for r in chunks)
    assert ledger["paid"] == ROWS and set(paid_per_prompt) == set(prompts), paid_per_prompt
    assert set(paid_per_prompt.values()) == {1}, f"{label}: some row was paid twice: {paid_per_prompt}"
    assert 0 < stats["max_in_flight"] <= LIMIT, f"{label}: {stats['max_in_flight']} in flight, limit {LIMIT}"
    assert set(ran_on) == {r["id"] for r in chunks}, f"{label}: no worker line for some chunk runs"
    assert set(per_worker) == set(WORKERS), f"{label}: chunks ran only on {dict(per_worker)}"
    assert len(manifest) == ROWS and (manifest["status"] == "succeeded").all()
    assert len(images) == ROWS
    pd.testing.assert_frame_equal(_comparable(manifest), reference)
    return figure
