"""`make bench`: our Prefect flow against a plain asyncio baseline and the ideal bound, on the emulator.

One run of this script:

1. starts the emulator (`python -m prefect_nanobanana.emulator`) in its own process with the
   documented ToAPIs `default`-group limits and a typical task latency, all scaled 4x in time
   (submit 20/s, burst 200; query 200/s, burst 2000; tasks 2.5 +- 0.5 s), and `prefect server start`
   in another, with a private PREFECT_HOME;
2. runs the `generate_image_set` flow over a generated table of `--rows` distinct prompts in a child
   process (`benchmarks/ours.py`), images written to a temporary directory, with the poll schedule
   scaled 4x too (first poll 1.25 s, then every 1.25-2.5 s);
3. runs the same flow again over the same table and output (the rerun must pay nothing);
4. resets the emulator (full token buckets) and runs `benchmarks/baseline.py` over a table of as many
   other prompts, with the same limits, poll schedule and concurrency;
5. unless `--no-memory`, runs the flow over `--memory-rows` 4K images and records its peak RSS;
6. prints a table with PASS/MISS per target and writes `benchmarks/results/latest.json` and
   `benchmarks/results/latest.png` (completed images over time).

Nothing here asserts: the figures are printed and saved, and the exit code is 0 unless a run failed
outright (an image missing or a child process crashing), whatever the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

if __package__ in (None, ""):  # run as `python benchmarks/run.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.common import (
    BENCH_DIR,
    PYTHON,
    RESULTS_DIR,
    ROOT,
    ChildResult,
    Limits,
    emulator_process,
    ideal_seconds,
    prefect_server,
    run_ours,
    tagged,
    write_table,
)

MODEL = "gemini-3-pro-image-preview"
RESOLUTION = "1K"
MEMORY_MODEL = "gemini-3.1-flash-image-preview"
MEMORY_RESOLUTION = "4K"
MEMORY_LIMIT_MB = 300.0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class Target:
    """One target: a figure, how it compares, and whether it was met."""

    name: str
    value: float | None
    op: str  # "<=", ">=", "<", "=="
    bound: float
    unit: str = ""

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        v, b = self.value, self.bound
        return {"<=": v <= b, ">=": v >= b, "<": v < b, "==": abs(v - b) < 1e-9}[self.op]

    @property
    def shown(self) -> str:
        """The figure as printed."""
        return "n/a" if self.value is None else f"{self.value:.4g}"

    @property
    def margin(self) -> str:
        """How far inside (+) or outside (-) the bound the figure is."""
        if self.value is None:
            return "n/a"
        if self.op == "==":
            return "exact" if self.passed else f"off by {self.value - self.bound:+.3g}"
        room = self.bound - self.value if self.op in ("<=", "<") else self.value - self.bound
        return f"{room:+.3g}{self.unit}"


def _images_in(directory: Path) -> list[Path]:
    """The image files of an output directory (not the journal, staging or manifests)."""
    return [p for p in directory.rglob("*") if p.suffix in IMAGE_SUFFIXES and ".nanobanana" not in p.parts]


def completion_times(directory: Path, started_at: float) -> list[float]:
    """Seconds after `started_at` at which each image of `directory` was complete (file mtimes:
    both clients write to a temporary name and rename, so the mtime is the end of the download)."""
    return sorted(p.stat().st_mtime - started_at for p in _images_in(directory))


def measure_download(url: str, api_key: str, model: str, resolution: str) -> float:
    """Seconds one image download takes from this emulator (median of 5, after a warm-up task).

    Also warms the emulator's image cache for this size, so neither contestant pays the one-off
    encoding of the first image."""
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"model": model, "prompt": "warm-up", "n": 1, "metadata": {"resolution": resolution}}
    with httpx.Client(timeout=60) as http:
        task_id = http.post(f"{url}/v1/images/generations", json=body, headers=headers).json()["id"]
        while True:
            time.sleep(0.25)
            task = http.get(f"{url}/v1/images/generations/{task_id}", headers=headers).json()
            if task["status"] in ("completed", "failed"):
                break
        image_url = task["result"]["data"][0]["url"]
        http.get(image_url).raise_for_status()
        times = []
        for _ in range(5):
            started = time.perf_counter()
            http.get(image_url).raise_for_status()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def submit_times(ledger: dict[str, Any], tag: str, started_at: float, burst: int) -> dict[str, float]:
    """When the provider accepted the first, the burst-ending and the last paid submit of a table,
    in seconds after `started_at`: where a run lost time against the ideal bound."""
    times = sorted(s["at"] - started_at for s in tagged(ledger, tag))
    if not times:
        return {}
    end = min(len(times), burst) - 1
    return {"first": round(times[0], 3), "burst_end": round(times[end], 3), "last": round(times[-1], 3)}


def polls_per_job(ledger: dict[str, Any], stats: dict[str, Any], tag: str) -> float | None:
    """Mean status queries per paid task of the table tagged `tag`."""
    tasks = [s["task_id"] for s in tagged(ledger, tag)]
    if not tasks:
        return None
    polls = stats.get("polls_by_task", {})
    return sum(polls.get(t, 0) for t in tasks) / len(tasks)


def run_baseline_child(
    url: str, api_key: str, table: Path, out: Path, limits: Limits, concurrency: int
) -> dict[str, Any]:
    """Run `benchmarks/baseline.py` in its own process (as our flow runs in its own) and return its JSON."""
    cmd = [
        PYTHON, str(BENCH_DIR / "baseline.py"), "--base-url", url, "--api-key", api_key, "--table", str(table),
        "--out", str(out), "--model", MODEL, "--resolution", RESOLUTION, "--concurrency", str(concurrency),
        "--first-poll", str(limits.poll_first), "--min-interval", str(limits.poll_min),
        "--max-interval", str(limits.poll_max),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"baseline failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["returncode"] = proc.returncode
    return result


def _ours_args(setup: Setup, table: Path, out: Path, key: str, model: str, resolution: str) -> list[str]:
    """Command line of `benchmarks/ours.py` for one run."""
    return [
        "--mode", setup.ours_mode, "--table", str(table), "--out", str(out), "--base-url", setup.url,
        "--api-key", key, "--model", model, "--resolution", resolution,
        "--max-concurrency", str(setup.concurrency), *setup.limits.client_args(),
    ]  # fmt: skip


def _check(child: ChildResult, what: str) -> dict[str, Any]:
    if not child.ok or child.report is None:
        raise RuntimeError(f"{what} failed (exit {child.returncode}):\n{child.output[-4000:]}")
    return child.report


def plot(path: Path, ours: list[float], baseline: list[float], ideal_s: float, rows: int) -> None:
    """Completed images over time for ours and the baseline, with the ideal bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for label, times, colour in (("ours (generate_image_set flow)", ours, "#1f77b4"),
                                 ("baseline (asyncio + httpx)", baseline, "#ff7f0e")):  # fmt: skip
        ax.step([0.0, *times], list(range(len(times) + 1)), where="post", label=label, color=colour)
    ax.axvline(ideal_s, color="#2ca02c", linestyle="--", label=f"ideal bound ({ideal_s:.1f} s)")
    ax.axhline(rows, color="#999999", linewidth=0.6)
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("images on disk")
    ax.set_title(f"{rows} images, ToAPIs limits scaled 4x (emulator)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


class Emulator(Protocol):
    """What the benchmark needs of an emulator: `EmulatorControl` (another process) or
    `EmulatorServer` (in process, for the smoke test) both have it."""

    def ledger(self) -> dict[str, Any]: ...
    def stats(self) -> dict[str, Any]: ...
    def reset(self) -> None: ...


@dataclass
class Setup:
    """Where and how one benchmark runs."""

    url: str
    emulator: Emulator
    env: dict[str, str]
    """Environment of our child process (PREFECT_API_URL of the benchmark's Prefect server)."""
    work: Path
    limits: Limits
    concurrency: int = 256
    ours_mode: str = "flow"
    """"flow": the generate_image_set flow; "cli": the same core without Prefect (smoke test)."""


REQUIRED_KEYS = (
    "rows", "ours_s", "baseline_s", "ideal_s", "ours_over_baseline", "ideal_over_ours", "paid_per_row",
    "polls_per_job", "peak_rss_mb", "cpu_ms_per_row", "rerun_paid", "rerun_fraction",
)  # fmt: skip
"""Keys `latest.json` always has after a main run (plus `peak_rss_mb_4k` after the memory run)."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table with PASS/MISS per target, write latest.json and latest.png."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=400, help="rows of the main table (default 400)")
    parser.add_argument("--concurrency", type=int, default=256, help="max_concurrency of both clients")
    parser.add_argument("--memory-rows", type=int, default=200, help="rows of 4K images in the memory run")
    parser.add_argument("--no-memory", action="store_true", help="skip the 4K memory run")
    parser.add_argument("--memory", action="store_true", help="run only the 4K memory run")
    parser.add_argument("--seed", type=int, default=20240611, help="emulator seed (latencies)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where latest.json and latest.png go")
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of our first run (HTML)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    limits = Limits()
    work = Path(tempfile.mkdtemp(prefix="nanobanana-bench-"))
    results: dict[str, Any] = {}
    latest = args.out / "latest.json"
    if args.memory and latest.exists():  # a memory-only run updates the last full run's figures
        results = json.loads(latest.read_text())
    t0 = time.perf_counter()
    with emulator_process(limits, seed=args.seed, log=work / "emulator.log") as (url, emu), \
            prefect_server(log=work / "prefect-server.log") as server:  # fmt: skip
        print(
            f"emulator {url}; prefect server {server.api_url} up in {server.startup_s:.1f} s; work in {work}"
        )
        setup = Setup(url, emu, server.env(), work, limits, args.concurrency)
        if not args.memory:
            profile = args.out / "profile-ours.html" if args.profile else None
            results.update(measure_main(setup, args.rows, profile=profile))
            results["server_startup_s"] = round(server.startup_s, 2)
        if not args.no_memory:
            results.update(measure_memory(setup, args.memory_rows))
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    results["limits"] = asdict(limits)
    results["total_s"] = round(time.perf_counter() - t0, 1)
    targets = report(results, limits, args.out)
    for t in targets:
        print(
            f"  {'PASS' if t.passed else 'MISS'}  {t.name:<26} {t.shown:>8}  (target {t.op} {t.bound:.3g}; margin {t.margin})"
        )
    print(f"\nwrote {latest}" + (f" and {args.out / 'latest.png'}" if "timeline" in results else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(results: dict[str, Any], limits: Limits, out: Path) -> list[Target]:
    """Judge the targets, write `out/latest.json` (and `out/latest.png` when there is a timeline),
    print the figures; return the targets."""
    targets = _targets(results, limits)
    results["targets"] = {
        t.name: {"value": t.value, "bound": f"{t.op} {t.bound:g}", "pass": t.passed} for t in targets
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if "timeline" in results:
        plot(out / "latest.png", results["timeline"]["ours"], results["timeline"]["baseline"],
             results["ideal_s"], results["rows"])  # fmt: skip
    _print(results)
    return targets


def measure_main(setup: Setup, rows: int, *, profile: Path | None = None) -> dict[str, Any]:
    """Ours, the rerun and the baseline over `rows` rows; the main figures of latest.json."""
    emu, limits, work = setup.emulator, setup.limits, setup.work
    download_s = measure_download(setup.url, "bench-warmup", MODEL, RESOLUTION)
    emu.reset()
    ours_table = write_table(work / "ours.csv", rows, "ours")
    ours_out = work / "ours-out"
    flow_args = _ours_args(setup, ours_table, ours_out, "bench-ours", MODEL, RESOLUTION)

    print(f"ours: generate_image_set over {rows} rows ...", flush=True)
    first_args = flow_args + (["--profile", str(profile)] if profile else [])
    ours = _check(run_ours(first_args, setup.env), "our flow")
    ledger1, stats1 = emu.ledger(), emu.stats()
    print(f"  {ours['seconds']:.2f} s", flush=True)

    print("rerun: the same table and output ...", flush=True)
    rerun = _check(run_ours(flow_args, setup.env), "our rerun")
    ledger2 = emu.ledger()
    print(f"  {rerun['seconds']:.2f} s", flush=True)

    emu.reset()  # the baseline starts with full token buckets too
    base_table = write_table(work / "baseline.csv", rows, "base")
    base_out = work / "baseline-out"
    print(f"baseline: asyncio + httpx over {rows} rows ...", flush=True)
    base = run_baseline_child(setup.url, "bench-baseline", base_table, base_out, limits, setup.concurrency)
    ledger_b, stats_b = emu.ledger(), emu.stats()
    print(f"  {base['seconds']:.2f} s", flush=True)

    ours_images = _images_in(ours_out)
    if len(ours_images) != rows or base["succeeded"] != rows:
        raise RuntimeError(
            f"incomplete: ours {len(ours_images)} images, baseline {base['succeeded']} of {rows}"
        )
    ideal = ideal_seconds(rows, limits, download_s)
    paid_ours = len(tagged(ledger1, "ours"))
    rerun_paid = len(tagged(ledger2, "ours")) - paid_ours
    return {
        "rows": rows,
        "ours_s": round(ours["seconds"], 3),
        "baseline_s": round(base["seconds"], 3),
        "ideal_s": round(ideal, 3),
        "ours_over_baseline": round(ours["seconds"] / base["seconds"], 4),
        "ideal_over_ours": round(ideal / ours["seconds"], 4),
        "paid_per_row": round(paid_ours / rows, 4),
        "polls_per_job": round(polls_per_job(ledger1, stats1, "ours") or 0.0, 3),
        "peak_rss_mb": ours["peak_rss_mb"],
        "cpu_ms_per_row": round(1000 * ours["cpu_s"] / rows, 3),
        "rerun_paid": rerun_paid,
        "rerun_fraction": round(rerun["seconds"] / ours["seconds"], 4),
        "rerun_s": round(rerun["seconds"], 3),
        "ours_mode": setup.ours_mode,
        "download_s": round(download_s, 4),
        "baseline_polls_per_job": round(polls_per_job(ledger_b, stats_b, "base") or 0.0, 3),
        "baseline_paid_per_row": round(len(tagged(ledger_b, "base")) / rows, 4),
        "ours_submits_at": submit_times(ledger1, "ours", ours["started_at"], limits.submit_burst),
        "baseline_submits_at": submit_times(ledger_b, "base", base["started_at"], limits.submit_burst),
        "ours_rate_limited": stats1.get("rate_limited", {}),
        "baseline_rate_limited": stats_b.get("rate_limited", {}),
        "baseline_calls": base.get("calls", {}),
        "ours_rss_after_imports_mb": ours["rss_after_imports_mb"],
        "ours_summary": {k: ours["result"].get(k) for k in ("by_status", "paid_submissions", "spent_usd")},
        "rerun_summary": {
            k: rerun["result"].get(k) for k in ("by_status", "paid_submissions", "skipped_done")
        },
        "timeline": {
            "ours": [round(t, 3) for t in completion_times(ours_out, ours["started_at"])],
            "baseline": [round(t, 3) for t in completion_times(base_out, base["started_at"])],
        },
    }


def measure_memory(setup: Setup, rows: int) -> dict[str, Any]:
    """Our flow over `rows` 4K images: the peak RSS of the process running it."""
    setup.emulator.reset()
    measure_download(setup.url, "bench-warmup", MEMORY_MODEL, MEMORY_RESOLUTION)  # encode the 4K image once
    table = write_table(setup.work / "memory.csv", rows, "mem")
    out = setup.work / "memory-out"
    print(f"memory: generate_image_set over {rows} rows of {MEMORY_RESOLUTION} images ...", flush=True)
    args = _ours_args(setup, table, out, "bench-4k", MEMORY_MODEL, MEMORY_RESOLUTION)
    result = _check(run_ours(args, setup.env), "the 4K run")
    images = _images_in(out)
    print(f"  {result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    if len(images) != rows:
        raise RuntimeError(f"4K run incomplete: {len(images)} of {rows} images")
    return {
        "memory_rows": rows,
        "peak_rss_mb_4k": result["peak_rss_mb"],
        "memory_s": round(result["seconds"], 3),
        "memory_image_bytes": images[0].stat().st_size,
        "memory_rss_after_imports_mb": result["rss_after_imports_mb"],
    }


def _targets(r: dict[str, Any], limits: Limits) -> list[Target]:
    mean_interval = (limits.poll_min + limits.poll_max) / 2
    targets = []
    if "ours_s" in r:
        targets += [
            Target("ours / baseline", r["ours_over_baseline"], "<=", 1.10),
            Target("ideal / ours", r["ideal_over_ours"], ">=", 0.85),
            Target("polls per job", r["polls_per_job"], "<=", limits.latency / mean_interval + 2),
            Target("paid submissions per row", r["paid_per_row"], "==", 1.0),
            Target("rerun paid submissions", r["rerun_paid"], "==", 0.0),
            Target("rerun time / first run", r["rerun_fraction"], "<", 0.10),
        ]
    if "peak_rss_mb_4k" in r:
        targets.append(Target("4K peak RSS (MB)", r["peak_rss_mb_4k"], "<", MEMORY_LIMIT_MB, " MB"))
    return targets


def _print(r: dict[str, Any]) -> None:
    """The figures as a two-column table."""
    print()
    if "ours_s" in r:
        rows = [
            ("rows", f"{r['rows']}"),
            (f"ours ({'flow call to return' if r.get('ours_mode') == 'flow' else r.get('ours_mode')})", f"{r['ours_s']:.2f} s"),
            ("baseline (asyncio + httpx)", f"{r['baseline_s']:.2f} s"),
            ("ideal bound", f"{r['ideal_s']:.2f} s  (one download {1000 * r['download_s']:.0f} ms)"),
            ("ours / baseline", f"{r['ours_over_baseline']:.3f}"),
            ("ideal / ours", f"{r['ideal_over_ours']:.3f}"),
            ("paid submissions per row", f"{r['paid_per_row']:.2f}  (baseline {r['baseline_paid_per_row']:.2f})"),
            ("polls per job", f"{r['polls_per_job']:.2f}  (baseline {r['baseline_polls_per_job']:.2f})"),
            ("peak RSS of our flow process", f"{r['peak_rss_mb']:.0f} MB  ({r['ours_rss_after_imports_mb']:.0f} MB after imports)"),
            ("CPU per row (our process)", f"{r['cpu_ms_per_row']:.2f} ms"),
            ("rerun: paid submissions", f"{r['rerun_paid']}"),
            ("rerun: time", f"{r['rerun_s']:.2f} s = {100 * r['rerun_fraction']:.1f} % of the first run"),
        ]  # fmt: skip
        if "server_startup_s" in r:
            rows.append(("prefect server start-up (not counted)", f"{r['server_startup_s']:.1f} s"))
    else:
        rows = []
    if "peak_rss_mb_4k" in r:
        rows.append(
            (
                f"4K run: {r['memory_rows']} rows",
                f"{r['memory_s']:.2f} s, peak RSS {r['peak_rss_mb_4k']:.0f} MB",
            )
        )
    width = max(len(k) for k, _ in rows) if rows else 10
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print()


if __name__ == "__main__":
    sys.exit(main())
