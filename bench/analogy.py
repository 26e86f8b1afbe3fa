"""Analogy quality through the service, against gensim on the very same vectors.

Run a server (`make serve`), then: .venv/bin/python bench/analogy.py [--target HOST:PORT]

Embeds the 905 words of gensim's Google analogy set (questions-words.txt) with an encoder
through the service, answers every question a:b :: c:? with `analogy` (3CosAdd and
3CosMul), and prints the accuracy of each and how often the service's top answer equals
gensim's `most_similar` / `most_similar_cosmul` on the vectors the service stored.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
from embedspace import Client, NotFound, Ref
from gensim.models import KeyedVectors
from gensim.test.utils import datapath


def questions() -> list[tuple[str, str, str, str]]:
    with open(datapath("questions-words.txt")) as f:
        return [tuple(line.split()) for line in f if not line.startswith(":")]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--limit", type=int, default=0, help="first N questions (0: all)")
    args = parser.parse_args()
    qs = questions()[: args.limit or None]
    words = sorted({w for q in qs for w in q})
    name = "bench-analogy-words"
    with Client(args.target, timeout=120) as es:
        with contextlib.suppress(NotFound):
            es.drop_collection(name)
        es.create_collection(name, args.encoder)
        for i in range(0, len(words), 512):
            es.upsert(name, words[i : i + 512], items=words[i : i + 512])
        kv = KeyedVectors(es.describe(name).dim)
        kv.add_vectors(words, np.stack([s.vector for s in es.get(name, words)]))
        rows = []
        for method, fn in (("add", kv.most_similar), ("mul", kv.most_similar_cosmul)):
            correct = agree = 0
            service_s = gensim_s = 0.0
            for a, b, c, d in qs:
                t0 = time.perf_counter()
                ours = es.analogy(name, [Ref(b), Ref(c)], [Ref(a)], k=1, method=method)[0].id
                t1 = time.perf_counter()
                theirs = fn(positive=[b, c], negative=[a], topn=1)[0][0]
                t2 = time.perf_counter()
                service_s, gensim_s = service_s + t1 - t0, gensim_s + t2 - t1
                correct += ours == d
                agree += ours == theirs
            rows.append((method, correct, agree, service_s, gensim_s))
        es.drop_collection(name)
    n = len(qs)
    print(f"{n} questions over {len(words)} words, encoder {args.encoder!r}")
    print(f"{'method':6} {'accuracy':>9} {'same top-1 as gensim':>21} {'ms/call':>8} "
          f"{'gensim ms':>10} {'ratio':>6}")  # fmt: skip
    for method, correct, agree, service_s, gensim_s in rows:
        print(f"{method:6} {correct / n:9.3f} {agree:>14}/{n:<6} {1e3 * service_s / n:8.2f} "
              f"{1e3 * gensim_s / n:10.2f} {service_s / gensim_s:6.1f}")  # fmt: skip
    print("reproduce: make serve; .venv/bin/python bench/analogy.py")


if __name__ == "__main__":
    main()
