"""The `embedspace` command: run the server, probe its health, and use it from a shell.

Client commands reach the server only through the SDK. They print one JSON value per line on
stdout; an error is one line on stderr, `embedspace: Kind: message`, and exit status 1 (2 for
a usage error, 130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from embedspace import Client, EmbedspaceError

from .errors import CannotResume, FileFormatError, MissingExtra, UsageError
from .parser import CONNECTION, DEFAULT_TARGET, build
from .serving import credentials

__all__ = ["main"]


def _connection(args: argparse.Namespace) -> None:
    """Connection options not given on the command line, from the environment."""
    for flag, env, *_ in CONNECTION:
        name = flag.lstrip("-").replace("-", "_")
        if getattr(args, name, None) in (None, False):
            value = os.environ.get(env) or None
            if name == "tls":
                setattr(args, name, (value or "").lower() in ("1", "true", "yes"))
            else:
                setattr(args, name, value)
    args.target = args.target or DEFAULT_TARGET


def _field(e: EmbedspaceError) -> str:
    """The request fields a server error names, if any."""
    names = list(dict.fromkeys(v.field for v in e.field_violations if v.field))
    return f" (field: {', '.join(names)})" if names else ""


def _fail(kind: str, message: object) -> int:
    print(f"embedspace: {kind}: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build()
    args = parser.parse_args(argv)
    _connection(args)
    try:
        if not args.client:
            return int(args.run(args))
        with Client(args.target, token=args.token, credentials=credentials(args)) as es:
            return int(args.run(es, args))
    except UsageError as e:
        print(f"embedspace {args.command}: error: {e}", file=sys.stderr)
        return 2
    except EmbedspaceError as e:
        return _fail(type(e).__name__, f"{e}{_field(e)}")
    except (CannotResume, MissingExtra, FileFormatError) as e:
        return _fail(type(e).__name__, e)
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            # The reader went away (`embedspace export x | head`): stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        return _fail(type(e).__name__, e)
    except KeyboardInterrupt:
        print("embedspace: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
