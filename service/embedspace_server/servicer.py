"""The gRPC surface: each RPC converts its request (convert.py), awaits the call of the same
name (calls.py, which decides how it runs) and converts the answer back. Domain errors
become statuses through the one table (status.py)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from . import convert
from .calls import Calls, call_deadline
from .errors import EmbedspaceServerError, InvalidInput, Unavailable
from .index.disk import storage_error
from .status import INTERNAL_MESSAGE, status_of

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Rpc = Callable[["EmbedspaceServicer", Calls, Any], Awaitable[Any]]


def add_to_server(servicer: EmbedspaceServicer, server: grpc.aio.Server) -> None:
    """Registers every RPC like the generated helper does, with lenient parsing: bytes that
    do not parse reach the handler as convert.Malformed and answer INVALID_ARGUMENT (gRPC
    itself would answer UNKNOWN for a failing deserializer)."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name), request_deserializer=parse, response_serializer=serialize
        )
        for name, (parse, serialize) in convert.rpc_codecs().items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(convert.SERVICE_NAME, handlers),)
    )
    server.add_registered_method_handlers(convert.SERVICE_NAME, handlers)  # type: ignore[attr-defined]


def _clip(message: str, limit: int = 2000) -> str:
    """Error details travel in trailers, whose size gRPC limits (16 KiB by default); a
    message quoting a huge input is cut."""
    return message if len(message) <= limit else message[: limit - 20] + " ...(cut)"


def _rpc(fn: Rpc) -> Callable[[EmbedspaceServicer, Any, Context], Awaitable[Any]]:
    """The handler of one RPC: the caller's deadline for the call, and its errors as
    statuses (anything unexpected is INTERNAL, with no detail on the wire)."""

    @functools.wraps(fn)
    async def handler(self: EmbedspaceServicer, request: Any, context: Context) -> Any:
        try:
            if isinstance(request, convert.Malformed):
                raise InvalidInput(request.message)
            if self.calls is None:
                raise Unavailable("the server is starting: encoders are still loading")
            remaining = context.time_remaining()
            call_deadline.set(None if remaining is None else time.monotonic() + remaining)
            return await fn(self, self.calls, request)
        except EmbedspaceServerError as e:
            await context.abort(status_of(e), _clip(str(e)))
        except OSError as e:  # a full disk, too many open files: not a bug of ours
            log.warning("%s failed: %s", fn.__name__, e)
            error = storage_error(e, "answer the call")
            await context.abort(status_of(error), _clip(str(error)))
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        raise AssertionError("unreachable: abort raises")

    return handler


class EmbedspaceServicer:
    def __init__(self) -> None:
        self.calls: Calls | None = None  # set once encoders are loaded

    @_rpc
    async def ListEncoders(self, calls: Calls, request: Any) -> Any:
        return convert.list_encoders_response(await calls.encoders())

    @_rpc
    async def Embed(self, calls: Calls, request: Any) -> Any:
        return convert.embed_response(await calls.embed(*convert.embed_request(request)))

    @_rpc
    async def CreateCollection(self, calls: Calls, request: Any) -> Any:
        args = convert.create_collection_request(request)
        return convert.collection_info(await calls.create_collection(*args))

    @_rpc
    async def ListCollections(self, calls: Calls, request: Any) -> Any:
        return convert.list_collections_response(await calls.collections())

    @_rpc
    async def DescribeCollection(self, calls: Calls, request: Any) -> Any:
        return convert.collection_info(await calls.describe(*convert.name_request(request)))

    @_rpc
    async def DropCollection(self, calls: Calls, request: Any) -> Any:
        await calls.drop_collection(*convert.name_request(request))
        return convert.drop_collection_response()

    @_rpc
    async def Backup(self, calls: Calls, request: Any) -> Any:
        return convert.backup_response(*await calls.backup(*convert.backup_request(request)))

    @_rpc
    async def Restore(self, calls: Calls, request: Any) -> Any:
        return convert.collection_info(await calls.restore(*convert.restore_request(request)))

    @_rpc
    async def Upsert(self, calls: Calls, request: Any) -> Any:
        return convert.upsert_response(await calls.upsert(*convert.upsert_request(request)))

    @_rpc
    async def Get(self, calls: Calls, request: Any) -> Any:
        return convert.get_response(await calls.get(*convert.ids_request(request)))

    @_rpc
    async def Scan(self, calls: Calls, request: Any) -> Any:
        return convert.scan_response(*await calls.scan(*convert.scan_request(request)))

    @_rpc
    async def Delete(self, calls: Calls, request: Any) -> Any:
        return convert.delete_response(await calls.delete(*convert.ids_request(request)))

    @_rpc
    async def Search(self, calls: Calls, request: Any) -> Any:
        return convert.search_response(await calls.search(*convert.search_request(request)))

    @_rpc
    async def Distance(self, calls: Calls, request: Any) -> Any:
        args = convert.distance_request(request)
        return convert.distance_response(await calls.distance(*args))

    @_rpc
    async def MostSimilar(self, calls: Calls, request: Any) -> Any:
        args = convert.most_similar_request(request)
        return convert.analogy_response(await calls.analogy(*args))

    @_rpc
    async def DoesntMatch(self, calls: Calls, request: Any) -> Any:
        args = convert.doesnt_match_request(request)
        return convert.doesnt_match_response(await calls.doesnt_match(*args))

    @_rpc
    async def Compare(self, calls: Calls, request: Any) -> Any:
        args = convert.compare_request(request)
        return convert.compare_response(*await calls.compare(*args))

    @_rpc
    async def MeanVector(self, calls: Calls, request: Any) -> Any:
        args = convert.mean_vector_request(request)
        return convert.mean_vector_response(await calls.mean_vector(*args))
