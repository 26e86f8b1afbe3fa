"""embedspace: the Python SDK for the embedspace similarity service.

from embedspace import Client, Ref
with Client("127.0.0.1:50051") as es:
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
    Item,
    Neighbor,
    Neighbors,
    Provenance,
    Query,
    Ref,
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
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
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
    "Internal",
    "InvalidArgument",
    "Item",
    "Neighbor",
    "Neighbors",
    "NotFound",
    "PermissionDenied",
    "Provenance",
    "Query",
    "Ref",
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
