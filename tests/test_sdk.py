"""The SDK's public surface: pinned names, Client and AsyncClient in step, lifecycle."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import AsyncClient, Client, ClientClosed, Unavailable


def test_public_names_are_pinned() -> None:
    import embedspace

    assert sorted(embedspace.__all__) == sorted(
        [
            "USE_CLIENT_DEFAULT", "AlreadyExists", "Analogy", "AsyncClient", "BackupInfo",
            "Cancelled", "Client", "ClientClosed", "CollectionInfo", "Comparison",
            "DeadlineExceeded", "EmbedspaceError",
            "EncoderInfo", "FailedPrecondition", "Internal", "InvalidArgument", "Item",
            "Neighbor", "NotFound", "PermissionDenied", "Provenance", "Query", "Ref",
            "ResourceExhausted", "StoredItem", "Sum", "Tensor", "Unauthenticated",
            "Unavailable", "Unknown", "UpsertResult",
        ]
    )  # fmt: skip
    for name in embedspace.__all__:
        assert hasattr(embedspace, name)


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(cls).items()
        if callable(fn) and not name.startswith("_") and name != "close"
    }


def test_client_and_async_client_have_the_same_calls() -> None:
    sync, aio = _public(Client), _public(AsyncClient)
    assert set(sync) == set(aio)
    assert {"encoders", "embed", "create_collection", "collections", "describe",
            "drop_collection", "backup", "restore", "upsert", "get", "delete", "search",
            "distance", "analogy", "compare", "scan",
            "doesnt_match", "mean_vector"} <= set(sync)  # fmt: skip
    for name in sync:
        assert sync[name] == aio[name], name
        assert getattr(Client, name).__doc__ == getattr(AsyncClient, name).__doc__, name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


def test_async_client_is_generated_from_the_sync_one() -> None:
    """AsyncClient is generated from Client (each call is defined once); a stale copy fails."""
    root = Path(__file__).resolve().parent.parent
    assert (root / "client/embedspace/_async_client.py").read_text().startswith("# Generated ")
    out = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_async_client.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_wire_module_is_public_and_pinned() -> None:
    """embedspace.wire: the wire format of vectors and metadata, which the server imports too."""
    from embedspace import wire

    assert sorted(wire.__all__) == sorted(
        [
            "FloatArray", "Scalar", "from_value", "from_values", "pack", "pack_tensor",
            "to_value", "to_values", "unpack", "unpack_rows", "unpack_tensor",
        ]
    )  # fmt: skip
    for name in wire.__all__:
        assert hasattr(wire, name)
    vector = np.arange(5, dtype=np.float32)
    assert np.array_equal(wire.unpack(wire.pack(vector)), vector)
    meta = {"s": "x", "i": 3, "f": 0.5, "b": True}
    assert wire.from_values(wire.to_values(meta)) == meta


def test_sdk_import_pulls_in_no_server_dependencies() -> None:
    code = (
        "import sys, embedspace\n"
        "heavy = {'torch', 'faiss', 'sentence_transformers', 'embedspace_server'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_client_never_imports_the_server() -> None:
    import embedspace

    root = Path(embedspace.__file__).parent
    for path in root.rglob("*.py"):
        assert "embedspace_server" not in path.read_text(), path


def test_closed_client_raises_a_clear_error(shared_server: Any) -> None:
    es = Client(shared_server.target)
    assert es.encoders()
    es.close()
    with pytest.raises(ClientClosed, match="closed"):
        es.encoders()
    with Client(shared_server.target) as es2:
        pass
    with pytest.raises(ClientClosed):
        es2.collections()


def test_async_client_answers_like_the_sync_client(shared_server: Any) -> None:
    async def main() -> Any:
        async with AsyncClient(shared_server.target) as es:
            vectors, names = await asyncio.gather(
                es.embed("vec8", [np.arange(8, dtype=np.float32)]), es.encoders()
            )
            return vectors, [e.name for e in names]

    vectors, names = asyncio.run(main())
    with Client(shared_server.target) as es:
        assert np.array_equal(vectors, es.embed("vec8", [np.arange(8, dtype=np.float32)]))
        assert names == [e.name for e in es.encoders()]


def test_unreachable_server_is_unavailable_after_retries() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens
    with Client(f"127.0.0.1:{port}", timeout=5, retries=2) as es, pytest.raises(Unavailable):
        es.encoders()


def test_timeouts_default_and_override(shared_server: Any) -> None:
    from embedspace import USE_CLIENT_DEFAULT, DeadlineExceeded

    with Client(shared_server.target, timeout=10) as es:
        assert es._timeout(USE_CLIENT_DEFAULT) == 10
        assert es._timeout(None) is None
        with pytest.raises(DeadlineExceeded):
            es.embed("minilm", ["x " * 200] * 256, timeout=0.001)
