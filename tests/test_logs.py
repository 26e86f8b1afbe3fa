"""The server process's log: one JSON object per line with `log_format = "json"`, readable
lines by default, and an access log of one line per call (DEBUG when it succeeded, INFO when
it failed) that names the call but never what it carried: no item, no id, no token."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import Client, NotFound, Ref
from embedspace.v1 import embedspace_pb2 as pb
from embedspace.v1 import embedspace_pb2_grpc as pb_grpc

from .serve_process import BIN, serve_with_config

pytestmark = pytest.mark.slow  # the JSON log's server loads the real text model

SMALL = 'builtin_collections = false\n[[encoders]]\nname = "v"\nkind = "vector"\ndim = 8\n'
WITH_TEXT = SMALL + '[[encoders]]\nname = "minilm"\nkind = "sentence-transformers"\n'
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S"
)


@pytest.fixture
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No log or trace settings inherited from the environment the tests run in."""
    for name in ("EMBEDSPACE_LOG_FORMAT", "EMBEDSPACE_LOG_LEVEL", "EMBEDSPACE_TOKENS",
                 "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def calls_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The access log's entries, but for the health checks that waited for the server."""
    return [e for e in entries if e["logger"] == "embedspace.access" and e["method"] != "Check"]


@pytest.mark.usefixtures("plain_environment")
def test_the_json_log_is_one_object_per_line_and_keeps_what_calls_carry_out(
    tmp_path: Path,
) -> None:
    token = f"tok-{secrets.token_hex(12)}"
    wrong = f"wrong-{secrets.token_hex(12)}"
    said, asked, stored = (secrets.token_hex(8) for _ in range(3))
    env = {"EMBEDSPACE_LOG_FORMAT": "json", "EMBEDSPACE_LOG_LEVEL": "DEBUG",
           "EMBEDSPACE_TOKENS": token}  # fmt: skip
    proc = serve_with_config(tmp_path, WITH_TEXT, env)
    caller = secrets.randbits(128) | 1
    try:
        with Client(proc.target, token=token, timeout=60) as es:
            es.create_collection("docs", "minilm")
            es.upsert("docs", [f"id-{stored}"], items=[f"The {said} sat on the mat."])
            assert es.search("docs", f"Where did {asked} sit?", k=1)[0].id == f"id-{stored}"
            assert es.search("docs", Ref(f"id-{stored}"), k=1)[0].id == f"id-{stored}"
            with pytest.raises(NotFound):
                es.search("no-such-collection", np.ones(8, np.float32), k=1)
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.EmbedspaceStub(channel)
            parent = f"00-{caller:032x}-{secrets.randbits(64) | 1:016x}-01"
            traced = (("authorization", f"Bearer {token}"), ("traceparent", parent))
            query = pb.Query(item=pb.Item(text=f"Who is {asked}?"))
            stub.Search(pb.SearchRequest(collection="docs", query=query, k=1),
                        metadata=traced, timeout=60)  # fmt: skip
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListCollections(pb.ListCollectionsRequest(),
                                     metadata=(("authorization", f"Bearer {wrong}"),))  # fmt: skip
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert proc.terminate() == 0, proc.log
    finally:
        proc.kill()

    entries = [json.loads(line) for line in proc.lines]  # every line, or this fails
    for entry in entries:
        assert isinstance(entry, dict) and {"time", "level", "logger", "message"} <= set(entry)
        assert ISO_UTC.fullmatch(entry["time"]), entry
        assert entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), entry
    calls = calls_of(entries)
    assert Counter((e["method"], e["status"], e["level"]) for e in calls) == Counter({
        ("CreateCollection", "OK", "DEBUG"): 1,
        ("Upsert", "OK", "DEBUG"): 1,
        ("Search", "OK", "DEBUG"): 3,
        ("Search", "NOT_FOUND", "INFO"): 1,
        ("ListCollections", "UNAUTHENTICATED", "INFO"): 1,
    }), calls  # fmt: skip
    for entry in calls:
        assert re.fullmatch(rf"{entry['method']} {entry['status']} \d+\.\d ms", entry["message"])
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
        if entry["status"] == "OK":  # the calls that named a collection that is (now) there
            assert entry["collection"] == "docs", entry
        else:
            assert entry.get("collection") != "docs", entry
    assert [e.get("trace_id") for e in calls if "trace_id" in e] == [format(caller, "032x")]
    for secret in (said, asked, stored, token, wrong):
        assert secret not in proc.log


@pytest.mark.usefixtures("plain_environment")
def test_the_text_log_is_readable_and_logs_only_failed_calls_at_info(tmp_path: Path) -> None:
    proc = serve_with_config(tmp_path, SMALL)
    try:
        with Client(proc.target, timeout=30) as es:
            es.create_collection("c", "v")
            es.upsert("c", ["a"], vectors=np.eye(1, 8, dtype=np.float32))
            assert es.search("c", np.ones(8, np.float32), k=1)[0].id == "a"
            with pytest.raises(NotFound):
                es.search("no-such-collection", np.ones(8, np.float32), k=1)
        assert proc.terminate() == 0, proc.log
    finally:
        proc.kill()
    for line in proc.lines:
        assert TEXT_LINE.match(line), line
    access = [line for line in proc.lines if " embedspace.access: " in line]
    assert len(access) == 1, proc.log
    assert re.search(r" INFO embedspace\.access: Search NOT_FOUND \d+\.\d ms$", access[0])


@pytest.mark.usefixtures("plain_environment")
def test_an_unknown_log_format_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "es.toml"
    argv = [str(BIN / "embedspace"), "serve", "--port", "0", "--data-dir",
            str(tmp_path / "data"), "--config", str(config)]  # fmt: skip
    for text, env in ((f'log_format = "yaml"\n{SMALL}', {}),
                      (SMALL, {"EMBEDSPACE_LOG_FORMAT": "yaml"})):  # fmt: skip
        config.write_text(text)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                             env={**os.environ, **env})  # fmt: skip
        assert out.returncode == 2, out
        assert out.stdout == ""
        assert out.stderr == (
            "embedspace: cannot start: setting 'log_format' must be one of "
            "['text', 'json']; got 'yaml'\n"
        )
        assert not (tmp_path / "data").exists()
