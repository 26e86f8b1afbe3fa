"""The commands that talk to a server through the SDK, one function each: they take a
Client and the parsed arguments, print JSON lines, and return the exit status."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from embedspace import Client, Neighbors, Ref

from .errors import UsageError
from .output import emit, emit_all, vector_list, warn
from .rows import Scalar, typed

BATCH = 256  # texts embedded, or queries searched, per call when reading stdin


def query(text: str) -> str | Ref:
    """A query as written on the command line: `@ID` names a stored item, `@@...` is a
    text that starts with `@`, anything else is a text."""
    if text.startswith("@@"):
        return text[1:]
    if text.startswith("@"):
        if len(text) == 1:
            raise UsageError("'@' names a stored item: write @ID (or @@ for a text starting '@')")
        return Ref(text[1:])
    return text


def pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    """NAME=VALUE options as a dict."""
    out: dict[str, str] = {}
    for value in values or ():
        name, equals, rest = value.partition("=")
        if not equals or not name:
            raise UsageError(f"{what} takes NAME=VALUE; got {value!r}")
        out[name] = rest
    return out


def where(args: argparse.Namespace) -> dict[str, Scalar] | None:
    """--where KEY=VALUE filters, each value typed as JSON when it parses (42, true)."""
    found = {k: typed(v) for k, v in pairs(args.where, "--where").items()}
    return found or None


def search_params(args: argparse.Namespace) -> dict[str, float] | None:
    found = pairs(args.search_param, "--search-param")
    try:
        return {k: float(v) for k, v in found.items()} or None
    except ValueError:
        raise UsageError(f"--search-param values are numbers; got {found}") from None


def _lines(values: Iterable[str], keep_blank: bool) -> Iterator[str]:
    lines = (line.rstrip("\r\n") for line in values)
    return lines if keep_blank else (line for line in lines if line.strip())


def stdin_or(values: Sequence[str], keep_blank: bool = False) -> Iterator[str]:
    """The arguments, or the lines of stdin for a single `-` (blank ones left out, unless
    `keep_blank`: each line of stdin then has its answer)."""
    if list(values) == ["-"]:
        return _lines(sys.stdin, keep_blank)
    return iter(values)


def _batches(values: Iterator[str], size: int = BATCH) -> Iterator[list[str]]:
    while batch := list(islice(values, size)):
        yield batch


def _neighbors(found: Neighbors, **extra: Any) -> None:
    if found.missing_shards:
        warn(
            f"shards {', '.join(map(str, found.missing_shards))} had no live replica; the "
            "answer covers the rest of the collection"
        )
    for n in found:
        emit({**extra, "id": n.id, "score": n.score, "metadata": n.metadata})


# ---------------------------------------------------------------- collections


def create(es: Client, args: argparse.Namespace) -> int:
    emit(
        es.create_collection(
            args.collection,
            args.encoder,
            index=args.index,
            metric=args.metric,
            search_params=search_params(args),
            shards=args.shards,
            replicas=args.replicas,
        )
    )
    return 0


def describe(es: Client, args: argparse.Namespace) -> int:
    emit(es.describe(args.collection))
    return 0


def drop(es: Client, args: argparse.Namespace) -> int:
    es.drop_collection(args.collection)
    emit({"dropped": args.collection})
    return 0


def collections(es: Client, args: argparse.Namespace) -> int:
    emit_all(es.collections())
    return 0


def encoders(es: Client, args: argparse.Namespace) -> int:
    emit_all(es.encoders())
    return 0


def backup(es: Client, args: argparse.Namespace) -> int:
    emit(es.backup(args.collection, args.name))
    return 0


def backups(es: Client, args: argparse.Namespace) -> int:
    emit_all(es.backups())
    return 0


def restore(es: Client, args: argparse.Namespace) -> int:
    emit(es.restore(args.backup, args.collection))
    return 0


# ---------------------------------------------------------------- items


def _item(item: Any, with_vectors: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"id": item.id}
    if with_vectors and item.vector is not None:
        row["vector"] = vector_list(item.vector)
    row["metadata"] = item.metadata
    return row


def get(es: Client, args: argparse.Namespace) -> int:
    ids = list(stdin_or(args.ids))
    found = es.get(args.collection, ids)
    for item in found:
        emit(_item(item, not args.no_vectors))
    if found.missing_ids:
        warn(f"NotFound: not stored in {args.collection}: {', '.join(found.missing_ids)}")
        return 1
    return 0


def scan(es: Client, args: argparse.Namespace) -> int:
    page = es.scan(
        args.collection,
        limit=args.limit,
        page_token=args.page_token,
        with_vectors=not args.no_vectors,
        with_metadata=not args.no_metadata,
    )
    for item in page.items:
        row = _item(item, not args.no_vectors)
        if args.no_metadata:
            del row["metadata"]
        emit(row)
    if page.next_page_token:
        print(
            f"embedspace: {len(page.items)} of {page.total} items shown; the next page: "
            f"--page-token {page.next_page_token}",
            file=sys.stderr,
        )
    return 0


def delete(es: Client, args: argparse.Namespace) -> int:
    emit({"deleted": es.delete(args.collection, list(stdin_or(args.ids)))})
    return 0


def count(es: Client, args: argparse.Namespace) -> int:
    emit({"count": es.count(args.collection, where=where(args))})
    return 0


# ---------------------------------------------------------------- queries


def search(es: Client, args: argparse.Namespace) -> int:
    options = {
        "min_score": args.min_score,
        "exclude": args.exclude or (),
        "where": where(args),
        "search_params": search_params(args),
    }
    if args.query != "-":
        _neighbors(es.search(args.collection, query(args.query), args.k, **options))
        return 0
    for batch in _batches(stdin_or(["-"])):
        answers = es.search_batch(args.collection, [query(q) for q in batch], args.k, **options)
        for text, found in zip(batch, answers, strict=True):
            _neighbors(found, query=text)
    return 0


def distance(es: Client, args: argparse.Namespace) -> int:
    d = es.distance(query(args.a), query(args.b), collection=args.collection,
                    encoder=args.encoder, metric=args.metric)  # fmt: skip
    emit({"a": args.a, "b": args.b, "distance": float(d)})
    return 0


def doesnt_match(es: Client, args: argparse.Namespace) -> int:
    queries: list[Any] = [query(q) for q in args.items]
    odd = es.doesnt_match(queries, collection=args.collection, encoder=args.encoder)
    emit({"doesnt_match": args.items[queries.index(odd)] if odd in queries else odd})
    return 0


def compare(es: Client, args: argparse.Namespace) -> int:
    names = [c for c in args.collections.split(",") if c]
    if len(names) < 2:
        raise UsageError(f"compare takes two or more collections, comma-separated; got {names}")
    answer = es.compare(names, query(args.query), args.k)
    emit(
        {
            "query": args.query,
            "collections": answer.collections,
            "encoders": answer.encoders,
            "neighbors": {
                c: [{"id": n.id, "score": n.score, "metadata": n.metadata} for n in found]
                for c, found in answer.neighbors.items()
            },
            "jaccard": answer.jaccard,
        }
    )
    return 0


def analogy(es: Client, args: argparse.Namespace) -> int:
    answer = es.analogy(
        args.collection,
        [query(q) for q in args.positive],
        [query(q) for q in args.negative],
        args.k,
        method=args.method,
    )
    _neighbors(Neighbors(answer, answer.missing_shards))
    return 0


def embed(es: Client, args: argparse.Namespace) -> int:
    for batch in _batches(stdin_or(args.texts, keep_blank=True)):
        for row in es.embed(args.encoder, batch):
            print(json.dumps(vector_list(row)))
    return 0


# ---------------------------------------------------------------- trained encoders


def demo(es: Client, args: argparse.Namespace) -> int:
    from embedspace_models.evaluation import geometry

    load = geometry.load_shapes if args.dataset == "shapes" else geometry.load_houses
    emit(load(es, args.n))
    return 0


def evaluate(es: Client, args: argparse.Namespace) -> int:
    from embedspace_models.evaluation import geometry

    if args.dataset == "shapes":
        names, fields = list(geometry.SHAPES), ["colour", "shape"]
        print(geometry.agreement_table(es, names, fields, args.k))
    else:
        fields = ["area_code", "tax_bracket", "school_district", "colour"]
        print(geometry.agreement_table(es, list(geometry.HOUSES), fields, args.k))
        print(f"price probe R² (ridge): {geometry.price_probe(es, 'houses-price'):.3f}")
    return 0


def plot(es: Client, args: argparse.Namespace) -> int:
    from embedspace_models.evaluation import geometry

    print(geometry.plot(es, args.collections, args.color_by, Path(args.out)))
    return 0


def train(args: argparse.Namespace) -> int:
    from embedspace_models.training import train

    out = Path(args.out or args.recipe)
    metrics = train(args.recipe, out, seed=args.seed, progress=True, tiny=args.tiny)
    print(json.dumps({"artifact": str(out), "metrics": metrics}, indent=2))
    return 0
