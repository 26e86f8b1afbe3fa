#!/usr/bin/env python3
"""Generates client/embedspace/_async_client.py (AsyncClient) from _client.py (Client).

Each SDK call is written once, in `Client`; the async client is the same text with every
method `async def`, every call of a base-class primitive (`self._run(...)`, which runs one
call, and `self._ingest(...)`, the bulk loader) awaited, and every `Iterator` an
`AsyncIterator` (a method that yields becomes an async generator), on `AsyncBase` instead
of `BlockingBase`, so signatures and docstrings match by construction. The class docstring
keeps Client's, but for its first paragraph. The result is sorted and formatted with ruff.
With --check, fails if the committed file differs (`make lint` runs this).
"""

from __future__ import annotations

import ast
import difflib
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "client" / "embedspace" / "_client.py"
TARGET = REPO / "client" / "embedspace" / "_async_client.py"
COMMAND = "python scripts/gen_async_client.py"

MODULE_DOC = f'''# Generated from _client.py by scripts/gen_async_client.py: do not edit.
"""`AsyncClient`: the calls of `Client`, awaitable.

Each call is defined once, in `_client.py`. `{COMMAND}` writes this file
from it; `make lint` fails when it is stale.
"""
'''
CLASS_SUMMARY = """An asyncio client with the same methods as `Client`. Use `async with`, or
    `await close()`."""
# What the base classes provide in a blocking and an awaitable flavour.
PRIMITIVES = r"\bself\._(run|ingest)\("


def _replace_lines(lines: list[str], node: ast.stmt, text: str) -> None:
    """Replaces the source lines of `node` with `text`."""
    lines[node.lineno - 1 : node.end_lineno] = text.splitlines(keepends=True)


def _sub(pattern: str, repl: str, text: str, at_least: int) -> str:
    out, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if n < at_least:
        sys.exit(f"{SOURCE.name}: expected {pattern!r} at least {at_least} times; found {n}")
    return out


def generate() -> str:
    source = SOURCE.read_text()
    tree = ast.parse(source)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if [c.name for c in classes] != ["Client"]:
        sys.exit(f"{SOURCE.name} must define one class, Client; found {[c.name for c in classes]}")
    client = classes[0]
    if ast.get_docstring(client) is None or ast.get_docstring(tree) is None:
        sys.exit(f"{SOURCE.name}: the module and Client need docstrings (replaced here)")
    methods = [n for n in client.body if isinstance(n, ast.FunctionDef)]
    if any(m.name.startswith("_") for m in methods):
        sys.exit(f"{SOURCE.name}: Client holds the public calls only; move helpers to _base.py")

    # Bottom up, so that earlier line numbers stay valid.
    lines = source.splitlines(keepends=True)
    doc_node = client.body[0]
    doc = "".join(lines[doc_node.lineno - 1 : doc_node.end_lineno]).strip()
    _, _, rest = doc[3:-3].partition("\n\n")  # the paragraphs after the summary
    class_doc = CLASS_SUMMARY + ("\n\n" + rest if rest else "")
    _replace_lines(lines, doc_node, f'    """{class_doc}"""\n')
    _replace_lines(lines, tree.body[0], MODULE_DOC)
    text = "".join(lines)

    text = _sub(r"\bBlockingBase\b", "AsyncBase", text, at_least=2)
    text = _sub(r"^class Client\(", "class AsyncClient(", text, at_least=1)
    text = _sub(r"^    def ", "    async def ", text, at_least=len(methods))
    text = _sub(PRIMITIVES, r"await self._\1(", text, at_least=len(methods))
    text = re.sub(r"\bIterator\b", "AsyncIterator", text)
    # An async generator cannot `yield from`: the rule that asks for it does not apply here.
    text = text.replace("  # noqa: UP028", "")
    ruff = [sys.executable, "-m", "ruff"]
    for command in (["check", "--select", "I", "--fix", "--quiet"], ["format"]):
        text = subprocess.run(
            [*ruff, *command, "--stdin-filename", str(TARGET), "-"],
            input=text, capture_output=True, text=True, check=True, cwd=REPO,
        ).stdout  # fmt: skip
    return text


def main() -> int:
    text = generate()
    if sys.argv[1:] == ["--check"]:
        committed = TARGET.read_text() if TARGET.exists() else ""
        if committed != text:
            name = TARGET.relative_to(REPO)
            print(f"stale generated file: {name} (run {COMMAND})", file=sys.stderr)
            diff = difflib.unified_diff(
                committed.splitlines(), text.splitlines(), f"{name} (committed)",
                f"{name} (generated)", lineterm="",
            )  # fmt: skip
            print("\n".join(list(diff)[:20]), file=sys.stderr)
            return 1
        print("generated async client is fresh")
        return 0
    if sys.argv[1:]:
        sys.exit("usage: gen_async_client.py [--check]")
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
