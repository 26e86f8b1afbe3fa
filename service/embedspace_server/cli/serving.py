"""`embedspace serve` and `embedspace health`: the server's lifecycle from a shell."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any


def serve(args: argparse.Namespace) -> int:
    """Exit 2 for settings that cannot be used, 1 for a start that fails; either way one
    line that says why, and no traceback."""
    from .. import server
    from ..config import load_settings
    from ..errors import EmbedspaceServerError
    from ..observe import logs

    try:
        settings = load_settings(
            args.config,
            overrides={
                "host": args.host,
                "port": args.port,
                "data_dir": args.data_dir,
                "port_file": args.port_file,
                "ray_address": args.ray,
                "metrics_port": args.metrics_port,
            },
        )
    except EmbedspaceServerError as e:
        print(f"embedspace: cannot start: {e}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(server.serve(settings))
    except EmbedspaceServerError as e:
        logging.getLogger("embedspace").error("cannot start: %s", e)
        return 1
    return 0


def health(args: argparse.Namespace) -> int:
    """Exit 0 when the health service answers SERVING; otherwise one line on stderr."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel_credentials = credentials(args)
    channel = (
        grpc.secure_channel(args.target, channel_credentials)
        if channel_credentials
        else grpc.insecure_channel(args.target)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=args.timeout)
        except grpc.RpcError as e:
            code = e.code()  # type: ignore[attr-defined]
            kind = "".join(word.capitalize() for word in code.name.split("_"))
            print(f"embedspace: {kind}: {args.target}: {e.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def credentials(args: argparse.Namespace) -> Any:
    """Channel credentials from the TLS options, or None for plaintext."""
    import grpc

    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(read(args.tls_ca), read(args.tls_key), read(args.tls_cert))
