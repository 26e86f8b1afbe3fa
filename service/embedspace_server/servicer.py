"""The gRPC surface: each RPC converts its request (convert.decode), awaits the call of the
same name (calls.py, which decides how it runs) and converts the answer back
(convert.encode). Domain errors become statuses through the one table (status.py), bad
input with the field to blame in the status details."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from . import convert
from .calls import Calls, call_deadline
from .convert import decode, encode
from .errors import EmbedspaceServerError, InvalidInput, Unavailable
from .index.disk import storage_error
from .observe.calls import current_call
from .status import INTERNAL_MESSAGE, details_of, status_of

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Rpc = Callable[["EmbedspaceServicer", Calls, Any], Awaitable[Any]]


def add_to_server(servicer: EmbedspaceServicer, server: grpc.aio.Server) -> None:
    """Registers every RPC like the generated helper does, with lenient parsing: bytes that
    do not parse reach the handler as convert.Malformed and answer INVALID_ARGUMENT (gRPC
    itself would answer UNKNOWN for a failing deserializer)."""
    handlers = {
        name: (
            grpc.stream_unary_rpc_method_handler
            if codec.client_streaming
            else grpc.unary_unary_rpc_method_handler
        )(getattr(servicer, name), request_deserializer=codec.parse,
          response_serializer=codec.serialize)
        for name, codec in convert.rpc_codecs().items()
    }  # fmt: skip
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
    statuses (anything unexpected is INTERNAL, with no detail on the wire). For a
    client-streaming RPC, `request` is the stream of requests."""

    @functools.wraps(fn)
    async def handler(self: EmbedspaceServicer, request: Any, context: Context) -> Any:
        try:
            if isinstance(request, convert.Malformed):
                raise InvalidInput(request.message)
            call = current_call.get()
            if call is not None:  # what the call names, for its labels and its span
                call.names(_named(request, "encoder"), _named(request, "collection"))
            if self.calls is None:
                raise Unavailable("the server is starting: encoders are still loading")
            remaining = context.time_remaining()
            call_deadline.set(None if remaining is None else time.monotonic() + remaining)
            return await fn(self, self.calls, request)
        except EmbedspaceServerError as e:
            await _abort(context, e)
        except OSError as e:  # a full disk, too many open files: not a bug of ours
            log.warning("%s failed: %s", fn.__name__, e)
            await _abort(context, storage_error(e, "answer the call"))
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        raise AssertionError("unreachable: abort raises")

    return handler


async def _abort(context: Context, error: EmbedspaceServerError) -> None:
    message = _clip(str(error))
    await context.abort(status_of(error), message, details_of(error, message))


def _named(request: Any, field: str) -> str:
    """The request's `field` (a name), or "" (a stream of requests, or no such field)."""
    value = getattr(request, field, "")
    return value if isinstance(value, str) else ""


async def _each(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The requests of a stream, one that did not parse raised as bad input; the first
    names the call's collection."""
    call = current_call.get()
    async for request in requests:
        if isinstance(request, convert.Malformed):
            raise InvalidInput(request.message)
        if call is not None and not call.collection:
            call.names("", _named(request, "collection"))
        yield request


class EmbedspaceServicer:
    def __init__(self) -> None:
        self.calls: Calls | None = None  # set once encoders are loaded

    @_rpc
    async def ListEncoders(self, calls: Calls, request: Any) -> Any:
        return encode.list_encoders_response(await calls.encoders())

    @_rpc
    async def Embed(self, calls: Calls, request: Any) -> Any:
        values = decode.values_form(request, request.vector_form)
        vectors = await calls.embed(*decode.embed_request(request))
        return encode.embed_response(vectors, values)

    @_rpc
    async def CreateCollection(self, calls: Calls, request: Any) -> Any:
        args = decode.create_collection_request(request)
        return encode.collection_info(await calls.create_collection(*args))

    @_rpc
    async def ListCollections(self, calls: Calls, request: Any) -> Any:
        return encode.list_collections_response(await calls.collections())

    @_rpc
    async def DescribeCollection(self, calls: Calls, request: Any) -> Any:
        return encode.collection_info(await calls.describe(*decode.collection_request(request)))

    @_rpc
    async def DropCollection(self, calls: Calls, request: Any) -> Any:
        await calls.drop_collection(*decode.collection_request(request))
        return encode.drop_collection_response()

    @_rpc
    async def Backup(self, calls: Calls, request: Any) -> Any:
        return encode.backup_info(await calls.backup(*decode.backup_request(request)))

    @_rpc
    async def ListBackups(self, calls: Calls, request: Any) -> Any:
        return encode.list_backups_response(await calls.backups())

    @_rpc
    async def Restore(self, calls: Calls, request: Any) -> Any:
        return encode.collection_info(await calls.restore(*decode.restore_request(request)))

    @_rpc
    async def Upsert(self, calls: Calls, request: Any) -> Any:
        return encode.upsert_response(await calls.upsert(*decode.upsert_request(request)))

    @_rpc
    async def UpsertStream(self, calls: Calls, requests: Any) -> Any:
        messages = (decode.upsert_stream_request(r) async for r in _each(requests))
        return encode.upsert_stream_response(*await calls.upsert_stream(messages))

    @_rpc
    async def Get(self, calls: Calls, request: Any) -> Any:
        values = decode.values_form(request, request.vector_form)
        collection, ids = decode.ids_request(request)
        return encode.get_response(ids, await calls.get(collection, ids), values)

    @_rpc
    async def Scan(self, calls: Calls, request: Any) -> Any:
        values = decode.values_form(request, request.vector_form)
        return encode.scan_response(*await calls.scan(*decode.scan_request(request)), values)

    @_rpc
    async def Count(self, calls: Calls, request: Any) -> Any:
        return encode.count_response(await calls.count(*decode.count_request(request)))

    @_rpc
    async def Delete(self, calls: Calls, request: Any) -> Any:
        return encode.delete_response(await calls.delete(*decode.ids_request(request)))

    @_rpc
    async def Search(self, calls: Calls, request: Any) -> Any:
        return encode.search_response(await calls.search(*decode.search_request(request)))

    @_rpc
    async def SearchBatch(self, calls: Calls, request: Any) -> Any:
        args = decode.search_batch_request(request)
        return encode.search_batch_response(await calls.search_batch(*args))

    @_rpc
    async def Distance(self, calls: Calls, request: Any) -> Any:
        args = decode.distance_request(request)
        return encode.distance_response(await calls.distance(*args))

    @_rpc
    async def MostSimilar(self, calls: Calls, request: Any) -> Any:
        values = decode.values_form(request, request.vector_form)
        args = decode.most_similar_request(request)
        return encode.analogy_response(await calls.analogy(*args), values)

    @_rpc
    async def DoesntMatch(self, calls: Calls, request: Any) -> Any:
        args = decode.doesnt_match_request(request)
        return encode.doesnt_match_response(await calls.doesnt_match(*args))

    @_rpc
    async def Compare(self, calls: Calls, request: Any) -> Any:
        args = decode.compare_request(request)
        return encode.compare_response(*await calls.compare(*args))

    @_rpc
    async def MeanVector(self, calls: Calls, request: Any) -> Any:
        values = decode.values_form(request, request.vector_form)
        args = decode.mean_vector_request(request)
        return encode.mean_vector_response(await calls.mean_vector(*args), values)
