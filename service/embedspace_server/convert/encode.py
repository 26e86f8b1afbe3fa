"""The calls' answers -> responses (see __init__)."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from embedspace import wire
from embedspace.v1 import embedspace_pb2 as pb

from ..types import (
    AnalogyResult,
    BackupInfo,
    CollectionInfo,
    DistanceResult,
    EncoderInfo,
    FloatArray,
    Neighbor,
    OddOneOut,
    RejectedPoint,
    ReplicaInfo,
    StoredItem,
    UpsertResult,
)
from . import ITEM_KINDS_PB, METRICS_PB, PAGE_TOKEN_VERSION


def page_token(after: str) -> str:
    """The opaque token of the page that follows the item `after` (base64url, unpadded)."""
    raw = bytes([PAGE_TOKEN_VERSION]) + after.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _vector(v: FloatArray, values: bool) -> pb.Vector:
    return wire.pack(v, values=values)


def encoder_info(info: EncoderInfo) -> pb.EncoderInfo:
    p = info.provenance
    return pb.EncoderInfo(
        name=info.name,
        dim=info.dim,
        metric=METRICS_PB[info.metric],
        item_kind=ITEM_KINDS_PB[info.item_kind],
        tensor_shape=list(info.tensor_shape),
        record_fields=list(info.record_fields),
        provenance=pb.Provenance(
            kind=p.kind, path=p.path, sha256=p.sha256, loss=p.loss, details=dict(p.details)
        ),
    )


def collection_info(info: CollectionInfo) -> pb.CollectionInfo:
    return pb.CollectionInfo(
        name=info.name,
        encoder=info.encoder,
        index=info.index,
        metric=pb.METRIC_UNSPECIFIED if info.metric is None else METRICS_PB[info.metric],
        dim=info.dim,
        count=info.count,
        search_params=dict(info.search_params),
        quarantined=info.quarantined,
        shards=info.shards,
        replicas=info.replicas,
        placement=[replica_info(p) for p in info.placement],
    )


def replica_info(r: ReplicaInfo) -> pb.ReplicaInfo:
    return pb.ReplicaInfo(
        shard=r.shard, replica=r.replica, node=r.node, live=r.live, seq=r.seq, count=r.count
    )


def backup_info(info: BackupInfo) -> pb.BackupInfo:
    out = pb.BackupInfo(
        backup=info.backup, path=str(info.path), count=info.count, collection=info.collection,
        encoder=info.encoder, bytes=info.bytes, shards=info.shards,
    )  # fmt: skip
    out.created.FromDatetime(info.created)
    return out


def missing_shards(hits: Sequence[Neighbor]) -> list[int]:
    """The shards a collection's answer left out (types.Hits); none for a plain list."""
    return list(getattr(hits, "missing", ()))


def list_encoders_response(infos: list[EncoderInfo]) -> pb.ListEncodersResponse:
    return pb.ListEncodersResponse(encoders=[encoder_info(e) for e in infos])


def list_collections_response(infos: list[CollectionInfo]) -> pb.ListCollectionsResponse:
    return pb.ListCollectionsResponse(collections=[collection_info(c) for c in infos])


def list_backups_response(infos: list[BackupInfo]) -> pb.ListBackupsResponse:
    return pb.ListBackupsResponse(backups=[backup_info(b) for b in infos])


def drop_collection_response() -> pb.DropCollectionResponse:
    return pb.DropCollectionResponse()


def upsert_response(result: UpsertResult) -> pb.UpsertResponse:
    return pb.UpsertResponse(inserted=result.inserted, replaced=result.replaced)


def upsert_stream_response(
    result: UpsertResult, rejected: list[RejectedPoint], requests: int
) -> pb.UpsertStreamResponse:
    return pb.UpsertStreamResponse(
        inserted=result.inserted,
        replaced=result.replaced,
        rejected=[
            pb.RejectedPoint(request=r.request, point=r.point, id=r.id, field=r.field,
                             reason=r.reason)
            for r in rejected
        ],
        requests=requests,
    )  # fmt: skip


def get_response(ids: list[str], found: list[StoredItem], values: bool) -> pb.GetResponse:
    """The found items as the collection gave them (in the order asked), and the ids asked
    for that it did not have."""
    stored = {s.id for s in found}
    return pb.GetResponse(
        items=[stored_item(s, values) for s in found],
        missing_ids=[i for i in ids if i not in stored],
    )


def scan_response(items: list[StoredItem], total: int, more: bool, values: bool) -> pb.ScanResponse:
    return pb.ScanResponse(
        items=[stored_item(s, values) for s in items],
        total=total,
        next_page_token=page_token(items[-1].id) if more and items else "",
    )


def count_response(count: int) -> pb.CountResponse:
    return pb.CountResponse(count=count)


def delete_response(deleted: int) -> pb.DeleteResponse:
    return pb.DeleteResponse(deleted=deleted)


def search_response(hits: list[Neighbor]) -> pb.SearchResponse:
    return pb.SearchResponse(
        neighbors=[neighbor(n) for n in hits], missing_shards=missing_shards(hits)
    )


def search_batch_response(answers: list[list[Neighbor]]) -> pb.SearchBatchResponse:
    return pb.SearchBatchResponse(results=[search_response(hits) for hits in answers])


def doesnt_match_response(odd: OddOneOut) -> pb.DoesntMatchResponse:
    return pb.DoesntMatchResponse(index=odd.index, similarities=odd.similarities.tolist())


def mean_vector_response(mean: FloatArray, values: bool) -> pb.MeanVectorResponse:
    return pb.MeanVectorResponse(vector=_vector(mean, values))


def compare_response(
    answers: list[tuple[str, str, list[Neighbor]]], jaccard: FloatArray
) -> pb.CompareResponse:
    return pb.CompareResponse(
        answers=[
            pb.CompareAnswer(
                collection=c,
                encoder=e,
                neighbors=[neighbor(n) for n in hits],
                missing_shards=missing_shards(hits),
            )
            for c, e, hits in answers
        ],
        jaccard=jaccard.ravel().tolist(),
    )


def neighbor(n: Neighbor) -> pb.Neighbor:
    return pb.Neighbor(id=n.id, score=n.score, metadata=wire.to_values(n.metadata))


def stored_item(s: StoredItem, values: bool) -> pb.StoredItem:
    """A stored item; its vector left unset where it was not asked for (an empty one)."""
    return pb.StoredItem(
        id=s.id,
        vector=_vector(s.vector, values) if len(s.vector) else None,
        metadata=wire.to_values(s.metadata),
    )


def embed_response(vectors: FloatArray, values: bool) -> pb.EmbedResponse:
    return pb.EmbedResponse(vectors=[_vector(v, values) for v in vectors])


def distance_response(result: DistanceResult) -> pb.DistanceResponse:
    d = result.distances
    rows, cols = (d.shape[0], d.shape[1]) if d.ndim == 2 else (d.shape[0], 1)
    return pb.DistanceResponse(
        distances=d.ravel().tolist(), rows=rows, cols=cols, metric=METRICS_PB[result.metric]
    )


def analogy_response(result: AnalogyResult, values: bool) -> pb.MostSimilarResponse:
    return pb.MostSimilarResponse(
        neighbors=[neighbor(n) for n in result.neighbors],
        vector=_vector(result.vector, values) if result.vector is not None else None,
        missing_shards=missing_shards(result.neighbors),
    )
