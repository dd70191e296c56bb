"""The emulator's HTTP surface: ToAPIs under `/v1`, TTAPI under `/gemini`, files, and `/_emulator` control.

Response bodies are the documented ones (providers.md 1.3-1.9 for ToAPIs, 2.1-2.5 for TTAPI); where
the documentation is silent the choice is marked "(inferred)". Every route reads the state through
`EmulatorState`, which is also what tests and benchmarks inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from .config import HttpErrorFault
from .images import CONTENT_TYPES, corrupt_bytes, render_image, sniff_image_type
from .ratelimit import Decision
from .state import EmulatorState, Task, TtapiJob
from .transport import close_connection
from .validation import InvalidRequest, validate_toapis, validate_ttapi

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Sent down the ASGI chain by a response that is about to drop its connection, so that the
# statistics middleware can count the drop before the client can notice it.
DROPPED_MESSAGE = "emulator.connection.dropped"

# -- documented bodies -------------------------------------------------------------------------------

# providers.md 1.7: 401 on image generation (and, by extension, uploads).
TOAPIS_UNAUTHORIZED = {
    "error": {"code": "unauthorized", "message": "Invalid API key", "type": "authentication_error"}
}
# providers.md 1.4: 401 and 404 on the task status endpoint use an integer code.
TOAPIS_STATUS_UNAUTHORIZED = {
    "error": {
        "code": 401,
        "message": "Authentication failed, please check your API key",
        "type": "authentication_error",
    }
}
TOAPIS_NOT_FOUND = {"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}}
# providers.md 1.7 notes: the 402 body is not documented; the `{"error": ...}` shape is assumed.
TOAPIS_INSUFFICIENT = {
    "error": {"code": "insufficient_quota", "message": "Insufficient balance", "type": "insufficient_quota"}
}
TOAPIS_RATE_LIMITED = {
    "error": {"code": "rate_limit_exceeded", "message": "Async task request rate exceeded"}
}
TOAPIS_LIMITER_DOWN = {
    "error": {
        "code": "rate_limit_unavailable",
        "message": "The async task submit limiter is temporarily unavailable",
    }
}
TOAPIS_INTERNAL = {
    "error": {"code": "internal_error", "message": "Internal server error", "type": "server_error"}
}

TTAPI_UNAUTHORIZED = {"status": "FAILED", "message": "Wrong TT-API-KEY or email is not activated."}
TTAPI_MESSAGES: dict[int, str] = {
    400: "Parameter error",
    402: "Insufficient quota",
    403: "Account Block",
    404: "Not found",
    429: "Short-term request rate exceeded",
    499: "Queue exhausted",
    500: "Server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Long-running synchronous request timed out",
}

# A reverse proxy's own error page: what a client really gets on 502/504 from an edge (inferred).
_GATEWAY_PAGE = "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center></body></html>"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(error: InvalidRequest) -> JSONResponse:
    return _json(
        400,
        {
            "error": {
                "code": error.code,
                "message": error.message,
                "param": error.param,
                "type": "invalid_request_error",
            }
        },
    )


def _ttapi_failed(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return _json(status, {"status": "FAILED", "message": message, "data": None}, headers)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


# -- responses that bend HTTP -------------------------------------------------------------------------


class DroppedConnection(Response):
    """Closes the connection without any response, after an optional delay (real seconds)."""

    def __init__(self, state: EmulatorState, delay: float = 0.0) -> None:
        super().__init__(status_code=200)
        self.state = state
        self.delay = delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        await self.state.pause(self.delay)
        await send({"type": DROPPED_MESSAGE})
        await close_connection(scope, receive)


class ChunkedBytes(Response):
    """Sends bytes with the full Content-Length in chunks, optionally slowly or cut short.

    With `cut_at`, only that many bytes are sent and then the connection is closed, so the client
    sees a body shorter than its Content-Length: a truncated download.
    """

    def __init__(
        self,
        state: EmulatorState,
        data: bytes,
        content_type: str,
        *,
        chunk_size: int,
        delay: float = 0.0,
        cut_at: int | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self.state = state
        self.data = data
        self.content_type = content_type
        self.chunk_size = chunk_size
        self.delay = delay
        self.cut_at = cut_at

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        data = self.data
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", self.content_type.encode()),
                    (b"content-length", str(len(data)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        limit = len(data) if self.cut_at is None else self.cut_at
        position = 0
        while position < limit:
            end = min(position + self.chunk_size, limit)
            await send({"type": "http.response.body", "body": data[position:end], "more_body": True})
            position = end
            if self.delay > 0 and position < limit and not await self.state.pause(self.delay):
                break
        if self.cut_at is not None or position < limit:
            await close_connection(scope, receive)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# -- error responses for injected faults --------------------------------------------------------------


def _toapis_http_error(state: EmulatorState, rule: HttpErrorFault, category: str) -> Response:
    """The documented ToAPIs response for an injected HTTP error on a submit or query."""
    status = rule.status
    if status == 400:
        return _invalid(InvalidRequest(rule.message or "Invalid request"))
    if status == 401:
        status_page = category == "async_query"
        return _json(401, TOAPIS_STATUS_UNAUTHORIZED if status_page else TOAPIS_UNAUTHORIZED)
    if status == 402:
        return _json(402, TOAPIS_INSUFFICIENT)
    if status == 404:
        return _json(404, TOAPIS_NOT_FOUND)
    if status == 422:
        return _content_policy_422(rule.message)
    if status == 429:
        burst = state.config.submit_burst if category == "async_submit" else state.config.query_burst
        headers = Decision(False, burst, 0, float(rule.retry_after)).headers(category, state.now())
        headers["Retry-After"] = str(rule.retry_after)
        return _json(429, TOAPIS_RATE_LIMITED, headers)
    if status == 503 and category == "async_submit":
        return _json(503, TOAPIS_LIMITER_DOWN)
    if status in (502, 504):
        title = "502 Bad Gateway" if status == 502 else "504 Gateway Time-out"
        return HTMLResponse(_GATEWAY_PAGE.format(title), status_code=status)
    body = {
        "error": {**TOAPIS_INTERNAL["error"], "message": rule.message or TOAPIS_INTERNAL["error"]["message"]}
    }
    if status != 500:
        body["error"]["code"] = "service_unavailable" if status == 503 else "internal_error"
    return _json(status, body)


def _content_policy_422(message: str | None) -> JSONResponse:
    # providers.md 1.14: the 422 body is not documented; the 1.7 `{"error": ...}` shape is assumed.
    return _json(
        422,
        {
            "error": {
                "code": "content_policy_violation",
                "message": message or "The request was rejected by the content safety policy",
                "type": "invalid_request_error",
            }
        },
    )


def _ttapi_http_error(rule: HttpErrorFault) -> Response:
    """The TTAPI unified-format failure body for an injected HTTP error (providers.md 2.4)."""
    if rule.status == 401:
        return _json(401, TTAPI_UNAUTHORIZED)
    headers = {"Retry-After": str(rule.retry_after)} if rule.status == 429 else None
    return _ttapi_failed(
        rule.status, rule.message or TTAPI_MESSAGES.get(rule.status, "Server error"), headers
    )


# -- shapes --------------------------------------------------------------------------------------------


def _task_json(state: EmulatorState, task: Task, base_url: str, *, at_submit: bool = False) -> dict[str, Any]:
    """The documented task object (1.3.4 at submit, 1.4 afterwards), as seen now."""
    now = state.now()
    timeline = task.timeline
    status: str = "queued" if at_submit else timeline.status(now)
    if status == "queued" and state.config.initial_status == "submitted":
        status = "submitted"
    body: dict[str, Any] = {"id": task.id}
    if task.client_business_id is not None:
        body["client_business_id"] = task.client_business_id
    body.update(
        {
            "object": "generation.task",
            "model": task.model,
            "status": status,
            "progress": 0 if at_submit else timeline.progress(now),
            "created_at": int(timeline.created_at),
        }
    )
    if at_submit:
        body["metadata"] = {}
    elif status == "completed":
        url = f"{base_url}/files/generated/{task.file_name}"
        completed_at = int(timeline.done_at)
        body["completed_at"] = completed_at
        body["expires_at"] = int(timeline.done_at + state.config.url_ttl)
        body["result"] = {"type": "image", "data": [{"url": url}]}
        if state.config.top_level_url:
            body["url"] = url
    elif status == "failed" and timeline.failure is not None:
        code, message = timeline.failure
        body["error"] = {"code": code, "message": message}
    return body


def _ttapi_quota(state: EmulatorState, *, as_string: bool) -> int | str:
    quota = state.config.ttapi_quota
    return str(quota) if as_string else quota


def _fetch_json(state: EmulatorState, job: TtapiJob, base_url: str) -> dict[str, Any]:
    """The TTAPI fetch shape (providers.md 2.5): ON_QUEUE with message null, then SUCCESS or FAILED."""
    status = job.timeline.status(state.now())
    data: dict[str, Any] = {
        "prompt": job.prompt,
        "referImages": job.refer_images,
        "imageUrl": None,
        "quota": None,
        "finishTime": None,
        "hookUrl": job.hook_url,
    }
    if status == "completed":
        data["imageUrl"] = f"{base_url}/files/generated/{job.file_name}"
        # 2.5: the fetch example sends quota as a string.
        data["quota"] = _ttapi_quota(state, as_string=True)
        data["finishTime"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(job.timeline.done_at))
        return {"status": "SUCCESS", "message": "success", "jobId": job.id, "data": data}
    if status == "failed" and job.timeline.failure is not None:
        return {"status": "FAILED", "message": job.timeline.failure[1], "jobId": job.id, "data": data}
    return {"status": "ON_QUEUE", "message": None, "jobId": job.id, "data": data}


# -- statistics middleware ----------------------------------------------------------------------------


class _StatsMiddleware:
    """Counts every non-control request by route template and outcome (`dropped` when no response).

    The outcome is recorded before the response leaves (at `http.response.start`, or at the
    `emulator.connection.dropped` message a dropping response sends first), so a client that reads
    the statistics right after its own response already sees that request counted.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        recorded = False

        def record(outcome: str) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.state.record_response(f"{scope['method']} {route}", outcome)

        async def send_and_note(message: MutableMapping[str, Any]) -> None:
            if message["type"] == DROPPED_MESSAGE:
                record("dropped")
                return
            if message["type"] == "http.response.start":
                record(str(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            # A request still running when the server stops is cancelled by uvicorn; that is the
            # expected end of a test, not an application error worth a logged traceback.
            if not self.state.closing:
                raise
            with contextlib.suppress(Exception):
                await close_connection(scope, receive, wait=0.5)
        finally:
            record("dropped")


# -- the app ---------------------------------------------------------------------------------------------


def create_app(state: EmulatorState) -> FastAPI:
    """Build the ASGI app serving both provider APIs, the files and the control API over `state`.

    Connection drops (`submit_drop`, `ttapi_drop`, truncated downloads) need the app to run under
    `EmulatorServer` (or `serve`), whose uvicorn protocol lets the app close a socket.
    """
    app = FastAPI(
        title="prefect-nanobanana provider emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(_StatsMiddleware, state=state)

    def base_url(request: Request) -> str:
        return state.config.public_url or str(request.base_url).rstrip("/")

    async def sleep(seconds: float) -> None:
        await state.pause(state.config.scaled(seconds))

    # -- ToAPIs ------------------------------------------------------------------------------------

    @app.post("/v1/images/generations")
    async def toapis_submit(request: Request) -> Response:
        key = _bearer(request)
        if key is None or not state.toapis_key_ok(key):
            return _json(401, TOAPIS_UNAUTHORIZED)
        decision = state.take_token("async_submit", key)
        if decision is not None and not decision.allowed:
            return _json(429, TOAPIS_RATE_LIMITED, decision.headers("async_submit", state.now()))
        limit_headers = decision.headers("async_submit", state.now()) if decision else None
        try:
            body = await request.json()
        except ValueError:
            return _invalid(InvalidRequest("The request body must be valid JSON."))
        try:
            req = validate_toapis(body, state.config)
        except InvalidRequest as error:
            return _invalid(error)

        error_rule = state.fire("submit_error", req.prompt)
        if error_rule is not None:
            await sleep(error_rule.delay)
            return _toapis_http_error(state, error_rule, "async_submit")
        policy = state.fire("content_policy", req.prompt)
        if policy is not None and policy.at == "submit":
            return _content_policy_422(policy.message)
        if not state.charge(state.config.price_usd):
            return _json(402, TOAPIS_INSUFFICIENT)
        failure: tuple[str, str] | None = None
        if policy is not None:
            failure = ("content_policy_violation", policy.message)
        else:
            failing = state.fire("task_failure", req.prompt)
            if failing is not None:
                failure = (failing.code, failing.message)

        task = state.create_task(
            api_key=key,
            model=req.model.id,
            prompt=req.prompt,
            client_business_id=req.client_business_id,
            size=req.pixels,
            fmt=req.fmt,
            failure=failure,
        )
        drop = state.fire("submit_drop", req.prompt)
        if drop is not None:
            state.mark_undelivered(task.id)
            return DroppedConnection(state, state.config.scaled(drop.delay))
        return _json(200, _task_json(state, task, base_url(request), at_submit=True), limit_headers)

    @app.get("/v1/images/generations/{task_id}")
    async def toapis_task(task_id: str, request: Request) -> Response:
        key = _bearer(request)
        if key is None or not state.toapis_key_ok(key):
            return _json(401, TOAPIS_STATUS_UNAUTHORIZED)
        decision = state.take_token("async_query", key)
        if decision is not None and not decision.allowed:
            return _json(429, TOAPIS_RATE_LIMITED, decision.headers("async_query", state.now()))
        task = state.find_task(key, task_id)
        error_rule = state.fire("query_error", task.prompt if task else None)
        if error_rule is not None:
            await sleep(error_rule.delay)
            return _toapis_http_error(state, error_rule, "async_query")
        if task is None:
            return _json(404, TOAPIS_NOT_FOUND)
        with state.lock:
            state.stats.polls_by_task[task.id] += 1
        headers = decision.headers("async_query", state.now()) if decision else None
        return _json(200, _task_json(state, task, base_url(request)), headers)

    @app.post("/v1/uploads/images")
    async def toapis_upload(request: Request) -> Response:
        key = _bearer(request)
        if key is None or not state.toapis_key_ok(key):
            return _json(401, TOAPIS_UNAUTHORIZED)
        error_rule = state.fire("upload_error", None)
        if error_rule is not None:
            await sleep(error_rule.delay)
            if error_rule.status == 400:
                return _json(400, {"success": False, "message": error_rule.message or "Upload failed"})
            return _toapis_http_error(state, error_rule, "upload")
        try:
            form = await request.form()
        except Exception:  # malformed multipart: whatever the parser objects to is the client's fault
            return _json(400, {"success": False, "message": "Invalid multipart form data"})
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _json(400, {"success": False, "message": "No file uploaded"})
        data = await upload.read()
        if len(data) > state.config.upload_max_bytes:
            return _json(400, {"success": False, "message": "Image too large. Maximum size is 10MB"})
        declared = (upload.content_type or "").split(";")[0].strip().lower()
        sniffed = sniff_image_type(data)
        allowed = {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/gif"}
        # The declared type must not contradict the allow-list (generic types are fine); the bytes decide.
        if sniffed is None or (
            declared and declared != "application/octet-stream" and declared not in allowed
        ):
            return _json(
                400, {"success": False, "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF"}
            )
        stored = state.add_upload(data, sniffed)
        upload_id = "upload_" + stored.name.rsplit(".", 1)[0].rsplit("_", 1)[-1]
        return _json(
            200,
            {
                "success": True,
                "message": "",
                "data": {
                    "id": upload_id,
                    "url": f"{base_url(request)}/files/uploads/{stored.name}",
                    "mime_type": sniffed,
                    "size": len(data),
                },
            },
        )

    # -- TTAPI -------------------------------------------------------------------------------------

    @app.post("/gemini/image/generate")
    async def ttapi_generate(request: Request) -> Response:
        key = request.headers.get("tt-api-key")
        if key is None or not state.ttapi_key_ok(key):
            return _json(401, TTAPI_UNAUTHORIZED)
        decision = state.take_token("ttapi", key)
        if decision is not None and not decision.allowed:
            retry = str(max(1, math.ceil(decision.retry_after)))
            return _ttapi_failed(429, TTAPI_MESSAGES[429], {"Retry-After": retry})
        try:
            body = await request.json()
        except ValueError:
            return _ttapi_failed(400, "Parameter error", {"X-Emulator-Reason": "body is not JSON"})
        try:
            req = validate_ttapi(body)
        except InvalidRequest as error:
            # The documented body is exactly "Parameter error"; the reason rides in a header for humans.
            return _ttapi_failed(400, "Parameter error", {"X-Emulator-Reason": error.message})

        error_rule = state.fire("ttapi_error", req.prompt)
        if error_rule is not None and not error_rule.paid:
            await sleep(error_rule.delay)
            return _ttapi_http_error(error_rule)
        failed_rule = state.fire("ttapi_failed", req.prompt) if error_rule is None else None
        quota = state.config.ttapi_quota
        if failed_rule is None and not state.charge(quota / 100):
            return _ttapi_failed(402, TTAPI_MESSAGES[402])
        duration = state.sample_duration("ttapi")
        job_id, timeline, file_name = state.create_ttapi_generation(
            api_key=key,
            model=req.model.id,
            prompt=req.prompt,
            size=req.pixels,
            duration=duration,
            paid=failed_rule is None,
            failure=failed_rule.message if failed_rule is not None else None,
        )

        if not req.sync and state.config.ttapi_async:
            with state.lock:
                state.ttapi_jobs[job_id] = TtapiJob(
                    job_id, key, req.model.id, req.prompt, req.refer_images, req.hook_url, timeline, file_name
                )
            drop = state.fire("ttapi_drop", req.prompt)
            if drop is not None:
                state.mark_undelivered(job_id)
                return DroppedConnection(state, state.config.scaled(drop.delay))
            return _json(200, {"status": "SUCCESS", "message": "success", "data": {"jobId": job_id}})

        if not await state.pause(duration):
            # The server is stopping mid-generation: the client loses the connection.
            state.mark_undelivered(job_id)
            return DroppedConnection(state)
        if error_rule is not None:
            # A paid error: the image was made (and charged) but the client only gets the error.
            state.mark_undelivered(job_id)
            await sleep(error_rule.delay)
            return _ttapi_http_error(error_rule)
        if failed_rule is not None:
            return _ttapi_failed(200, failed_rule.message)
        drop = state.fire("ttapi_drop", req.prompt)
        if drop is not None:
            state.mark_undelivered(job_id)
            return DroppedConnection(state, state.config.scaled(drop.delay))
        return _json(
            200,
            {
                "status": "SUCCESS",
                "message": "success",
                "data": {
                    "prompt": req.prompt,
                    "refer_images": req.refer_images,
                    "image_url": f"{base_url(request)}/files/generated/{file_name}",
                    "quota": _ttapi_quota(state, as_string=state.config.ttapi_quota_as_string),
                },
            },
        )

    @app.api_route("/gemini/image/fetch", methods=["GET", "POST"])
    async def ttapi_fetch(request: Request) -> Response:
        key = request.headers.get("tt-api-key")
        if key is None or not state.ttapi_key_ok(key):
            return _json(401, TTAPI_UNAUTHORIZED)
        decision = state.take_token("ttapi", key)
        if decision is not None and not decision.allowed:
            retry = str(max(1, math.ceil(decision.retry_after)))
            return _ttapi_failed(429, TTAPI_MESSAGES[429], {"Retry-After": retry})
        job_id = request.query_params.get("jobId")
        if job_id is None and request.method == "POST":
            # 2.5: "jobId can be passed via URL parameters (Query) or request body (Body)".
            try:
                body = await request.json()
            except ValueError:
                body = None
            job_id = body.get("jobId") if isinstance(body, dict) else None
        if not job_id:
            return _ttapi_failed(400, "Parameter error")
        with state.lock:
            job = state.ttapi_jobs.get(job_id)
            if job is None or job.api_key != key:
                return _ttapi_failed(404, "Job not found")
            state.stats.polls_by_task[job.id] += 1
        return _json(200, _fetch_json(state, job, base_url(request)))

    # -- files ---------------------------------------------------------------------------------------

    async def serve_file(name: str, uploads: bool) -> Response:
        with state.lock:
            stored = (state.uploads if uploads else state.files).get(name)
        now = state.now()
        if stored is None or now < stored.available_at:
            return _json(404, {"error": "not_found", "message": "File not found"})
        if stored.expires_at is not None and now > stored.expires_at:
            return _json(
                state.config.expired_status, {"error": "expired", "message": "This file has expired"}
            )
        with state.lock:
            state.stats.downloads_by_file[name] += 1
        error_rule = state.fire("download_error", stored.prompt)
        if error_rule is not None:
            await sleep(error_rule.delay)
            if error_rule.status in (502, 504):
                return _toapis_http_error(state, error_rule, "download")
            return _json(
                error_rule.status, {"error": "download_error", "message": error_rule.message or "Error"}
            )
        if stored.data is not None:
            data = stored.data
        else:
            assert stored.fmt is not None
            data = await anyio.to_thread.run_sync(
                render_image, stored.width, stored.height, stored.fmt, stored.colour
            )
        if state.fire("download_corrupt", stored.prompt) is not None:
            data = corrupt_bytes(len(data))
        chunk_size = state.config.download_chunk_size
        delay = 0.0
        cut_at: int | None = None
        truncated = state.fire("download_truncated", stored.prompt)
        if truncated is not None:
            cut_at = int(len(data) * truncated.fraction)
        slow = state.fire("download_slow", stored.prompt)
        if slow is not None:
            chunk_size = slow.chunk_size
            delay = state.config.scaled(slow.delay)
        content_type = stored.content_type if stored.fmt is None else CONTENT_TYPES[stored.fmt]
        return ChunkedBytes(state, data, content_type, chunk_size=chunk_size, delay=delay, cut_at=cut_at)

    @app.get("/files/generated/{name}")
    async def generated_file(name: str) -> Response:
        return await serve_file(name, uploads=False)

    @app.get("/files/uploads/{name}")
    async def uploaded_file(name: str) -> Response:
        return await serve_file(name, uploads=True)

    # -- control -------------------------------------------------------------------------------------

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body

    def control_error(error: Exception) -> JSONResponse:
        details = json.loads(error.json()) if isinstance(error, ValidationError) else None
        return _json(400, {"error": str(error), "details": details})

    @app.get("/_emulator/health")
    async def control_health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/_emulator/ledger")
    async def control_ledger() -> dict[str, Any]:
        return state.ledger_json()

    @app.get("/_emulator/stats")
    async def control_stats() -> dict[str, Any]:
        return state.stats_json()

    @app.get("/_emulator/faults")
    async def control_faults() -> dict[str, Any]:
        with state.lock:
            return state.faults.model_dump()

    @app.post("/_emulator/faults")
    async def control_set_faults(request: Request) -> Response:
        merge = request.query_params.get("merge", "false").lower() in ("1", "true", "yes")
        try:
            faults = state.set_faults(await json_body(request), merge=merge)
        except (ValueError, ValidationError) as error:
            return control_error(error)
        return _json(200, faults.model_dump())

    @app.get("/_emulator/config")
    async def control_config() -> dict[str, Any]:
        return state.config.model_dump()

    @app.post("/_emulator/config")
    async def control_configure(request: Request) -> Response:
        try:
            config = state.configure(**await json_body(request))
        except (ValueError, ValidationError) as error:
            return control_error(error)
        return _json(200, config.model_dump())

    @app.post("/_emulator/reset")
    async def control_reset() -> dict[str, Any]:
        state.reset()
        return {"ok": True}

    @app.post("/_emulator/advance")
    async def control_advance(request: Request) -> Response:
        try:
            seconds = float((await json_body(request)).get("seconds", 0))
        except (ValueError, TypeError) as error:
            return control_error(error)
        state.advance(seconds)
        return _json(200, {"ok": True, "now": state.now()})

    return app
