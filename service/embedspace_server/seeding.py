"""Built-in collections, created at server start where missing: `xkcd-<space>`, the 949
XKCD colour names under each loaded colour encoder."""

from __future__ import annotations

import logging

from .engine import Engine
from .errors import AlreadyExists
from .types import Text, UpsertPoint

log = logging.getLogger(__name__)


def ensure_builtin_collections(engine: Engine) -> list[str]:
    """Creates the built-in collections that are missing; returns the names created."""
    from .encoders.colour import xkcd_colours

    created = []
    for info in engine.encoders():
        name = f"xkcd-{info.name}"
        if info.provenance.kind != "colour" or name in engine.catalogue:
            continue
        try:
            engine.create_collection(name, info.name)
        except AlreadyExists:  # another front end on the same cluster made it meanwhile
            continue
        points = [UpsertPoint(n, Text(n), None, {"hex": _hex(rgb)}) for n, rgb in xkcd_colours()]
        step = engine.limits.max_batch
        for i in range(0, len(points), step):
            engine.upsert(name, points[i : i + step])
        created.append(name)
        log.info("created built-in collection %r (%d colours)", name, len(points))
    return created


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)
