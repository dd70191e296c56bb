"""ToAPIs over a real socket with plain httpx: the documented shapes, every validation rule, auth, lookup."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from prefect_nanobanana.emulator import EmulatorServer

from ._emulator_testkit import submit, wait_for_task

# providers.md 1.3.2, verbatim.
DOCUMENTED_EXAMPLE = {
    "model": "gemini-3-pro-image-preview",
    "prompt": "Enhance the colors and details of this city photo",
    "size": "16:9",
    "n": 1,
    "metadata": {"resolution": "2K"},
    "image_urls": ["https://example.com/city.jpg"],
}


def test_documented_example_request_round_trip(client: httpx.Client) -> None:
    response = client.post("/v1/images/generations", json=DOCUMENTED_EXAMPLE)
    assert response.status_code == 200
    task = response.json()
    # 1.3.4: exactly the documented submit shape.
    assert set(task) == {"id", "object", "model", "status", "progress", "created_at", "metadata"}
    assert task["object"] == "generation.task"
    assert task["model"] == "gemini-3-pro-image-preview"
    assert task["status"] == "queued"
    assert task["progress"] == 0
    assert isinstance(task["created_at"], int)
    assert abs(task["created_at"] - time.time()) < 5
    assert task["metadata"] == {}

    done = wait_for_task(client, task["id"])
    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert done["expires_at"] - done["completed_at"] == 86400
    assert done["result"]["type"] == "image"
    url = done["result"]["data"][0]["url"]
    assert done["url"] == url

    image = httpx.get(url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert int(image.headers["content-length"]) == len(image.content)
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.format == "PNG"
        # providers.md 3.5: 16:9 at 2K.
        assert decoded.size == (2752, 1536)


def test_status_goes_queued_then_in_progress_then_completed(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    emu.configure(latency=0.6, queue_fraction=0.25)
    task_id = submit(client).json()["id"]
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        body = client.get(f"/v1/images/generations/{task_id}").json()
        seen.append((body["status"], body["progress"]))
        if body["status"] == "completed":
            break
        assert "result" not in body and "completed_at" not in body and "expires_at" not in body
        time.sleep(0.02)
    statuses = [status for status, _ in seen]
    assert statuses[0] == "queued"
    assert "in_progress" in statuses
    assert statuses[-1] == "completed"
    # Never goes backwards.
    order = {"queued": 0, "in_progress": 1, "completed": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    running = [progress for status, progress in seen if status == "in_progress"]
    assert all(10 <= p <= 90 for p in running)
    assert running == sorted(running)
    assert all(progress == 0 for status, progress in seen if status == "queued")


def test_initial_status_can_be_submitted(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(initial_status="submitted", latency=10.0)
    response = submit(client)
    assert response.json()["status"] == "submitted"
    assert client.get(f"/v1/images/generations/{response.json()['id']}").json()["status"] == "submitted"


def test_top_level_url_can_be_switched_off(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(top_level_url=False)
    done = wait_for_task(client, submit(client).json()["id"])
    assert "url" not in done and done["result"]["data"][0]["url"]


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("nano-banana-pro", "gemini-3-pro-image-preview"),
        ("nano-banana", "gemini-2.5-flash-image-preview"),
        ("nano-banana-pro-official", "gemini-3-pro-image-preview-official"),
        ("nano-banana-2-lite-official", "gemini-3.1-flash-image-preview-official"),
        ("nano-banana-2-official", "gemini-3.1-flash-image-preview-official"),
        ("nano-banana-official", "gemini-2.5-flash-image-official"),
        ("gemini-3.1-flash-image-preview", "gemini-3.1-flash-image-preview"),
    ],
)
def test_model_ids_and_aliases_are_accepted(client: httpx.Client, alias: str, canonical: str) -> None:
    response = submit(client, model=alias)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == canonical


@pytest.mark.parametrize(
    "body",
    [
        {"image_urls": [{"url": "https://example.com/a.png"}, "https://example.com/b.png"]},
        {"image_urls": ["http://example.com/a.png"] * 14},
        {"model": "gemini-2.5-flash-image-official", "image_urls": ["https://e.com/x.png"] * 3},
        {"model": "gemini-3.1-flash-image-preview", "size": "1:8", "metadata": {"resolution": "0.5K"}},
        {
            "model": "gemini-3.1-flash-image-preview",
            "metadata": {"google_search": True, "google_image_search": True},
        },
        {"model": "gemini-3.1-flash-image-preview-official", "size": "8:1"},
        {"model": "nano-banana", "size": "4:3", "metadata": {"orientation": "landscape"}},
        {"metadata": {"orientation": "portrait", "resolution": "4K"}},
        {"n": 1.0},
        {"size": None, "metadata": None, "image_urls": None},
        {
            "model": "gemini-3-pro-image-preview-official",
            "metadata": {
                "temperature": 1.0,
                "topP": 0.95,
                "maxOutputTokens": 32768,
                "resolution": "2K",
                "personGeneration": "ALLOW_ADULT",
                "imageOutputOptions": {"mimeType": "image/jpeg", "compressionQuality": 90},
                "thinkingConfig": {"thinkingBudget": 1024, "thinkingLevel": "HIGH"},
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
            },
        },
        {"unknown_extra_field": "ignored"},
    ],
)
def test_valid_variants_are_accepted(client: httpx.Client, body: dict[str, Any]) -> None:
    response = submit(client, **body)
    assert response.status_code == 200, response.text


LONG_PROMPT = "x" * 1001
DELETE = object()  # marks a field the invalid request leaves out

INVALID: list[tuple[dict[str, Any], str | None]] = [
    ({"model": DELETE}, "model"),
    ({"model": "gemini-9-ultra"}, "model"),
    ({"model": "gemini-2.5-flash-image"}, "model"),  # a TTAPI id, not a ToAPIs one
    ({"model": 3}, "model"),
    ({"prompt": DELETE}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": 12}, "prompt"),
    ({"model": "nano-banana", "prompt": LONG_PROMPT}, "prompt"),
    ({"n": "1"}, "n"),
    ({"n": 2}, "n"),
    ({"n": True}, "n"),
    ({"size": "1:4"}, "size"),
    ({"size": "16:10"}, "size"),
    ({"model": "nano-banana", "size": "21:9"}, "size"),
    ({"model": "gemini-3.1-flash-image-preview-official", "size": "1:4"}, "size"),
    ({"metadata": {"resolution": "0.5K"}}, "metadata.resolution"),
    ({"metadata": {"resolution": "2k"}}, "metadata.resolution"),
    ({"metadata": {"resolution": "8K"}}, "metadata.resolution"),
    ({"model": "nano-banana", "metadata": {"resolution": "2K"}}, "metadata.resolution"),
    ({"model": "gemini-2.5-flash-image-official", "metadata": {"resolution": "2K"}}, "metadata.resolution"),
    (
        {"model": "gemini-3.1-flash-image-preview-official", "metadata": {"resolution": "0.5K"}},
        "metadata.resolution",
    ),
    (
        {"model": "gemini-3.1-flash-image-preview", "metadata": {"orientation": "landscape"}},
        "metadata.orientation",
    ),
    ({"metadata": {"orientation": "sideways"}}, "metadata.orientation"),
    ({"metadata": {"google_search": True}}, "metadata.google_search"),
    (
        {"model": "gemini-3.1-flash-image-preview", "metadata": {"google_search": "true"}},
        "metadata.google_search",
    ),
    (
        {"model": "gemini-3.1-flash-image-preview", "metadata": {"google_image_search": True}},
        "metadata.google_image_search",
    ),
    ({"metadata": "2K"}, "metadata"),
    ({"image_urls": "https://example.com/a.png"}, "image_urls"),
    ({"image_urls": ["https://example.com/a.png"] * 15}, "image_urls"),
    ({"model": "gemini-2.5-flash-image-official", "image_urls": ["https://e.com/a.png"] * 4}, "image_urls"),
    ({"image_urls": ["data:image/png;base64,iVBORw0KGgo="]}, "image_urls"),
    ({"image_urls": ["ftp://example.com/a.png"]}, "image_urls"),
    ({"image_urls": ["/local/file.png"]}, "image_urls"),
    ({"image_urls": [{"href": "https://example.com/a.png"}]}, "image_urls"),
    ({"client_business_id": 42}, "client_business_id"),
    (
        {"model": "gemini-3-pro-image-preview-official", "metadata": {"temperature": 3}},
        "metadata.temperature",
    ),
    ({"model": "gemini-3-pro-image-preview-official", "metadata": {"topP": 1.5}}, "metadata.topP"),
    (
        {"model": "gemini-3-pro-image-preview-official", "metadata": {"personGeneration": "ALLOW"}},
        "metadata.personGeneration",
    ),
    (
        {
            "model": "gemini-2.5-flash-image-official",
            "metadata": {"thinkingConfig": {"thinkingLevel": "LOW"}},
        },
        "metadata.thinkingConfig",
    ),
    (
        {
            "model": "gemini-3-pro-image-preview-official",
            "metadata": {"thinkingConfig": {"thinkingLevel": "low"}},
        },
        "metadata.thinkingConfig.thinkingLevel",
    ),
    (
        {
            "model": "gemini-3-pro-image-preview-official",
            "metadata": {"imageOutputOptions": {"mimeType": "image/gif"}},
        },
        "metadata.imageOutputOptions.mimeType",
    ),
    (
        {
            "model": "gemini-3-pro-image-preview-official",
            "metadata": {"safetySettings": [{"category": "HARM_CATEGORY_X", "threshold": "OFF"}]},
        },
        "metadata.safetySettings",
    ),
]


@pytest.mark.parametrize(("override", "param"), INVALID, ids=[f"{i}-{p}" for i, (_, p) in enumerate(INVALID)])
def test_invalid_requests_get_the_documented_400(
    client: httpx.Client, emu: EmulatorServer, override: dict[str, Any], param: str | None
) -> None:
    body: dict[str, Any] = {"model": "gemini-3-pro-image-preview", "prompt": "a red square"}
    body.update(override)
    body = {key: value for key, value in body.items() if value is not DELETE}
    response = client.post("/v1/images/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    # A refused request is not paid.
    assert emu.ledger()["paid"] == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b""])
def test_malformed_bodies_get_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post(
        "/v1/images/generations", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_callback_url_without_a_configured_webhook_is_refused(client: httpx.Client) -> None:
    response = submit(client, callback_url="https://example.com/hook")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_not_configured"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer wrong"}],
)
def test_submit_401_has_the_documented_body(emu: EmulatorServer, headers: dict[str, str]) -> None:
    emu.configure(api_key="the-right-key")
    response = httpx.post(f"{emu.url}/v1/images/generations", json=DOCUMENTED_EXAMPLE, headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "Invalid API key", "type": "authentication_error"}
    }
    ok = httpx.post(
        f"{emu.url}/v1/images/generations",
        json=DOCUMENTED_EXAMPLE,
        headers={"Authorization": "Bearer the-right-key"},
    )
    assert ok.status_code == 200


def test_status_401_and_404_have_the_documented_bodies(client: httpx.Client, emu: EmulatorServer) -> None:
    response = httpx.get(f"{emu.url}/v1/images/generations/whatever")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": 401,
            "message": "Authentication failed, please check your API key",
            "type": "authentication_error",
        }
    }
    missing = client.get("/v1/images/generations/task_img_doesnotexist")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}}


def test_client_business_id_is_echoed_and_queryable(client: httpx.Client, emu: EmulatorServer) -> None:
    top = submit(client, client_business_id="order_20260428_001")
    assert top.json()["client_business_id"] == "order_20260428_001"
    nested = submit(client, metadata={"client_business_id": "order_nested"})
    assert nested.json()["client_business_id"] == "order_nested"

    by_business_id = client.get("/v1/images/generations/order_20260428_001")
    assert by_business_id.status_code == 200
    assert by_business_id.json()["id"] == top.json()["id"]
    assert by_business_id.json()["client_business_id"] == "order_20260428_001"
    done = wait_for_task(client, "order_nested")
    assert done["id"] == nested.json()["id"] and done["status"] == "completed"

    # Scoped to the API key: another key sees neither the id nor the business id.
    other = httpx.Client(base_url=emu.url, headers={"Authorization": "Bearer someone-else"})
    assert other.get("/v1/images/generations/order_20260428_001").status_code == 404
    assert other.get(f"/v1/images/generations/{top.json()['id']}").status_code == 404
    other.close()

    ledger = emu.ledger()
    assert ledger["paid_by_client_business_id"] == {"order_20260428_001": 1, "order_nested": 1}


def test_a_repeated_business_id_is_paid_twice_and_visible_in_the_ledger(
    client: httpx.Client, emu: EmulatorServer
) -> None:
    first = submit(client, client_business_id="row-1").json()
    second = submit(client, client_business_id="row-1").json()
    assert first["id"] != second["id"]
    assert client.get("/v1/images/generations/row-1").json()["id"] == second["id"]
    assert emu.ledger()["paid_by_client_business_id"] == {"row-1": 2}


def test_official_models_honour_the_requested_output_mime_type(client: httpx.Client) -> None:
    task = submit(
        client,
        model="gemini-3-pro-image-preview-official",
        metadata={"imageOutputOptions": {"mimeType": "image/jpeg"}},
    ).json()
    url = wait_for_task(client, task["id"])["result"]["data"][0]["url"]
    assert url.endswith(".jpg")
    image = httpx.get(url)
    assert image.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (1024, 1024)


def test_jpeg_can_be_the_default_format(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(image_format="jpeg")
    url = wait_for_task(client, submit(client, size="9:16").json()["id"])["url"]
    with Image.open(io.BytesIO(httpx.get(url).content)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (768, 1376)
