"""The library's import graph, read from the source (every import, lazy ones inside functions included):
token batches sit below prm/, rl/ and decoding/, prm/ imports nothing from rl/ or decoding/, and no
cycle runs between top-level modules or folders."""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "prmlab"


def _unit(module: str) -> str:
    """The top-level module or folder of ``prmlab.<unit>...``."""
    return module.split(".")[1] if "." in module else module


def _imports(path: Path) -> set[str]:
    """The prmlab modules ``path`` imports, relative imports resolved."""
    rel = path.relative_to(LIB.parent).with_suffix("").parts
    package = list(rel if path.name == "__init__.py" else rel[:-1])
    if package[-1] == "__init__":
        package = package[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                if node.module:
                    out.add(f"{base}.{node.module}")
                else:
                    out |= {f"{base}.{a.name}" for a in node.names}
            elif node.module and node.module.startswith("prmlab"):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("prmlab")}
    return {m for m in out if m.startswith("prmlab.")}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in LIB.rglob("*.py"):
        unit = path.relative_to(LIB).parts[0].removesuffix(".py")
        graph.setdefault(unit, set()).update(u for u in map(_unit, _imports(path)) if u != unit)
    return graph


def reachable(graph, start) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_reader_resolves_relative_and_lazy_imports():
    assert _unit("prmlab.prm.model") == "prm" and _unit("prmlab.tokens") == "tokens"
    graph = unit_graph()
    # prm/implicit.py imports token batches (`from ..tokens import ...`) and rl/ reaches prm/ lazily
    assert "tokens" in graph["prm"] and "prm" in graph["rl"] and "batching" in graph["sft"]


def test_token_batches_sit_below_prm_rl_and_decoding():
    graph = unit_graph()
    for low in ("batching", "tokens"):
        assert not reachable(graph, low) & {"prm", "rl", "decoding", "sampling", "studies", "runner"}, low
    assert not reachable(graph, "prm") & {"rl", "decoding"}


def test_no_cycle_between_modules_or_folders():
    graph = unit_graph()
    cycles = sorted((a, b) for a, deps in graph.items() for b in deps if a in reachable(graph, b))
    assert cycles == []
