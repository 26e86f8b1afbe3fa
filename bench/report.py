"""The report: rows of the table, the notes beside them, the machine and thread settings,
printed last with the command that reproduces it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from harness import NCPU, Block, Meter, rates, ratios, spread, threads_here, verdict

REPO = Path(__file__).resolve().parent.parent
ORDER = ("E", "E'", "E8", "B", "K", "K'", "K2", "K2'", "A", "L", "M", "X", "O1", "O1x", "O1'",
         "R1", "R2", "R3", "RS")  # fmt: skip


@dataclass
class Row:
    name: str
    what: str
    service: str
    reference: str
    ratio: str
    goal: str
    met: str
    notes: list[str] = field(default_factory=list)
    foreign: str = ""  # the most foreign load (cores) in the blocks behind the row


def versus(
    name: str,
    what: str,
    service: Sequence[Block],
    reference: Sequence[Block],
    reference_label: str,
    *,
    fmt: str = "{:.2f}",
    goal: float | None = None,
    goal_text: str | None = None,
    met: str | None = None,
) -> Row:
    """A row of rates whose ratio is `service` over `reference`, paired round by round;
    `goal` (a least ratio) gives the goal column and the verdict unless they are given."""
    paired = ratios(service, reference)
    if goal_text is None:
        goal_text = "" if goal is None else f">= {goal:g}"
    if met is None:
        met = "" if goal is None else verdict(paired, goal)
    return Row(
        name,
        what,
        spread(rates(service)),
        f"{spread(rates(reference))} {reference_label}",
        spread(paired, fmt),
        goal_text,
        met,
    )


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.info: list[str] = []

    def add(self, rows: Sequence[Row], blocks: Mapping[str, Sequence[Block]] | None = None) -> None:
        """Adds rows; with `blocks`, notes on them how busy the machine was behind them."""
        if blocks is not None:
            worst = max((b.foreign for bl in blocks.values() for b in bl), default=0.0)
            for row in rows:
                row.foreign = f"{worst:.2f}"
        self.rows.extend(rows)

    def render(self, header: Sequence[str], meter: Meter, argv: Sequence[str]) -> str:
        out = ["", "== embedspace service benchmark ==", *header, ""]
        out += [f"- {x}" for x in self.info]
        noisy = meter.accepted_noisy
        out.append(
            f"- quiet-machine check: foreign load > {meter.max_foreign} cores in a "
            f"block retried {meter.retried} time(s); {noisy} noisy block(s) kept"
            + (" -- FIGURES FROM A BUSY MACHINE, rerun when quiet" if noisy else "")
        )
        out.append("")
        cols = ("row", "figure", "service", "raw reference", "ratio", "goal", "met", "foreign")
        rows = sorted(self.rows, key=lambda r: ORDER.index(r.name) if r.name in ORDER else 99)
        table = [
            cols,
            *[
                (r.name, r.what, r.service, r.reference, r.ratio, r.goal, r.met, r.foreign)
                for r in rows
            ],
        ]
        width = [max(len(str(row[i])) for row in table) for i in range(len(cols))]
        width[1] = min(width[1], 90)
        for row in table:
            cells = [str(c) for c in row]
            out.append(
                "  ".join(
                    c.ljust(w) if i < len(cols) - 1 else c
                    for i, (c, w) in enumerate(zip(cells, width, strict=True))
                )
            )
        for r in rows:
            for note in r.notes:
                out.append(f"  {r.name}: {note}")
        out.append(
            "values: median [min..max] over rounds; ratios paired per round; met: median "
            "against the goal (rounds meeting it); foreign: the most CPU (cores) other "
            "processes used during a block behind the row"
        )
        out.append("reproduce: " + " ".join(shlex.quote(a) for a in [".venv/bin/python", *argv]))
        return "\n".join(out)


def header(settings: Mapping[str, Any], server_env: Mapping[str, str], profile: str) -> list[str]:
    """The machine, versions, git state, and the thread settings of both processes."""
    import faiss
    import torch

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with open("/proc/cpuinfo") as f:
        text = f.read()
        have = [
            x
            for x in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
            if re.search(rf"\b{x}\b", text)
        ]
        flags = " ".join(have)

    def v(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    keys = (
        "workers",
        "max_pending",
        "encoder_threads",
        "faiss_threads",
        "faiss_blas_threshold",
        "embed_batch",
        "embed_wait_ms",
        "search_batch",
        "search_wait_ms",
    )
    return [
        f"machine: {NCPU} cores ({os.sched_getaffinity(0).__len__()} usable), {cpu}; "
        f"{flags}; {platform.platform()}",
        f"versions: python {platform.python_version()}, torch {torch.__version__}, faiss "
        f"{faiss.__version__}, numpy {np.__version__}, grpcio {v('grpcio')}, protobuf "
        f"{v('protobuf')}, sentence-transformers {v('sentence-transformers')}, transformers "
        f"{v('transformers')}, wordfreq {v('wordfreq')}, gensim {v('gensim')}",
        f"embedspace: git {git}{' + uncommitted changes' if dirty else ''}",
        threads_here(),
        "threads, server: "
        + ", ".join(f"{k}={settings[k]}" for k in keys)
        + "".join(f", env {k}={v}" for k, v in server_env.items()),
        profile,
    ]
