"""The engine's item operations: upsert (all of a request's points, or for bulk loading all
but those that fail validation), get, scan, count and delete. Blocking and thread-safe."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from .catalogue import Catalogue
from .config import Settings
from .errors import InvalidInput
from .queries import Queries, Space
from .types import RejectedPoint, Scalar, StoredItem, UpsertPoint, UpsertResult
from .vecmath import check_vector

# A field path inside one point of an upsert: `points[3].vector`.
_POINT_FIELD = re.compile(r"^points\[(\d+)\](.*)$")


def _point_of(error: InvalidInput) -> tuple[int, str] | None:
    """The point an error blames (its position, and the rest of the field path)."""
    found = _POINT_FIELD.match(error.field)
    return (int(found[1]), found[2]) if found else None


class Items:
    def __init__(self, catalogue: Catalogue, queries: Queries, limits: Settings) -> None:
        self.catalogue = catalogue
        self.queries = queries
        self.limits = limits

    def upsert(self, collection: str, points: Sequence[UpsertPoint]) -> UpsertResult:
        """Inserts or replaces every point durably, or none: the first bad one is raised."""
        result, _ = self._upsert(collection, points, {}, strict=True, request=0)
        return result

    def upsert_valid(
        self,
        collection: str,
        points: Sequence[UpsertPoint],
        invalid: Mapping[int, InvalidInput] | None = None,
        *,
        request: int = 0,
    ) -> tuple[UpsertResult, list[RejectedPoint]]:
        """Bulk loading: inserts or replaces durably every point but those that fail
        validation (InvalidInput blaming one point, from any check), which are left out and
        returned as rejected, `request` being the message of the stream they came in.
        `invalid` gives points already known bad, by position, with their errors. Any other
        error (an unknown collection, a full disk, too many points) is raised, and nothing
        of the call is stored."""
        return self._upsert(collection, points, invalid or {}, strict=False, request=request)

    def _upsert(
        self,
        collection: str,
        points: Sequence[UpsertPoint],
        invalid: Mapping[int, InvalidInput],
        *,
        strict: bool,
        request: int,
    ) -> tuple[UpsertResult, list[RejectedPoint]]:
        space = self.queries.collection_space(collection)
        coll = space.collection
        assert coll is not None
        self.queries.check_batch(len(points), "points", "points")
        rejected: dict[int, InvalidInput] = {}

        def reject(i: int, error: InvalidInput) -> None:
            """Leaves out the point an error blames; strict, or blaming no point, raises."""
            if strict or _point_of(error) is None:
                raise error
            rejected[i] = error

        # Cheap checks first, so that a bad point is left out before anything is embedded.
        vectors = np.empty((len(points), coll.spec.dim), np.float32)
        given: list[int] = []  # points whose vector has the right shape, in `vectors`
        for i, point in enumerate(points):
            try:
                if i in invalid:
                    raise invalid[i]
                if self._check_point(space, i, point, finite=strict):
                    vectors[i] = point.vector
                    given.append(i)
            except InvalidInput as e:
                reject(i, e)
        # Bulk loading checks finite values over all the vectors at once (strict, each in
        # turn: the first bad point is the one raised), check_vector naming a bad one.
        for i in np.asarray(given, np.intp)[~np.isfinite(vectors[given]).all(axis=1)].tolist():
            try:
                check_vector(points[i].vector, space.dim, f"points[{i}].vector")  # type: ignore[arg-type]
            except InvalidInput as e:
                reject(i, e)
        keep = [i for i in range(len(points)) if i not in rejected]
        to_embed = [i for i in keep if points[i].item is not None]
        while to_embed:  # a point the checks let through may still fail in the encoder
            try:
                items = [points[i].item for i in to_embed]
                labels = [f"points[{i}].item" for i in to_embed]
                vectors[to_embed] = space.embed([it for it in items if it is not None], labels)
                break
            except InvalidInput as e:
                blamed = _point_of(e)
                if blamed is None or blamed[0] not in to_embed:
                    raise
                reject(blamed[0], e)
                to_embed.remove(blamed[0])
                keep.remove(blamed[0])
        result = UpsertResult(0, 0)
        while keep:  # the collection's own checks (an id twice, a zero vector for cosine)
            try:
                result = coll.upsert(
                    [points[i].id for i in keep], vectors[keep], [points[i].metadata for i in keep]
                )
                break
            except InvalidInput as e:
                blamed = _point_of(e)
                if strict or blamed is None or blamed[0] >= len(keep):
                    raise
                # The collection counts the points it was given: map back to the request's.
                i = keep.pop(blamed[0])
                reject(i, InvalidInput(str(e), field=f"points[{i}]{blamed[1]}"))
        out = [
            RejectedPoint(request, i, points[i].id, e.field, str(e))
            for i, e in sorted(rejected.items())
        ]
        return result, out

    def _check_point(self, space: Space, i: int, point: UpsertPoint, finite: bool) -> bool:
        """Raises InvalidInput for a bad point; True for a vector point. Its values are
        checked finite only if `finite` (else the caller checks them)."""
        self.queries.check_id(i, point.id)
        field = f"points[{i}]"
        if (point.item is None) == (point.vector is None):
            raise InvalidInput(
                f"point {point.id!r} needs exactly one of an item or a vector", field=field
            )
        if point.vector is not None:
            vector = point.vector
            if finite or vector.ndim != 1 or vector.shape[0] != space.dim:
                check_vector(vector, space.dim, f"{field}.vector")
            return True
        else:
            assert point.item is not None
            self.queries.check_texts([point.item], [f"{field}.item"])
            if space.encoder is not None:  # else embedding fails, for every point alike
                space.encoder.validate([point.item], [f"{field}.item"])
            return False

    def get(
        self, collection: str, ids: Sequence[str], *, missing_ok: bool = False
    ) -> list[StoredItem]:
        """The stored items, in the order asked; IdNotFound for an unknown id unless
        `missing_ok`, when unknown ids are left out."""
        self.queries.check_batch(len(ids), "ids", "ids")
        return self.catalogue.get(collection).get(ids, missing_ok=missing_ok)

    def scan(
        self,
        collection: str,
        after: str = "",
        limit: int = 0,
        *,
        vectors: bool = True,
        metadata: bool = True,
    ) -> tuple[list[StoredItem], int, bool]:
        """A page of items whose ids follow `after`, in id order: at most `limit` (0 means
        max_batch; never more), the collection's total, and whether any item follows."""
        limit = min(limit or self.limits.max_batch, self.limits.max_batch)
        # One item more than the page says whether another page follows.
        items, total = self.catalogue.get(collection).scan(
            after, limit + 1, vectors=vectors, metadata=metadata
        )
        return items[:limit], total, len(items) > limit

    def count(self, collection: str, where: Mapping[str, Scalar] | None = None) -> int:
        """How many items the collection holds, or how many match `where`."""
        return self.catalogue.get(collection).count(dict(where) if where else None)

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        """Deletes durably; unknown ids are ignored. Returns how many were stored."""
        self.queries.check_batch(len(ids), "ids", "ids")
        return self.catalogue.get(collection).delete(ids)
