"""The `embedspace` command: run the server, probe its health, and try it from a shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_TARGET = "127.0.0.1:50051"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedspace", description="The embedspace embedding similarity service."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server until SIGTERM or SIGINT")
    serve.add_argument("--config", help="a TOML config file (also EMBEDSPACE_CONFIG)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind; 0 picks a free one (default 50051)")
    serve.add_argument("--data-dir", help="where collections are stored (default ./data)")
    serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="keep collections on the Ray cluster at ADDRESS ('auto': the one running on "
        "this node) as shard replicas, which sharded and replicated collections need "
        "(EMBEDSPACE_RAY_ADDRESS; default: in the data directory)",
    )
    serve.add_argument(
        "--port-file",
        metavar="FILE",
        help='once the ports are bound, write {"port": N, "health_port": M} (-1: no health '
        "port) to FILE, atomically: how a supervisor learns a port picked with --port 0; "
        "readiness is then the health service answering SERVING",
    )

    def connection(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        env = os.environ.get
        p.add_argument(
            "--target",
            default=env("EMBEDSPACE_TARGET", DEFAULT_TARGET),
            help=f"HOST:PORT (EMBEDSPACE_TARGET; default {DEFAULT_TARGET})",
        )
        p.add_argument(
            "--token", default=env("EMBEDSPACE_TOKEN"), help="bearer token (EMBEDSPACE_TOKEN)"
        )
        p.add_argument("--tls", action="store_true", help="TLS with the system's roots")
        p.add_argument(
            "--tls-ca",
            default=env("EMBEDSPACE_TLS_CA"),
            help="the server's CA certificate, PEM (EMBEDSPACE_TLS_CA)",
        )
        p.add_argument(
            "--tls-cert",
            default=env("EMBEDSPACE_TLS_CLIENT_CERT"),
            help="client certificate for mutual TLS (EMBEDSPACE_TLS_CLIENT_CERT)",
        )
        p.add_argument(
            "--tls-key",
            default=env("EMBEDSPACE_TLS_CLIENT_KEY"),
            help="client key for mutual TLS (EMBEDSPACE_TLS_CLIENT_KEY)",
        )
        return p

    health = connection(sub.add_parser("health", help="exit 0 if the server reports SERVING"))
    health.add_argument("--timeout", type=float, default=3.0)

    def client_command(name: str, help: str) -> argparse.ArgumentParser:
        return connection(sub.add_parser(name, help=help))

    client_command("encoders", help="list the server's encoders")
    client_command("collections", help="list collections")
    embed = client_command("embed", help="embed texts; prints one JSON vector per line")
    embed.add_argument("--encoder", default="minilm")
    embed.add_argument("texts", nargs="+")
    search = client_command("search", help="nearest neighbours of a text in a collection")
    search.add_argument("collection")
    search.add_argument("text")
    search.add_argument("-k", type=int, default=10)
    backup = client_command("backup", help="snapshot a collection into the server's backups")
    backup.add_argument("collection")
    backup.add_argument("--name", help="backup name (default: COLLECTION-<UTC time>)")
    restore = client_command("restore", help="create a collection from a backup")
    restore.add_argument("name")
    restore.add_argument("collection")
    train = sub.add_parser("train", help="train a recipe of models/ into an artifact folder")
    train.add_argument("recipe", help="shapes-by-colour, shapes-by-shape or houses-by-price")
    train.add_argument("--out", help="artifact folder (default: ./RECIPE)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--tiny", action="store_true", help="a seconds-long run, for tests")
    demo = client_command("demo", help="load held-out generated data for the trained encoders")
    demo.add_argument("dataset", choices=("shapes", "houses"))
    demo.add_argument("-n", type=int, default=1000)
    evaluate = client_command("evaluate", help="what each geometry keeps, through the service")
    evaluate.add_argument("dataset", choices=("shapes", "houses"))
    evaluate.add_argument("-k", type=int, default=10)
    plot = client_command("plot", help="render collections' geometry side by side as a PNG")
    plot.add_argument("collections", nargs="+")
    plot.add_argument("--color-by", required=True, help="a metadata field")
    plot.add_argument("--out", required=True)
    analogy = client_command("analogy", help="positive - negative, e.g. king woman -n man")
    analogy.add_argument("collection")
    analogy.add_argument("positive", nargs="+", help="texts that add")
    analogy.add_argument(
        "-n", "--negative", action="append", default=[], help="a text that subtracts"
    )
    analogy.add_argument("-k", type=int, default=10)
    analogy.add_argument("--method", choices=("add", "mul"), default="add")
    return parser


def _serve(args: argparse.Namespace) -> int:
    """Exit 2 for settings that cannot be used, 1 for a start that fails; either way one
    line that says why, and no traceback."""
    from .config import load_settings
    from .errors import EmbedspaceServerError
    from .server import serve

    try:
        settings = load_settings(
            args.config,
            overrides={
                "host": args.host,
                "port": args.port,
                "data_dir": args.data_dir,
                "port_file": args.port_file,
                "ray_address": args.ray,
            },
        )
    except EmbedspaceServerError as e:
        print(f"embedspace: cannot start: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(settings))
    except EmbedspaceServerError as e:
        logging.getLogger("embedspace").error("cannot start: %s", e)
        return 1
    return 0


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    credentials = _credentials(args)
    channel = (
        grpc.secure_channel(args.target, credentials)
        if credentials
        else grpc.insecure_channel(args.target)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=args.timeout)
        except grpc.RpcError as e:
            print(f"{args.target}: {e.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _client(args: argparse.Namespace) -> int:
    import dataclasses

    from embedspace import Client, EmbedspaceError

    def show(value: Any) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        print(json.dumps(value, default=str))

    try:
        with Client(args.target, token=args.token, credentials=_credentials(args)) as es:
            if args.command == "encoders":
                for info in es.encoders():
                    show(info)
            elif args.command == "collections":
                for coll in es.collections():
                    show(coll)
            elif args.command == "embed":
                for row in es.embed(args.encoder, args.texts):
                    print(json.dumps([round(float(x), 6) for x in row]))
            elif args.command == "search":
                for hit in es.search(args.collection, args.text, args.k):
                    show(hit)
            elif args.command == "demo":
                from embedspace_models.evaluation import geometry

                load = geometry.load_shapes if args.dataset == "shapes" else geometry.load_houses
                print(json.dumps(load(es, args.n)))
            elif args.command == "evaluate":
                from embedspace_models.evaluation import geometry

                if args.dataset == "shapes":
                    names, fields = list(geometry.SHAPES), ["colour", "shape"]
                    print(geometry.agreement_table(es, names, fields, args.k))
                else:
                    fields = ["area_code", "tax_bracket", "school_district", "colour"]
                    print(geometry.agreement_table(es, list(geometry.HOUSES), fields, args.k))
                    print(f"price probe R² (ridge): {geometry.price_probe(es, 'houses-price'):.3f}")
            elif args.command == "plot":
                from embedspace_models.evaluation import geometry

                print(geometry.plot(es, args.collections, args.color_by, Path(args.out)))
            elif args.command == "backup":
                show(es.backup(args.collection, args.name))
            elif args.command == "restore":
                show(es.restore(args.name, args.collection))
            elif args.command == "analogy":
                answer = es.analogy(
                    args.collection, args.positive, args.negative, args.k, method=args.method
                )
                for hit in answer:
                    show(hit)
    except EmbedspaceError as e:
        print(f"embedspace: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def _credentials(args: argparse.Namespace) -> Any:
    """Channel credentials from the TLS flags, or None for plaintext."""
    import grpc

    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(read(args.tls_ca), read(args.tls_key), read(args.tls_cert))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "health":
        return _health(args)
    if args.command == "train":
        from embedspace_models.training import train

        out = Path(args.out or args.recipe)
        metrics = train(args.recipe, out, seed=args.seed, progress=True, tiny=args.tiny)
        print(json.dumps({"artifact": str(out), "metrics": metrics}, indent=2))
        return 0
    return _client(args)


if __name__ == "__main__":
    sys.exit(main())
