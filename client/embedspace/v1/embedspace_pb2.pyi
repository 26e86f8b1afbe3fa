import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VectorForm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_FORM_UNSPECIFIED: _ClassVar[VectorForm]
    VECTOR_FORM_PACKED: _ClassVar[VectorForm]
    VECTOR_FORM_VALUES: _ClassVar[VectorForm]

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]
    METRIC_DOT: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]

class ItemKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_KIND_UNSPECIFIED: _ClassVar[ItemKind]
    ITEM_KIND_TEXT: _ClassVar[ItemKind]
    ITEM_KIND_TENSOR: _ClassVar[ItemKind]
    ITEM_KIND_RECORD: _ClassVar[ItemKind]
    ITEM_KIND_VECTOR: _ClassVar[ItemKind]

class AnalogyMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANALOGY_METHOD_UNSPECIFIED: _ClassVar[AnalogyMethod]
    ANALOGY_METHOD_ADD: _ClassVar[AnalogyMethod]
    ANALOGY_METHOD_MUL: _ClassVar[AnalogyMethod]
VECTOR_FORM_UNSPECIFIED: VectorForm
VECTOR_FORM_PACKED: VectorForm
VECTOR_FORM_VALUES: VectorForm
METRIC_UNSPECIFIED: Metric
METRIC_COSINE: Metric
METRIC_DOT: Metric
METRIC_L2: Metric
ITEM_KIND_UNSPECIFIED: ItemKind
ITEM_KIND_TEXT: ItemKind
ITEM_KIND_TENSOR: ItemKind
ITEM_KIND_RECORD: ItemKind
ITEM_KIND_VECTOR: ItemKind
ANALOGY_METHOD_UNSPECIFIED: AnalogyMethod
ANALOGY_METHOD_ADD: AnalogyMethod
ANALOGY_METHOD_MUL: AnalogyMethod

class Vector(_message.Message):
    __slots__ = ("dim", "data", "values")
    DIM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    dim: int
    data: bytes
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, dim: _Optional[int] = ..., data: _Optional[bytes] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("string_value", "int_value", "double_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    double_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, Value]
    def __init__(self, fields: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("text", "tensor", "record", "vector")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    text: str
    tensor: Tensor
    record: Record
    vector: Vector
    def __init__(self, text: _Optional[str] = ..., tensor: _Optional[_Union[Tensor, _Mapping]] = ..., record: _Optional[_Union[Record, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("item", "id", "vector", "sum")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    item: Item
    id: str
    vector: Vector
    sum: WeightedSum
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., id: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., sum: _Optional[_Union[WeightedSum, _Mapping]] = ...) -> None: ...

class WeightedSum(_message.Message):
    __slots__ = ("terms",)
    TERMS_FIELD_NUMBER: _ClassVar[int]
    terms: _containers.RepeatedCompositeFieldContainer[WeightedQuery]
    def __init__(self, terms: _Optional[_Iterable[_Union[WeightedQuery, _Mapping]]] = ...) -> None: ...

class WeightedQuery(_message.Message):
    __slots__ = ("query", "weight")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    query: Query
    weight: float
    def __init__(self, query: _Optional[_Union[Query, _Mapping]] = ..., weight: _Optional[float] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("kind", "path", "sha256", "loss", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    path: str
    sha256: str
    loss: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, kind: _Optional[str] = ..., path: _Optional[str] = ..., sha256: _Optional[str] = ..., loss: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EncoderInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "item_kind", "tensor_shape", "record_fields", "provenance")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    ITEM_KIND_FIELD_NUMBER: _ClassVar[int]
    TENSOR_SHAPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELDS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    item_kind: ItemKind
    tensor_shape: _containers.RepeatedScalarFieldContainer[int]
    record_fields: _containers.RepeatedScalarFieldContainer[str]
    provenance: Provenance
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., item_kind: _Optional[_Union[ItemKind, str]] = ..., tensor_shape: _Optional[_Iterable[int]] = ..., record_fields: _Optional[_Iterable[str]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class ListEncodersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEncodersResponse(_message.Message):
    __slots__ = ("encoders",)
    ENCODERS_FIELD_NUMBER: _ClassVar[int]
    encoders: _containers.RepeatedCompositeFieldContainer[EncoderInfo]
    def __init__(self, encoders: _Optional[_Iterable[_Union[EncoderInfo, _Mapping]]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("encoder", "items", "vector_form")
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FORM_FIELD_NUMBER: _ClassVar[int]
    encoder: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    vector_form: VectorForm
    def __init__(self, encoder: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., vector_form: _Optional[_Union[VectorForm, str]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("vectors",)
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("collection", "encoder", "index", "metric", "search_params", "shards", "replicas")
    class SearchParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SEARCH_PARAMS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    encoder: str
    index: str
    metric: Metric
    search_params: _containers.ScalarMap[str, float]
    shards: int
    replicas: int
    def __init__(self, collection: _Optional[str] = ..., encoder: _Optional[str] = ..., index: _Optional[str] = ..., metric: _Optional[_Union[Metric, str]] = ..., search_params: _Optional[_Mapping[str, float]] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ...) -> None: ...

class ReplicaInfo(_message.Message):
    __slots__ = ("shard", "replica", "node", "live", "seq", "count")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    shard: int
    replica: int
    node: str
    live: bool
    seq: int
    count: int
    def __init__(self, shard: _Optional[int] = ..., replica: _Optional[int] = ..., node: _Optional[str] = ..., live: _Optional[bool] = ..., seq: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "encoder", "index", "metric", "dim", "count", "search_params", "quarantined", "shards", "replicas", "placement")
    class SearchParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEARCH_PARAMS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    encoder: str
    index: str
    metric: Metric
    dim: int
    count: int
    search_params: _containers.ScalarMap[str, float]
    quarantined: str
    shards: int
    replicas: int
    placement: _containers.RepeatedCompositeFieldContainer[ReplicaInfo]
    def __init__(self, name: _Optional[str] = ..., encoder: _Optional[str] = ..., index: _Optional[str] = ..., metric: _Optional[_Union[Metric, str]] = ..., dim: _Optional[int] = ..., count: _Optional[int] = ..., search_params: _Optional[_Mapping[str, float]] = ..., quarantined: _Optional[str] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., placement: _Optional[_Iterable[_Union[ReplicaInfo, _Mapping]]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("collection", "backup")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    collection: str
    backup: str
    def __init__(self, collection: _Optional[str] = ..., backup: _Optional[str] = ...) -> None: ...

class BackupInfo(_message.Message):
    __slots__ = ("backup", "path", "count", "collection", "encoder", "bytes", "created", "shards")
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    backup: str
    path: str
    count: int
    collection: str
    encoder: str
    bytes: int
    created: _timestamp_pb2.Timestamp
    shards: int
    def __init__(self, backup: _Optional[str] = ..., path: _Optional[str] = ..., count: _Optional[int] = ..., collection: _Optional[str] = ..., encoder: _Optional[str] = ..., bytes: _Optional[int] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., shards: _Optional[int] = ...) -> None: ...

class ListBackupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBackupsResponse(_message.Message):
    __slots__ = ("backups",)
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[BackupInfo]
    def __init__(self, backups: _Optional[_Iterable[_Union[BackupInfo, _Mapping]]] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("backup", "collection")
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    backup: str
    collection: str
    def __init__(self, backup: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class UpsertPoint(_message.Message):
    __slots__ = ("id", "item", "vector", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    item: Item
    vector: Vector
    metadata: _containers.MessageMap[str, Value]
    def __init__(self, id: _Optional[str] = ..., item: _Optional[_Union[Item, _Mapping]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., metadata: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "points")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _containers.RepeatedCompositeFieldContainer[UpsertPoint]
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Iterable[_Union[UpsertPoint, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("inserted", "replaced")
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    inserted: int
    replaced: int
    def __init__(self, inserted: _Optional[int] = ..., replaced: _Optional[int] = ...) -> None: ...

class RejectedPoint(_message.Message):
    __slots__ = ("request", "point", "id", "field", "reason")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request: int
    point: int
    id: str
    field: str
    reason: str
    def __init__(self, request: _Optional[int] = ..., point: _Optional[int] = ..., id: _Optional[str] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UpsertStreamResponse(_message.Message):
    __slots__ = ("inserted", "replaced", "rejected", "requests")
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    inserted: int
    replaced: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedPoint]
    requests: int
    def __init__(self, inserted: _Optional[int] = ..., replaced: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedPoint, _Mapping]]] = ..., requests: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "vector_form")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FORM_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    vector_form: VectorForm
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., vector_form: _Optional[_Union[VectorForm, str]] = ...) -> None: ...

class StoredItem(_message.Message):
    __slots__ = ("id", "vector", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: Vector
    metadata: _containers.MessageMap[str, Value]
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., metadata: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("items", "missing_ids")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[StoredItem]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[_Union[StoredItem, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ScanRequest(_message.Message):
    __slots__ = ("collection", "limit", "page_token", "with_vectors", "with_metadata", "vector_form")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    WITH_METADATA_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FORM_FIELD_NUMBER: _ClassVar[int]
    collection: str
    limit: int
    page_token: str
    with_vectors: bool
    with_metadata: bool
    vector_form: VectorForm
    def __init__(self, collection: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ..., with_vectors: _Optional[bool] = ..., with_metadata: _Optional[bool] = ..., vector_form: _Optional[_Union[VectorForm, str]] = ...) -> None: ...

class ScanResponse(_message.Message):
    __slots__ = ("items", "total", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[StoredItem]
    total: int
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[StoredItem, _Mapping]]] = ..., total: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "where")
    class WhereEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    where: _containers.MessageMap[str, Value]
    def __init__(self, collection: _Optional[str] = ..., where: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "query", "k", "min_score", "exclude", "where", "search_params")
    class WhereEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class SearchParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_PARAMS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    query: Query
    k: int
    min_score: float
    exclude: _containers.RepeatedScalarFieldContainer[str]
    where: _containers.MessageMap[str, Value]
    search_params: _containers.ScalarMap[str, float]
    def __init__(self, collection: _Optional[str] = ..., query: _Optional[_Union[Query, _Mapping]] = ..., k: _Optional[int] = ..., min_score: _Optional[float] = ..., exclude: _Optional[_Iterable[str]] = ..., where: _Optional[_Mapping[str, Value]] = ..., search_params: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Neighbor(_message.Message):
    __slots__ = ("id", "score", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    metadata: _containers.MessageMap[str, Value]
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., metadata: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("neighbors", "missing_shards")
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    neighbors: _containers.RepeatedCompositeFieldContainer[Neighbor]
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, neighbors: _Optional[_Iterable[_Union[Neighbor, _Mapping]]] = ..., missing_shards: _Optional[_Iterable[int]] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("collection", "queries", "k", "min_score", "exclude", "where", "search_params")
    class WhereEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class SearchParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_PARAMS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    k: int
    min_score: float
    exclude: _containers.RepeatedScalarFieldContainer[str]
    where: _containers.MessageMap[str, Value]
    search_params: _containers.ScalarMap[str, float]
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., k: _Optional[int] = ..., min_score: _Optional[float] = ..., exclude: _Optional[_Iterable[str]] = ..., where: _Optional[_Mapping[str, Value]] = ..., search_params: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResponse, _Mapping]]] = ...) -> None: ...

class DistanceRequest(_message.Message):
    __slots__ = ("collection", "encoder", "a", "b", "metric", "matrix")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    collection: str
    encoder: str
    a: _containers.RepeatedCompositeFieldContainer[Query]
    b: _containers.RepeatedCompositeFieldContainer[Query]
    metric: Metric
    matrix: bool
    def __init__(self, collection: _Optional[str] = ..., encoder: _Optional[str] = ..., a: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., b: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., metric: _Optional[_Union[Metric, str]] = ..., matrix: _Optional[bool] = ...) -> None: ...

class DistanceResponse(_message.Message):
    __slots__ = ("distances", "rows", "cols", "metric")
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    distances: _containers.RepeatedScalarFieldContainer[float]
    rows: int
    cols: int
    metric: Metric
    def __init__(self, distances: _Optional[_Iterable[float]] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ...) -> None: ...

class MostSimilarRequest(_message.Message):
    __slots__ = ("collection", "positive", "negative", "k", "method", "vector_form")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FORM_FIELD_NUMBER: _ClassVar[int]
    collection: str
    positive: _containers.RepeatedCompositeFieldContainer[WeightedQuery]
    negative: _containers.RepeatedCompositeFieldContainer[WeightedQuery]
    k: int
    method: AnalogyMethod
    vector_form: VectorForm
    def __init__(self, collection: _Optional[str] = ..., positive: _Optional[_Iterable[_Union[WeightedQuery, _Mapping]]] = ..., negative: _Optional[_Iterable[_Union[WeightedQuery, _Mapping]]] = ..., k: _Optional[int] = ..., method: _Optional[_Union[AnalogyMethod, str]] = ..., vector_form: _Optional[_Union[VectorForm, str]] = ...) -> None: ...

class MostSimilarResponse(_message.Message):
    __slots__ = ("neighbors", "vector", "missing_shards")
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    neighbors: _containers.RepeatedCompositeFieldContainer[Neighbor]
    vector: Vector
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, neighbors: _Optional[_Iterable[_Union[Neighbor, _Mapping]]] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., missing_shards: _Optional[_Iterable[int]] = ...) -> None: ...

class DoesntMatchRequest(_message.Message):
    __slots__ = ("collection", "encoder", "items")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    encoder: str
    items: _containers.RepeatedCompositeFieldContainer[Query]
    def __init__(self, collection: _Optional[str] = ..., encoder: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Query, _Mapping]]] = ...) -> None: ...

class DoesntMatchResponse(_message.Message):
    __slots__ = ("index", "similarities")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SIMILARITIES_FIELD_NUMBER: _ClassVar[int]
    index: int
    similarities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., similarities: _Optional[_Iterable[float]] = ...) -> None: ...

class MeanVectorRequest(_message.Message):
    __slots__ = ("collection", "encoder", "items", "weights", "pre_normalize", "post_normalize", "vector_form")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    PRE_NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    POST_NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FORM_FIELD_NUMBER: _ClassVar[int]
    collection: str
    encoder: str
    items: _containers.RepeatedCompositeFieldContainer[Query]
    weights: _containers.RepeatedScalarFieldContainer[float]
    pre_normalize: bool
    post_normalize: bool
    vector_form: VectorForm
    def __init__(self, collection: _Optional[str] = ..., encoder: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., weights: _Optional[_Iterable[float]] = ..., pre_normalize: _Optional[bool] = ..., post_normalize: _Optional[bool] = ..., vector_form: _Optional[_Union[VectorForm, str]] = ...) -> None: ...

class MeanVectorResponse(_message.Message):
    __slots__ = ("vector",)
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    vector: Vector
    def __init__(self, vector: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("collections", "query", "k")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedScalarFieldContainer[str]
    query: Query
    k: int
    def __init__(self, collections: _Optional[_Iterable[str]] = ..., query: _Optional[_Union[Query, _Mapping]] = ..., k: _Optional[int] = ...) -> None: ...

class CompareAnswer(_message.Message):
    __slots__ = ("collection", "encoder", "neighbors", "missing_shards")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    encoder: str
    neighbors: _containers.RepeatedCompositeFieldContainer[Neighbor]
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, collection: _Optional[str] = ..., encoder: _Optional[str] = ..., neighbors: _Optional[_Iterable[_Union[Neighbor, _Mapping]]] = ..., missing_shards: _Optional[_Iterable[int]] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("answers", "jaccard")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    JACCARD_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[CompareAnswer]
    jaccard: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, answers: _Optional[_Iterable[_Union[CompareAnswer, _Mapping]]] = ..., jaccard: _Optional[_Iterable[float]] = ...) -> None: ...
