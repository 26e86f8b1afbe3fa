"""embedspace: the Python SDK for the embedspace similarity service.

from embedspace import Client, Ref
with Client("127.0.0.1:50051") as es:  # or Client(): $EMBEDSPACE_TARGET, else that address
    es.analogy("words", positive=["king", "woman"], negative=["man"])[0].id  # 'queen'
"""

from __future__ import annotations

from ._async_client import AsyncClient
from ._base import USE_CLIENT_DEFAULT
from ._client import Client
from ._types import (
    Analogy,
    BackupInfo,
    CollectionInfo,
    Comparison,
    EncoderInfo,
    IngestSummary,
    Item,
    Items,
    Neighbor,
    Neighbors,
    Page,
    Point,
    Provenance,
    Query,
    Ref,
    Rejection,
    ReplicaInfo,
    StoredItem,
    Sum,
    Tensor,
    UpsertResult,
)
from .errors import (
    AlreadyExists,
    Cancelled,
    ClientClosed,
    DeadlineExceeded,
    EmbedspaceError,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PointsRejected,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unknown,
)

__version__ = "0.1.0"

__all__ = [
    "USE_CLIENT_DEFAULT",
    "AlreadyExists",
    "Analogy",
    "AsyncClient",
    "BackupInfo",
    "Cancelled",
    "Client",
    "ClientClosed",
    "CollectionInfo",
    "Comparison",
    "DeadlineExceeded",
    "EmbedspaceError",
    "EncoderInfo",
    "FailedPrecondition",
    "FieldViolation",
    "IngestSummary",
    "Internal",
    "InvalidArgument",
    "Item",
    "Items",
    "Neighbor",
    "Neighbors",
    "NotFound",
    "Page",
    "PermissionDenied",
    "Point",
    "PointsRejected",
    "Provenance",
    "Query",
    "Ref",
    "Rejection",
    "ReplicaInfo",
    "ResourceExhausted",
    "StoredItem",
    "Sum",
    "Tensor",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "UpsertResult",
]
