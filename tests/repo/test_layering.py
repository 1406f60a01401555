"""The package's import structure: the model modules of the CHILI benchmark import each other
without a cycle (building blocks in ``layers``, the model factory in ``gnns``)."""

import ast
from pathlib import Path

import nanosolve

PACKAGE = Path(nanosolve.__file__).resolve().parent


def _imports(path: Path, prefix: str) -> set[str]:
    """Every module under ``prefix`` that ``path`` imports, at any depth of the file (lazy ones too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix):
            out.add(node.module[len(prefix):].split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name[len(prefix):].split(".")[0] for a in node.names if a.name.startswith(prefix))
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            return path[path.index(m):] + [m]
        if state.get(m) == 2:
            return None
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            found = visit(d, path + [m])
            if found:
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        found = visit(m, [])
        if found:
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_chili_bench_modules_import_without_a_cycle():
    folder = PACKAGE / "models" / "chili_bench"
    graph = {f.stem: _imports(f, "nanosolve.models.chili_bench.") for f in folder.glob("*.py") if f.stem != "__init__"}
    assert graph["layers"] == set() and "gnns" not in graph["local"] | graph["pairdist"]
    assert _cycle(graph) is None, _cycle(graph)


LAYERS = ["structures", "scattering", "datasets", "models", "solve", "cli"]


def test_imports_only_point_down_the_layers():
    bad = []
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE).parts
        if len(rel) < 2 or rel[0] not in LAYERS:
            continue
        for other in _imports(f, "nanosolve."):
            if other in LAYERS and LAYERS.index(other) > LAYERS.index(rel[0]):
                bad.append(f"{'/'.join(rel)} imports nanosolve.{other}")
    assert not bad, bad
