"""O1, O1x, O1': what observability costs the search throughput of K (32 clients, one query
per call, a Flat collection of the word vectors), measured in the same run on four servers
with the same settings and data, interleaved A B C D / D C B A round by round:

- off: metrics_port -1 and no tracer provider (the API's no-op, the product's default); the
  callers send no trace context, as in K;
- metrics: metrics_port 0, /metrics read every second during each block by a scraper thread
  of this process that asks what Prometheus asks for (OpenMetrics, gzip);
- on: metrics as above, and traces on with no exporter (OTEL_TRACES_EXPORTER=none): the
  server installs an SDK tracer provider whose sampler records no span (nothing would
  receive one) but gives every call a trace id, its caller's or its own, for the log. Each
  load-generator thread calls from within a sampled span of its own, so every call carries a
  traceparent, which the server reads;
- otlp: as on, but traces exported the way a deployment sends them to a collector:
  OTEL_EXPORTER_OTLP_ENDPOINT set, so the server adds its BatchSpanProcessor and OTLP gRPC
  exporter, exporting to a receiver in this process that counts the spans and drops them.

O1 = on / off (the product's goal: metrics and tracing on, no exporter; >= 0.95), O1x =
otlp / off (informational: what exporting adds), O1' = metrics / off. The metric counters
themselves are incremented in every variant (the server keeps them whether or not it serves
them), so O1' is the cost of the endpoint and its scrapes. Scraping every second is 15-60
times what a Prometheus usually does.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any

from data import DIM, K, WordSet
from embedspace import Client, EmbedspaceError
from embedspace_server.process import ServeProcess
from harness import Block, med, proc_status, say, spread
from load import ThreadLoad
from report import versus
from telemetry import Scraper, SpanSink, metric_sum

from . import Bench

ROWS = ("O1", "O1x", "O1'")
# Rows that run only when --only names them: four servers of 100k vectors each.
OPT_IN = ROWS
SEARCH = {"grpc_service": "embedspace.v1.Embedspace", "grpc_method": "Search"}
SERVER_SPAN = "embedspace.v1.Embedspace/Search"
HANDLED = "grpc_server_handled_total"
# What the server logs at start when it records traces and exports none.
RECORDING = "trace ids for the log only"


@dataclass
class Variant:
    key: str
    metrics: bool
    traces: str  # "" (no tracer provider), "none" (recorded, not exported) or "otlp"
    server: ServeProcess | None = None
    load: ThreadLoad | None = None
    scraper: Scraper | None = None
    calls: int = 0  # Search calls its load generator made in timed blocks, retries included
    blocks: list[Block] = field(default_factory=list)


def observability_cost(
    b: Bench, words: WordSet, encoders: list[dict[str, Any]], rounds: int
) -> None:
    """`rounds`: interleaved rounds (0: twice the profile's, since the ratios sought are
    near 1)."""
    p, servers, info, clients = b.p, b.servers, b.report.info, b.clients
    rounds = rounds or 2 * p.rounds
    q, nq = words.queries, len(words.queries)
    sink = SpanSink()
    variants = [Variant("off", False, ""), Variant("metrics", True, ""),
                Variant("on", True, "none"), Variant("otlp", True, "otlp")]  # fmt: skip
    info.append(
        "O1: four servers, K's settings and data (log_format json in all four, for the "
        "trace-id check below), one Flat collection each; off: metrics_port -1, "
        "OTEL_SDK_DISABLED=true (the no-op tracer), callers send no trace context; metrics: "
        "metrics_port 0, /metrics scraped every 1 s (OpenMetrics, gzip) during each block "
        "by a thread of this process; on: the same plus OTEL_TRACES_EXPORTER=none (the SDK "
        "gives every call a trace id and records no span), and every call carries a sampled "
        "traceparent "
        f"(each load-generator thread calls within a span of its own); otlp: as on, but "
        f"OTEL_EXPORTER_OTLP_ENDPOINT={sink.endpoint} (the server's BatchSpanProcessor and "
        "OTLP gRPC exporter, defaults) to a receiver in this process that counts spans and "
        f"drops them; {clients} threads x sync Client, rounds ordered "
        f"{', '.join(v.key for v in variants)} then the reverse; {rounds} rounds of "
        f"{p.block_s:g} s blocks"
    )

    def search(c: Client, i: int) -> Any:
        return c.search("flat", q[i % nq], K)

    def traced(call: Callable[[Client, int], Any]) -> Callable[[Client, int], Any]:
        """`call` from within a sampled span of the calling thread's own (made on its first
        call), so the SDK sends its traceparent."""
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        local = threading.local()

        def in_span(c: Client, i: int) -> Any:
            if not getattr(local, "in_span", False):
                span = _caller_span(sink)
                otel_context.attach(trace.set_span_in_context(span))
                local.in_span = True
            return call(c, i)

        return in_span

    def timed(v: Variant) -> Callable[[], float]:
        call = traced(search) if v.traces else search
        assert v.load is not None

        def block() -> float:
            assert v.load is not None
            with v.scraper.every_second() if v.scraper else nullcontext():
                rate = v.load.rate(call, p.block_s, clients)
            v.calls += round(rate * p.block_s) + clients  # each thread's last call ends late
            return rate

        return block

    try:
        for v in variants:
            settings = servers.settings(log_format="json")
            settings["metrics_port"] = 0 if v.metrics else -1
            env = {"OTEL_SDK_DISABLED": "true"}
            if v.traces == "none":
                env = {"OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "false"}
            elif v.traces == "otlp":
                env = {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
                    "OTEL_EXPORTER_OTLP_INSECURE": "true",
                    "OTEL_SDK_DISABLED": "false",
                }
            v.server = servers.start(f"o1-{v.key}", settings, encoders, env=env)
            if v.metrics:
                v.scraper = Scraper(v.server.metrics_port)
            with Client(v.server.target, timeout=600) as admin:
                admin.create_collection("flat", "minilm", index="Flat")
                took = words.upload(admin, "flat")
            say(f"O1 {v.key}: {p.n} x {DIM} into Flat in {took:.1f}s")
            v.load = ThreadLoad(v.server.target, clients)
            v.load.rate(traced(search) if v.traces else search, min(1.0, p.block_s / 2), clients)
        otlp = variants[-1]
        assert otlp.scraper is not None
        before = _settle(otlp.scraper, sink)
        batches = {v.key: _faiss_batches(v.scraper.scrape()) for v in variants if v.scraper}
        say(f"O1: {rounds} rounds, {' / '.join(v.key for v in variants)}")
        plan = [(v, timed(v)) for v in variants]
        for r in range(rounds):
            say(f"  round {r + 1}/{rounds}")
            for v, fn in plan if r % 2 == 0 else plan[::-1]:
                v.blocks.append(b.meter.run(f"O1 {v.key}", fn))
        after = _settle(otlp.scraper, sink)
        for v in variants:
            if v.scraper:
                calls, size = _faiss_batches(v.scraper.scrape())
                calls, size = calls - batches[v.key][0], size - batches[v.key][1]
                info.append(
                    f"O1 {v.key}: {calls:.0f} FAISS calls in the timed blocks, "
                    f"{size / max(calls, 1):.1f} queries each (embedspace_faiss_batch_size)"
                )
        _report(b, variants, before, after)
        info.append(_trace_ids(variants, sink, q[0]))
    finally:
        for v in variants:
            if v.load is not None:
                v.load.close()
            if v.server is not None:
                servers.stop(v.server)
        sink.close()


def _caller_span(sink: SpanSink) -> Any:
    """A sampled span context of a caller's own (a new trace), its trace id told to `sink`."""
    from opentelemetry import trace

    trace_id = random.getrandbits(128) | 1
    sink.callers.add(trace_id.to_bytes(16, "big"))
    return trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id, random.getrandbits(64) | 1, is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )  # fmt: skip


def _trace_ids(variants: list[Variant], sink: SpanSink, query: Any) -> str:
    """Checks, after the timed blocks, which servers record traces: each gets a Search on a
    collection it lacks (NOT_FOUND, which the server logs at INFO with the call's trace id),
    once with no trace context and once from within a caller's sampled span. With no trace
    context, a server that records logs a trace id of its own and one that does not logs
    none; with one, all log the caller's (the API's no-op tracer passes the caller's span
    context through)."""
    from opentelemetry import trace

    seen = []
    for v in variants:
        assert v.server is not None
        logged = []
        for label in ("no traceparent", "traceparent"):
            span = _caller_span(sink) if label == "traceparent" else None
            in_span = trace.use_span(span) if span is not None else nullcontext()
            with Client(v.server.target, timeout=60) as c, in_span, suppress(EmbedspaceError):
                c.search("o1-absent", query, K)
            trace_id = _logged_trace_id(v.server, time.monotonic() + 10, len(logged))
            if span is None:
                logged.append("none" if not trace_id else "own")
            else:
                ours = format(span.get_span_context().trace_id, "032x")
                logged.append(
                    "none" if not trace_id else "the caller's" if trace_id == ours else "other"
                )
        recording = RECORDING in v.server.log
        seen.append(
            f"{v.key}: {logged[0]}, {logged[1]}"
            + (f' (its log says "{RECORDING}")' if recording else "")
        )
    return (
        "O1 trace ids in the servers' logs for a NOT_FOUND Search with no traceparent, then "
        "with one (none / own / the caller's): " + "; ".join(seen)
    )


def _logged_trace_id(server: ServeProcess, deadline: float, earlier: int) -> str:
    """The trace id of the server's access-log line for the `earlier`+1-th NOT_FOUND
    Search ("" when it has none), waiting for the line until `deadline`."""
    while True:
        lines = []
        for line in server.log.splitlines():
            if '"NOT_FOUND"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("method") == "Search" and record.get("status") == "NOT_FOUND":
                lines.append(record)
        if len(lines) > earlier:
            return str(lines[earlier].get("trace_id", ""))
        if time.monotonic() > deadline:
            return "?"
        time.sleep(0.1)


@dataclass(frozen=True)
class _Tally:
    """The otlp server's count of calls (from /metrics) and the spans the sink had for them."""

    handled: float  # every method
    searches: float
    names: dict[str, int]
    server_spans: int
    joined: int
    exports: int
    waited: float


def _settle(scraper: Scraper, sink: SpanSink, limit_s: float = 30.0) -> _Tally:
    """Waits until the sink has a server span for every call the server counted (its
    BatchSpanProcessor exports every 5 s by default), or `limit_s` has passed."""
    start = time.monotonic()
    while True:
        text = scraper.scrape()
        handled = metric_sum(text, HANDLED)
        names, server_spans, joined, exports = sink.counts()
        waited = time.monotonic() - start
        if server_spans >= handled or waited > limit_s:
            searches = metric_sum(text, HANDLED, **SEARCH)
            return _Tally(handled, searches, dict(names), server_spans, joined, exports, waited)
        time.sleep(0.5)


def _faiss_batches(text: str) -> tuple[float, float]:
    """FAISS search calls so far, and the queries they held."""
    name = "embedspace_faiss_batch_size"
    return metric_sum(text, f"{name}_count"), metric_sum(text, f"{name}_sum")


def _report(b: Bench, variants: list[Variant], before: _Tally, after: _Tally) -> None:
    off, metrics, on, otlp = variants
    name = f"search QPS, {b.clients} clients, 1 query per call, {b.p.n}x{DIM} Flat"
    rows = [
        versus("O1", f"{name}: metrics scraped every 1 s + every call traced, no exporter "
               "(OTEL_TRACES_EXPORTER=none) / both off", on.blocks, off.blocks, "both off",
               fmt="{:.3f}", goal=0.95),
        versus("O1x", "the same with the spans exported by OTLP (to a sink in the "
               "benchmark) / both off", otlp.blocks, off.blocks, "both off", fmt="{:.3f}"),
        versus("O1'", "the same with metrics only (scraped every 1 s) / both off",
               metrics.blocks, off.blocks, "both off", fmt="{:.3f}"),
    ]  # fmt: skip
    b.report.add(rows, {v.key: v.blocks for v in variants})
    info = b.report.info

    def share(x: Variant, y: Variant) -> str:
        paired = [s.value / t.value for s, t in zip(x.blocks, y.blocks, strict=True)]
        return spread(paired, "{:.3f}")

    info.append(
        f"O1: on / metrics (the share of the tracer with no exporter) {share(on, metrics)}; "
        f"otlp / on (the share of recording and exporting spans) {share(otlp, on)}"
    )
    for v in variants:
        assert v.server is not None
        cpu_ms = [1000 * x.server / x.value for x in v.blocks]
        info.append(
            f"O1 {v.key}: {spread([x.value for x in v.blocks])} QPS; server CPU per call "
            f"{spread(cpu_ms, '{:.2f}')} ms (all four servers' CPU over the block's calls); "
            f"this process {med([x.client for x in v.blocks]):.2f} cores, foreign "
            f"{med([x.foreign for x in v.blocks]):.2f}; server threads (from /proc) "
            f"{proc_status(v.server.proc.pid, 'Threads')}"
        )
    scraper = otlp.scraper
    assert scraper is not None
    scrapes = [s for v in variants if v.scraper for s in v.scraper.took]
    wire, text = scraper.sizes[-1]
    info.append(
        f"O1 scrapes: {len(scrapes)}, {spread([1000 * s for s in scrapes], '{:.1f}')} ms "
        f"each as the scraper saw them; the otlp server's last: {text / 1000:.1f} kB of "
        f"text, {wire / 1000:.1f} kB gzipped"
    )
    searches = after.searches - before.searches
    server_spans = after.server_spans - before.server_spans
    handled = after.handled - before.handled
    per_call = ", ".join(
        f"{n} {(after.names.get(n, 0) - before.names.get(n, 0)) / searches:.2f}"
        for n in sorted(after.names, key=lambda n: (n != SERVER_SPAN, n))
        if after.names.get(n, 0) > before.names.get(n, 0)
    )
    spans = sum(after.names.values()) - sum(before.names.values())
    joined = after.joined - before.joined
    info.append(
        f"O1 otlp, timed blocks: {searches:.0f} Search calls handled by /metrics "
        f"({HANDLED} delta; the load generator made {otlp.calls}); the sink received "
        f"{spans} spans in {after.exports - before.exports} exports, "
        f"{server_spans} of them server spans for {handled:.0f} calls of any method "
        f"({server_spans / max(handled, 1):.3f} per call; {joined / max(server_spans, 1):.1%} "
        f"in the callers' traces); spans per Search call: {per_call}; waited "
        f"{after.waited:.1f} s for the last exports"
    )
