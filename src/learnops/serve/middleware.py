"""Request-level hardening of the HTTP API (pure ASGI, so nothing buffers more than it must).

- ``RequestContextMiddleware``: a request id per request (``X-Request-ID`` on every response,
  also on the log lines written during the request); every 5xx counted in
  ``learnops_errors_total{kind="http_<status>"}``; an exception that escapes the routes becomes a
  500 here and is logged as its type and stack frames only (its message may quote the body).
- ``BodyLimitMiddleware``: bodies over ``serve.max_body_bytes`` get 413 before they are parsed:
  at once from ``Content-Length``, or as soon as the streamed (chunked) bytes pass the limit.
- ``validation_error_handler``: 422 that names the fields (``loc``, ``msg``, ``type``) and never
  echoes the input, so NaN, lone surrogates or a learner id in the body cannot break or leak.
- ``RequestLogFilter``: on the ``learnops.serve`` logger, prefixes the request id and reduces
  exceptions (arguments and tracebacks) to their type names and frames.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from learnops.serve.metrics import ServeMetrics

__all__ = [
    "REQUEST_ID_HEADER",
    "BodyLimitMiddleware",
    "RequestContextMiddleware",
    "RequestLogFilter",
    "current_request_id",
    "install_log_filter",
    "safe_errors",
    "validation_error_handler",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("learnops.serve")

REQUEST_ID_HEADER = "X-Request-ID"
#: An incoming ``X-Request-ID`` is kept when it looks like an id (tracing through a proxy).
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_request_id: ContextVar[str | None] = ContextVar("learnops_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context (None outside a request)."""
    return _request_id.get()


async def _send_json(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _route_path(scope: Scope) -> str:
    """The route's template (``/api/mlops/versions/{version}``), not the raw path."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "?")


def _frames(exc: BaseException) -> str:
    """The stack of ``exc`` as code locations and lines, without its message."""
    return "".join(traceback.format_tb(exc.__traceback__)).rstrip()


class RequestContextMiddleware:
    """Request id, 5xx counting and the last-resort 500 (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = _request_id.set(rid)
        status: list[int] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
                if status[0] >= 500:
                    self.metrics.observe_error(f"http_{status[0]}")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # every route error that was not answered: a 500, never raised
            log.error(
                "500 %s %s: unhandled %s\n%s",
                scope.get("method"), _route_path(scope), type(exc).__name__, _frames(exc),
            )  # fmt: skip
            if not status:
                await _send_json(
                    send_with_id, 500, {"detail": "internal server error", "request_id": rid}
                )
            elif status[0] < 500:
                self.metrics.observe_error("http_500")  # failed after a non-5xx start
        finally:
            _request_id.reset(token)


class BodyLimitMiddleware:
    """413 for bodies over ``max_body_bytes``, decided before the app reads or parses them.

    A declared ``Content-Length`` over the limit is answered at once (the body is not read);
    otherwise the body is read here, counting, and the app gets it only when it fits.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def _too_large(self, send: Send) -> None:
        log.info("413: request body over %d bytes", self.max_body_bytes)
        detail = f"request body too large (limit {self.max_body_bytes} bytes)"
        await _send_json(send, 413, {"detail": detail}, close=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers") or [] if k.lower() == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                await _send_json(send, 400, {"detail": "invalid Content-Length"}, close=True)
                return
            if length > self.max_body_bytes:
                await self._too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_MAX_TEXT = 120


def _safe_text(value: str) -> str:
    """``value`` shortened, with control characters and lone surrogates escaped."""
    text = value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"
    return "".join(
        c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else repr(c)[1:-1] for c in text
    )


def safe_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as ``loc``, ``msg`` and ``type`` only: never the input or context."""
    out = []
    for e in errors:
        loc = [x if isinstance(x, int) else _safe_text(str(x)) for x in e.get("loc", ())]
        out.append({"loc": loc, "msg": _safe_text(str(e.get("msg", ""))), "type": str(e["type"])})
    return out


def _field_names(errors: list[dict[str, Any]]) -> str:
    """The invalid fields for the log; names a client made up are not logged."""
    names = []
    for e in errors:
        loc = [str(x) for x in e["loc"]]
        if e["type"] == "extra_forbidden" and loc:
            loc[-1] = "<unknown field>"
        names.append(".".join(loc) or "<body>")
    return ", ".join(dict.fromkeys(names))


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the invalid fields, without the input (see ``safe_errors``)."""
    errors = safe_errors(exc.errors() if isinstance(exc, RequestValidationError) else [])
    log.info(
        "422 %s %s: invalid %s", request.method, _route_path(request.scope), _field_names(errors)
    )
    return JSONResponse({"detail": errors}, status_code=422)


class RequestLogFilter(logging.Filter):
    """During a request: the request id in front of the message, and exceptions (arguments or
    ``exc_info``) reduced to type names and frames, since their messages may quote the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = _request_id.get()
        record.request_id = rid
        if rid is None or getattr(record, "_learnops_scrubbed", False):
            return True
        args = record.args
        if isinstance(args, tuple):
            args = tuple(type(a).__name__ if isinstance(a, BaseException) else a for a in args)
        try:
            message = str(record.msg) % args if args else str(record.msg)
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = f"request {rid}: {message}", ()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = (
                f"Traceback (most recent call last):\n{_frames(exc)}\n{type(exc).__name__}"
            )
            record.exc_info = None
        record._learnops_scrubbed = True
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add ``RequestLogFilter`` to the ``learnops.serve`` logger (once)."""
    logger = logger or log
    if not any(isinstance(f, RequestLogFilter) for f in logger.filters):
        logger.addFilter(RequestLogFilter())
