"""TTAPI over a real socket with plain httpx: success shape, auth, validation, async mode."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from prefect_nanobanana.emulator import EmulatorServer

from ._emulator_testkit import KEY

PARAMETER_ERROR = {"status": "FAILED", "message": "Parameter error", "data": None}
TINY_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
).decode()


def generate(tt: httpx.Client, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"prompt": "a cute cat", "model": "gemini-3-pro-image-preview"}
    payload.update(body)
    return tt.post("/gemini/image/generate", json=payload)


def test_documented_example_body_returns_the_documented_success(
    tt: httpx.Client, emu: EmulatorServer
) -> None:
    # providers.md 2.3 example body (refer_images replaced by reachable-looking URLs).
    response = tt.post(
        "/gemini/image/generate",
        json={
            "prompt": "a cute cat",
            "model": "gemini-3-pro-image-preview",
            "refer_images": ["https://cdn.ttapi.io/xxx1.png", "https://cdn.ttapi.io/xxx2.png"],
            "aspect_ratio": "1:1",
            "image_size": "1K",
            "google_search": "false",
            "image_search": "false",
            "thinking_level": "Minimal",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SUCCESS" and body["message"] == "success"
    data = body["data"]
    assert set(data) == {"prompt", "refer_images", "image_url", "quota"}
    assert data["prompt"] == "a cute cat"
    assert data["refer_images"] == ["https://cdn.ttapi.io/xxx1.png", "https://cdn.ttapi.io/xxx2.png"]
    assert data["quota"] == 2
    image = httpx.get(data["image_url"])
    assert image.status_code == 200
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.format == "PNG" and decoded.size == (1024, 1024)
    entry = emu.ledger()["submissions"][0]
    assert entry["provider"] == "ttapi" and entry["quota"] == 2 and entry["status"] == "completed"


def test_generation_blocks_for_the_configured_latency(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(ttapi_latency=0.3)
    started = time.monotonic()
    assert generate(tt).status_code == 200
    assert time.monotonic() - started >= 0.29


@pytest.mark.parametrize(
    ("body", "size"),
    [
        ({"model": "gemini-3.1-flash-image-preview", "aspect_ratio": "8:1", "image_size": "2K"}, (6144, 768)),
        ({"model": "gemini-3.1-flash-image-preview", "aspect_ratio": "1:4"}, (512, 2048)),
        ({"aspect_ratio": "21:9", "image_size": "4K"}, (6336, 2688)),
        ({"aspect_ratio": "3:4", "image_size": "2K"}, (1792, 2400)),
        ({"model": "gemini-2.5-flash-image"}, (1024, 1024)),
        ({"model": "gemini-2.5-flash-image-preview", "aspect_ratio": "1:1"}, (1024, 1024)),
        # Legacy field name of older docs and clients.
        ({"model": None, "mode": "gemini-3-pro-image-preview", "aspect_ratio": "16:9"}, (1376, 768)),
    ],
)
def test_pixel_sizes(tt: httpx.Client, body: dict[str, Any], size: tuple[int, int]) -> None:
    response = generate(tt, **body)
    assert response.status_code == 200, response.headers.get("x-emulator-reason")
    with Image.open(io.BytesIO(httpx.get(response.json()["data"]["image_url"]).content)) as decoded:
        assert decoded.size == size


@pytest.mark.parametrize(
    "body",
    [
        {"google_search": True, "image_search": False, "sync_return": True},
        {"google_search": "true", "image_search": "true", "sync_return": "true"},
        {"google_search": "False"},
        {"thinking_level": "High"},
        {"refer_images": [TINY_PNG]},
        {"refer_images": [f"data:image/png;base64,{TINY_PNG}", "https://example.com/a.jpg"]},
        {"refer_images": None, "hook_url": None},
    ],
)
def test_valid_variants(tt: httpx.Client, body: dict[str, Any]) -> None:
    response = generate(tt, **body)
    assert response.status_code == 200, response.headers.get("x-emulator-reason")
    assert response.json()["status"] == "SUCCESS"


INVALID: list[dict[str, Any]] = [
    {"prompt": None},
    {"prompt": ""},
    {"model": None},
    {"model": "gemini-3-pro-image-preview-official"},
    {"model": None, "mode": "nano-banana"},
    {"aspect_ratio": "8:1"},
    {"aspect_ratio": "16:10"},
    {"model": "gemini-2.5-flash-image", "aspect_ratio": "16:9"},
    {"image_size": "2k"},
    {"image_size": "0.5K"},
    {"image_size": "512"},
    {"google_search": "yes"},
    {"image_search": 1},
    {"sync_return": "maybe"},
    {"thinking_level": "medium"},
    {"refer_images": "https://example.com/a.png"},
    {"refer_images": ["not base64 at all!"]},
    {"refer_images": ["data:text/plain;base64,aGVsbG8="]},
    {"refer_images": [123]},
    {"hook_url": "ftp://example.com"},
]


@pytest.mark.parametrize("override", INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_invalid_requests_get_parameter_error(
    tt: httpx.Client, emu: EmulatorServer, override: dict[str, Any]
) -> None:
    payload: dict[str, Any] = {"prompt": "a cute cat", "model": "gemini-3-pro-image-preview"}
    payload.update(override)
    payload = {key: value for key, value in payload.items() if value is not None}
    response = tt.post("/gemini/image/generate", json=payload)
    assert response.status_code == 400
    assert response.json() == PARAMETER_ERROR
    assert response.headers["x-emulator-reason"]
    assert emu.ledger()["paid"] == 0


def test_non_json_body_is_a_parameter_error(tt: httpx.Client) -> None:
    response = tt.post(
        "/gemini/image/generate", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json() == PARAMETER_ERROR


@pytest.mark.parametrize("headers", [{}, {"TT-API-KEY": "wrong"}, {"Authorization": f"Bearer {KEY}"}])
def test_401_has_the_documented_body(emu: EmulatorServer, headers: dict[str, str]) -> None:
    emu.configure(api_key=KEY)
    response = httpx.post(
        f"{emu.url}/gemini/image/generate",
        json={"prompt": "x", "model": "gemini-3-pro-image-preview"},
        headers=headers,
    )
    assert response.status_code == 401
    assert response.json() == {"status": "FAILED", "message": "Wrong TT-API-KEY or email is not activated."}


def test_ttapi_key_can_differ_from_the_toapis_key(emu: EmulatorServer) -> None:
    emu.configure(api_key="toapis-key", ttapi_api_key="ttapi-key")
    body = {"prompt": "x", "model": "gemini-3-pro-image-preview"}
    assert (
        httpx.post(
            f"{emu.url}/gemini/image/generate", json=body, headers={"TT-API-KEY": "toapis-key"}
        ).status_code
        == 401
    )
    assert (
        httpx.post(
            f"{emu.url}/gemini/image/generate", json=body, headers={"TT-API-KEY": "ttapi-key"}
        ).status_code
        == 200
    )


def test_quota_can_be_a_string(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(ttapi_quota_as_string=True, ttapi_quota=4)
    assert generate(tt).json()["data"]["quota"] == "4"
    assert emu.ledger()["submissions"][0]["cost_usd"] == pytest.approx(0.04)


def test_async_mode_returns_a_job_id_then_on_queue_then_success(
    tt: httpx.Client, emu: EmulatorServer
) -> None:
    emu.configure(ttapi_latency=2.0)
    started = time.monotonic()
    response = generate(tt, sync_return="false", refer_images=["https://example.com/a.png"])
    assert time.monotonic() - started < 1.5  # answered at once, not after the generation
    body = response.json()
    assert body["status"] == "SUCCESS" and body["message"] == "success"
    job_id = body["data"]["jobId"]
    assert set(body["data"]) == {"jobId"}

    first = tt.get("/gemini/image/fetch", params={"jobId": job_id}).json()
    assert first["status"] == "ON_QUEUE"
    assert first["message"] is None
    assert first["jobId"] == job_id
    assert first["data"]["imageUrl"] is None

    emu.advance(2.5)
    # 2.5: jobId in the query or in a POST body.
    fetched = tt.post("/gemini/image/fetch", json={"jobId": job_id}).json()
    assert fetched["status"] == "SUCCESS" and fetched["message"] == "success"
    data = fetched["data"]
    assert data["prompt"] == "a cute cat"
    assert data["referImages"] == ["https://example.com/a.png"]
    assert data["quota"] == "2"
    assert time.strptime(data["finishTime"], "%Y-%m-%d %H:%M:%S")
    assert httpx.get(data["imageUrl"]).status_code == 200
    assert emu.stats()["polls_by_task"][job_id] == 2
    assert emu.ledger()["paid"] == 1


def test_async_fetch_of_an_unknown_job_is_404(tt: httpx.Client) -> None:
    response = tt.get("/gemini/image/fetch", params={"jobId": "00000000-0000-0000-0000-000000000000"})
    assert response.status_code == 404
    assert response.json()["status"] == "FAILED"
    assert tt.get("/gemini/image/fetch").status_code == 400


def test_async_mode_can_be_switched_off(tt: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(ttapi_async=False)
    body = generate(tt, sync_return=False).json()
    assert "image_url" in body["data"]
