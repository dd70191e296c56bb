"""`make demo`: the image-set flow over examples/prompts.csv against the local emulator.

No network and no API key: the emulator (started in this process on 127.0.0.1) speaks both
provider APIs and returns real images. The images, both manifests and the contact sheet land in
out/demo/.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OUT = ROOT / "out" / "demo"
DEMO_KEY = "demo-key-not-secret"


async def _demo(url: str) -> dict:
    from .flows import generate_image_set

    return await generate_image_set(
        table=str(EXAMPLES / "prompts.csv"),
        provider="toapis",
        output=str(OUT),
        model="gemini-3-pro-image-preview",
        prompt_template="A {subject} in {style} style",
        reference_base_dir=str(EXAMPLES),
        on_invalid="skip",
        base_url=url,
        max_concurrency=8,
        fail_on_row_errors=False,
    )


def main() -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ["TOAPIS_API_KEY"] = DEMO_KEY
    os.environ["TTAPI_API_KEY"] = DEMO_KEY
    from .emulator import EmulatorServer

    print("starting the emulator and a temporary Prefect API (about 20 s the first time) ...", flush=True)
    with EmulatorServer(latency=1.0, latency_spread=0.5, ttapi_latency=1.0) as emulator:
        summary = asyncio.run(_demo(emulator.url))
        ledger = emulator.ledger()
    print()
    print(f"rows: {summary['rows']}  by status: {summary['by_status']}")
    print(f"paid submissions (emulator ledger): {ledger['paid']}")
    print(f"images and manifests: {OUT}")
    print(f"  manifest: {summary['manifest']}")
    print(f"  contact sheet: {summary['index_html']}  (open it in a browser)")
    images = [
        p for p in OUT.rglob("*") if p.suffix in (".png", ".jpg", ".webp") and ".nanobanana" not in p.parts
    ]
    print(f"  {len(images)} image files")
    return 0 if images else 1


if __name__ == "__main__":
    sys.exit(main())
