"""Real data (MEASURING.md): sentences of gensim's corpora, and the most frequent English
words of wordfreq embedded with MiniLM, split into stored words and held-out queries (and
repeated with a little noise where a row needs more vectors than there are words)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from embedspace import Client
from harness import say

CACHE = Path.home() / ".cache" / "embedspace-bench"
DIM = 384
K = 10  # neighbours per query
CHUNK = 1000  # vectors per upsert


def short_sentences() -> list[str]:
    """Real short texts: the 4-16 word sentences of gensim's Lee corpus, shuffled."""
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="utf8", errors="replace") as f:
        docs = f.read().splitlines()
    sentences = [s.strip() for d in docs for s in re.split(r"(?<=[.!?])\s+", d) if s.strip()]
    short = [s for s in sentences if 4 <= len(s.split()) <= 16]
    order = np.random.default_rng(0).permutation(len(short))
    return [short[i] for i in order]


def review_sentences() -> list[str]:
    """Real sentences the int8 build was not calibrated on: gensim's film-review corpus."""
    from gensim.test.utils import datapath

    with open(datapath("pang_lee_polarity.cor"), encoding="latin-1") as f:
        return [line.split(" ", 1)[1].strip() for line in f if " " in line.strip()]


# A sentence ends at . ! or ? before a capital or an opening quote, but not after an
# abbreviation such as "St." or an initial such as "J.".
_SENTENCE_END = re.compile(r"(?<![A-Z][a-z]\.)(?<!\b[A-Z]\.)(?<=[.!?])\s+(?=[A-Z\"'(])")
_WIKI_DUMPS = (
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "enwiki-table-markup.xml.bz2",
)


def _prose(text: str, lo: int = 4, hi: int = 64) -> list[str]:
    """The whole sentences of `text` of lo..hi words (whitespace squeezed)."""
    out = []
    for s in _SENTENCE_END.split(text):
        s = " ".join(s.split())
        if s and lo <= len(s.split()) <= hi and s[0].isupper() and s[-1] in ".!?\"'":
            out.append(s)
    return out


def corpus_sentences(count: int) -> tuple[list[str], str]:
    """Up to `count` distinct real English sentences from gensim's test data, shuffled, and
    where they come from: the prose of the two English Wikipedia dumps (markup stripped
    by gensim's `filter_wiki`; lists, tables and headings left out), the Lee corpora, the
    para2para texts and the film-review snippets. No text is made up: if these hold fewer
    than `count`, fewer are returned (the description says how many)."""
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    from gensim.test.utils import datapath

    found: dict[str, list[str]] = {}
    for dump in _WIKI_DUMPS:
        with bz2.open(datapath(dump), "rb") as f:
            for _title, text, _id in extract_pages(f):
                for para in filter_wiki(text).replace("'''", "").replace("''", "").splitlines():
                    para = para.strip()
                    if para and para[0] not in "*|!={#:;":
                        found.setdefault("Wikipedia", []).extend(_prose(para))
    for name in ("lee_background.cor", "lee.cor", "para2para_text1.txt", "para2para_text2.txt"):
        with open(datapath(name), encoding="utf8", errors="replace") as f:
            found.setdefault("Lee" if "lee" in name else "para2para", []).extend(
                s for line in f for s in _prose(line)
            )
    found["film reviews"] = review_sentences()
    seen: dict[str, None] = {}
    for group in found.values():
        seen.update(dict.fromkeys(group))
    distinct = list(seen)
    order = np.random.default_rng(0).permutation(len(distinct))
    chosen = [distinct[i] for i in order[:count]]
    words = np.mean([len(s.split()) for s in chosen])
    parts = ", ".join(f"{k} {len(set(v))}" for k, v in found.items())
    about = (
        f"{len(chosen)} of {len(distinct)} distinct real sentences in gensim's test data "
        f"({parts}), shuffled; mean {words:.1f} words"
        + ("" if len(chosen) >= count else f"; FEWER THAN THE {count} ASKED FOR")
    )
    return chosen, about


def word_embeddings(model: Any, count: int) -> tuple[list[str], np.ndarray, str]:
    """The `count` most frequent English words of wordfreq and their MiniLM vectors.

    Embedded once and cached under ~/.cache/embedspace-bench/. wordfreq's list is ordered,
    so a longer cache serves a shorter request, and a shorter one is extended by embedding
    only the words it lacks.
    """
    import wordfreq

    version = importlib.metadata.version("wordfreq")
    CACHE.mkdir(parents=True, exist_ok=True)
    caches = sorted(
        CACHE.glob(f"minilm-wordfreq{version}-en-*.npy"), key=lambda p: int(p.stem.split("-")[-1])
    )
    words: list[str] = []
    vectors = np.zeros((0, DIM), np.float32)
    if caches:
        path = caches[-1]
        words = json.loads(path.with_suffix(".json").read_text())
        vectors = np.load(path, mmap_mode="r")
        if len(words) >= count:
            return words[:count], np.ascontiguousarray(vectors[:count]), f"cached in {path}"
    more = wordfreq.top_n_list("en", count)[len(words) :]
    say(f"embedding {len(more)} wordfreq words with MiniLM (once; cached afterwards)")
    start = time.monotonic()
    new = model.encode(more, batch_size=256, convert_to_numpy=True, show_progress_bar=False)
    words = words + more
    vectors = np.concatenate([np.asarray(vectors, np.float32), np.asarray(new, np.float32)])
    path = CACHE / f"minilm-wordfreq{version}-en-{count}.npy"
    np.save(path, vectors)
    path.with_suffix(".json").write_text(json.dumps(words))
    for old in caches:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    took = time.monotonic() - start
    return words, vectors, f"{len(more)} embedded in {took:.0f}s, cached in {path}"


def distinct(words: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Keeps the first of words that embed to the same vector (MiniLM maps many emoji and
    symbols to its unknown token): exact ties would make recall depend on tie-breaking."""
    _, first = np.unique(vectors, axis=0, return_index=True)
    keep = np.sort(first)
    return [words[i] for i in keep], vectors[keep]


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(out, np.float32)


def bulk_vectors(base: np.ndarray, n: int, noise: float = 0.01) -> np.ndarray:
    """`n` unit vectors: `base` (real embeddings) and then, as often as needed, copies of it
    perturbed by Gaussian noise of `noise` per component (seeded by the copy's number) and
    normalised again, so that every row is distinct and the data stays deterministic."""
    parts, have, copy = [], 0, 0
    while have < n:
        take = min(len(base), n - have)
        part = np.asarray(base[:take], np.float32)
        if copy:
            rng = np.random.default_rng(copy)
            part = unit(part + noise * rng.standard_normal(part.shape, np.float32))
        parts.append(part)
        have, copy = have + take, copy + 1
    return np.ascontiguousarray(np.concatenate(parts))


@dataclass(frozen=True)
class WordSet:
    """Stored words with their unit vectors, and held-out words as queries."""

    words: list[str]
    vectors: np.ndarray
    qwords: list[str]
    queries: np.ndarray
    about: str  # where they come from, for the report

    def upload(self, client: Client, name: str) -> float:
        """Upserts every stored word into collection `name`; the seconds it took."""
        start = time.monotonic()
        for i in range(0, len(self.words), CHUNK):
            client.upsert(name, self.words[i : i + CHUNK], vectors=self.vectors[i : i + CHUNK])
        return time.monotonic() - start


def word_set(model: Any, n: int, queries: int) -> WordSet:
    """The first n + queries distinct word vectors, shuffled; n stored, the rest held out."""
    want = n + queries
    words, vectors, how = word_embeddings(model, int(want * 1.01) + 200)
    total = len(words)
    words, vectors = distinct(words, vectors)
    if len(words) < want:
        raise SystemExit(f"only {len(words)} distinct word vectors; need {want}")
    words, vectors = words[:want], vectors[:want]
    order = np.random.default_rng(0).permutation(want)
    return WordSet(
        words=[words[i] for i in order[:n]],
        vectors=unit(vectors[order[:n]]),
        qwords=[words[i] for i in order[n:]],
        queries=unit(vectors[order[n:]]),
        about=f"vectors (K, K2, A, M): MiniLM embeddings of the most frequent English words "
        f"of wordfreq ({how}): the first {want} distinct vectors of {total} words, "
        f"shuffled; {n} stored, {queries} held out as queries. Real data, so "
        "K and K2 need no random stand-in",
    )
