"""Reading and writing JSON lines, CSV and Parquet files, a row at a time.

Readers stream: JSON lines line by line, CSV through csv.reader, Parquet by record batch
(page by page, even inside one huge row group), so memory stays flat whatever the file's
size. A Parquet column of numeric lists (vectors) comes as numpy arrays, one per row,
rather than lists of Python floats. Each row carries its position: `record`
counts the file's records from 0 (what a resumed run skips), `line` is what a message shows
(the line where it starts; for Parquet, the row number from 1).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from .errors import FileFormatError, MissingExtra
from .output import dumps, vector_list

if TYPE_CHECKING:
    from embedspace import StoredItem

FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
PARQUET_BATCH = 1024
# Read a Parquet column chunk through a buffer of this many bytes, a page at a time, rather
# than whole: a file written as one row group would otherwise be held entire.
PARQUET_BUFFER = 1 << 20


def pyarrow() -> Any:
    """pyarrow and pyarrow.parquet, or a MissingExtra naming the extra to install."""
    try:
        pa = importlib.import_module("pyarrow")
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MissingExtra("Parquet files need pyarrow: pip install 'embedspace[files]'") from None
    return pa


def file_format(path: str | None, given: str | None) -> str:
    """The format --format names, else the file's extension's; JSON lines for stdin and
    stdout."""
    if given:
        return given
    if path is None or path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise FileFormatError(
            f"cannot tell the format of {path!r} from its extension ({suffix or 'none'}); "
            f"name it with --format ({', '.join(FORMATS)})"
        )
    return _EXTENSIONS[suffix]


@dataclass(frozen=True)
class Row:
    """One record of a file: its values, or why they could not be read."""

    record: int
    line: int
    values: dict[str, Any] | None
    error: str = ""


class Source:
    """An input file (or stdin, for `-`) in one of FORMATS."""

    def __init__(self, path: str, format: str) -> None:
        self.stdin = path == "-"
        self.path = None if self.stdin else Path(path)
        self.format = format
        self.unit = "row" if format == "parquet" else "line"
        self.cells = format == "csv"
        if self.stdin and format == "parquet":
            raise FileFormatError("a Parquet file cannot be read from stdin; give its path")
        if self.format == "parquet":
            pyarrow()

    def count(self) -> int | None:
        """How many records the file holds, when that is cheap to know (not for stdin;
        for CSV, lines less the header, which a quoted field holding newlines overstates)."""
        if self.path is None or not self.path.is_file():
            return None
        if self.format == "parquet":
            with self._parquet_file() as parquet:
                return int(parquet.metadata.num_rows)
        lines, last = 0, b"\n"
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        lines += last != b"\n"
        return max(lines - 1, 0) if self.format == "csv" else lines

    def rows(self, skip: int = 0) -> Iterator[Row]:
        """The records from number `skip` on; blank lines are passed over."""
        if self.format == "jsonl":
            return self._jsonl(skip)
        if self.format == "csv":
            return self._csv(skip)
        return self._parquet(skip)

    def _binary(self) -> IO[Any]:
        if self.path is not None:
            return open(self.path, "rb")
        return getattr(sys.stdin, "buffer", sys.stdin)

    def _jsonl(self, skip: int) -> Iterator[Row]:
        f = self._binary()
        try:
            for number, line in enumerate(f):
                if number < skip or not line.strip():
                    continue
                try:
                    values = json.loads(line)
                except ValueError as e:
                    yield Row(number, number + 1, None, f"not valid JSON: {e}")
                    continue
                if not isinstance(values, dict):
                    yield Row(number, number + 1, None, "not a JSON object")
                    continue
                yield Row(number, number + 1, values)
        finally:
            if self.path is not None:
                f.close()

    @contextmanager
    def _text(self) -> Iterator[IO[str]]:
        """The file as text (stdin stays open)."""
        if self.path is not None:
            with open(self.path, encoding="utf-8-sig", newline="") as f:
                yield f
            return
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:
            yield sys.stdin
            return
        wrapper = io.TextIOWrapper(buffer, encoding="utf-8-sig", newline="")
        try:
            yield wrapper
        finally:
            wrapper.detach()

    def _csv(self, skip: int) -> Iterator[Row]:
        csv.field_size_limit(64 << 20)  # a 4096-d vector in JSON is about 90 kB
        with self._text() as f:
            reader = csv.reader(f)
            try:
                yield from self._records(reader, skip)
            except csv.Error as e:
                raise FileFormatError(f"CSV line {reader.line_num}: {e}") from None
            except UnicodeDecodeError as e:
                raise FileFormatError(f"the CSV file is not UTF-8 text: {e}") from None

    def _records(self, reader: Any, skip: int) -> Iterator[Row]:
        header = next(reader, None)
        if header is None:
            return
        if len(set(header)) != len(header):
            raise FileFormatError(f"the CSV header repeats a column name: {header}")
        record, start = -1, reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells:
                continue
            record += 1
            if record < skip:
                continue
            if len(cells) != len(header):
                error = f"has {len(cells)} cells; the header has {len(header)}"
                yield Row(record, line, None, error)
                continue
            yield Row(record, line, dict(zip(header, cells, strict=True)))

    def _parquet_file(self) -> Any:
        pa = pyarrow()
        try:
            return pa.parquet.ParquetFile(self.path, buffer_size=PARQUET_BUFFER, pre_buffer=False)
        except pa.ArrowException as e:
            raise FileFormatError(f"{self.path} is not a Parquet file: {e}") from None

    def _parquet(self, skip: int) -> Iterator[Row]:
        with self._parquet_file() as parquet:
            yield from self._batches(parquet, skip)

    def _batches(self, parquet: Any, skip: int) -> Iterator[Row]:
        groups: list[int] = []
        first = 0
        for g in range(parquet.metadata.num_row_groups):
            size = parquet.metadata.row_group(g).num_rows
            if first + size > skip or groups:
                groups.append(g)
            else:
                first += size
        if not groups:
            return
        number = first
        batches = parquet.iter_batches(
            batch_size=PARQUET_BATCH, row_groups=groups, use_threads=False
        )
        for batch in batches:
            names = batch.schema.names
            columns = [_column(batch.column(c)) for c in range(batch.num_columns)]
            for cells in zip(*columns, strict=True):
                if number >= skip:
                    yield Row(number, number + 1, dict(zip(names, cells, strict=True)))
                number += 1


def _column(column: Any) -> Sequence[Any]:
    """A Parquet column's values: for lists of 32 or 64-bit floats or of integers with no
    null inside (vectors), each row's list as a numpy array (None for a null list), cut
    from one array of the batch's values; else Python values."""
    pa = pyarrow()
    kind = column.type
    fixed = pa.types.is_fixed_size_list(kind)
    if not (fixed or pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return column.to_pylist()  # type: ignore[no-any-return]
    inner = kind.value_type
    numbers = pa.types.is_float32(inner) or pa.types.is_float64(inner)
    if not (numbers or pa.types.is_integer(inner)) or column.values.null_count:
        return column.to_pylist()  # type: ignore[no-any-return]
    # `values` backs the whole array, whatever slice of it `column` is: offsets point into it.
    flat = column.values.to_numpy(zero_copy_only=False)
    if fixed:
        size = kind.list_size
        bounds = range(column.offset * size, (column.offset + len(column) + 1) * size, size)
    else:
        bounds = column.offsets.to_numpy().tolist()
    valid = column.is_valid().to_numpy(zero_copy_only=False).tolist()
    return [flat[bounds[i] : bounds[i + 1]] if valid[i] else None for i in range(len(column))]


class Writer(Protocol):
    def write(self, item: StoredItem) -> None: ...

    def close(self) -> None: ...


def _row(item: StoredItem, with_vectors: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"id": item.id}
    if with_vectors:
        row["vector"] = vector_list(item.vector)
    row["metadata"] = dict(item.metadata)
    return row


class _JsonlWriter:
    def __init__(self, out: IO[str], with_vectors: bool) -> None:
        self.out, self.with_vectors = out, with_vectors

    def write(self, item: StoredItem) -> None:
        self.out.write(dumps(_row(item, self.with_vectors)) + "\n")

    def close(self) -> None:
        self.out.flush()


class _CsvWriter:
    """Columns id, vector (a JSON array) and metadata (a JSON object)."""

    def __init__(self, out: IO[str], with_vectors: bool) -> None:
        self.out, self.with_vectors = out, with_vectors
        self.writer = csv.writer(out)
        self.writer.writerow(["id", "vector", "metadata"] if with_vectors else ["id", "metadata"])

    def write(self, item: StoredItem) -> None:
        row = _row(item, self.with_vectors)
        self.writer.writerow([row["id"], *(dumps(v) for k, v in row.items() if k != "id")])

    def close(self) -> None:
        self.out.flush()


class _ParquetWriter:
    """Columns id (string), vector (list of float32: the stored values exactly) and
    metadata (a JSON object, as a string)."""

    def __init__(self, out: IO[bytes], with_vectors: bool) -> None:
        pa = pyarrow()
        self.pa, self.with_vectors = pa, with_vectors
        columns = [("id", pa.string())]
        if with_vectors:
            columns.append(("vector", pa.list_(pa.float32())))
        columns.append(("metadata", pa.string()))
        self.schema = pa.schema(columns)
        self.writer = pa.parquet.ParquetWriter(out, self.schema)
        self.pending: list[StoredItem] = []

    def write(self, item: StoredItem) -> None:
        self.pending.append(item)
        if len(self.pending) >= PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        items, self.pending = self.pending, []
        columns: dict[str, list[Any]] = {"id": [i.id for i in items]}
        if self.with_vectors:
            columns["vector"] = [vector_list(i.vector) for i in items]
        columns["metadata"] = [dumps(dict(i.metadata)) for i in items]
        self.writer.write_table(self.pa.table(columns, schema=self.schema))

    def close(self) -> None:
        self._flush()
        self.writer.close()


class Destination:
    """An output file, written beside its final name and renamed into place when complete;
    or stdout, for None or `-`."""

    def __init__(self, path: str | None, format: str, with_vectors: bool) -> None:
        self.path = None if path in (None, "-") else Path(path)
        self.partial = (
            None if self.path is None else self.path.with_name(self.path.name + ".partial")
        )
        self.format, self.with_vectors = format, with_vectors
        if format == "parquet":
            pyarrow()
        self.file: IO[Any] | None = None

    def __enter__(self) -> Writer:
        binary = self.format == "parquet"
        if self.partial is None:
            out: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        elif binary:
            out = self.file = open(self.partial, "wb")
        else:
            out = self.file = open(self.partial, "w", encoding="utf-8", newline="")
        if self.format == "jsonl":
            self.writer: Writer = _JsonlWriter(out, self.with_vectors)
        elif self.format == "csv":
            self.writer = _CsvWriter(out, self.with_vectors)
        else:
            self.writer = _ParquetWriter(out, self.with_vectors)
        return self.writer

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        try:
            if kind is None:
                self.writer.close()
        finally:
            if self.file is not None:
                self.file.close()
                assert self.partial is not None and self.path is not None
                if kind is None:
                    os.replace(self.partial, self.path)
                else:
                    self.partial.unlink(missing_ok=True)
