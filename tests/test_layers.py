"""The package's layers, checked on every import statement (lazy ones inside functions too).

Each layer may import only from itself and the layers below it, so a newcomer can read igc from
the bottom up: core (types, protocols, container format, tokenizers, images) < models, coders <
codec < compressors < bench < plugins < api, training < cli. igc/core imports no plugin machinery;
the CLI composes nothing itself (it goes through igc.api); no module imports another's private
names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "igc"
LAYERS = (
    ("igc.errors",),
    ("igc.core",),
    ("igc.models", "igc.coders"),
    ("igc.codec",),
    ("igc.compressors",),
    ("igc.bench",),
    ("igc.plugins",),
    ("igc.api", "igc.training"),
    ("igc.cli",),
    ("igc", "igc.__main__"),
)
CLI_MAY_IMPORT = ("igc.api", "igc.errors", "igc.core", "igc.cli", "igc.training", "igc")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(name: str) -> int:
    best = max((p for group in LAYERS for p in group if within(name, p)), key=len)
    return next(i for i, group in enumerate(LAYERS) if best in group)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_layer_reaches_up(path):
    source = module_name(path)
    for target, names, line in imports(path):
        if not within(target, "igc"):
            continue
        if target == "igc" and names:  # `from igc import x`: x may be a subpackage
            targets = [f"igc.{n}" if (PACKAGE / n).exists() or (PACKAGE / f"{n}.py").exists()
                       else "igc" for n in names if n != "__version__"]  # metadata: anyone
        else:
            targets = [target]
        for t in targets:
            assert layer(t) <= layer(source), f"{source}:{line} imports {t}, a layer above it"


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


def test_igc_bench_is_the_function_even_with_the_bench_package_loaded():
    import igc
    from igc.bench import run  # noqa: F401

    assert callable(igc.bench) and igc.bench.__module__ == "igc.api"
