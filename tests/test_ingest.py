"""`embedspace ingest` and `embedspace export` against a real server: JSON lines, CSV and
Parquet files, bad rows reported by line, --stop-on-error, stdin, an interrupted run
resumed without sending a row twice, and export | ingest copying a collection exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embedspace import Client
from embedspace_server.cli.data import Positions
from embedspace_server.cli.resume import state_path
from embedspace_server.cli.rows import BadRow, Fields, to_point

from .conftest import RunningServer, wait_until
from .serve_process import BIN
from .test_cli import write_jsonl

FORMATS = ("jsonl", "csv", "parquet")


def vec(i: int) -> list[float]:
    return [float(np.float32(i + j / 7)) for j in range(8)]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as JSON lines, CSV (the columns of the first row; lists and dicts as JSON) or
    Parquet, by the file's extension."""
    if path.suffix == ".jsonl":
        return write_jsonl(path, rows)
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    import csv

    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(list(rows[0]))
        for row in rows:
            out.writerow([json.dumps(v) if isinstance(v, list | dict) else v for v in row.values()])
    return path


def stored(client: Client, collection: str) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Every item: its vector's bytes and its metadata."""
    return {
        item.id: (np.asarray(item.vector, dtype=np.float32).tobytes(), dict(item.metadata))
        for item in client.scan_all(collection)
    }


@pytest.mark.parametrize("format", FORMATS)
def test_ingest_vectors_and_typed_metadata(
    cli: Any, client: Client, collection_name: str, tmp_path: Path, format: str
) -> None:
    client.create_collection(collection_name, "vec8dot")
    # The fields besides id and vector are the metadata; CSV cells are typed as JSON.
    rows = [{"id": f"p{i}", "vector": vec(i), "colour": ["red", "blue"][i % 2], "n": i,
             "weight": i + 0.5, "ok": i % 2 == 0} for i in range(6)]  # fmt: skip
    ran = cli("ingest", collection_name, str(write(tmp_path / f"in.{format}", rows)))
    assert ran.code == 0, ran.err
    summary = ran.row()
    assert (summary["inserted"], summary["replaced"], summary["rejected"]) == (6, 0, 0)
    assert "6 inserted, 0 replaced, 0 rejected" in ran.err
    items = stored(client, collection_name)
    for row in rows:
        vector, metadata = items[row["id"]]
        assert vector == np.asarray(row["vector"], dtype=np.float32).tobytes()
        expected = {k: v for k, v in row.items() if k not in ("id", "vector")}
        assert metadata == expected
        assert {k: type(v) for k, v in metadata.items()} == {
            k: type(v) for k, v in expected.items()
        }
    again = cli("ingest", collection_name, str(tmp_path / f"in.{format}"), "--no-progress")
    assert (again.row()["inserted"], again.row()["replaced"]) == (0, 6)


@pytest.mark.parametrize("format", FORMATS)
def test_ingest_texts_with_a_metadata_field(
    cli: Any, client: Client, collection_name: str, tmp_path: Path, format: str
) -> None:
    client.create_collection(collection_name, "minilm")
    texts = {"cat": "a cat sleeps on the sofa", "bread": "bake bread in the oven",
             "goal": "the striker scores a goal"}  # fmt: skip
    rows = [{"key": k, "body": t, "metadata": {"n": i, "label": "x"}, "ignored": 1}
            for i, (k, t) in enumerate(texts.items())]  # fmt: skip
    if format != "jsonl":
        rows = [{**r, "metadata": json.dumps(r["metadata"])} for r in rows]
    path = write(tmp_path / f"texts.{format}", rows)
    ran = cli("ingest", collection_name, str(path), "--id-field", "key", "--text-field", "body")
    assert ran.code == 0, ran.err
    assert client.count(collection_name) == 3
    assert dict(client.get(collection_name, ["bread"])[0].metadata) == {"n": 1, "label": "x"}
    assert client.search(collection_name, "a kitten napping", 1)[0].id == "cat"


def test_bad_json_lines_are_reported_by_line_and_the_rest_stored(
    cli: Any, client: Client, collection_name: str, tmp_path: Path
) -> None:
    client.create_collection(collection_name, "vec8dot")
    lines = [
        json.dumps({"id": "p1", "vector": vec(1)}),
        json.dumps({"id": "p2", "vector": vec(2)}),
        '{"id": "p3", "vector": [1, 2',  # 3: not JSON
        json.dumps({"id": "p4", "vector": vec(4)}),
        json.dumps({"vector": vec(5)}),  # 5: no id
        "",
        json.dumps({"id": "p7", "colour": "red"}),  # 7: no item
        json.dumps({"id": "p8", "vector": "abc"}),  # 8: not a vector
        json.dumps({"id": "p9", "vector": vec(9), "text": "hi"}),  # 9: two items
        json.dumps({"id": "p10", "vector": [1.0, 2.0, 3.0]}),  # 10: the server refuses it
        json.dumps({"id": "p11", "vector": vec(11)}),
        "[1, 2]",  # 12: not an object
        json.dumps({"id": "p13", "vector": vec(13), "nested": {"x": 1}}),  # 13
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ran = cli("ingest", collection_name, str(path))
    assert ran.code == 1
    summary = ran.row()
    assert [r["line"] for r in summary["rejections"]] == [3, 5, 7, 8, 9, 10, 12, 13]
    assert summary["rejected"] == 8 and summary["inserted"] == 4 and summary["complete"]
    by_line = {r["line"]: r for r in summary["rejections"]}
    assert by_line[10]["id"] == "p10" and "vector" in by_line[10]["field"] + by_line[10]["reason"]
    assert by_line[13]["id"] == "p13" and by_line[13]["field"] == "nested"
    assert "line 10 id 'p10'" in ran.err
    assert sorted(stored(client, collection_name)) == ["p1", "p11", "p2", "p4"]
    assert not state_path(path).exists()  # a complete run leaves no state


def test_bad_csv_and_parquet_rows_are_reported_by_line_and_row(
    cli: Any, client: Client, collection_name: str, tmp_path: Path
) -> None:
    client.create_collection(collection_name, "vec8dot")
    v = lambda i: json.dumps(vec(i))  # noqa: E731
    csv_text = (
        "id,vector,note\n"
        f'p1,"{v(1)}","two\nlines"\n'  # lines 2-3
        "p2,not a vector,x\n"  # 4
        f'p3,"{v(3)}"\n'  # 5: two cells
        'p4,"[1, 2, 3]",short\n'  # 6: the server refuses it
        f'p5,"{v(5)}",ok\n'  # 7
    )
    (tmp_path / "bad.csv").write_text(csv_text)
    ran = cli("ingest", collection_name, str(tmp_path / "bad.csv"))
    assert ran.code == 1
    assert [(r["line"], r["id"]) for r in ran.row()["rejections"]] == [
        (4, "p2"), (5, None), (6, "p4"),
    ]  # fmt: skip
    assert dict(client.get(collection_name, ["p1"])[0].metadata) == {"note": "two\nlines"}
    assert client.count(collection_name) == 2

    rows = [{"id": "q1", "vector": vec(1)}, {"id": None, "vector": vec(2)},
            {"id": "q3", "vector": [1.0]}, {"id": "q4", "vector": vec(4)}]  # fmt: skip
    ran = cli("ingest", collection_name, str(write(tmp_path / "bad.parquet", rows)))
    assert ran.code == 1
    assert [(r["row"], r["id"]) for r in ran.row()["rejections"]] == [(2, None), (3, "q3")]
    assert "row 3 id 'q3'" in ran.err
    assert client.count(collection_name) == 4


def test_stop_on_error_ends_the_run_at_the_first_bad_row(
    cli: Any, client: Client, collection_name: str, tmp_path: Path
) -> None:
    client.create_collection(collection_name, "vec8dot")
    lines = [json.dumps({"id": f"p{i}", "vector": vec(i)}) for i in range(1, 11)]
    lines[5] = "{oops"
    path = tmp_path / "stop.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ran = cli("ingest", collection_name, str(path), "--stop-on-error")
    assert ran.code == 1
    summary = ran.row()
    assert [r["line"] for r in summary["rejections"]] == [6] and not summary["complete"]
    assert client.count(collection_name) == 5  # the rows before it are stored
    assert "stopped early" in ran.err

    # A row the server refuses stops it too: the streams after it are never sent.
    rows = [{"id": f"s{i}", "vector": vec(i)} for i in range(2000)]
    rows[3]["vector"] = [1.0, 2.0]
    refused = write_jsonl(tmp_path / "refused.jsonl", rows)
    ran = cli("ingest", collection_name, str(refused), "--stop-on-error", "--batch-size", "10")
    assert ran.code == 1
    assert [(r["line"], r["id"]) for r in ran.row()["rejections"]] == [(4, "s3")]
    assert not ran.row()["complete"]
    assert 5 + 3 <= client.count(collection_name) < 5 + 1999


def test_ingest_from_stdin(cli: Any, client: Client, collection_name: str) -> None:
    client.create_collection(collection_name, "vec8dot")
    jsonl = "".join(json.dumps({"id": f"j{i}", "vector": vec(i), "n": i}) + "\n" for i in range(3))
    ran = cli("ingest", collection_name, "-", stdin=jsonl)
    assert ran.code == 0 and ran.row()["inserted"] == 3
    csv_text = "id,vector,n\n" + "".join(f'c{i},"{json.dumps(vec(i))}",{i}\n' for i in range(4))
    ran = cli("ingest", collection_name, "-", "--format", "csv", stdin=csv_text)
    assert ran.code == 0 and ran.row()["inserted"] == 4
    assert dict(client.get(collection_name, ["c2"])[0].metadata) == {"n": 2}
    assert client.count(collection_name) == 7
    assert cli("ingest", collection_name, "-", "--resume", stdin=jsonl).code == 2


def test_an_interrupted_ingest_resumes_without_sending_a_row_twice(
    cli: Any,
    client: Client,
    collection_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.create_collection(collection_name, "vec8dot")
    lines = [json.dumps({"id": f"p{i:04}", "vector": vec(i)}) for i in range(2000)]
    lines[49] = "{not json"  # line 50: before the interruption, so not seen again
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    real = Client.upsert_many

    def interrupted(self: Client, *args: Any, on_acknowledged: Any, **kwargs: Any) -> Any:
        def acknowledged(n: int) -> None:
            on_acknowledged(n)
            if n >= 160:
                raise KeyboardInterrupt

        return real(self, *args, on_acknowledged=acknowledged, **kwargs)

    monkeypatch.setattr(Client, "upsert_many", interrupted)
    first = cli("ingest", collection_name, str(path), "--batch-size", "20")
    monkeypatch.setattr(Client, "upsert_many", real)
    assert first.code == 130 and first.out == ""
    assert "--resume" in first.err and "interrupted" in first.err
    state = json.loads(state_path(path).read_text())
    done = state["records"]
    # Streams of 8 messages of 20 points, 4 at once: the first acknowledgement covers at most 4.
    assert state["collection"] == collection_name and 160 < done <= 641

    # A file that changed since is refused; so is another collection.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = cli("ingest", collection_name, str(path), "--resume")
    assert changed.code == 1 and "changed since the interrupted run" in changed.err
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    other = cli("ingest", collection_name + "x", str(path), "--resume")
    assert other.code == 1 and "CannotResume" in other.err

    resumed = cli("ingest", collection_name, str(path), "--resume")
    assert resumed.code == 0, resumed.err  # line 50 was before the resumed part
    summary = resumed.row()
    assert summary["resumed_after"] == done
    assert summary["points"] == 2000 - done  # the server got only the rest
    assert summary["inserted"] + summary["replaced"] == 2000 - done
    assert client.count(collection_name) == 1999
    assert not state_path(path).exists()
    nothing = cli("ingest", collection_name, str(path), "--resume")
    assert nothing.code == 1 and "no interrupted ingest" in nothing.err


def test_sigint_stops_an_ingest_that_resume_then_finishes(
    shared_server: RunningServer, client: Client, collection_name: str, tmp_path: Path
) -> None:
    client.create_collection(collection_name, "vec8dot")
    rows = [{"id": f"p{i:05}", "vector": vec(i % 100)} for i in range(20000)]
    path = write_jsonl(tmp_path / "slow.jsonl", rows)
    argv = [str(BIN / "embedspace"), "ingest", collection_name, str(path), "--target",
            shared_server.target, "--batch-size", "1"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: state_path(path).exists() or proc.poll() is not None, timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "--resume" in err and out == ""
    done = json.loads(state_path(path).read_text())["records"]
    assert 0 < done < 20000
    time.sleep(0.1)
    resumed = subprocess.run([*argv[:-2], "--resume"], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["points"] == 20000 - done
    assert client.count(collection_name) == 20000


@pytest.mark.parametrize("format", FORMATS)
def test_export_then_ingest_copies_a_collection_exactly(
    cli: Any, client: Client, collection_name: str, tmp_path: Path, format: str
) -> None:
    source, copy = collection_name[:55] + "-a", collection_name[:55] + "-b"
    client.create_collection(source, "vec8dot")
    client.create_collection(copy, "vec8dot")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    vectors[0] = [0.1, -0.0, 1e-40, 3.4e38, -3.4e38, 1 / 3, 2**-149, 7]
    ids = [f"id-{i}" for i in range(37)] + ["a,b", 'q"uote', "ünï\tcode"]
    metadata: list[dict[str, Any]] = [
        {"s": "42", "i": 2**53 + 1, "f": 0.1, "b": True, "neg": -7, "empty": "", "big": 1e300,
         "t": "true", "text": "line\nbreak, \"quoted\""},
        *({"n": i, "half": i / 2} for i in range(1, 40)),
    ]  # fmt: skip
    client.upsert(source, ids, vectors=vectors, metadata=metadata)
    path = tmp_path / f"export.{format}"
    exported = cli("export", source, str(path))
    assert exported.code == 0 and f"exported 40 items of {source}" in exported.err
    assert not (tmp_path / f"export.{format}.partial").exists()
    ingested = cli("ingest", copy, str(path))
    assert ingested.code == 0, ingested.err
    original, copied = stored(client, source), stored(client, copy)
    assert copied == original
    for key, (_, values) in original.items():
        assert {k: type(v) for k, v in copied[key][1].items()} == {
            k: type(v) for k, v in values.items()
        }


def test_export_piped_into_ingest_between_processes(
    shared_server: RunningServer, client: Client, collection_name: str
) -> None:
    source, copy = collection_name[:55] + "-a", collection_name[:55] + "-b"
    client.create_collection(source, "vec8")  # cosine: the copy is not normalised twice
    client.create_collection(copy, "vec8")
    vectors = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    client.upsert(source, [f"k{i}" for i in range(300)], vectors=vectors,
                  metadata=[{"i": i, "x": i / 3} for i in range(300)])  # fmt: skip
    es = f"{BIN / 'embedspace'} --target {shared_server.target}"
    piped = subprocess.run(f"{es} export {source} | {es} ingest {copy} -", shell=True,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["inserted"] == 300
    assert stored(client, copy) == stored(client, source)


def test_export_without_vectors_and_of_an_unknown_collection(
    cli: Any, client: Client, collection_name: str, tmp_path: Path
) -> None:
    client.create_collection(collection_name, "vec8")
    client.upsert(collection_name, ["a", "b"], vectors=np.eye(8, dtype=np.float32)[:2],
                  metadata=[{"x": 1}, {}])  # fmt: skip
    rows = cli("export", collection_name, "--no-vectors").rows()
    assert rows == [{"id": "a", "metadata": {"x": 1}}, {"id": "b", "metadata": {}}]
    csv_out = cli("export", collection_name, "-", "--format", "csv", "--no-vectors").out
    assert csv_out.splitlines() == ["id,metadata", 'a,"{""x"": 1}"', "b,{}"]
    missing = cli("export", "no-such-collection", str(tmp_path / "out.jsonl"))
    assert missing.code == 1 and missing.err.startswith("embedspace: NotFound: ")
    assert list(tmp_path.iterdir()) == []
    unknown = cli("export", collection_name, str(tmp_path / "out.txt"))
    assert unknown.code == 1 and "--format" in unknown.err


def test_record_fields_make_a_record_item() -> None:
    fields = Fields(record=("area", "rooms"))
    point = to_point({"id": "h1", "area": "12.5", "rooms": "3", "colour": "red"}, fields, True)
    assert point.item == {"area": 12.5, "rooms": 3} and point.vector is None
    assert dict(point.metadata) == {"colour": "red"}
    with pytest.raises(BadRow, match="lacks field"):
        to_point({"id": "h2", "area": 3}, fields)
    with pytest.raises(BadRow, match="both"):
        to_point({"id": "h3", "area": 3, "rooms": 1, "text": "x"}, fields)


def test_positions_map_points_back_to_their_lines() -> None:
    positions = Positions()
    places = [(0, 2), (1, 3), (2, 5), (4, 7), (5, 8), (6, 9), (7, 13)]
    for record, line in places:
        positions.add(record, line)
    assert [positions[i] for i in range(len(places))] == places
    assert len(positions.starts) == 4  # only where the step breaks


def test_unreadable_inputs_are_one_line_errors(
    cli: Any, client: Client, collection_name: str, tmp_path: Path
) -> None:
    client.create_collection(collection_name, "vec8")
    absent = cli("ingest", collection_name, str(tmp_path / "absent.jsonl"))
    assert absent.code == 1 and absent.err.startswith("embedspace: FileNotFoundError: ")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    junk = cli("ingest", collection_name, str(tmp_path / "junk.parquet"))
    assert junk.code == 1 and "FileFormatError: " in junk.err and "not a Parquet file" in junk.err
    piped = cli("ingest", collection_name, "-", "--format", "parquet")
    assert piped.code == 1 and "cannot be read from stdin" in piped.err
    (tmp_path / "latin1.csv").write_bytes("id,text\nx,caf\xe9\n".encode("latin-1"))
    latin = cli("ingest", collection_name, str(tmp_path / "latin1.csv"))
    assert latin.code == 1 and latin.out == ""
    assert latin.err.splitlines()[-1].startswith("embedspace: FileFormatError: the CSV file is "
                                                 "not UTF-8 text")  # fmt: skip
    for ran in (absent, junk, piped):
        assert ran.err.count("\n") == 1 and ran.out == "", ran.err
