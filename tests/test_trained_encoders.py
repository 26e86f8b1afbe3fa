"""Trained encoders: tiny training is reproducible, artifacts load and are verified, inputs
are validated, and the shipped artifacts keep what their loss selects and drop the rest."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace_models.evaluation import (
    Embedder,
    artifact_embedder,
    evaluate_artifacts,
    houses_table,
    plot_embedding,
    shapes_table,
)
from embedspace_models.training import RECIPES, houses, shapes, train
from embedspace_server.config import EncoderConfig
from embedspace_server.encoders import build_encoder
from embedspace_server.encoders.base import sha256_file
from embedspace_server.encoders.trained import TrainedEncoder
from embedspace_server.errors import InvalidInput
from embedspace_server.types import Item, ItemKind, Metric, Record, Tensor, Text

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SERVER = ROOT / "service" / "embedspace_server"
SHIPPED = ("shapes-by-colour", "shapes-by-shape", "houses-by-price")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, float]]]:
    """Each recipe trained tiny, once, with seed 3."""
    root = tmp_path_factory.mktemp("tiny")
    return {
        name: (root / name, train(name, root / name, seed=3, progress=False, tiny=True))
        for name in RECIPES
    }


def test_generated_data_is_deterministic_and_well_formed() -> None:
    a, b = shapes.generate(64, seed=5), shapes.generate(64, seed=5)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.colour, b.colour)
    assert a.images.shape == (64, 32, 32, 3) and a.images.dtype == np.float32
    assert a.images.min() >= 0.0 and a.images.max() <= 1.0
    assert not np.array_equal(a.images, shapes.generate(64, seed=6).images)
    assert not np.array_equal(a.images, shapes.generate(64, seed=5, stream=1).images)
    assert {"red", "green", "blue", "yellow"} <= set(shapes.COLOURS) and len(shapes.COLOURS) >= 6
    assert {"circle", "square", "triangle"} <= set(shapes.SHAPES) and len(shapes.SHAPES) >= 4
    h = houses.generate(50, seed=5)
    assert h.records == houses.generate(50, seed=5).records
    assert all(houses.schema().problem(r) is None for r in h.records)


def test_price_ignores_colour_only() -> None:
    base = {"area_code": "212", "tax_bracket": 3, "school_district": "Brookline", "size": 100.0}
    assert houses.price_of(**base) == pytest.approx(100 * 5.5 + 50)
    for field, other in (("area_code", "512"), ("tax_bracket", 5), ("size", 150.0)):
        assert houses.price_of(**{**base, field: other}) != houses.price_of(**base)


def test_tiny_training_reproduces_its_metrics(tmp_path: Path, tiny: dict) -> None:
    for name in ("shapes-by-shape", "houses-by-price"):
        _, metrics = tiny[name]
        again = train(name, tmp_path / name, seed=3, progress=False, tiny=True)
        assert again.keys() == metrics.keys()
        for key, value in metrics.items():
            assert again[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (name, key)
        other = train(name, tmp_path / f"{name}-seed4", seed=4, progress=False, tiny=True)
        assert other["train_loss"] != pytest.approx(metrics["train_loss"], rel=1e-4)


def test_manifest_records_what_was_trained(tiny: dict) -> None:
    folder, metrics = tiny["shapes-by-colour"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["architecture"]["name"] == "shapes-cnn"
    assert manifest["input"] == {
        "kind": "tensor",
        "shape": [32, 32, 3],
        "layout": "height, width, RGB",
        "range": [0, 1],
    }
    assert "colour" in manifest["loss"]
    assert manifest["data"] | {"seed": 3, "train": 384, "validation": 128} == manifest["data"]
    assert manifest["metrics"] == metrics
    assert manifest["weights"]["sha256"] == sha256_file(folder / "model.safetensors")
    assert manifest["embedding"] == {
        "dim": 16,
        "metric": "cosine",
        "layer": "the linear layer before the head",
    }


def test_tensor_encoder_loads_and_checks_shape(tiny: dict) -> None:
    folder, metrics = tiny["shapes-by-shape"]
    encoder = build_encoder(EncoderConfig(name="s", kind="trained", path=str(folder)))
    info = encoder.info
    assert (info.item_kind, info.tensor_shape, info.dim) == (ItemKind.TENSOR, (32, 32, 3), 16)
    assert info.metric is Metric.COSINE
    assert info.provenance.kind == "trained" and "shape" in info.provenance.loss
    assert info.provenance.details["metric_validation_accuracy"] == (
        f"{metrics['validation_accuracy']:.6g}"
    )
    encoder.warmup()
    images = shapes.generate(3, seed=0).images
    vectors = encoder.encode([Tensor(i) for i in images])
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    assert np.allclose(encoder.encode([Tensor(images[1])])[0], vectors[1], atol=1e-5)

    with pytest.raises(InvalidInput, match=r"item 0 must be a tensor of shape \(32, 32, 3\)"):
        encoder.encode([Tensor(np.zeros((32, 32), dtype=np.float32))])
    with pytest.raises(InvalidInput, match=r"values in \[0, 1\]"):
        encoder.encode([Tensor(np.full((32, 32, 3), 255, dtype=np.float32))])
    with pytest.raises(InvalidInput, match="NaN"):
        encoder.encode([Tensor(np.full((32, 32, 3), np.nan, dtype=np.float32))])
    with pytest.raises(InvalidInput, match="expects tensor items"):
        encoder.encode([Text("a red circle")])


def test_record_encoder_checks_fields(tiny: dict) -> None:
    folder, _ = tiny["houses-by-price"]
    encoder = build_encoder(EncoderConfig(name="h", kind="trained", path=str(folder)))
    assert encoder.info.item_kind is ItemKind.RECORD
    assert encoder.info.metric is Metric.L2
    assert encoder.info.record_fields == (
        "area_code",
        "tax_bracket",
        "school_district",
        "colour",
        "size",
    )
    house = {
        "area_code": "415",
        "tax_bracket": 2,
        "school_district": "Ashford",
        "colour": "red",
        "size": 120,
    }
    assert encoder.encode([Record(house), Record({**house, "size": 80.5})]).shape == (2, 8)
    cases = [
        ({k: v for k, v in house.items() if k != "size"}, r"lacks field\(s\) \['size'\]"),
        ({**house, "garage": True}, r"unknown field\(s\) \['garage'\]"),
        ({**house, "size": "big"}, "'size' must be a number; got 'big'"),
        ({**house, "tax_bracket": 9}, "'tax_bracket' must be an integer from 1 to 5; got 9"),
        ({**house, "tax_bracket": True}, "'tax_bracket' must be an integer"),
        ({**house, "area_code": 415}, "'area_code' must be one of '201', '212'"),
        ({**house, "colour": "mauve"}, "'colour' must be one of 'white'"),
    ]
    for record, message in cases:
        with pytest.raises(InvalidInput, match=message) as info:
            encoder.encode([Record(house), Record(record)])
        assert "item 1" in str(info.value)
    with pytest.raises(InvalidInput, match="expected exactly the fields 'area_code'"):
        encoder.encode([Record({})])


def test_tampered_or_missing_artifacts_are_refused(tiny: dict, tmp_path: Path) -> None:
    folder, _ = tiny["houses-by-price"]
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "manifest.json").write_bytes((folder / "manifest.json").read_bytes())
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(InvalidInput, match=r"sha256 .* but the manifest says"):
        TrainedEncoder("h", str(copy))
    with pytest.raises(InvalidInput, match=r"no manifest\.json"):
        TrainedEncoder("h", str(tmp_path / "nowhere"))
    with pytest.raises(InvalidInput, match="needs a 'path'"):
        build_encoder(EncoderConfig(name="h", kind="trained"))


def test_unknown_recipe_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown recipe 'cats'; known"):
        train("cats", tmp_path)


def test_models_package_points_at_the_shipped_artifacts() -> None:
    spec = importlib.util.spec_from_file_location("embedspace_models", MODELS / "__init__.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ARTIFACTS_DIR == MODELS
    assert tuple(module.NAMES) == SHIPPED
    assert module.artifact("houses-by-price") == MODELS / "houses-by-price"
    with pytest.raises(FileNotFoundError, match="no shipped artifact named 'cats'"):
        module.artifact("cats")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_artifact_loads_and_matches_its_checksum(name: str) -> None:
    folder = MODELS / name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["weights"]["sha256"] == sha256_file(folder / "model.safetensors")
    assert (folder / "model.safetensors").stat().st_size < 1_000_000
    assert manifest["training"]["tiny"] is False and manifest["data"]["seed"] == 0
    encoder = TrainedEncoder(name, str(folder))
    assert encoder.info.provenance.sha256 == manifest["weights"]["sha256"]
    assert encoder.info.dim == manifest["embedding"]["dim"]
    encoder.warmup()


@pytest.fixture(scope="module")
def shipped() -> dict[str, TrainedEncoder]:
    return {name: TrainedEncoder(name, str(MODELS / name)) for name in SHIPPED}


def encoder_embedder(encoder: TrainedEncoder, batch: int = 512) -> Embedder:
    """An Embedder over a served encoder: images or records become items, checked and
    embedded by the encoder's own `encode`."""

    def embed(inputs: Any) -> np.ndarray:
        items: list[Item]
        if encoder.info.item_kind is ItemKind.RECORD:
            items = [Record(dict(r)) for r in inputs]
        else:
            items = [Tensor(np.asarray(a, dtype=np.float32)) for a in inputs]
        parts = [encoder.encode(items[i : i + batch]) for i in range(0, len(items), batch)]
        return np.concatenate(parts)

    return Embedder(embed, encoder.info.metric.value)


def test_shipped_shapes_encoders_separate_colour_from_shape(shipped: dict) -> None:
    table = shapes_table(
        {name: encoder_embedder(shipped[name]) for name in SHIPPED[:2]}, pixels=False
    )
    by_colour, by_shape, chance = (table.rows[s] for s in (*SHIPPED[:2], "chance"))
    assert by_colour["colour@10"] >= 0.95
    assert by_colour["shape@10"] <= chance["shape@10"] + 0.10
    assert by_shape["shape@10"] >= 0.95
    assert by_shape["colour@10"] <= chance["colour@10"] + 0.10
    # Each keeps its own attribute linearly readable.
    assert by_colour["colour probe"] >= 0.95 and by_shape["shape probe"] >= 0.95


def test_shipped_houses_encoder_keeps_price_and_drops_colour(shipped: dict) -> None:
    table = houses_table({"houses": encoder_embedder(shipped["houses-by-price"])})
    houses_row, features, chance = (table.rows[s] for s in ("houses", "input features", "chance"))
    assert houses_row["price probe R²"] >= 0.95
    assert houses_row["colour probe"] <= chance["colour probe"] + 0.05
    assert features["colour probe"] >= 0.9  # the input had it; the loss dropped it
    assert houses_row["colour@10"] <= chance["colour@10"] + 0.03
    for field in ("area_code", "school_district", "tax_bracket"):
        assert houses_row[f"{field}@10"] > chance[f"{field}@10"], field
    assert houses_row["|Δsize|@10"] < 0.75 * chance["|Δsize|@10"]
    assert houses_row["|Δprice|@10"] < 0.1 * chance["|Δprice|@10"]


def test_plot_embedding_writes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    out = plot_embedding(
        rng.normal(size=(40, 5)), ["red", "blue"] * 20, tmp_path / "p.png", title="t"
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numeric = plot_embedding(
        rng.normal(size=(40, 5)), list(rng.normal(size=40)), tmp_path / "n.png"
    )
    assert numeric.stat().st_size > 1000


def test_training_command_writes_an_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedspace_models.training.__main__ import main

    out = tmp_path / "houses"
    assert main(["train", "houses-by-price", "--out", str(out), "--seed", "2", "--tiny"]) == 0
    printed = json.loads(capsys.readouterr().out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert printed["metrics"] == manifest["metrics"]
    assert manifest["data"]["seed"] == 2 and manifest["training"]["tiny"] is True


def test_evaluation_embeds_the_artifacts_as_the_service_does(shipped: dict) -> None:
    images = shapes.generate(40, seed=9, stream=1).images
    records = houses.generate(40, seed=9, stream=1).records
    for name in SHIPPED:
        inputs = records if name == "houses-by-price" else images
        ours, served = artifact_embedder(MODELS / name), encoder_embedder(shipped[name])
        assert ours.metric == served.metric
        assert np.allclose(ours.embed(inputs), served.embed(inputs), atol=1e-5), name
    tables = evaluate_artifacts(n=300)
    assert tables["shapes"].rows["shapes-by-colour"]["colour@10"] >= 0.9
    assert tables["houses"].rows["houses-by-price"]["price probe R²"] >= 0.9
    # The artifact-format module did not shadow the package's `artifact(NAME)`.
    import embedspace_models

    assert embedspace_models.artifact("houses-by-price") == MODELS / "houses-by-price"


# What serving trained encoders needs from embedspace_models. The command line alone may reach
# training and evaluation (`embedspace train|demo|evaluate|plot`), inside those commands.
SERVING = {
    "embedspace_models",
    "embedspace_models.architectures",
    "embedspace_models.artifacts",
    "embedspace_models.schema",
}
COMMANDS = {"embedspace_models.training", "embedspace_models.evaluation"}


def _is_module(name: str) -> bool:
    if name == "embedspace_models":
        return True
    if not name.startswith("embedspace_models."):
        return False
    path = MODELS.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for each absolute import in a source file, including
    `importlib.import_module("...")`; `from package import module` names the module."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, nested) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if _is_module(sub) else node.module, nested))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            argument = node.args[0] if node.args else None
            if name in ("import_module", "__import__") and isinstance(argument, ast.Constant):
                found.append((str(argument.value), nested))
        inner = nested or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def test_dependencies_run_from_the_server_to_the_models_only() -> None:
    models_sources = sorted(MODELS.rglob("*.py"))
    assert {"artifacts.py", "train.py", "geometry.py"} <= {p.name for p in models_sources}
    for path in models_sources:
        for module, _ in _imports(path):
            top = module.split(".")[0]
            assert top != "embedspace_server", f"{path.relative_to(ROOT)} imports {module}"

    reached = set()
    for path in sorted(SERVER.rglob("*.py")):
        where = path.relative_to(ROOT)
        for module, nested in _imports(path):
            if module.split(".")[0] != "embedspace_models":
                continue
            reached.add(module)
            command = any(module == c or module.startswith(f"{c}.") for c in COMMANDS)
            if path.relative_to(SERVER).parts[0] == "cli" and nested and command:
                continue
            assert module in SERVING, f"{where} imports {module}; serving needs only {SERVING}"
    assert {"embedspace_models.artifacts", "embedspace_models.schema"} <= reached
    assert not (SERVER / "training" / "__init__.py").exists()
    assert not (SERVER / "geometry.py").exists()
