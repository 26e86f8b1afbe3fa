"""The `embedspace` command line: every command, option and help text."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

from embedspace import __version__

from . import commands, data

DEFAULT_TARGET = "127.0.0.1:50051"

# The options that say how to reach the server, with their environment variables: they go
# before or after the command (`embedspace --target H:P health`, `embedspace health --target
# H:P`). (flag, variable, metavar, what it is, the default without the variable)
CONNECTION: list[tuple[str, str, str | None, str, str]] = [
    ("--target", "EMBEDSPACE_TARGET", "HOST:PORT", "the server", DEFAULT_TARGET),
    ("--token", "EMBEDSPACE_TOKEN", "TOKEN", "bearer token sent with every call", "none"),
    ("--tls", "EMBEDSPACE_TLS", None, "TLS with the system's roots ($EMBEDSPACE_TLS: 1/true)",
     "off"),
    ("--tls-ca", "EMBEDSPACE_TLS_CA", "PEM", "the server's CA certificate; implies TLS",
     "the system's roots"),
    ("--tls-cert", "EMBEDSPACE_TLS_CLIENT_CERT", "PEM", "client certificate for mutual TLS",
     "none"),
    ("--tls-key", "EMBEDSPACE_TLS_CLIENT_KEY", "PEM", "client key for mutual TLS", "none"),
]  # fmt: skip


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help that states each option's default, and keeps descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.dest in ("help", "version"):
            return text
        if action.nargs == 0:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The connection options; a command's own copy leaves the attribute unset when the
    option is not given, so a value given before the command stands."""
    group = parser.add_argument_group("connection")
    for flag, env, metavar, what, fallback in CONNECTION:
        spec: dict[str, Any] = {"action": "store_true"} if metavar is None else {"metavar": metavar}
        help = f"{what} (default: ${env}, else {fallback})"
        group.add_argument(flag, default=None if top else argparse.SUPPRESS, help=help, **spec)


INGEST_HELP = """\
Upserts the rows of a JSON lines, CSV or Parquet file (FILE `-`: stdin) into a collection.

A row gives an id and exactly one of: a text (embedded by the server with the collection's
encoder), a vector, or a record (--record-fields, for encoders of tabular items). Its
metadata is its metadata field when it has one (a JSON object; in CSV and Parquet a JSON
string of one), else all its other fields.

CSV: the first line names the columns; a vector cell is a JSON array ("[0.1, 0.2]"); any
other cell is typed as JSON when it parses as a number, true/false (or True/False) or a
"quoted string", else kept as the string it is; empty cells are left out.

Rows that cannot be read (bad JSON, no id, no text/vector/record, a bad vector) are
reported with their line (Parquet: row number, from 1) and skipped, as are rows the
server rejects; --stop-on-error ends the run at the first one instead. The summary goes
to stdout as one JSON object and to stderr as text. Exit status: 0 when every row was
stored, 1 otherwise.

An interrupted run of a file (not stdin) leaves FILE.ingest-state.json beside it; the
same command with --resume then skips the rows the server acknowledged, and refuses if
the file changed. A complete run removes the state file.
"""

EXPORT_HELP = """\
Writes every item of a collection, in id order, one row each: id, vector (a list of
floats; float32 in Parquet) and metadata (an object in JSON lines; a JSON string in CSV and
Parquet). `embedspace export A | embedspace ingest B -` copies a collection exactly.
"""

MAIN_HELP = """\
The embedspace embedding similarity service: run it, and use it from a shell.

Client commands print one JSON value per line on stdout. An error prints one line on
stderr, `embedspace: Kind: message`, and exits 1 (2 for a usage error). A query is a text,
or @ID for an item stored in the collection (@@ starts a text with @).
"""

SEARCH_HELP = """\
Nearest neighbours of a query, best first: one JSON object per line (id, score, metadata).
QUERY `-` reads one query per line from stdin (blank lines are skipped) and searches them
in batches; each answer line then also names its query ("query": the line).
"""

QUERY_HELP = "a text, or @ID for an item stored in the collection (@@ starts a text with @)"


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedspace",
        formatter_class=Formatter,
        description=MAIN_HELP,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    connection_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        help: str,
        run: Callable[..., int],
        client: bool = True,
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        if description is None:
            description = textwrap.fill(help[0].upper() + help[1:] + ".", 88)
        p = sub.add_parser(name, help=help, description=description, formatter_class=Formatter)
        p.set_defaults(run=run, client=client)
        if client:
            connection_options(p, top=False)
        return p

    from . import serving

    serve = command(
        "serve", "run the gRPC server until SIGTERM or SIGINT", serving.serve, client=False
    )
    serve.add_argument("--config", help="a TOML config file (default: $EMBEDSPACE_CONFIG)")
    serve.add_argument("--host", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind; 0 picks a free one (default: 50051)")
    serve.add_argument("--data-dir", help="where collections are stored (default: ./data)")
    serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="keep collections on the Ray cluster at ADDRESS ('auto': the one running on "
        "this node) as shard replicas, which sharded and replicated collections need "
        "(default: $EMBEDSPACE_RAY_ADDRESS, else in the data directory)",
    )
    serve.add_argument(
        "--port-file",
        metavar="FILE",
        help='once the ports are bound, write {"port": N, "health_port": M, "metrics_port": '
        "P} (-1: not served) to FILE, atomically: how a supervisor learns a port picked with "
        "--port 0; readiness is then the health service answering SERVING (default: none)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics over HTTP at /metrics on this port; 0 picks a free one "
        "(default: $EMBEDSPACE_METRICS_PORT, else none)",
    )
    health = command("health", "exit 0 if the server reports SERVING", serving.health, client=False)
    connection_options(health, top=False)
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait")

    command("encoders", "list the server's encoders", commands.encoders)
    command("collections", "list collections", commands.collections)
    create = command("create", "create a collection", commands.create)
    create.add_argument("collection")
    create.add_argument("encoder", help="the encoder that embeds its items (see `encoders`)")
    create.add_argument("--index", default="Flat", help="a FAISS index-factory string")
    create.add_argument("--metric", choices=("cosine", "dot", "l2"), help="default: the encoder's")
    _search_params(create, "defaults for an approximate index")
    create.add_argument(
        "--shards",
        type=int,
        default=1,
        help="shards split it by id (more than 1 needs `serve --ray`)",
    )
    create.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="copies of each shard (more than 1 needs `serve --ray`)",
    )
    command("describe", "a collection's settings and size", commands.describe).add_argument(
        "collection"
    )
    command(
        "drop", "delete a collection and its items, without asking", commands.drop
    ).add_argument("collection")

    ingest = command(
        "ingest",
        "upsert the rows of a JSONL, CSV or Parquet file",
        data.ingest,
        description=INGEST_HELP,
    )
    ingest.add_argument("collection")
    ingest.add_argument("file", help="the file, or - for stdin")
    _format(ingest, "default: from FILE's extension (.jsonl, .csv, .parquet); jsonl for stdin")
    ingest.add_argument("--id-field", default="id", help="the field holding each row's id")
    ingest.add_argument("--text-field", default="text", help="the field holding a text")
    ingest.add_argument("--vector-field", default="vector", help="the field holding a vector")
    ingest.add_argument(
        "--record-fields",
        metavar="F1,F2,...",
        help="fields that form a record item (default: none)",
    )
    ingest.add_argument(
        "--metadata-field",
        default="metadata",
        help="the field holding a row's metadata object; absent, the row's "
        "other fields are its metadata",
    )
    ingest.add_argument(
        "--stop-on-error", action="store_true", help="stop at the first bad or rejected row"
    )
    ingest.add_argument(
        "--resume", action="store_true", help="skip the rows an interrupted run stored"
    )
    ingest.add_argument("--batch-size", type=int, default=512, help="points per message")
    ingest.add_argument("--no-progress", action="store_true", help="no progress on stderr")

    export = command(
        "export",
        "write a collection's items to a file or stdout",
        data.export,
        description=EXPORT_HELP,
    )
    export.add_argument("collection")
    export.add_argument("file", nargs="?", help="the file (default: stdout)")
    _format(export, "default: from FILE's extension; jsonl for stdout")
    export.add_argument("--no-vectors", action="store_true", help="ids and metadata only")
    export.add_argument(
        "--page-size", type=int, default=0, help="items per call; 0: as many as the server allows"
    )

    get = command("get", "stored items by id (exit 1 if any is not stored)", commands.get)
    get.add_argument("collection")
    get.add_argument("ids", nargs="+", metavar="ID", help="ids, or - to read them from stdin")
    get.add_argument("--no-vectors", action="store_true", help="ids and metadata only")
    scan = command("scan", "one page of a collection's items, in id order", commands.scan)
    scan.add_argument("collection")
    scan.add_argument("--limit", type=int, default=20, help="items on the page")
    scan.add_argument(
        "--page-token",
        default="",
        help="where the page starts, as the last page said (default: the first page)",
    )
    scan.add_argument("--no-vectors", action="store_true", help="leave the vectors out")
    scan.add_argument("--no-metadata", action="store_true", help="leave the metadata out")
    delete = command("delete", "delete items by id (unknown ids are ignored)", commands.delete)
    delete.add_argument("collection")
    delete.add_argument("ids", nargs="+", metavar="ID", help="ids, or - to read them from stdin")
    count = command("count", "how many items a collection holds", commands.count)
    count.add_argument("collection")
    _where(count)

    search = command(
        "search",
        "nearest neighbours of a query",
        commands.search,
        description=SEARCH_HELP,
    )
    search.add_argument("collection")
    search.add_argument("query", help=f"{QUERY_HELP}; - reads one query per line from stdin")
    search.add_argument("-k", type=int, default=10, help="how many neighbours")
    search.add_argument(
        "--min-score",
        type=float,
        help="keep hits scoring at least this (scores grow with similarity; default: keep all)",
    )
    search.add_argument(
        "--exclude",
        action="append",
        metavar="ID",
        help="an id to leave out; repeatable (default: none)",
    )
    _where(search)
    _search_params(search, "for this query, over the collection's")

    distance = command(
        "distance",
        "the distance between two queries (shrinks with similarity)",
        commands.distance,
    )
    _space(distance)
    distance.add_argument("a", help="the first query: a text, or @ID of an item in --collection")
    distance.add_argument("b", help="the second query, as the first")
    distance.add_argument(
        "--metric",
        choices=("cosine", "dot", "l2"),
        help="default: the collection's or the encoder's",
    )
    doesnt = command(
        "doesnt-match", "the one of several queries furthest from their mean", commands.doesnt_match
    )
    _space(doesnt)
    doesnt.add_argument("items", nargs="+", metavar="QUERY", help=QUERY_HELP)
    compare = command(
        "compare",
        "the same query over several collections, and the overlap of their answers",
        commands.compare,
    )
    compare.add_argument("collections", metavar="COLLECTION,COLLECTION[,...]")
    compare.add_argument("query", help=QUERY_HELP)
    compare.add_argument("-k", type=int, default=10, help="neighbours per collection")
    analogy = command(
        "analogy", "positive - negative, e.g. `analogy words king woman -n man`", commands.analogy
    )
    analogy.add_argument("collection")
    analogy.add_argument("positive", nargs="+", help=f"queries that add: {QUERY_HELP}")
    analogy.add_argument(
        "-n",
        "--negative",
        action="append",
        default=[],
        help="a query that subtracts; repeatable (default: none)",
    )
    analogy.add_argument("-k", type=int, default=10, help="how many answers")
    analogy.add_argument(
        "--method",
        choices=("add", "mul"),
        default="add",
        help="gensim most_similar (add) or most_similar_cosmul (mul)",
    )
    embed = command("embed", "embed texts: one JSON array per text, in order", commands.embed)
    embed.add_argument("--encoder", default="minilm", help="the encoder")
    embed.add_argument(
        "texts",
        nargs="+",
        metavar="TEXT",
        help="texts, or - to embed each line of stdin (blank lines too: one vector per line)",
    )

    backup = command("backup", "snapshot a collection into the server's backups", commands.backup)
    backup.add_argument("collection")
    backup.add_argument("--name", help="the backup's name (default: COLLECTION-<UTC time>)")
    command("backups", "list the server's backups, oldest first", commands.backups)
    restore = command("restore", "create a collection from a backup", commands.restore)
    restore.add_argument("backup", help="a backup's name, as `backups` lists it")
    restore.add_argument("collection", help="the new collection")

    train = command(
        "train", "train a recipe of models/ into an artifact folder", commands.train, client=False
    )
    train.add_argument("recipe", help="shapes-by-colour, shapes-by-shape or houses-by-price")
    train.add_argument("--out", help="artifact folder (default: ./RECIPE)")
    train.add_argument("--seed", type=int, default=0, help="random seed")
    train.add_argument("--tiny", action="store_true", help="a seconds-long run, for tests")
    demo = command("demo", "load held-out generated data for the trained encoders", commands.demo)
    demo.add_argument("dataset", choices=("shapes", "houses"))
    demo.add_argument("-n", type=int, default=1000, help="how many items")
    evaluate = command(
        "evaluate", "what each geometry keeps, through the service", commands.evaluate
    )
    evaluate.add_argument("dataset", choices=("shapes", "houses"))
    evaluate.add_argument("-k", type=int, default=10, help="neighbours per item")
    plot = command("plot", "render collections' geometry side by side as a PNG", commands.plot)
    plot.add_argument("collections", nargs="+")
    plot.add_argument("--color-by", required=True, help="a metadata field (required)")
    plot.add_argument("--out", required=True, help="the PNG file (required)")
    return parser


def _format(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--format", choices=("jsonl", "csv", "parquet"), help=help)


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="only items whose metadata KEY equals VALUE (typed as JSON when it "
        'parses: 42, 4.5, true, "42"; else a string); repeatable (default: all '
        "items)",
    )


def _search_params(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--search-param",
        action="append",
        metavar="NAME=VALUE",
        help=f"efSearch (HNSW) or nprobe (IVF), {what}; repeatable (default: none)",
    )


def _space(p: argparse.ArgumentParser) -> None:
    space = p.add_mutually_exclusive_group(required=True)
    space.add_argument(
        "--collection",
        help="the space: a collection (queries may name its "
        "items with @ID) (default: none; give this or --encoder)",
    )
    space.add_argument(
        "--encoder", help="the space: an encoder (default: none; give this or --collection)"
    )
