"""docs/api.md is executed: every ```python block, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_python_blocks_are_found():
    blocks = python_blocks("x\n```python\na = 1\n```\n```bash\nno\n```\n```python\nb = 2\n```\n")
    assert blocks == ["a = 1\n", "b = 2\n"]


def test_api_doc_examples_run(capsys):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 4
    ns: dict = {"__name__": "api_doc"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), ns)
    out = capsys.readouterr().out
    assert "fig4" in out and "complete" in out and "no result store" in out
