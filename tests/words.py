"""Real evaluation words: the 905 distinct words of gensim's Google analogy set."""

from __future__ import annotations

from functools import cache


@cache
def analogy_words() -> list[str]:
    from gensim.test.utils import datapath

    words: set[str] = set()
    with open(datapath("questions-words.txt")) as f:
        for line in f:
            if not line.startswith(":"):
                words.update(line.split())
    return sorted(words)


@cache
def analogy_questions(limit_per_section: int = 20) -> list[tuple[str, str, str, str]]:
    """The first questions of each section: (a, b, c, expected) for a:b :: c:expected."""
    from gensim.test.utils import datapath

    out: list[tuple[str, str, str, str]] = []
    taken = 0
    with open(datapath("questions-words.txt")) as f:
        for line in f:
            if line.startswith(":"):
                taken = 0
                continue
            if taken < limit_per_section:
                a, b, c, d = line.split()
                out.append((a, b, c, d))
                taken += 1
    return out
