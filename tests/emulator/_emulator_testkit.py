"""Helpers shared by the emulator tests: the key, a submit shortcut, a poller."""

from __future__ import annotations

import time
from typing import Any

import httpx

KEY = "test-key-123"


def wait_for_task(client: httpx.Client, task_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """Poll a ToAPIs task until it is terminal; return its last body."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/images/generations/{task_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        assert time.monotonic() < deadline, f"task {task_id} not terminal: {body}"
        time.sleep(0.02)


def submit(client: httpx.Client, **body: Any) -> httpx.Response:
    """POST a ToAPIs generation with sensible defaults overridden by `body`."""
    payload: dict[str, Any] = {"model": "gemini-3-pro-image-preview", "prompt": "a red square"}
    payload.update(body)
    return client.post("/v1/images/generations", json=payload)
