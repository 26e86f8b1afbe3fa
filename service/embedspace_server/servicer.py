"""The gRPC surface: convert the request, call the engine off the event loop, convert back."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

import grpc
from embedspace.v1 import embedspace_pb2 as pb
from embedspace.v1 import embedspace_pb2_grpc as pb_grpc

from . import convert
from .engine import Engine
from .errors import (
    Cancelled,
    DeadlineExceeded,
    EmbedspaceServerError,
    InvalidInput,
    Overloaded,
    Unavailable,
)
from .index.disk import storage_error
from .status import INTERNAL_MESSAGE, status_of
from .types import Neighbor

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

SERVICE = pb.DESCRIPTOR.services_by_name["Embedspace"]


class Malformed:
    """Stands in for a request whose bytes did not parse, so that the handler can answer
    INVALID_ARGUMENT (gRPC itself would answer UNKNOWN for a failing deserializer)."""

    def __init__(self, message: str) -> None:
        self.message = message


def _lenient(cls: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except Exception as e:  # DecodeError, and RecursionError on absurd nesting
            return Malformed(f"the request is not a valid {cls.DESCRIPTOR.full_name}: {e}")

    return parse


def add_to_server(servicer: EmbedspaceServicer, server: grpc.aio.Server) -> None:
    """Registers the servicer like the generated helper does, with lenient parsing."""
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, m.name),
            request_deserializer=_lenient(getattr(pb, m.input_type.name)),
            response_serializer=getattr(pb, m.output_type.name).SerializeToString,
        )
        for m in SERVICE.methods
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)  # type: ignore[attr-defined]


def _clip(message: str, limit: int = 2000) -> str:
    """Error details travel in trailers, whose size gRPC limits (16 KiB by default); a
    message quoting a huge input is cut."""
    return message if len(message) <= limit else message[: limit - 20] + " ...(cut)"


def _handler(
    fn: Callable[[EmbedspaceServicer, Engine, Req], Resp],
    inline: Callable[[EmbedspaceServicer, Engine, Req], Awaitable[Resp | None]] | None = None,
) -> Callable[[EmbedspaceServicer, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """Runs `fn(engine, request)` in the worker pool and maps its errors to statuses.

    `inline`, where given, is tried first on the event loop: for a request it can answer
    without blocking (it awaits a batch instead) it returns the response, saving the
    worker-pool hop; for others it returns None and the call goes to the pool."""

    @functools.wraps(fn)
    async def wrapper(
        self: EmbedspaceServicer, request: Req, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Resp:
        stop = threading.Event()  # set when the caller gives up: queued work then never starts
        try:
            if isinstance(request, Malformed):
                raise InvalidInput(request.message)
            engine = self.engine
            if engine is None:
                raise Unavailable("the server is starting: encoders are still loading")
            if self.pending >= self.max_pending:
                raise Overloaded(
                    f"the server is busy: {self.pending} calls are waiting or running "
                    f"(max_pending {self.max_pending}); retry later"
                )
            if inline is not None:
                self.pending += 1
                try:
                    answer = await inline(self, engine, request)
                finally:
                    self.pending -= 1
                if answer is not None:
                    return answer
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining

            def job() -> Resp:
                if deadline is not None and time.monotonic() > deadline:
                    raise DeadlineExceeded("the call's deadline passed while it was queued")
                if stop.is_set():
                    raise Cancelled("the call was cancelled while it was queued")
                return fn(self, engine, request)

            self.pending += 1
            try:
                return await asyncio.get_running_loop().run_in_executor(self.pool, job)
            finally:
                self.pending -= 1
        except asyncio.CancelledError:
            stop.set()
            raise
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

    return wrapper


class EmbedspaceServicer(pb_grpc.EmbedspaceServicer):
    def __init__(self, pool: Executor, max_pending: int = 64) -> None:
        self.pool = pool
        self.max_pending = max_pending
        self.pending = 0  # calls handed to the pool and not finished (event-loop only)
        self.engine: Engine | None = None  # set once encoders are loaded

    @_handler
    def ListEncoders(
        self, engine: Engine, request: pb.ListEncodersRequest
    ) -> pb.ListEncodersResponse:
        return convert.list_encoders_response(engine.encoders())

    async def _embed_inline(
        self, engine: Engine, request: pb.EmbedRequest
    ) -> pb.EmbedResponse | None:
        """Items for an encoder that batches are checked and queued on the event loop,
        which then awaits the shared forward pass; other encoders embed in the pool."""
        if not engine.embeds_in_batches(request.encoder):
            return None
        items = [convert.item(it, f"item {i}") for i, it in enumerate(request.items)]
        queued = engine.start_embed(request.encoder, items)
        return convert.embed_response(await asyncio.wrap_future(queued))

    @functools.partial(_handler, inline=_embed_inline)
    def Embed(self, engine: Engine, request: pb.EmbedRequest) -> pb.EmbedResponse:
        items = [convert.item(it, f"item {i}") for i, it in enumerate(request.items)]
        return convert.embed_response(engine.embed(request.encoder, items))

    @_handler
    def CreateCollection(
        self, engine: Engine, request: pb.CreateCollectionRequest
    ) -> pb.CollectionInfo:
        info = engine.create_collection(
            request.name,
            request.encoder,
            request.index,
            convert.metric(request.metric),
            dict(request.search_params),
        )
        return convert.collection_info(info)

    @_handler
    def ListCollections(
        self, engine: Engine, request: pb.ListCollectionsRequest
    ) -> pb.ListCollectionsResponse:
        infos = engine.collections()
        return convert.list_collections_response(infos)

    @_handler
    def DescribeCollection(
        self, engine: Engine, request: pb.DescribeCollectionRequest
    ) -> pb.CollectionInfo:
        return convert.collection_info(engine.describe(request.name))

    @_handler
    def DropCollection(
        self, engine: Engine, request: pb.DropCollectionRequest
    ) -> pb.DropCollectionResponse:
        engine.drop_collection(request.name)
        return convert.drop_collection_response()

    @_handler
    def Backup(self, engine: Engine, request: pb.BackupRequest) -> pb.BackupResponse:
        return convert.backup_response(*engine.backup(request.collection, request.name))

    @_handler
    def Restore(self, engine: Engine, request: pb.RestoreRequest) -> pb.CollectionInfo:
        return convert.collection_info(engine.restore(request.name, request.collection))

    @_handler
    def Upsert(self, engine: Engine, request: pb.UpsertRequest) -> pb.UpsertResponse:
        result = engine.upsert(request.collection, convert.upsert_points(request))
        return convert.upsert_response(result)

    @_handler
    def Get(self, engine: Engine, request: pb.GetRequest) -> pb.GetResponse:
        items = engine.get(request.collection, list(request.ids))
        return convert.get_response(items)

    @_handler
    def Scan(self, engine: Engine, request: pb.ScanRequest) -> pb.ScanResponse:
        return convert.scan_response(
            *engine.scan(request.collection, request.offset, request.limit)
        )

    @_handler
    def Delete(self, engine: Engine, request: pb.DeleteRequest) -> pb.DeleteResponse:
        return convert.delete_response(engine.delete(request.collection, list(request.ids)))

    @staticmethod
    def _search(engine: Engine, request: pb.SearchRequest) -> Future[list[Neighbor]]:
        return engine.start_search(
            request.collection,
            convert.query(request.query),
            request.k,
            min_score=request.min_score if request.HasField("min_score") else None,
            exclude=list(request.exclude),
            where=convert.metadata(request.where, "where"),
            params=dict(request.search_params),
        )

    async def _search_inline(
        self, engine: Engine, request: pb.SearchRequest
    ) -> pb.SearchResponse | None:
        """A search by a plain vector, coalesced: checking it and queueing it for the next
        FAISS call take microseconds and never wait on a lock, so they run on the event
        loop, which then awaits the batch. Items to embed, stored ids to read and searches
        that are not coalesced go to the pool."""
        if request.query.WhichOneof("kind") != "vector" or not engine.coalesces_search():
            return None
        hits = await asyncio.wrap_future(self._search(engine, request))
        return convert.search_response(hits)

    @functools.partial(_handler, inline=_search_inline)
    def Search(self, engine: Engine, request: pb.SearchRequest) -> pb.SearchResponse:
        return convert.search_response(self._search(engine, request).result())

    @_handler
    def Distance(self, engine: Engine, request: pb.DistanceRequest) -> pb.DistanceResponse:
        result = engine.distance(
            request.space,
            [convert.query(q, f"a[{i}]") for i, q in enumerate(request.a)],
            [convert.query(q, f"b[{i}]") for i, q in enumerate(request.b)],
            metric=convert.metric(request.metric),
            matrix=request.matrix,
        )
        return convert.distance_response(result)

    @_handler
    def MostSimilar(self, engine: Engine, request: pb.MostSimilarRequest) -> pb.MostSimilarResponse:
        result = engine.analogy(
            request.collection,
            convert.weighted(list(request.positive), "positive"),
            convert.weighted(list(request.negative), "negative"),
            request.k,
            method=convert.method(request.method),
        )
        return convert.analogy_response(result)

    @_handler
    def DoesntMatch(self, engine: Engine, request: pb.DoesntMatchRequest) -> pb.DoesntMatchResponse:
        items = [convert.query(q, f"item {i}") for i, q in enumerate(request.items)]
        odd = engine.doesnt_match(request.space, items)
        return convert.doesnt_match_response(odd)

    @_handler
    def Compare(self, engine: Engine, request: pb.CompareRequest) -> pb.CompareResponse:
        answers, jaccard = engine.compare(
            list(request.collections), convert.query(request.query), request.k
        )
        return convert.compare_response(answers, jaccard)

    @_handler
    def MeanVector(self, engine: Engine, request: pb.MeanVectorRequest) -> pb.MeanVectorResponse:
        mean = engine.mean_vector(
            request.space,
            [convert.query(q, f"item {i}") for i, q in enumerate(request.items)],
            list(request.weights),
            pre_normalize=request.pre_normalize if request.HasField("pre_normalize") else True,
            post_normalize=request.post_normalize,
        )
        return convert.mean_vector_response(mean)
