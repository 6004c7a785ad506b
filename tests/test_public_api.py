"""The public API is declared and documented: every public module of ticketlab (no underscore in its
dotted name, not ``cli``) has ``__all__``; each name there resolves and has a docstring of its own; and
no public function or class the module defines is left out of ``__all__``.

A constant (a tuple, a dict, a number) cannot carry a docstring, so it is documented where it is
assigned, in one of the forms Sphinx reads: a ``#:`` comment on the line(s) above or at the end of the
assignment, or a string literal right after it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

import ticketlab

# optional extras (pyproject's [project.optional-dependencies]): a module that needs a missing one skips
OPTIONAL = {"numba", "dask", "distributed", "mlxtend", "sklearn", "pyarrow"}


def public_modules() -> list[str]:
    names = ["ticketlab"] + [m.name for m in pkgutil.walk_packages(ticketlab.__path__, "ticketlab.")]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split("."))
                  and n != "ticketlab.cli" and not n.startswith("ticketlab.cli."))


def import_public(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs the optional {err.name} (not installed)")
        raise


def own_docstring(obj) -> str:
    """The docstring written for obj, not one Python makes up or inherits."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        auto = dataclasses.is_dataclass(obj) or (issubclass(obj, tuple) and hasattr(obj, "_fields"))
        if auto and doc.startswith(obj.__name__ + "("):  # the signature dataclasses/namedtuple put there
            return ""
        return doc.strip()
    return (getattr(obj, "__doc__", None) or "").strip()


def documents_data(obj) -> bool:
    """Whether obj is a plain value (documented at its assignment) rather than a function, class or module."""
    return not (inspect.isroutine(obj) or inspect.isclass(obj) or inspect.ismodule(obj)
                or type(obj).__module__.startswith("numba"))


def assignment_documented(module, name: str, depth: int = 0) -> bool:
    """Whether ``name`` is documented where ``module`` assigns it (following ``from .x import name``)."""
    path = getattr(module, "__file__", None)
    if not path or depth > 5:
        return False
    source = Path(path).read_text()
    lines = source.splitlines()
    body = ast.parse(source).body
    for i, node in enumerate(body):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        names |= {e.id for t in targets if isinstance(t, ast.Tuple) for e in t.elts if isinstance(e, ast.Name)}
        if name in names:
            above = node.lineno - 2
            if above >= 0 and lines[above].lstrip().startswith("#:"):
                return True
            if "#:" in lines[node.lineno - 1] or "#:" in lines[node.end_lineno - 1]:
                return True
            after = body[i + 1] if i + 1 < len(body) else None
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                return bool(after.value.value.strip())
            return False
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            base = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            source_name = f"{base}.{node.module}" if node.level and node.module else node.module if not node.level else base
            source_module = sys.modules.get(source_name) or importlib.import_module(source_name)
            return assignment_documented(source_module, original, depth + 1)
    return False


MODULES = public_modules()

# Modules owned by another change in flight when this test was written: each lacks ``__all__`` until its
# owner adds it. strict, so the entry must go as soon as the module is fixed.
PENDING: set[str] = set()  # modules not yet declaring __all__ (xfail, strict): none left


def test_walk_finds_the_public_modules():
    assert {"ticketlab", "ticketlab.oracle", "ticketlab.engine", "ticketlab.deep.data.files",
            "ticketlab.experiments.fig4"} <= set(MODULES)
    assert not [m for m in MODULES if ".cli" in m or "._" in m]


def check_module(name: str) -> list[str]:
    module = import_public(name)
    problems = []
    exported = getattr(module, "__all__", None)
    if not isinstance(exported, (list, tuple)) or not all(isinstance(n, str) for n in exported):
        return [f"{name}: no __all__ (a list of names)"]
    if len(set(exported)) != len(exported):
        problems.append(f"{name}: __all__ repeats a name")
    if not own_docstring(module):
        problems.append(f"{name}: no module docstring")
    for attr in exported:
        if not hasattr(module, attr):
            problems.append(f"{name}.{attr}: in __all__ but not defined")
            continue
        obj = getattr(module, attr)
        if documents_data(obj):
            if not assignment_documented(module, attr):
                problems.append(f"{name}.{attr}: constant without a '#:' comment or a docstring after it")
        elif not own_docstring(obj):
            problems.append(f"{name}.{attr}: no docstring")
    for attr, obj in vars(module).items():
        if attr.startswith("_") or attr in exported:
            continue
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", None) == name:
            problems.append(f"{name}.{attr}: public {'class' if inspect.isclass(obj) else 'function'} missing from __all__")
    return problems


@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason="pending: no __all__ yet"))
                                  if m in PENDING else m for m in MODULES])
def test_public_module_declares_and_documents_its_names(name):
    problems = check_module(name)
    assert not problems, "\n".join(problems)


def test_the_check_catches_what_it_should(tmp_path, monkeypatch):
    """The checker on modules built to fail (and one built to pass), so a pass above means something."""
    pkg = tmp_path / "apicheck_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Probe."""\n')
    (pkg / "good.py").write_text('"""Good."""\nfrom dataclasses import dataclass\n__all__ = ["f", "C", "LIMIT", "NAMES"]\n'
                                 '#: the largest n\nLIMIT = 3\nNAMES = ("a",)\n"""The names."""\n'
                                 'def f():\n    """Doc."""\n@dataclass\nclass C:\n    """Doc."""\n    x: int = 0\n'
                                 'def _private():\n    pass\n')
    (pkg / "bad.py").write_text('"""Bad."""\nfrom dataclasses import dataclass\n__all__ = ["f", "C", "LIMIT", "ghost"]\n'
                                'LIMIT = 3\ndef f():\n    pass\n@dataclass\nclass C:\n    x: int = 0\n'
                                'def forgotten():\n    """Doc."""\n')
    (pkg / "bare.py").write_text('"""Bare."""\ndef f():\n    """Doc."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check_module("apicheck_probe.good") == []
    bad = check_module("apicheck_probe.bad")
    for expected in ("bad.f: no docstring", "bad.C: no docstring", "bad.LIMIT: constant", "bad.ghost: in __all__",
                     "bad.forgotten: public function missing"):
        assert any(expected in p for p in bad), (expected, bad)
    assert check_module("apicheck_probe.bare") == ["apicheck_probe.bare: no __all__ (a list of names)"]
