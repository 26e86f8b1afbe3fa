"""The `embedspace` command line against a real server: connection options, the commands
over a collection's life, errors, stdin, and the README's quickstart with the shipped
example file."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client
from embedspace_server.cli import main
from embedspace_server.cli.parser import CONNECTION, Formatter, build

from .conftest import REPO, Cli, RunningServer
from .serve_process import BIN

EXAMPLE = REPO / "docs" / "examples" / "sentences.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_connection_options_go_before_or_after_the_command(
    shared_server: RunningServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live, dead = shared_server.target, f"127.0.0.1:{free_port()}"
    monkeypatch.delenv("EMBEDSPACE_TARGET", raising=False)
    assert main(["--target", live, "health"]) == 0
    assert capsys.readouterr().out == f"{live}: SERVING\n"
    assert main(["health", "--target", live]) == 0
    assert main(["collections", "--target", live]) == 0
    capsys.readouterr()
    # After the command beats before it.
    assert main(["--target", live, "health", "--target", dead, "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"embedspace: Unavailable: {dead}") and err.count("\n") == 1
    assert main(["--target", dead, "health", "--target", live]) == 0
    # The environment, when no option names a target; an option beats it.
    monkeypatch.setenv("EMBEDSPACE_TARGET", live)
    assert main(["health"]) == 0
    assert main(["collections"]) == 0
    monkeypatch.setenv("EMBEDSPACE_TARGET", dead)
    assert main(["health", "--timeout", "1"]) == 1
    assert main(["health", "--target", live]) == 0


def test_every_option_says_its_default_and_connection_options_their_variable() -> None:
    parser = build()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"create", "describe", "drop", "collections", "encoders", "ingest", "export", "get",
            "scan", "delete", "count", "search", "distance", "compare", "doesnt-match",
            "analogy", "embed", "backup", "backups", "restore", "health", "serve", "train",
            "demo", "evaluate", "plot"} <= set(commands.choices)  # fmt: skip
    formatter = Formatter("embedspace")
    for name, command in [("", parser), *commands.choices.items()]:
        for action in command._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            text = formatter._get_help_string(action)
            assert "default" in text and "default: None" not in text, (name, action.dest)
        if name not in ("serve", "train"):
            shown = command.format_help()
            for flag, env, *_ in CONNECTION:
                assert flag in shown and f"${env}" in shown, (name, flag)


def test_a_collections_life_from_the_command_line(
    cli: Cli, collection_name: str, tmp_path: Path
) -> None:
    name = collection_name
    made = cli("create", name, "vec8dot", "--index", "Flat").row()
    assert (made["name"], made["encoder"], made["metric"], made["dim"]) == (
        name, "vec8dot", "dot", 8,
    )  # fmt: skip
    assert cli("describe", name).row()["count"] == 0
    assert any(c["name"] == name for c in cli("collections").rows())
    assert {"vec8", "vec8dot", "minilm"} <= {e["name"] for e in cli("encoders").rows()}
    rows = [{"id": f"p{i}", "vector": [i + j / 8 for j in range(8)],
             "colour": "red" if i % 2 else "blue", "n": i} for i in range(5)]  # fmt: skip
    ran = cli("ingest", name, str(write_jsonl(tmp_path / "points.jsonl", rows)))
    assert ran.code == 0, ran.err
    assert cli("count", name).row() == {"count": 5}
    assert cli("count", name, "--where", "colour=red").row() == {"count": 2}
    assert cli("count", name, "--where", "n=3").row() == {"count": 1}  # typed: 3, not "3"
    assert cli("count", name, "--where", 'n="3"').row() == {"count": 0}

    got = cli("get", name, "p1", "p3")
    assert got.code == 0
    assert [(r["id"], r["vector"], r["metadata"]) for r in got.rows()] == [
        ("p1", rows[1]["vector"], {"colour": "red", "n": 1}),
        ("p3", rows[3]["vector"], {"colour": "red", "n": 3}),
    ]
    missing = cli("get", name, "p1", "nope", "--no-vectors")
    assert missing.code == 1
    assert missing.rows() == [{"id": "p1", "metadata": {"colour": "red", "n": 1}}]
    assert missing.err == f"embedspace: NotFound: not stored in {name}: nope\n"
    assert [r["id"] for r in cli("get", name, "-", stdin="p4\np0\n").rows()] == ["p4", "p0"]

    first = cli("scan", name, "--limit", "2", "--no-vectors")
    assert [r["id"] for r in first.rows()] == ["p0", "p1"]
    token = first.err.split("--page-token ")[1].strip()
    rest = cli("scan", name, "--page-token", token, "--no-metadata")
    assert [r["id"] for r in rest.rows()] == ["p2", "p3", "p4"] and rest.err == ""
    assert all(set(r) == {"id", "vector"} for r in rest.rows())

    assert cli("delete", name, "p0", "p1", "nope").row() == {"deleted": 2}
    assert cli("count", name).row() == {"count": 3}
    assert cli("drop", name).code == 0
    gone = cli("describe", name)
    assert gone.code == 1 and gone.out == ""
    assert gone.err.startswith("embedspace: NotFound: ") and gone.err.count("\n") == 1


def test_errors_are_one_line_naming_the_kind_and_usage_errors_exit_2(
    cli: Cli, collection_name: str
) -> None:
    assert cli("create", collection_name, "vec8").code == 0
    again = cli("create", collection_name, "vec8")
    assert again.code == 1 and again.err.startswith("embedspace: AlreadyExists: ")
    unknown = cli("create", collection_name + "x", "no-such-encoder")
    assert unknown.code == 1 and unknown.err.startswith("embedspace: NotFound: ")
    bad = cli("search", collection_name, "-k", "0", "@a")
    assert bad.code == 1 and bad.err.startswith("embedspace: InvalidArgument: ")
    assert bad.err.endswith(" (field: k)\n") and bad.err.count("\n") == 1
    for argv in (["count", collection_name, "--where", "colour"],
                 ["search", collection_name, "@"],
                 ["compare", collection_name, "x"],
                 ["create", "c", "vec8", "--search-param", "nprobe=many"]):  # fmt: skip
        usage = cli(*argv)
        assert usage.code == 2 and usage.err.startswith(f"embedspace {argv[0]}: error: "), argv
    with pytest.raises(SystemExit) as exit:
        cli("distance", "a", "b")  # neither --collection nor --encoder
    assert exit.value.code == 2


def test_queries_name_stored_items_with_at(cli: Cli, client: Client, collection_name: str) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(12, 8)).astype(np.float32)
    ids = [f"v{i}" for i in range(12)]
    l2 = collection_name[:60] + "-l2"
    for name, encoder in ((collection_name, "vec8dot"), (l2, "vec8l2")):
        client.create_collection(name, encoder)
        client.upsert(name, ids, vectors=vectors, metadata=[{"half": i % 2} for i in range(12)])

    found = cli("search", collection_name, "@v0", "-k", "3", "--exclude", "v0")
    scores = vectors[1:] @ vectors[0]
    expected = [ids[1 + i] for i in np.argsort(-scores)[:3]]
    assert [r["id"] for r in found.rows()] == expected
    assert np.allclose([r["score"] for r in found.rows()], np.sort(scores)[::-1][:3], rtol=1e-5)
    odd = cli("search", collection_name, "@v0", "-k", "12", "--where", "half=1")
    assert {r["id"] for r in odd.rows()} == set(ids[1::2])
    floor = float(np.sort(scores)[::-1][1])
    kept = cli("search", collection_name, "@v0", "--exclude", "v0", "--min-score", str(floor))
    assert [r["id"] for r in kept.rows()] == expected[:2]

    apart = cli("distance", "--collection", collection_name, "@v1", "@v2").row()
    assert apart["a"] == "@v1" and np.isclose(apart["distance"], -vectors[1] @ vectors[2])
    far = vectors[:4].copy()
    far[3] = -10 * far[:3].mean(axis=0)
    client.upsert(collection_name, ["far"], vectors=far[3:])
    assert cli("doesnt-match", "--collection", collection_name, "@v0", "@v1", "@v2",
               "@far").row() == {"doesnt_match": "@far"}  # fmt: skip

    both = cli("compare", f"{collection_name},{l2}", "@v5", "-k", "4").row()
    assert both["collections"] == [collection_name, l2]
    assert set(both["neighbors"]) == {collection_name, l2}
    assert np.allclose(np.diag(both["jaccard"]), 1.0)
    analogy = cli("analogy", collection_name, "@v1", "@v2", "-n", "@v3", "-k", "3")
    answers = analogy.rows()
    assert len(answers) == 3 and not {"v1", "v2", "v3"} & {a["id"] for a in answers}
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)


def test_texts_from_stdin(cli: Cli, client: Client, collection_name: str) -> None:
    one_by_one = cli("embed", "--encoder", "minilm", "a cat", "@home").rows()
    piped = cli("embed", "--encoder", "minilm", "-", stdin="a cat\n@home\n").rows()
    assert len(piped) == 2 and piped == one_by_one
    exact = client.embed("minilm", ["a cat", "@home"])
    assert np.array_equal(np.asarray(piped, dtype=np.float32), exact)  # bit for bit

    words = ["kitten", "puppy", "bread", "violin", "rain"]
    client.create_collection(collection_name, "minilm")
    client.upsert(collection_name, words, items=words)
    single = cli("search", collection_name, "a young cat", "-k", "1").row()
    assert single["id"] == "kitten" and "query" not in single
    many = cli("search", collection_name, "-", "-k", "1", stdin="a young cat\nfiddle\n\n@rain\n")
    assert [(r["query"], r["id"]) for r in many.rows()] == [
        ("a young cat", "kitten"), ("fiddle", "violin"), ("@rain", "rain"),
    ]  # fmt: skip
    closer = cli("distance", "--encoder", "minilm", "cat", "kitten").row()["distance"]
    further = cli("distance", "--encoder", "minilm", "cat", "spreadsheet").row()["distance"]
    assert 0 <= closer < further


def test_backup_backups_and_restore(cli: Cli, client: Client, collection_name: str) -> None:
    client.create_collection(collection_name, "vec8")
    client.upsert(collection_name, ["a", "b"], vectors=np.eye(8, dtype=np.float32)[:2])
    backup = collection_name[:50] + "-bk"
    made = cli("backup", collection_name, "--name", backup).row()
    assert (made["backup"], made["count"], made["collection"]) == (backup, 2, collection_name)
    listed = [b for b in cli("backups").rows() if b["backup"] == backup]
    assert len(listed) == 1 and listed[0]["encoder"] == "vec8"
    restored = cli("restore", backup, collection_name[:50] + "-again").row()
    assert restored["count"] == 2 and restored["encoder"] == "vec8"


def test_the_embedspace_script(shared_server: RunningServer, collection_name: str) -> None:
    def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "embedspace"), *argv], capture_output=True, text=True,
                              timeout=120, env=env)  # fmt: skip

    target = shared_server.target
    made = run("--target", target, "create", collection_name, "vec8")
    assert made.returncode == 0 and json.loads(made.stdout)["name"] == collection_name
    env = {**os.environ, "EMBEDSPACE_TARGET": target}
    listed = run("collections", env=env)
    assert collection_name in {json.loads(line)["name"] for line in listed.stdout.splitlines()}
    missing = run("describe", "no-such-collection", "--target", target)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("embedspace: NotFound: ")
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    usage = run("search", "--target", target)
    assert usage.returncode == 2 and "usage: embedspace search" in usage.stderr


def test_the_readme_quickstart_with_the_shipped_example(cli: Cli, collection_name: str) -> None:
    assert len(EXAMPLE.read_text().splitlines()) == 30
    assert cli("create", collection_name, "minilm").code == 0
    ingested = cli("ingest", collection_name, str(EXAMPLE))
    assert ingested.code == 0, ingested.err
    summary = ingested.row()
    assert (summary["inserted"], summary["rejected"], summary["complete"]) == (30, 0, True)
    top = cli("search", collection_name, "a kitten sleeping in the sun", "-k", "3").rows()
    assert top[0]["id"] == "cat-nap"
    assert top[0]["metadata"] == {"topic": "animals", "rating": 5}
    bread = cli("search", collection_name, "how do I bake a loaf", "-k", "1").row()
    assert bread["id"] == "bread-recipe"
    assert cli("count", collection_name, "--where", "topic=food").row() == {"count": 5}
    sweet = cli("search", collection_name, "dessert", "--where", "topic=food", "-k", "1")
    assert sweet.row()["id"] == "apple-pie"


def test_parquet_without_pyarrow_names_the_extra(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, collection_name: str
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert cli("create", collection_name, "vec8").code == 0
    out = cli("export", collection_name, str(tmp_path / "items.parquet"))
    assert out.code == 1
    assert out.err == ("embedspace: MissingExtra: Parquet files need pyarrow: "
                       "pip install 'embedspace[files]'\n")  # fmt: skip
    assert not list(tmp_path.iterdir())
    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    assert (
        "pip install 'embedspace[files]'"
        in cli("ingest", collection_name, str(tmp_path / "in.parquet")).err
    )
