"""The README's Python examples run as written, against a real server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from embedspace import Client

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section under `heading` (up to the next heading
    of the same or a higher level)."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.M)
    assert match, f"no section {heading!r} in the README"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    section = rest[: end.start()] if end else rest
    return re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)


@pytest.mark.slow
def test_the_python_quickstart_and_loading_examples_run(
    start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks("From Python") + python_blocks("Data in and out")
    assert len(blocks) == 2
    with start_server() as server:
        monkeypatch.setenv("EMBEDSPACE_TARGET", server.target)
        monkeypatch.chdir(ROOT)
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})
        with Client(server.target) as es:
            assert es.analogy("words", ["king", "woman"], ["man"])[0].id == "queen"
            assert es.count("examples") == 30
            assert es.search("examples", "a kitten sleeping in the sun", k=1)[0].id == "cat-nap"
