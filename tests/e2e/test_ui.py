"""The Prefect UI, driven by headless Chromium: the ad hoc deployment's custom run form shows the
flow's parameters as a clean form (dropdowns, a credentials block picker, a budget), a run started
from it reaches Completed on a process worker, and its Artifacts tab shows progress, summary and gallery.

Screenshots of every step land in out/e2e-screenshots/ui-*.png.
"""

from __future__ import annotations

import csv
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import SCREENSHOTS, PrefectStack

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_PREFIXES = ("http://127.0.0.1", "data:", "blob:", "about:")
BLOCK_NAME = "e2e-ui-toapis"
MODEL = "gemini-3.1-flash-image-preview"
ROWS = [("banana", "watercolor"), ("robot chef", "pixel art"), ("lighthouse", "ukiyo-e")]


def chromium_executable() -> str:
    """Debian's chromium; a missing browser fails the test loudly (never a silent skip)."""
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        "\n" + "!" * 78 + "\nCHROMIUM IS NOT INSTALLED: the Prefect UI test cannot run.\n"
        "Install Debian's headless browser:  apt-get update && apt-get install -y chromium\n"
        "(.ci/run does this in CI; Playwright's own browser downloads are not used.)\n" + "!" * 78,
        pytrace=False,
    )


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_custom_run_from_the_ui(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    chromium = chromium_executable()  # before the ~20 s of server start-up
    stack: PrefectStack = request.getfixturevalue("prefect_stack")
    from playwright.sync_api import sync_playwright

    from prefect_nanobanana.emulator import EmulatorServer

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("ui-*.png"):
        old.unlink()
    table = tmp_path / "prompts.csv"
    with open(table, "w", newline="") as fh:
        csv.writer(fh).writerows([("subject", "style"), *ROWS])
    output = tmp_path / "images"

    with EmulatorServer(latency=0.5, latency_spread=0.2, seed=3) as emulator, sync_playwright() as pw:
        stack.save_toapis_block(BLOCK_NAME, emulator.url)
        deployment = stack.deployment("generate-image-set/adhoc")
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        # Only 127.0.0.1: the block logo and anything else remote is refused, not fetched.
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(LOCAL_PREFIXES) else route.abort()
            ),
        )
        step = _Steps(page)
        problems: list[str] = []  # printed when the test fails: what the browser saw go wrong
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                problems.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400 else None
            ),
        )
        try:
            page.goto(f"{stack.ui_url}/deployments/deployment/{deployment['id']}")
            page.get_by_text("generate-image-set", exact=True).first.wait_for()
            page.get_by_role("button", name="Run", exact=True).wait_for()
            step.shot("01-deployment-page")

            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run").wait_for()
            step.shot("02-run-menu")
            page.get_by_text("Custom run").click()
            page.get_by_text("toapis_credentials (Optional)").wait_for()
            step.shot("03-custom-run-form")

            # The fields a user needs, rendered as a form, not as raw JSON.
            assert _field(page, "table").locator("textarea").count() == 1
            assert _options(page, "provider") >= {"toapis", "ttapi"}
            assert _options(page, "model") >= {MODEL, "gemini-3-pro-image-preview", "nano-banana-pro"}
            assert _field(page, "max_cost").locator("input[type=number]").count() == 1
            for name in ("resolution", "aspect_ratio", "on_invalid"):
                _field(page, name).wait_for()

            _text(page, "table", str(table))
            _text(page, "output", str(output))
            _choose(page, "provider", "toapis")
            credentials = _field(page, "toapis_credentials")
            credentials.get_by_role("button", name="ToAPIsCredentials", exact=True).click()
            credentials.locator(".block-document-input").wait_for()
            _choose(page, "toapis_credentials", BLOCK_NAME)
            credentials.scroll_into_view_if_needed()
            step.shot("04-credentials-block-picked")
            _choose(page, "model", MODEL)
            _number(page, "max_cost", "1")
            _text(page, "base_url", emulator.url)
            _field(page, "base_url").scroll_into_view_if_needed()
            step.shot("05-form-filled")

            before = {r["id"] for r in stack.flow_runs_of("generate-image-set/adhoc")}
            page.get_by_role("button", name="Submit", exact=True).click()
            try:
                page.wait_for_url(
                    re.compile(r".*/deployments/deployment/[0-9a-f-]{36}(\?.*)?$"), timeout=15_000
                )
            except Exception:
                invalid = page.locator(
                    ".p-label--failed, .p-label__message, [class*=invalid], [class*=error]"
                )
                problems.append(
                    "form messages: " + " | ".join(t for t in invalid.all_inner_texts() if t.strip())
                )
                raise
            created = _wait_for_new_run(stack, before)
            page.get_by_text(created["name"]).first.wait_for()
            step.shot("06-run-submitted")
            flow_run_id = created["id"]
            # The toast's "View run" sits under a second toast layer that takes the clicks: go directly.
            page.goto(f"{stack.ui_url}/runs/flow-run/{flow_run_id}")
            page.get_by_text(created["name"]).first.wait_for()
            step.shot("07-run-page")

            run = stack.wait_for_flow_run(flow_run_id, timeout=150)
            assert run["state_type"] == "COMPLETED", f"{run['state_name']}: {run['state']}\n{stack.report()}"
            assert run["parameters"]["model"] == MODEL
            assert run["parameters"]["max_cost"] == 1
            assert run["parameters"]["toapis_credentials"] == {
                "$ref": {"block_document_id": _block_id(stack)}
            }
            page.reload()
            page.get_by_text("Completed").first.wait_for()
            step.shot("08-run-completed")

            page.get_by_text("Artifacts", exact=True).first.click()
            short = flow_run_id[:8]
            for kind in ("progress", "summary", "gallery"):
                page.get_by_text(f"image-set-{short}-{kind}").first.wait_for()
            step.shot("09-artifacts-tab")

            page.get_by_text(f"image-set-{short}-gallery").first.click()
            page.locator("img[src^='data:image/jpeg']").first.wait_for()
            assert page.locator("img[src^='data:image/jpeg']").count() == len(ROWS)
            step.shot("10-gallery-artifact")
        except BaseException:
            step.shot("failure")
            print(stack.report())
            print("browser problems:\n" + "\n".join(problems[-40:]))
            raise
        finally:
            browser.close()
        ledger = emulator.ledger()

    assert ledger["paid"] == len(ROWS)
    artifacts = stack.api(
        "POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    assert {a["type"] for a in artifacts} >= {"progress", "table", "markdown"}
    assert sorted(p.name for p in output.glob("*.png")) and (output / "manifest.parquet").exists()
    print(f"screenshots: {', '.join(step.saved)}")


class _Steps:
    def __init__(self, page: Any) -> None:
        self.page = page
        self.saved: list[str] = []

    def shot(self, name: str) -> None:
        path = SCREENSHOTS / f"ui-{name}.png"
        try:
            self.page.wait_for_timeout(300)  # let transitions settle
            self.page.screenshot(path=str(path), full_page=True)
            self.saved.append(path.name)
        except Exception as exc:  # a failed screenshot must not hide the real failure
            print(f"screenshot {name} failed: {exc}")


def _field(page: Any, name: str) -> Any:
    """The form property whose label is exactly `name (Optional)`."""
    label = page.locator(
        ".schema-form-property__label", has_text=re.compile(rf"^{re.escape(name)} \(Optional\)$")
    )
    return page.locator(".schema-form-property").filter(has=label).first


def _open_select(page: Any, name: str) -> Any:
    control = _field(page, name).locator(".p-select-button__control").first
    control.scroll_into_view_if_needed()
    control.click()
    listbox = page.locator(".p-pop-over-content [role=listbox]")
    if not listbox.is_visible():  # the select opens on click or, when focused, on ArrowDown
        control.press("ArrowDown")
    listbox.wait_for()
    return listbox


def _options(page: Any, name: str) -> set[str]:
    listbox = _open_select(page, name)
    listbox.locator(".p-select-option__text").first.wait_for()  # options render after the list opens
    texts = {t.strip() for t in listbox.locator(".p-select-option__text").all_inner_texts()}
    page.keyboard.press("Escape")
    listbox.wait_for(state="hidden")
    return texts


def _choose(page: Any, name: str, value: str) -> None:
    listbox = _open_select(page, name)
    listbox.get_by_role("option", name=value, exact=True).click()
    listbox.wait_for(state="hidden")
    from playwright.sync_api import expect

    expect(_field(page, name).locator(".p-select-button__value").first).to_have_text(value, timeout=10_000)


def _select_type(page: Any, name: str, type_name: str) -> None:
    """For a union field (str | None ...), pick the type button if the field has them."""
    button = _field(page, name).locator(".p-button-group").get_by_role("button", name=type_name, exact=True)
    if button.count():
        button.click()


def _text(page: Any, name: str, value: str) -> None:
    _select_type(page, name, "str")
    box = _field(page, name).locator("textarea, input[type=text]").first
    box.fill(value)


def _number(page: Any, name: str, value: str) -> None:
    _select_type(page, name, "float")
    _field(page, name).locator("input[type=number]").first.fill(value)


def _wait_for_new_run(stack: PrefectStack, before: set[str], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        created = [r for r in stack.flow_runs_of("generate-image-set/adhoc") if r["id"] not in before]
        if created or time.monotonic() > deadline:
            assert len(created) == 1, f"expected one new flow run from the form, found {len(created)}"
            return created[0]
        time.sleep(0.5)


def _block_id(stack: PrefectStack) -> str:
    block = stack.api("GET", f"/block_types/slug/toapis-credentials/block_documents/name/{BLOCK_NAME}")
    return str(block["id"])
