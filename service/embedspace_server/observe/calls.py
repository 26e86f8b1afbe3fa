"""Every call seen once, at the edge: counted and timed for Prometheus (under the names
go-grpc-prometheus uses), given a server span (its parent the caller's `traceparent`), and
written to the access log (DEBUG when it succeeded, INFO when it failed; never an item,
an id or a token).

The servicer tells the call's record which encoder or collection the call names; the call
limits read it for their labels.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import metrics
from .tracing import tracer

access = logging.getLogger("embedspace.access")

OK = grpc.StatusCode.OK
# The codes for which a server span is an error (OpenTelemetry's RPC conventions): the
# others are the caller's mistakes, answered correctly.
SERVER_ERRORS = frozenset(
    grpc.StatusCode[name]
    for name in ("UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
                 "DATA_LOSS")
)  # fmt: skip


@dataclass
class CallRecord:
    """What the edge learns about a call while it runs."""

    method: str
    encoder: str = ""
    collection: str = ""
    named: str = ""  # the collection as the call names it

    def names(self, encoder: str, collection: str) -> None:
        """The encoder and collection the call names, as their bounded label values."""
        self.encoder = metrics.encoder_label(encoder)
        self.named = collection
        self.collection = metrics.collection_label(collection)

    def collection_at_end(self) -> str:
        """The collection's label once the call is done: the name of one it created, which
        was not a collection (`other`) when it started."""
        return metrics.collection_label(self.named) if self.named else ""


current_call: ContextVar[CallRecord | None] = ContextVar("current_call", default=None)


@dataclass(frozen=True)
class _Method:
    """One method's labels and cached metric children."""

    service: str
    name: str
    kind: str

    @functools.cached_property
    def started(self) -> Any:
        return metrics.STARTED.labels(self.kind, self.service, self.name)

    @functools.cached_property
    def seconds(self) -> Any:
        return metrics.HANDLING.labels(self.kind, self.service, self.name)

    @functools.cache  # noqa: B019 (one per method and code, for the server's life)
    def handled(self, code: grpc.StatusCode) -> Any:
        return metrics.HANDLED.labels(self.kind, self.service, self.name, code.name)

    @property
    def span_name(self) -> str:
        return f"{self.service}/{self.name}"


class Observer(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """The interceptor. `kinds` maps each method the server serves ("/package.Service/
    Method") to its gRPC type: calls to other paths are left alone, so no client can make
    a label value."""

    def __init__(self, kinds: Mapping[str, str]) -> None:
        self._methods = {}
        for path, kind in kinds.items():
            service, name = path.lstrip("/").split("/", 1)
            self._methods[path] = _Method(service, name, kind)
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        method = self._methods.get(details.method)
        if handler is None or method is None:
            return handler
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(handler, method)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped


def _wrap(handler: Any, method: _Method) -> Any:
    """The handler with its behaviour observed (its shape, serializers and all else kept)."""
    field = (
        ("stream_stream" if handler.response_streaming else "stream_unary")
        if handler.request_streaming
        else ("unary_stream" if handler.response_streaming else "unary_unary")
    )
    behaviour = getattr(handler, field)
    if inspect.isasyncgenfunction(behaviour):
        # A stream of responses (health's Watch, reflection) is counted and timed, but its
        # span is not made current: grpc may resume the generator from another context.

        async def streaming(request: Any, context: Any) -> Any:
            call = _Call(method, context)
            try:
                async for response in behaviour(request, context):
                    yield response
            except BaseException as e:
                call.end(e)
                raise
            call.end(None)

        return handler._replace(**{field: streaming})

    async def unary(request: Any, context: Any) -> Any:
        call = _Call(method, context)
        record = current_call.set(call.record)
        span = otel_context.attach(trace.set_span_in_context(call.span))
        try:
            response = await behaviour(request, context)
        except BaseException as e:
            call.end(e)
            raise
        finally:
            otel_context.detach(span)
            current_call.reset(record)
        call.end(None)
        return response

    return handler._replace(**{field: unary})


class _Call:
    """One call, from its start to its status."""

    __slots__ = ("context", "method", "record", "span", "start")

    def __init__(self, method: _Method, context: Any) -> None:
        method.started.inc()
        self.start = time.perf_counter()
        self.method = method
        self.context = context
        self.record = CallRecord(method.name)
        self.span = tracer.start_span(
            method.span_name,
            context=_parent(context.invocation_metadata()),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": method.service,
                        "rpc.method": method.name},
        )  # fmt: skip

    def end(self, error: BaseException | None) -> None:
        seconds = time.perf_counter() - self.start
        code = _code(self.context, error)
        method, record, span = self.method, self.record, self.span
        method.handled(code).inc()
        method.seconds.observe(seconds)
        collection = record.collection_at_end()
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if collection:
                span.set_attribute("embedspace.collection", collection)
            if record.encoder:
                span.set_attribute("embedspace.encoder", record.encoder)
            if code in SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()
        level = logging.DEBUG if code is OK else logging.INFO
        if access.isEnabledFor(level):
            ms = seconds * 1000
            trace_id = span.get_span_context().trace_id
            access.log(
                level,
                "%s %s %.1f ms",
                method.name,
                code.name,
                ms,
                extra={
                    "method": method.name,
                    "collection": collection,
                    "encoder": record.encoder,
                    "status": code.name,
                    "duration_ms": round(ms, 3),
                    "trace_id": format(trace_id, "032x") if trace_id else "",
                },
            )


def _code(context: Any, error: BaseException | None) -> grpc.StatusCode:
    """The status the call ended with."""
    if isinstance(error, asyncio.CancelledError):
        left = context.time_remaining()
        expired = left is not None and left <= 0
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    return OK if error is None else grpc.StatusCode.UNKNOWN


_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def _parent(metadata: Iterable[tuple[str, Any]] | None) -> Any:
    """The caller's trace context from its `traceparent` (W3C), if it sent one."""
    if not metadata:
        return None
    carrier = {k: v for k, v in metadata if k in ("traceparent", "tracestate")}
    return propagate.extract(carrier) if carrier else None
