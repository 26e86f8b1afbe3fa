"""The rows of the table, one module per measurement: latency (L), embed throughput (E, E',
E8, B), search throughput (K, K', K2, K2', A), memory per vector (M), the int8 encoder (X), and,
only when --only names them, ingest (I, I2, IM), what metrics and traces cost search (O1,
O1x, O1') and collections on a Ray cluster (R1, R2, R3, RS).
Rows measured from the same interleaved rounds share a module, so their ratios pair blocks
of the same round. Each is given `Bench`, what every row needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import Meter, Profile
from report import Report
from servers import Servers


@dataclass
class Bench:
    p: Profile
    meter: Meter
    servers: Servers
    report: Report
    clients: int  # concurrent clients of the throughput rows
    model: Any  # MiniLM through sentence-transformers in this process: the raw reference
    texts: list[str]  # short sentences (E, B, X)
