"""`make chaos`: faults on the provider side, SIGKILL on ours, reruns until done; then every invariant.

The emulator runs in its own process (so it and its ledger survive every kill) and injects, at the
rates in `FAULTS`: 429s (with `Retry-After`) and 5xx on submits and status queries, connections
dropped after a submit was accepted and paid, tasks that end `failed`, and truncated or failing
downloads. Our runs, alternately the `generate_image_set` flow (in `benchmarks/ours.py`, against a
`prefect server start` process) and the `nanobanana generate` CLI (with a credentials block saved on
that server), are SIGKILLed at random moments several times, then rerun until one completes.

Then it checks, and exits non-zero on any violation:

- paid once: every `client_business_id` was paid at most once, and every row was paid exactly once,
  except that a row whose task ended `failed` may be paid once more per failed task (the engine's
  documented resubmission after a failed job, with `<row_key>-<n>` as the new business id); those
  extra submissions are counted and listed separately;
- images valid: every image opens and verifies with Pillow and has the documented pixel size for
  its aspect ratio at 1K;
- manifest complete and consistent: one line per table row, every row `succeeded`, and every line's
  file exists with that sha256, width and height; no image file that the manifest does not name.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/chaos.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BENCH_DIR, PYTHON, ROOT, Limits, emulator_process, prefect_server, stop_process

MODEL = "gemini-3-pro-image-preview"
RESOLUTION = "1K"
RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9")
BLOCK_NAME = "chaos-toapis"
API_KEY = "chaos-key"

# Each fault at a rate of a few percent, as ToAPIs describes them (providers.md 1.4, 1.7, 1.8):
FAULTS: dict[str, list[dict[str, Any]]] = {
    # refused before any work: nothing paid, the client must wait or retry
    "submit_error": [
        {"status": 429, "rate": 0.08, "retry_after": 1},
        {"status": 500, "rate": 0.04},
        {"status": 503, "rate": 0.03},
    ],
    # accepted and paid, but the answer never arrives: the client must look the task up, not resend
    "submit_drop": [{"rate": 0.07}],
    # paid, and the task ends failed: the one documented case for a second paid submission
    "task_failure": [{"rate": 0.06}],
    "query_error": [{"status": 429, "rate": 0.05, "retry_after": 1}, {"status": 502, "rate": 0.05}],
    "download_truncated": [{"rate": 0.07, "fraction": 0.4}],
    "download_error": [{"status": 500, "rate": 0.04}],
}


@dataclass
class Run:
    """One run of ours: what ran, how it ended."""

    kind: str  # "flow" or "cli"
    killed_after: float | None
    seconds: float
    returncode: int


@dataclass
class Report:
    """What the checks found."""

    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)


def write_chaos_table(path: Path, rows: int) -> Path:
    """A table of distinct prompts with a mix of aspect ratios (so image sizes are checked too)."""
    lines = ["prompt,aspect_ratio"]
    lines += [
        f'"[chaos {i:04d}] a banana in a storm, take {i}",{RATIOS[i % len(RATIOS)]}'
        for i in range(1, rows + 1)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def save_block(env: dict[str, str], url: str, limits: Limits) -> None:
    """Save the ToAPIs credentials block the CLI loads (`--credentials-block`): the emulator's URL, the
    scaled limits and poll schedule. Done in a child so this driver never imports Prefect."""
    code = (
        "from prefect_nanobanana.blocks.credentials import ToAPIsCredentials as C;"
        f"C(api_key={API_KEY!r}, base_url={url!r}, submit_rate={limits.submit_rate}, "
        f"submit_burst={limits.submit_burst}, query_rate={limits.query_rate}, query_burst={limits.query_burst}, "
        f"poll_first_delay={limits.poll_first}, poll_min_interval={limits.poll_min}, "
        f"poll_max_interval={limits.poll_max}).save({BLOCK_NAME!r}, overwrite=True)"
    )
    subprocess.run([PYTHON, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)


def command(kind: str, table: Path, out: Path, url: str, limits: Limits) -> list[str]:
    """The command line of one run of ours."""
    if kind == "flow":
        return [
            PYTHON, str(BENCH_DIR / "ours.py"), "--mode", "flow", "--table", str(table), "--out", str(out),
            "--base-url", url, "--api-key", API_KEY, "--model", MODEL, "--resolution", RESOLUTION,
            "--max-concurrency", "32", *limits.client_args(),
        ]  # fmt: skip
    nanobanana = str(Path(PYTHON).with_name("nanobanana"))
    return [
        nanobanana, "generate", str(table), "--out", str(out), "--credentials-block", BLOCK_NAME,
        "--model", MODEL, "--resolution", RESOLUTION, "--max-concurrency", "32", "--no-progress",
    ]  # fmt: skip


def run_once(
    cmd: list[str], env: dict[str, str], kill_after: float | None, log: Path
) -> tuple[float, int, bool]:
    """Run `cmd`; SIGKILL it (by its pid) after `kill_after` seconds if still running.

    Returns (seconds, return code, killed)."""
    started = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=kill_after if kill_after is not None else 300)
            killed = False
        except subprocess.TimeoutExpired:
            if kill_after is None:
                stop_process(proc)
                raise
            proc.kill()  # SIGKILL: no cleanup, no finally blocks, mid-write if that is where it is
            proc.wait()
            killed = True
    return time.monotonic() - started, proc.returncode, killed


def expected_size(ratio: str) -> tuple[int, int]:
    """The documented 1K pixel size of `ratio` (providers.md 3.5, as the emulator serves it)."""
    from prefect_nanobanana.emulator.spec import GEMINI_3_PIXELS

    return GEMINI_3_PIXELS[ratio][RESOLUTION]


def check(out: Path, table_rows: int, ledger: dict[str, Any], report: Report) -> dict[str, Any]:
    """Every invariant of the module docstring; violations go to `report`. Returns the figures."""
    import pandas as pd
    from PIL import Image

    manifest_path = out / "manifest.parquet"
    if not manifest_path.exists():
        report.fail("no manifest.parquet: no run completed")
        return {}
    frame = pd.read_parquet(manifest_path)
    if len(frame) != table_rows:
        report.fail(f"manifest has {len(frame)} lines for {table_rows} table rows")
    not_ok = frame[frame["status"] != "succeeded"]
    for line in not_ok.itertuples():
        report.fail(f"row {line.row}: status {line.status} ({line.error_type}: {line.error})")
    ratios = {i: RATIOS[i % len(RATIOS)] for i in range(1, table_rows + 1)}

    # --- images and manifest against the files -------------------------------------------------
    named: set[Path] = set()
    for line in frame.itertuples():
        if line.status != "succeeded":
            continue
        path = Path(str(line.image_path))
        named.add(path.resolve())
        if not path.exists():
            report.fail(f"row {line.row}: {path} is in the manifest but not on disk")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != line.sha256:
            report.fail(f"row {line.row}: sha256 of {path.name} differs from the manifest")
        try:
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # verify() checks structure; load() proves every pixel decodes
        except Exception as exc:
            report.fail(f"row {line.row}: {path.name} is not a valid image ({type(exc).__name__}: {exc})")
            continue
        if size != (line.width, line.height):
            report.fail(
                f"row {line.row}: {path.name} is {size}, the manifest says {(line.width, line.height)}"
            )
        if size != expected_size(ratios[int(line.row)]):
            report.fail(f"row {line.row}: {size} is not the documented 1K size of {ratios[int(line.row)]}")
        if int(line.bytes) != len(data):
            report.fail(f"row {line.row}: {len(data)} bytes, the manifest says {line.bytes}")
    images = [
        p for p in out.rglob("*") if p.suffix in (".png", ".jpg", ".webp") and ".nanobanana" not in p.parts
    ]
    for stray in sorted(p for p in images if p.resolve() not in named):
        report.fail(f"{stray.name} is an image the manifest does not name")
    leftovers = (
        list((out / ".nanobanana" / "staging").glob("*"))
        if (out / ".nanobanana" / "staging").exists()
        else []
    )

    # --- the ledger: paid once per row, plus one per failed task -----------------------------------
    keys = {str(line.row_key): int(line.row) for line in frame.itertuples()}
    per_cbid: dict[str, int] = ledger["paid_by_client_business_id"]
    for cbid, n in per_cbid.items():
        if n > 1:
            report.fail(f"client_business_id {cbid} was paid {n} times")
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sub in ledger["submissions"]:
        cbid = sub.get("client_business_id") or ""
        row_key = cbid.split("-")[0]
        if row_key not in keys:
            report.fail(f"paid submission {sub['task_id']} with unknown client_business_id {cbid!r}")
            continue
        by_row[row_key].append(sub)
    extra_for_failed: list[str] = []
    for row_key, row in keys.items():
        subs = by_row.get(row_key, [])
        failed = sum(1 for s in subs if s["status"] == "failed")
        if not subs:
            report.fail(f"row {row}: never paid for, yet {'succeeded' if row_key in keys else 'missing'}")
        elif len(subs) > 1 + failed:
            report.fail(f"row {row}: paid {len(subs)} times with only {failed} failed task(s)")
        elif len(subs) > 1:
            extra_for_failed.append(
                f"row {row}: {len(subs)} paid ({failed} task(s) failed, then resubmitted)"
            )
    undelivered = sum(1 for s in ledger["submissions"] if not s.get("delivered", True))
    return {
        "paid_submissions": ledger["paid"],
        "rows": table_rows,
        "extra_paid_for_failed_tasks": len(extra_for_failed),
        "extra_detail": extra_for_failed,
        "failed_tasks": sum(1 for s in ledger["submissions"] if s["status"] == "failed"),
        "paid_but_answer_dropped": undelivered,
        "staging_leftovers": len(leftovers),
        "images": len(images),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chaos scenario and print the checks; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--kills", type=int, default=8, help="runs killed with SIGKILL before the final runs")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for faults and kill times (default: random)"
    )
    parser.add_argument("--max-runs", type=int, default=20, help="give up after this many runs in total")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    rng = random.Random(seed)
    # The benchmark's scaled ToAPIs limits, with shorter tasks so that the kills land in every phase.
    limits = Limits(latency=1.0, latency_spread=0.3)
    work = Path(tempfile.mkdtemp(prefix="nanobanana-chaos-"))
    table = write_chaos_table(work / "table.csv", args.rows)
    out = work / "out"
    log = work / "runs.log"
    print(f"chaos: {args.rows} rows, seed {seed}, work in {work}")
    print(
        "faults: "
        + ", ".join(
            f"{k} {'+'.join(str(r.get('status', '')) + '@' + str(r['rate']) for r in v)}"
            for k, v in FAULTS.items()
        )
    )
    started = time.monotonic()
    runs: list[Run] = []
    report = Report()
    with emulator_process(limits, faults=FAULTS, seed=seed, log=work / "emulator.log") as (url, emu), \
            prefect_server(log=work / "prefect-server.log") as server:  # fmt: skip
        env = server.env()
        save_block(env, url, limits)
        # Kills first (alternating flow and CLI, at random moments), then runs to completion.
        plan: list[tuple[str, float | None]] = [
            ("flow" if i % 2 == 0 else "cli", rng.uniform(1.5, 7.0)) for i in range(args.kills)
        ]
        done = False
        i = 0
        while not done and i < args.max_runs:
            kind, kill_after = plan[i] if i < len(plan) else ("flow" if i % 2 == 0 else "cli", None)
            seconds, code, killed = run_once(command(kind, table, out, url, limits), env, kill_after, log)
            runs.append(Run(kind, kill_after if killed else None, seconds, code))
            paid = emu.ledger()["paid"]
            what = f"SIGKILL after {kill_after:.1f} s" if killed else f"exit {code}"
            print(
                f"  run {i + 1:2d} {kind:4s}: {what:22s} ({seconds:5.1f} s); paid so far {paid}", flush=True
            )
            done = not killed and code == 0
            i += 1
        if not done:
            report.fail(f"no run completed within {args.max_runs} runs (see {log})")
        ledger, stats = emu.ledger(), emu.stats()
    figures = check(out, args.rows, ledger, report)

    print()
    print(f"  runs: {len(runs)} ({sum(1 for r in runs if r.killed_after is not None)} killed), "
          f"{sum(1 for r in runs if r.kind == 'flow')} flow, {sum(1 for r in runs if r.kind == 'cli')} CLI")  # fmt: skip
    print(f"  faults fired: {json.dumps(stats.get('faults_fired', {}))}")
    if figures:
        print(f"  paid submissions: {figures['paid_submissions']} for {figures['rows']} rows; "
              f"{figures['extra_paid_for_failed_tasks']} row(s) paid again after their task failed "
              f"({figures['failed_tasks']} failed task(s) in all)")  # fmt: skip
        for line in figures["extra_detail"]:
            print(f"    {line}")
        if figures["extra_paid_for_failed_tasks"]:
            print(
                "    (a failed task yields no image, so the engine submits the row again under <row_key>-<n>:"
            )
            print(
                "     at most max_resubmits=1 time per run; a later run may pay once more if that task fails too)"
            )
        print(
            f"  paid submits whose answer was dropped (found again by lookup): {figures['paid_but_answer_dropped']}"
        )
        print(
            f"  images: {figures['images']}; staging leftovers from killed downloads: {figures['staging_leftovers']}"
        )
    print(f"  total {time.monotonic() - started:.0f} s")
    print()
    if report.violations:
        print(f"FAIL: {len(report.violations)} violation(s):")
        for v in report.violations:
            print(f"  - {v}")
    else:
        print("PASS: every row paid exactly once (plus one per failed task), every image valid, "
              "manifest complete and consistent with the files")  # fmt: skip
    if not args.keep and not report.violations:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
