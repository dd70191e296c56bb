"""Result and upload files: real images of the documented pixel sizes, expiry, the upload endpoint."""

from __future__ import annotations

import io
from fractions import Fraction

import httpx
import pytest
from PIL import Image

from prefect_nanobanana.emulator import EmulatorServer

from ._emulator_testkit import submit, wait_for_task

# Independently re-typed from providers.md (3.5, and 1.3.1 for the ToAPIs 2.5-flash reference pixels),
# so that a transcription slip in the emulator's tables shows up here.
SPOT_CHECKS: list[tuple[str, str, str, tuple[int, int]]] = [
    ("gemini-3.1-flash-image-preview", "1:1", "0.5K", (512, 512)),
    ("gemini-3.1-flash-image-preview", "16:9", "0.5K", (688, 384)),
    ("gemini-3.1-flash-image-preview", "4:1", "1K", (2048, 512)),
    ("gemini-3.1-flash-image-preview", "1:8", "4K", (1536, 12288)),
    ("gemini-3.1-flash-image-preview", "4:5", "2K", (1856, 2304)),
    ("gemini-3-pro-image-preview", "2:3", "1K", (848, 1264)),
    ("gemini-3-pro-image-preview", "5:4", "4K", (4608, 3712)),
    ("gemini-3-pro-image-preview", "21:9", "2K", (3168, 1344)),
    ("gemini-3-pro-image-preview-official", "3:2", "2K", (2528, 1696)),
    ("gemini-3.1-flash-image-preview-official", "8:1", "1K", (3072, 384)),
    ("gemini-2.5-flash-image-preview", "4:3", "1K", (1365, 1024)),
    ("gemini-2.5-flash-image-preview", "16:9", "1K", (1792, 1024)),
    ("gemini-2.5-flash-image-preview", "2:3", "1K", (1024, 1536)),
    ("gemini-2.5-flash-image-official", "21:9", "1K", (1536, 672)),
    ("gemini-2.5-flash-image-official", "3:4", "1K", (864, 1184)),
]


@pytest.mark.parametrize(("model", "size", "resolution", "pixels"), SPOT_CHECKS)
def test_downloaded_image_has_the_documented_pixel_size(
    client: httpx.Client, emu: EmulatorServer, model: str, size: str, resolution: str, pixels: tuple[int, int]
) -> None:
    emu.configure(latency=0.0)
    task = submit(client, model=model, size=size, metadata={"resolution": resolution}).json()
    url = wait_for_task(client, task["id"])["result"]["data"][0]["url"]
    with Image.open(io.BytesIO(httpx.get(url).content)) as decoded:
        assert decoded.size == pixels


ALL_GEMINI_3 = [
    ("gemini-3.1-flash-image-preview", ratio, resolution)
    for ratio in (
        "1:1",
        "2:3",
        "3:2",
        "3:4",
        "4:3",
        "4:5",
        "5:4",
        "9:16",
        "16:9",
        "21:9",
        "1:4",
        "4:1",
        "1:8",
        "8:1",
    )
    for resolution in ("0.5K", "1K", "2K", "4K")
]


def test_every_gemini_3_size_matches_its_ratio_and_scale(client: httpx.Client, emu: EmulatorServer) -> None:
    """Every ratio x resolution of 3.1 Flash: the right shape, and 0.5K/2K/4K scale from 1K."""
    emu.configure(rate_limits=False)
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    for model, ratio, resolution in ALL_GEMINI_3:
        task = submit(client, model=model, size=ratio, metadata={"resolution": resolution}).json()
        stored = emu.state.files[emu.state.tasks[task["id"]].file_name or ""]
        sizes[(ratio, resolution)] = (stored.width, stored.height)
    for (ratio, resolution), (width, height) in sizes.items():
        a, b = (int(part) for part in ratio.split(":"))
        assert abs(Fraction(width, height) / Fraction(a, b) - 1) < 0.03, (ratio, resolution, width, height)
        base_w, base_h = sizes[(ratio, "1K")]
        factor = {"0.5K": 0.5, "1K": 1, "2K": 2, "4K": 4}[resolution]
        assert (width, height) == (int(base_w * factor), int(base_h * factor)), (ratio, resolution)
    assert sizes[("1:1", "1K")] == (1024, 1024)


def test_file_is_not_there_before_the_task_completes(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(latency=5.0)
    task = submit(client).json()
    name = emu.state.tasks[task["id"]].file_name
    assert httpx.get(f"{emu.url}/files/generated/{name}").status_code == 404
    assert httpx.get(f"{emu.url}/files/generated/no-such-file.png").status_code == 404


def test_expired_urls_are_refused(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.configure(url_ttl=600)
    done = wait_for_task(client, submit(client).json()["id"])
    assert done["expires_at"] - done["completed_at"] == 600
    assert httpx.get(done["url"]).status_code == 200
    emu.advance(601)
    expired = httpx.get(done["url"])
    assert expired.status_code == 404
    assert expired.json()["error"] == "expired"
    assert len(expired.content) < 200
    emu.configure(expired_status=403)
    assert httpx.get(done["url"]).status_code == 403


def test_ttapi_urls_live_a_month(tt: httpx.Client, emu: EmulatorServer) -> None:
    url = tt.post(
        "/gemini/image/generate", json={"prompt": "x", "model": "gemini-3-pro-image-preview"}
    ).json()["data"]["image_url"]
    emu.advance(29 * 86400)
    assert httpx.get(url).status_code == 200
    emu.advance(2 * 86400)
    assert httpx.get(url).status_code == 404


# -- uploads ---------------------------------------------------------------------------------------------


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (4, 4)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "declared", "mime"),
    [
        (_png(), "image/png", "image/png"),
        (_gif(), "image/gif", "image/gif"),
        (_png(), "application/octet-stream", "image/png"),
    ],
)
def test_upload_success_has_the_documented_shape_and_serves_the_bytes(
    client: httpx.Client, data: bytes, declared: str, mime: str
) -> None:
    response = client.post(
        "/v1/uploads/images", files={"file": ("ref.img", data, declared)}, data={"purpose": "generation"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["message"] == ""
    assert set(body["data"]) == {"id", "url", "mime_type", "size"}
    assert body["data"]["id"].startswith("upload_")
    assert body["data"]["mime_type"] == mime
    assert body["data"]["size"] == len(data)
    assert "/files/uploads/" in body["data"]["url"]
    served = httpx.get(body["data"]["url"])
    assert served.status_code == 200 and served.content == data
    # The uploaded URL is usable as a reference image.
    assert submit(client, image_urls=[body["data"]["url"]]).status_code == 200


def test_upload_too_large(client: httpx.Client) -> None:
    data = _png() + b"\0" * (10 * 1024 * 1024)
    response = client.post("/v1/uploads/images", files={"file": ("big.png", data, "image/png")})
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Image too large. Maximum size is 10MB"}


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (b"just some text", "text/plain"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (_png(), "image/bmp"),
        (b"BM" + b"\0" * 64, "image/bmp"),
    ],
)
def test_upload_unsupported_type(client: httpx.Client, data: bytes, declared: str) -> None:
    response = client.post("/v1/uploads/images", files={"file": ("x", data, declared)})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF",
    }


def test_upload_needs_a_file_and_a_key(client: httpx.Client, emu: EmulatorServer) -> None:
    missing = client.post("/v1/uploads/images", data={"purpose": "generation"})
    assert missing.status_code == 400 and missing.json()["success"] is False
    unauthorized = httpx.post(f"{emu.url}/v1/uploads/images", files={"file": ("a.png", _png(), "image/png")})
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["code"] == "unauthorized"


def test_upload_error_fault(client: httpx.Client, emu: EmulatorServer) -> None:
    emu.set_faults(upload_error={"status": 500, "count": 1})
    assert (
        client.post("/v1/uploads/images", files={"file": ("a.png", _png(), "image/png")}).status_code == 500
    )
    assert (
        client.post("/v1/uploads/images", files={"file": ("a.png", _png(), "image/png")}).status_code == 200
    )
