"""One OpenTelemetry SDK TracerProvider for the whole test process, recording spans in memory.

OpenTelemetry lets a process set its global tracer provider once, so every test that needs
spans (the SDK's trace propagation, the server's spans) shares this one: `span_exporter()`
installs it on first use and returns its exporter.
"""

from __future__ import annotations

import threading

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_lock = threading.Lock()
_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """The in-memory exporter of the process's global SDK TracerProvider (installed here on
    the first call; the same one after). Finished spans accumulate across tests: call
    `clear()` first, or pick a test's spans by trace id."""
    global _exporter
    with _lock:
        if _exporter is None:
            provider = trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                provider = TracerProvider()
                trace.set_tracer_provider(provider)  # once per process; ignored after that
                if trace.get_tracer_provider() is not provider:
                    raise RuntimeError(
                        "a global tracer provider that is not an SDK TracerProvider was set "
                        "before tests/tracing.py could set one; set it only through here"
                    )
            exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            _exporter = exporter
    return _exporter


def tracer() -> trace.Tracer:
    """A tracer of the global SDK TracerProvider, whose spans `span_exporter()` records."""
    span_exporter()
    return trace.get_tracer("embedspace.tests")
