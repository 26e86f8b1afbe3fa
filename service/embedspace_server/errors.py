"""Domain errors. They never import grpc: `status.py` maps them to status codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class EmbedspaceServerError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidInput(EmbedspaceServerError):
    """The request is malformed: wrong kind, shape, dimension, range or type. `field` names
    the offending request field as a path (`points[3].vector`, `k`) where it is known; it
    travels to the caller as a BadRequest field violation."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@contextmanager
def blaming(field: str) -> Iterator[None]:
    """Bad input raised inside, where it names no field of its own, is blamed on `field`."""
    try:
        yield
    except InvalidInput as e:
        if not e.field:
            e.field = field
        raise


class NotFound(EmbedspaceServerError):
    """An encoder, collection or id that does not exist."""


class EncoderNotFound(NotFound):
    pass


class CollectionNotFound(NotFound):
    pass


class IdNotFound(NotFound):
    pass


class AlreadyExists(EmbedspaceServerError):
    """A collection that already exists."""


class FailedPrecondition(EmbedspaceServerError):
    """The request is well formed but cannot be served in the current state."""


class DamagedData(FailedPrecondition):
    """Files on disk that cannot be read back as they were written (not a torn tail)."""


class Unavailable(EmbedspaceServerError):
    """The server is not ready or is shutting down."""


class ResourceExhausted(EmbedspaceServerError):
    """The server ran out of something it needs: disk space, file descriptors, memory."""


class Overloaded(ResourceExhausted):
    """Too much work is pending; the caller should back off."""


class Cancelled(EmbedspaceServerError):
    """The caller gave up (cancelled, or its deadline passed) before the work started."""


class DeadlineExceeded(EmbedspaceServerError):
    """The caller's deadline passed before the work started."""


class Unauthenticated(EmbedspaceServerError):
    """No token, or a wrong one."""
