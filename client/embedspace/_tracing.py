"""The caller's OpenTelemetry trace context, as call metadata.

When the `opentelemetry` API is importable and a valid span is current, each call carries
what the configured propagators inject (by default the W3C `traceparent`, and `tracestate`
when there is one), so the server's span for the call joins the caller's trace. The SDK does
not depend on OpenTelemetry: it is looked for on the first call, once; without it, or with
no span current, a call carries nothing more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, MutableMapping
from typing import Any

Metadata = tuple[tuple[str, str], ...]


@functools.cache
def _opentelemetry() -> tuple[Callable[[], Any], Callable[[MutableMapping[str, str]], None]] | None:
    """OpenTelemetry's `get_current_span` and `propagate.inject`, or None without the API."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return None
    return trace.get_current_span, propagate.inject


def trace_metadata() -> Metadata:
    """The trace context of the current span as gRPC metadata; () when there is none."""
    otel = _opentelemetry()
    if otel is None:
        return ()
    get_current_span, inject = otel
    if not get_current_span().get_span_context().is_valid:
        return ()
    carrier: dict[str, str] = {}
    inject(carrier)
    # gRPC refuses upper-case keys; a propagator may write headers such as X-B3-TraceId.
    return tuple((key.lower(), value) for key, value in carrier.items())
