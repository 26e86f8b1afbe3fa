"""Settings: defaults < config file < EMBEDSPACE_* environment < flags, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(
    ("line", "variable"),
    [
        ('tokens = "s3cret"', "EMBEDSPACE_TOKENS"),
        ('tls_cert = "cert.pem"', "EMBEDSPACE_TLS_CERT"),
        ('tls_client_ca = "ca.pem"', "EMBEDSPACE_TLS_CLIENT_CA"),
        ('data_dir = "/srv/es"', "EMBEDSPACE_DATA_DIR"),
        ("port = 7000", "EMBEDSPACE_PORT"),
    ],
)
def test_an_empty_variable_cannot_clear_what_the_file_sets(
    tmp_path: Path, line: str, variable: str
) -> None:
    config = tmp_path / "es.toml"
    config.write_text(line + "\n")
    for empty in ("", "  "):
        with pytest.raises(InvalidInput) as info:
            load_settings(config, env={variable: empty})
        message = str(info.value)
        assert f"{variable} is set but empty" in message and f"unset {variable}" in message
        assert str(config) in message and "s3cret" not in message


def test_an_empty_variable_is_harmless_where_the_file_sets_nothing(tmp_path: Path) -> None:
    config = tmp_path / "es.toml"
    config.write_text('tokens = ""\ndata_dir = "/srv/es"\n')
    empty = {"EMBEDSPACE_TOKENS": "", "EMBEDSPACE_TLS_KEY": "", "EMBEDSPACE_DATA_DIR": ""}
    settings = load_settings(config, env=empty, overrides={"data_dir": "/flag"})
    assert settings.tokens == "" and settings.tls_key == "" and settings.data_dir == Path("/flag")
    assert load_settings(env={"EMBEDSPACE_TOKENS": ""}).tokens == ""


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.mkdir(), "Is a directory"),
        (lambda p: None, "No such file or directory"),
        (lambda p: p.write_text("port = \n"), "is not valid TOML"),
        (lambda p: p.write_bytes(b'host = "\xff"\n'), "is not UTF-8 text"),
        (lambda p: p.write_text("encoders = 5\n"), "'encoders' must be an array of tables"),
        (lambda p: p.write_text('log_level = "loud"\n'), "'log_level' must be one of"),
    ],
)  # fmt: skip
def test_a_config_file_that_cannot_be_used_says_why(tmp_path: Path, make: Any, words: str) -> None:
    config = tmp_path / "es.toml"
    make(config)
    with pytest.raises(InvalidInput, match=words):
        load_settings(config, env={})


@pytest.mark.parametrize("tokens", [",", " , ,"])
def test_tokens_that_hold_no_token_are_refused(tokens: str) -> None:
    with pytest.raises(InvalidInput, match="'tokens' holds no token"):
        load_settings(env={"EMBEDSPACE_TOKENS": tokens})


def test_ray_settings_parse_from_the_file_the_environment_and_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = load_settings(env={})
    assert (defaults.ray_address, defaults.ray_namespace, defaults.ray_data_dir,
            defaults.encoder_actors) == ("", "embedspace", "", 0)  # fmt: skip
    config = tmp_path / "es.toml"
    config.write_text(
        'ray_address = "10.0.0.5:6379"\nray_namespace = "prod"\n'
        'ray_data_dir = "/mnt/shards"\nencoder_actors = 2\n'
    )
    from_file = load_settings(config, env={})
    assert (from_file.ray_address, from_file.ray_namespace, from_file.ray_data_dir,
            from_file.encoder_actors) == ("10.0.0.5:6379", "prod", "/mnt/shards", 2)  # fmt: skip
    assert isinstance(from_file.ray_data_dir, str)  # "" must stay "" (not Path("."))
    env = {"EMBEDSPACE_RAY_ADDRESS": "auto", "EMBEDSPACE_RAY_NAMESPACE": "test",
           "EMBEDSPACE_RAY_DATA_DIR": "/data/r", "EMBEDSPACE_ENCODER_ACTORS": "3"}  # fmt: skip
    from_env = load_settings(config, env=env)
    assert (from_env.ray_address, from_env.ray_namespace, from_env.ray_data_dir,
            from_env.encoder_actors) == ("auto", "test", "/data/r", 3)  # fmt: skip

    # `embedspace serve --ray ADDRESS` sets ray_address over the file and the environment.
    from embedspace_server import cli
    from embedspace_server import server as server_module

    seen: list[Any] = []

    async def serve(settings: Any) -> None:
        seen.append(settings)

    monkeypatch.setattr(server_module, "serve", serve)
    monkeypatch.setenv("EMBEDSPACE_RAY_ADDRESS", "auto")
    assert cli.main(["serve", "--config", str(config), "--ray", "head:6379"]) == 0
    assert seen[-1].ray_address == "head:6379" and seen[-1].ray_namespace == "prod"
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert seen[-1].ray_address == "auto"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"EMBEDSPACE_ENCODER_ACTORS": "2"}, "encoder actors run on a Ray cluster"),
        ({"EMBEDSPACE_RAY_ADDRESS": "auto", "EMBEDSPACE_ENCODER_ACTORS": "-1"},
         "'encoder_actors' must be at least 0"),
        ({"EMBEDSPACE_ENCODER_ACTORS": "many"}, "'encoder_actors' expects a int"),
        ({"EMBEDSPACE_RAY_NAMESPACE": " "}, "'ray_namespace' is empty"),
    ],
)  # fmt: skip
def test_ray_settings_that_cannot_be_used_say_why(env: dict, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_settings(env=env)
    assert words in str(info.value)
