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

from ..errors import FailedPrecondition

log = logging.getLogger(__name__)

tracer = trace.get_tracer("embedspace_server")

Attributes = Mapping[str, Any]


def exporter_from_environment(env: Mapping[str, str]) -> str:
    """What the standard variables ask of traces: "otlp" (exported by OTLP over gRPC; the
    default once OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set),
    "none" (OTEL_TRACES_EXPORTER=none: no exporter, but every call gets a trace id, which
    the log shows) or "" (nothing: no endpoint, or OTEL_SDK_DISABLED=true)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not exporter:
        return "otlp" if _endpoint(env) else ""
    if exporter not in ("otlp", "none"):
        raise FailedPrecondition(
            f"OTEL_TRACES_EXPORTER is {exporter!r}; embedspace exports traces by 'otlp' (to "
            "OTEL_EXPORTER_OTLP_ENDPOINT) or records them for the log only with 'none'"
        )
    return exporter


def _endpoint(env: Mapping[str, str]) -> str:
    return env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )


def provider_for(exporter: str, env: Mapping[str, str]) -> Any:
    """An SDK tracer provider for `exporter` ("otlp" or "none"), its service name from
    OTEL_SERVICE_NAME (default "embedspace"). With "none" nothing would receive a span,
    so none is recorded: the sampler drops them all, which still gives each call a trace id
    of its own (or its caller's)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES from the process's environment.
    name = env.get("OTEL_SERVICE_NAME") or "embedspace"
    resource = Resource.create({"service.name": name})
    if exporter == "none":
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    provider = TracerProvider(resource=resource)
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def configure_from_environment() -> Any | None:
    """Installs, as the process's, the tracer provider the standard variables ask for
    (`exporter_from_environment`); returns it, to flush and shut down on exit, or None
    when they ask for none."""
    env = os.environ
    exporter = exporter_from_environment(env)
    if not exporter:
        return None
    provider = provider_for(exporter, env)
    trace.set_tracer_provider(provider)
    if exporter == "otlp":
        log.info("exporting traces by OTLP to %s", _endpoint(env) or "http://localhost:4317")
    else:
        log.info("trace ids for the log only (OTEL_TRACES_EXPORTER=none): no span is exported")
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
