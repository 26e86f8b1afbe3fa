"""Settings: defaults < config file < EMBEDSPACE_* environment < flags, validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from embedspace_server.config import DEFAULT_ENCODERS, load_settings
from embedspace_server.errors import InvalidInput
from embedspace_server.types import Metric


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "es.toml"
    config.write_text(
        'port = 7000\nmax_k = 50\ndata_dir = "/srv/es"\nreflection = false\n'
        '[[encoders]]\nname = "v"\nkind = "vector"\ndim = 16\nmetric = "l2"\n'
    )
    settings = load_settings(
        config, env={"EMBEDSPACE_PORT": "7001", "EMBEDSPACE_WORKERS": "2"}, overrides={"port": 7002}
    )
    assert settings.port == 7002 and settings.workers == 2 and settings.max_k == 50
    assert settings.data_dir == Path("/srv/es") and settings.reflection is False
    (encoder,) = settings.encoders
    assert (encoder.name, encoder.kind, encoder.dim, encoder.metric) == (
        "v",
        "vector",
        16,
        Metric.L2,
    )
    env_only = load_settings(env={"EMBEDSPACE_CONFIG": str(config), "EMBEDSPACE_PORT": "7001"})
    assert env_only.port == 7001 and env_only.max_k == 50


def test_defaults_serve_the_bundled_text_encoder() -> None:
    settings = load_settings(env={})
    assert settings.encoders == DEFAULT_ENCODERS and settings.port == 50051


@pytest.mark.parametrize(
    ("text", "env", "words"),
    [
        ("", {"EMBEDSPACE_PORT": "http"}, "expects a int"),
        ("", {"EMBEDSPACE_WORKERS": "0"}, "'workers' must be at least 1"),
        ("", {"EMBEDSPACE_SNAPSHOT_INTERVAL_S": "0"}, "must be positive"),
        ("", {"EMBEDSPACE_PORT": "70000"}, "between 0 and 65535"),
        ("", {"EMBEDSPACE_REFLECTION": "maybe"}, "expects a bool"),
        ("colour = 1\n", {}, "unknown settings ['colour']"),
        ('[[encoders]]\nname = "x"\n', {}, "needs 'name' and 'kind'"),
        ('[[encoders]]\nname = "x"\nkind = "vector"\nmetric = "manhattan"\n', {}, "metric"),
        ('[[encoders]]\nname = "x"\nkind = "vector"\n[[encoders]]\nname = "x"\nkind = "vector"\n',
         {}, "unique"),
    ],
)  # fmt: skip
def test_bad_settings_say_what_is_wrong(tmp_path: Path, text: str, env: dict, words: str) -> None:
    config = tmp_path / "es.toml"
    config.write_text(text)
    with pytest.raises(InvalidInput) as info:
        load_settings(config, env=env)
    assert words in str(info.value)
