"""Protobuf <-> domain objects: the only server package that touches generated types.
`decode` turns requests into the arguments of the calls (calls.py), `encode` turns their
answers into responses; here are the RPCs' codecs and the tables both share.

Every malformed field becomes InvalidInput whose `field` is the field's path in the request
(`points[3].vector`, `a[1].sum.terms[0].query`), which the message starts with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from embedspace.v1 import embedspace_pb2 as pb

from ..types import ItemKind, Metric

METRICS = {pb.METRIC_COSINE: Metric.COSINE, pb.METRIC_DOT: Metric.DOT, pb.METRIC_L2: Metric.L2}
METRICS_PB = {v: k for k, v in METRICS.items()}
ITEM_KINDS_PB = {
    ItemKind.TEXT: pb.ITEM_KIND_TEXT,
    ItemKind.TENSOR: pb.ITEM_KIND_TENSOR,
    ItemKind.RECORD: pb.ITEM_KIND_RECORD,
    ItemKind.VECTOR: pb.ITEM_KIND_VECTOR,
}
# The first byte of a page token: its format, should it ever change.
PAGE_TOKEN_VERSION = 1

SERVICE = pb.DESCRIPTOR.services_by_name["Embedspace"]
SERVICE_NAME: str = SERVICE.full_name


class Malformed:
    """Stands in for a request whose bytes did not parse, so that its handler can answer
    INVALID_ARGUMENT."""

    def __init__(self, message: str) -> None:
        self.message = message


class Codec(NamedTuple):
    """How one RPC's messages cross the wire: its request parser (which gives Malformed for
    bytes that do not parse), its response serializer, and whether requests come as a
    stream."""

    parse: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    client_streaming: bool


def rpc_codecs() -> dict[str, Codec]:
    """Each RPC's name, with its codec."""

    def lenient(cls: Any) -> Callable[[bytes], Any]:
        def parse(data: bytes) -> Any:
            try:
                return cls.FromString(data)
            except Exception as e:  # DecodeError, and RecursionError on absurd nesting
                return Malformed(f"the request is not a valid {cls.DESCRIPTOR.full_name}: {e}")

        return parse

    return {
        m.name: Codec(lenient(getattr(pb, m.input_type.name)),
                      getattr(pb, m.output_type.name).SerializeToString, m.client_streaming)
        for m in SERVICE.methods
    }  # fmt: skip
