"""Behaviour that depends on the real all-MiniLM-L6-v2 model, through the service."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from embedspace import Client, Ref
from gensim.models import KeyedVectors

from .words import analogy_questions, analogy_words


@pytest.fixture
def client(congruence_server) -> Iterator[Client]:
    """Each test runs against a FAISS collection and a two-shard one."""
    with Client(congruence_server.target, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def words_collection(congruence_server) -> Iterator[tuple[str, KeyedVectors]]:
    """The 905 analogy words embedded by the service, and gensim KeyedVectors holding the
    very vectors the service stored."""
    words = analogy_words()
    with Client(congruence_server.target, timeout=120) as es:
        es.create_collection("analogy-words", "minilm")
        for i in range(0, len(words), 256):
            chunk = words[i : i + 256]
            es.upsert("analogy-words", chunk, items=chunk)
        stored = es.get("analogy-words", words)
    kv = KeyedVectors(384)
    kv.add_vectors(words, np.stack([s.vector for s in stored]))
    yield "analogy-words", kv
    with Client(congruence_server.target, timeout=120) as es:
        es.drop_collection("analogy-words")


def test_embeddings_equal_sentence_transformers_own_output(client: Client, minilm) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "embedspace serves nearest neighbours over gRPC",
        "A man is playing a guitar.",
        "queen",
    ]
    model = SentenceTransformer(minilm.info.provenance.path, device="cpu")
    expected = model.encode(texts, convert_to_numpy=True)
    got = client.embed("minilm", texts)
    assert got.shape == (4, 384) and got.dtype == np.float32
    cos = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.99999, cos


def test_encoder_provenance_names_the_weights(client: Client) -> None:
    import hashlib
    from pathlib import Path

    (info,) = [e for e in client.encoders() if e.name == "minilm"]
    assert (info.dim, info.metric, info.item_kind) == (384, "cosine", "text")
    weights = Path(info.provenance.path) / "model.safetensors"
    assert info.provenance.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_king_minus_man_plus_woman_is_queen(client: Client, words_collection) -> None:
    name, _kv = words_collection
    answer = client.analogy(name, positive=["king", "woman"], negative=["man"], k=5)
    assert answer[0].id == "queen"
    assert {"king", "woman", "man"}.isdisjoint(n.id for n in answer)
    # The same with stored ids as terms.
    by_ref = client.analogy(name, [Ref("king"), Ref("woman")], [Ref("man")], k=5)
    assert [n.id for n in by_ref] == [n.id for n in answer]


def _assert_same_ranking(ours: list, theirs: list[tuple[str, float]]) -> None:
    assert len(ours) == len(theirs)
    np.testing.assert_allclose([n.score for n in ours], [s for _, s in theirs], atol=2e-5)
    for i, (n, (key, score)) in enumerate(zip(ours, theirs, strict=True)):
        if n.id != key:  # only a near-tie may swap places
            assert abs(n.score - score) < 2e-5 and abs(n.score - theirs[i ^ 1][1]) < 2e-5


@pytest.mark.parametrize("method", ["add", "mul"])
def test_analogies_match_gensim_on_the_same_vectors(
    client: Client, words_collection, method
) -> None:
    name, kv = words_collection
    questions = analogy_questions(limit_per_section=3)
    assert len(questions) >= 40
    gensim_fn = kv.most_similar if method == "add" else kv.most_similar_cosmul
    for a, b, c, _ in questions:
        ours = client.analogy(name, [Ref(b), Ref(c)], [Ref(a)], k=10, method=method)
        _assert_same_ranking(list(ours), gensim_fn(positive=[b, c], negative=[a], topn=10))


def test_weighted_analogy_and_vector_terms_match_gensim(client: Client, words_collection) -> None:
    name, kv = words_collection
    ours = client.analogy(name, [(Ref("Paris"), 2.0), Ref("Germany")], [(Ref("France"), -0.5)])
    theirs = kv.most_similar(positive=[("Paris", 2.0), "Germany"], negative=[("France", -0.5)])
    _assert_same_ranking(list(ours), theirs)
    vec = kv["Berlin"] * 3.0  # raw vectors are used as given, as gensim does
    ours = client.analogy(name, [vec, Ref("France")], [Ref("Germany")])
    _assert_same_ranking(
        list(ours), kv.most_similar(positive=[vec, "France"], negative=["Germany"])
    )
    np.testing.assert_allclose(
        ours.vector,
        kv.get_mean_vector([vec, "France", "Germany"], [1, 1, -1], post_normalize=True),
        atol=1e-6,
    )


def test_doesnt_match_and_mean_vector_match_gensim(client: Client, words_collection) -> None:
    name, kv = words_collection
    for group in (["Paris", "Berlin", "London", "banana"], ["boy", "girl", "king", "Tokyo"]):
        theirs = kv.doesnt_match(group)
        assert client.doesnt_match([Ref(w) for w in group], collection=name) == Ref(theirs)
        assert client.doesnt_match(group, collection=name) == theirs
    keys = ["king", "queen", "prince"]
    for pre, post, weights in [(True, False, None), (False, True, [1.0, -2.0, 0.5])]:
        ours = client.mean_vector([Ref(k) for k in keys], collection=name, weights=weights,
                                  pre_normalize=pre, post_normalize=post)  # fmt: skip
        theirs = kv.get_mean_vector(keys, weights, pre_normalize=pre, post_normalize=post)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_analogy_accuracy_is_reported_by_a_real_model(client: Client, words_collection) -> None:
    """MiniLM is a sentence model, not word2vec: it solves some analogies, not all. The
    service must agree with gensim on every one, right or wrong."""
    name, kv = words_collection
    questions = analogy_questions(limit_per_section=5)
    ours = [client.analogy(name, [b, c], [a], k=1)[0].id for a, b, c, _ in questions]
    theirs = [
        kv.most_similar(positive=[b, c], negative=[a], topn=1)[0][0] for a, b, c, _ in questions
    ]
    assert ours == theirs
    correct = sum(o == d for o, (_, _, _, d) in zip(ours, questions, strict=True))
    assert correct > 0
