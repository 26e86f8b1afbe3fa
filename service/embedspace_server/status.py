"""The one table from domain errors to gRPC status codes, and the machine-readable details
that travel with INVALID_ARGUMENT: a google.rpc.Status carrying a BadRequest whose field
violation names the offending request field."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from . import errors

_TABLE: tuple[tuple[type[errors.EmbedspaceServerError], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
)

INTERNAL_MESSAGE = "internal error; the server log has the details"
# Trailers are small (16 KiB by default), and a field path can quote a caller's map key.
MAX_FIELD_CHARS = 500

Trailers = tuple[tuple[str, str | bytes], ...]


def status_of(error: BaseException) -> grpc.StatusCode:
    """The status code for an error; anything not in the table is INTERNAL."""
    for kind, code in _TABLE:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def details_of(error: BaseException, message: str) -> Trailers:
    """The trailing metadata that carries an error's details (`grpc-status-details-bin`):
    for bad input, a google.rpc.Status with one BadRequest field violation naming the
    field (empty where no single field is to blame); nothing for other errors. `message`
    is the status message as sent (cut to fit the trailers), which the details repeat."""
    if not isinstance(error, errors.InvalidInput):
        return ()
    field = error.field[:MAX_FIELD_CHARS]
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    status = status_pb2.Status(code=code, message=message, details=[detail])
    return tuple(rpc_status.to_status(status).trailing_metadata)
