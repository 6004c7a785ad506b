"""The package's shape: every module imports, no import cycle (lazy imports included), and tests reach
the CLI only to test the CLI."""

import ast
import importlib
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "ticketlab"
TESTS = pathlib.Path(__file__).resolve().parent


def _module_name(path: pathlib.Path) -> str:
    parts = ["ticketlab", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The ticketlab modules a module imports anywhere in its body (function-level imports too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a list of nodes (first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def _graph() -> dict[str, set[str]]:
    # a package's __init__ importing its own submodules is how a package is assembled, not a cycle
    return {n: {m for m in _imports(n, p) if not (p.name == "__init__.py" and m.startswith(n + "."))}
            for n, p in MODULES.items()}


def test_no_import_cycle():
    graph = _graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith("__main__")))
def test_every_module_imports(name):
    importlib.import_module(name)


def test_the_core_never_imports_the_edges():
    core = ("ticketlab.oracle", "ticketlab.engine", "ticketlab.init", "ticketlab.metrics", "ticketlab.population",
            "ticketlab.landscape", "ticketlab.pruning")
    edges = ("ticketlab.experiments", "ticketlab.sweep", "ticketlab.store", "ticketlab.cli", "ticketlab.app",
             "ticketlab.report")
    graph = _graph()
    bad = [(n, m) for n in graph if n.startswith(core) for m in graph[n] if m.startswith(edges)]
    assert not bad


def test_tests_import_the_cli_only_to_test_it():
    """Tests build configs and run experiments through ticketlab.app; a test file that imports the CLI
    drives it (CliRunner or main) and takes nothing of the application layer from it."""
    app_names = {"make_config", "run_experiment", "build_report", "plot_experiment", "parse_value", "DEFAULT_STORE"}
    for path in sorted(TESTS.glob("test_*.py")):
        text = path.read_text()
        cli_imports = [n for n in ast.walk(ast.parse(text))
                       if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ticketlab.cli")]
        for node in cli_imports:
            taken = {a.name for a in node.names} & app_names
            assert not taken, f"{path.name} takes {taken} from {node.module}: import them from ticketlab.app"
        assert not cli_imports or "CliRunner" in text or "main(" in text, f"{path.name} imports the CLI, tests none"
