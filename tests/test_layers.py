"""The package's layers, checked on every import statement (lazy ones inside functions too).

Each layer may import only from itself and the layers below it, so a newcomer can read igc from
the bottom up: core (types, protocols, numerics, container format, tokenizers, images) < engines
(the float and integer computation) < models, coders < codec < compressors, reporters < plugins
< benchmark < api, training < cli. Packages that share a layer do not import each other
(siblings), imports are absolute, and no module imports itself back through others (no cycle,
lazy imports included). igc/core imports no plugin machinery; the CLI composes nothing itself (it
goes through igc.api); no module imports another's private names. The only exemptions are listed
in EXEMPT, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "igc"
LAYERS = (
    ("igc.errors",),
    ("igc.core",),
    ("igc.engines",),
    ("igc.models", "igc.coders"),
    ("igc.codec",),
    ("igc.compressors", "igc.reporters"),
    ("igc.plugins",),
    ("igc.benchmark",),
    ("igc.api", "igc.training"),
    ("igc.cli",),
    ("igc", "igc.__main__"),
)
CLI_MAY_IMPORT = ("igc.api", "igc.errors", "igc.core", "igc.cli", "igc.training", "igc")
# (importing module, imported name) -> why the rules above let it pass
EXEMPT = {
    ("igc.cli.app", "igc.__version__"): "the version string is metadata, not code of the layer",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def top(name: str) -> str:
    """The layer entry a module belongs to (the longest listed prefix)."""
    return max((p for group in LAYERS for p in group if within(name, p)), key=len)


def layer(name: str) -> int:
    best = top(name)
    return next(i for i, group in enumerate(LAYERS) if best in group)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every absolute import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def relative_imports(path: Path) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.level > 0]


MODULES = sorted(PACKAGE.rglob("*.py"))


MODULE_NAMES = {module_name(p) for p in MODULES}


def targets_of(source: str, target: str, names: list[str]) -> list[str]:
    """The igc modules an import statement loads: `from a.b import c` is a.b.c where c is a
    module, else a.b; exempt names are left out."""
    out = []
    for name in names or [None]:
        full = f"{target}.{name}" if name else target
        if (source, full) in EXEMPT:
            continue
        out.append(full if full in MODULE_NAMES else target)
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the igc modules it imports (lazily or not)."""
    edges: dict[str, set[str]] = {}
    for path in MODULES:
        source = module_name(path)
        edges[source] = {t for target, names, _ in imports(path) if within(target, "igc")
                         for t in targets_of(source, target, names) if t != source}
    return edges


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_layer_reaches_up_nor_across(path):
    source = module_name(path)
    assert not relative_imports(path), (
        f"{source}:{relative_imports(path)[0]} uses a relative import; write the absolute path")
    for target, names, line in imports(path):
        if not within(target, "igc"):
            continue
        for t in targets_of(source, target, names):
            assert layer(t) <= layer(source), f"{source}:{line} imports {t}, a layer above it"
            if layer(t) == layer(source):
                assert top(t) == top(source), (
                    f"{source}:{line} imports {t}: {top(source)} and {top(t)} share a layer, so "
                    "neither may import the other")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module: import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, f"modules that import each other (directly or through others): {found}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A relative import, a sibling import and a cycle are each found (the checks can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from . import x\nfrom igc.coders.range import RangeCoder\n")
    assert relative_imports(bad) == [1]
    assert top("igc.coders.range") != top("igc.models.imagegpt")
    assert layer("igc.coders.range") == layer("igc.models.imagegpt")
    assert targets_of("igc.models.x", "igc.models", ["catalog"]) == ["igc.models.catalog"]
    assert targets_of("igc.cli.app", "igc", ["__version__"]) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_plugin_layer_uses_pluggy_and_no_private_names_cross(path):
    source = module_name(path)
    for target, names, line in imports(path):
        if within(target, "pluggy"):
            assert within(source, "igc.plugins"), f"{source}:{line} imports pluggy"
        if within(target, "igc") and target != source:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{source}:{line} imports private {private} from {target}"


def test_core_imports_no_plugin_machinery():
    for path in (PACKAGE / "core").rglob("*.py"):
        for target, _, line in imports(path):
            assert not within(target, "pluggy") and not within(target, "igc.plugins"), (
                f"{module_name(path)}:{line} imports {target}")


def test_the_cli_is_a_thin_layer_over_the_api():
    for path in (PACKAGE / "cli").rglob("*.py"):
        for target, _, line in imports(path):
            if within(target, "igc"):
                assert any(within(target, p) for p in CLI_MAY_IMPORT), (
                    f"{module_name(path)}:{line} imports {target}: go through igc.api")


def test_built_ins_are_listed_in_one_module():
    """Only igc/plugins/builtins.py implements hooks inside igc; it registers like a plugin."""
    hooks = [p for p in MODULES if "@hookimpl" in p.read_text()]
    assert [p.relative_to(PACKAGE).as_posix() for p in hooks] == ["plugins/builtins.py"]


def test_igc_bench_is_the_function_and_the_benchmark_package_has_another_name():
    import igc
    from igc.benchmark import run  # noqa: F401

    assert callable(igc.bench) and igc.bench.__module__ == "igc.api"
    assert not (PACKAGE / "bench").exists()
