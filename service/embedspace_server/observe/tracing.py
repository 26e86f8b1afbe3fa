"""OpenTelemetry traces: a span per call (the interceptor), children for the steps of a
call, and the exporter the standard OTEL_* environment variables ask for.

Nothing here costs more than a context lookup while the call's span is not recording: the
API's default provider records nothing, and a process that never sets
OTEL_EXPORTER_OTLP_ENDPOINT keeps it (unless the application embedding the server installs
a provider of its own, which is then used).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

log = logging.getLogger(__name__)

tracer = trace.get_tracer("embedspace_server")

Attributes = Mapping[str, Any]


def configure_from_environment() -> Any | None:
    """Installs an SDK tracer provider exporting by OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
    (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set and OTEL_SDK_DISABLED is not; returns
    it (to flush and shut down on exit), or None when traces are not exported."""
    env = os.environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself.
    defaults = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "embedspace"}
    provider = TracerProvider(resource=Resource.create(defaults))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("exporting traces by OTLP to %s", endpoint)
    return provider


def recording() -> bool:
    """Whether the current span records (so that child spans are worth making)."""
    return trace.get_current_span().is_recording()


def child(name: str, attributes: Attributes | None = None) -> AbstractContextManager[Any]:
    """A child span of the current one, made current; nothing when the current one does not
    record (a worker or batch thread outside any call, or traces off)."""
    if not trace.get_current_span().is_recording():
        return contextlib.nullcontext()
    return tracer.start_as_current_span(name, attributes=attributes)


def span_between(
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: Attributes | None = None,
    parent: otel_context.Context | None = None,
) -> None:
    """A finished child span of `parent` (default: the current context) over a stretch of
    time already past: how long a call waited in a queue, or the batch it joined ran."""
    span = tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
    span.end(end_time=end_ns)


def caller() -> otel_context.Context | None:
    """The current context, for a batch thread to make the caller's spans; None when the
    caller's span does not record."""
    return otel_context.get_current() if recording() else None
