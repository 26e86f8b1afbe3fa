"""`embedspace ingest` and `embedspace export`: files in, collections out, a row at a time."""

from __future__ import annotations

import argparse
import sys
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedspace import Client

from .errors import UsageError
from .files import Destination, Row, Source, file_format
from .output import dumps, warn
from .resume import IngestState, state_path
from .rows import BadRow, Fields, to_point

if TYPE_CHECKING:
    from embedspace import Point

MAX_REPORTED = 1000  # rejections listed in a summary; the count covers all of them


class Positions:
    """Which record and line of the file each point came from: kept as the few points where
    the step of one record and one line per point breaks (a bad or blank line, a CSV field
    spanning lines), so memory does not grow with the file."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.places: list[tuple[int, int]] = []
        self.count = 0

    def add(self, record: int, line: int) -> None:
        point, self.count = self.count, self.count + 1
        if self.starts:
            step = point - self.starts[-1]
            first, first_line = self.places[-1]
            if (first + step, first_line + step) == (record, line):
                return
        self.starts.append(point)
        self.places.append((record, line))

    def __getitem__(self, point: int) -> tuple[int, int]:
        """(record, line) of a point."""
        at = bisect_right(self.starts, point) - 1
        step = point - self.starts[at]
        record, line = self.places[at]
        return record + step, line + step


class Ingest:
    """One run of `embedspace ingest`."""

    def __init__(self, es: Client, args: argparse.Namespace) -> None:
        self.es, self.args = es, args
        record = tuple(f for f in (args.record_fields or "").split(",") if f)
        self.fields = Fields(
            args.id_field, args.text_field, args.vector_field, args.metadata_field, record
        )
        self.source = Source(args.file, file_format(args.file, args.format))
        self.positions = Positions()
        self.rejections: list[dict[str, Any]] = []
        self.rejected = 0
        self.stopped = False
        self.state: IngestState | None = None
        self.skip = 0

    def _reject(self, place: int, id: str | None, field: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED:
            entry = {self.source.unit: place, "id": id, "field": field, "reason": reason}
            self.rejections.append(entry)

    def points(self) -> Iterator[Point]:
        """The file's points; bad rows are recorded and left out (or end the run, with
        --stop-on-error)."""
        for row in self.source.rows(self.skip):
            point = self._point(row)
            if point is None:
                if self.args.stop_on_error:
                    self.stopped = True
                    return
                continue
            self.positions.add(row.record, row.line)
            yield point

    def _point(self, row: Row) -> Point | None:
        if row.values is None:
            self._reject(row.line, None, "", row.error)
            return None
        try:
            return to_point(row.values, self.fields, self.source.cells)
        except BadRow as e:
            self._reject(row.line, e.id, e.field, e.reason)
            return None

    def acknowledged(self, points: int) -> None:
        if self.state is not None and points > 0:
            self.state.acknowledged(self.positions[points - 1][0] + 1)

    def _prepare_state(self) -> None:
        path = self.source.path
        if path is None:
            if self.args.resume:
                raise UsageError("--resume needs a file: a run from stdin cannot resume")
            return
        if self.args.resume:
            self.state = IngestState.resume(path, self.args.collection)
            self.skip = self.state.records
            print(
                f"resuming {path}: skipping the {self.skip} records already stored", file=sys.stderr
            )
            return
        if state_path(path).exists():
            warn(
                f"an interrupted ingest of {path} left {state_path(path).name}; starting "
                "over (--resume continues it instead)"
            )
        self.state = IngestState(path, self.args.collection)

    def run(self) -> int:
        from embedspace import PointsRejected

        args = self.args
        self._prepare_state()
        self.es.describe(args.collection)  # an unknown collection fails before the file is read
        total = self.source.count()
        if total is not None:
            total = max(total - self.skip, 0)
        try:
            summary = self.es.upsert_many(
                args.collection,
                self.points(),
                batch_size=args.batch_size,
                progress=not args.no_progress,
                total=total,
                stop_on_reject=args.stop_on_error,
                on_acknowledged=self.acknowledged,
            )
        except PointsRejected as e:
            self.stopped = True
            summary = e.summary
        except BaseException:
            self._interrupted(stopped=False)
            raise
        for r in summary.rejected:
            place = self.positions[r.index][1] if 0 <= r.index < self.positions.count else -1
            self._reject(place, r.id, r.field, r.reason)
        complete = not self.stopped
        if self.state is not None:
            if complete:
                self.state.remove()
            else:
                self._interrupted(stopped=True)
        self._report(summary, complete)
        return 0 if complete and not self.rejected else 1

    def _interrupted(self, stopped: bool) -> None:
        """Keeps the state of a run that did not complete, and says how to go on."""
        state = self.state
        if state is None:
            return
        state.save()
        if state.records == 0:
            return
        done = f"the first {state.records} records of {state.source} are stored"
        if stopped:
            warn(f"{done}; after fixing the file run it whole again (upserts replace), or, "
                 "with the file unchanged, continue after them with --resume")  # fmt: skip
        else:
            warn(f"{done}; run the same command with --resume to continue after them")

    def _report(self, summary: Any, complete: bool) -> None:
        self.rejections.sort(key=lambda r: r[self.source.unit])
        print(
            dumps(
                {
                    "collection": self.args.collection,
                    "file": self.args.file,
                    "inserted": summary.inserted,
                    "replaced": summary.replaced,
                    "rejected": self.rejected,
                    "rejections": self.rejections,
                    "points": summary.points,
                    "resumed_after": self.skip,
                    "complete": complete,
                    "seconds": round(summary.seconds, 3),
                }
            )
        )
        unit = self.source.unit
        print(
            f"{self.args.file} -> {self.args.collection}: {summary.inserted} inserted, "
            f"{summary.replaced} replaced, {self.rejected} rejected in "
            f"{summary.seconds:.1f} s" + ("" if complete else " (stopped early)"),
            file=sys.stderr,
        )
        for r in self.rejections[:20]:
            field = f" ({r['field']})" if r["field"] else ""
            id = f" id {r['id']!r}" if r["id"] is not None else ""
            print(f"  {unit} {r[unit]}{id}: {r['reason']}{field}", file=sys.stderr)
        if self.rejected > 20:
            print(
                f"  ... and {self.rejected - 20} more (the JSON summary on stdout lists "
                f"up to {MAX_REPORTED})",
                file=sys.stderr,
            )


def ingest(es: Client, args: argparse.Namespace) -> int:
    return Ingest(es, args).run()


def export(es: Client, args: argparse.Namespace) -> int:
    format = file_format(args.file, args.format)
    count = 0
    with Destination(args.file, format, not args.no_vectors) as writer:
        items = es.scan_all(
            args.collection,
            page_size=args.page_size,
            with_vectors=not args.no_vectors,
            with_metadata=True,
        )
        for item in items:
            writer.write(item)
            count += 1
    if args.file not in (None, "-"):
        print(f"exported {count} items of {args.collection} to {Path(args.file)}", file=sys.stderr)
    return 0
