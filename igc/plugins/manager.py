"""Finds plugins, collects what they register, and instantiates only what a user selects.

Built-in modules are registered the same way as third-party packages (which are found through the
`igc.plugins` entry-point group). Plugin code runs only inside guards: a plugin that fails to
import, or whose hook raises (even `SystemExit`; only KeyboardInterrupt passes), is recorded with
its error and shown by `igc plugins`, registers nothing, and breaks no other command.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from igc.errors import IgcError, PluginError, UsageError
from igc.plugins import hookspecs
from igc.plugins.markers import PROJECT

ENTRY_POINT_GROUP = "igc.plugins"
DISABLE_ENV = "IGC_DISABLE_PLUGINS"  # "1": load built-ins only
DISTRIBUTION = "igc-codec"  # the package on PyPI: its metadata gives the built-ins' version

BUILTIN_MODULES = ("igc.plugins.builtins",)  # the one module that lists igc's own pieces

KINDS = ("compressor", "tokenizer", "model", "coder", "reporter")


@dataclass
class Entry:
    """One registered name: what provides it and how to build it."""

    kind: str
    name: str
    factory: Any
    plugin: str

    @property
    def description(self) -> str:
        text = getattr(self.factory, "description", "") or (self.factory.__doc__ or "")
        return text.strip().splitlines()[0] if text.strip() else ""

    def unavailable_reason(self) -> str | None:
        check = getattr(self.factory, "available", None)
        if check is None:
            return None
        try:
            reason = check()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken availability probe means unavailable
            return f"availability check failed: {crash_line(exc)}"
        return str(reason) if reason else None


@dataclass
class PluginInfo:
    name: str
    version: str
    builtin: bool
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    distribution: str | None = None  # the installed package whose entry point loaded it


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}

    # -- loading -------------------------------------------------------------------------
    def add_plugin(self, obj: Any, name: str, version: str, builtin: bool,
                   distribution: str | None = None) -> None:
        """Register one plugin object (a module or an instance) and collect its registrations.

        A hook that raises leaves nothing of its plugin registered and the error in its
        `PluginInfo`; only a name clash (PluginError) and KeyboardInterrupt propagate.
        """
        info = PluginInfo(name=name, version=version, builtin=builtin, distribution=distribution)
        self.plugins[name] = info
        try:
            self.pm.register(obj, name=name)
        except ValueError as exc:  # pluggy: this object or name is already registered
            info.error = f"invalid plugin: {exc}"
            return
        try:
            # A misspelled hook (register_compresors) is an error, not silently ignored.
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            info.error = "invalid plugin: " + (str(exc).strip().splitlines() or [""])[0]
            return
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"register_{kind}s")
            impls = [impl for impl in hook.get_hookimpls() if impl.plugin_name == name]
            for impl in impls:
                try:
                    impl.function(self._registrar(kind, name, info))
                except (PluginError, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # SystemExit too: a plugin cannot end the host
                    self._drop(name, info)
                    info.error = f"register_{kind}s raised {crash_line(exc)}"
                    return

    def register(self, kind: str, factory: Any, name: str | None = None,
                 plugin: str = "igc") -> None:
        """Register one factory without a hook, as plugin `plugin`: for a registry a program
        builds for its own use (`igc speed` adds HuggingFace's ImageGPT to one)."""
        info = self.plugins.setdefault(plugin, PluginInfo(plugin, _own_version(), builtin=True))
        self._registrar(kind, plugin, info)(factory, name)

    def _drop(self, name: str, info: PluginInfo) -> None:
        """Forget everything plugin `name` registered (its hook failed half way)."""
        for kind, names in info.registered.items():
            for entry_name in names:
                self.entries[kind].pop(entry_name, None)
        info.registered.clear()
        self.pm.unregister(name=name)

    def _registrar(self, kind: str, plugin: str, info: PluginInfo):
        def register(factory: Any, name: str | None = None) -> None:
            entry_name = name or getattr(factory, "name", None)
            if not isinstance(entry_name, str) or not entry_name:
                raise PluginError(f"plugin {plugin!r} registered a {kind} without a name attribute")
            existing = self.entries[kind].get(entry_name)
            if existing is not None:
                raise PluginError(
                    f"{kind} {entry_name!r} is registered twice: by plugin {existing.plugin!r} "
                    f"and by plugin {plugin!r}; uninstall one of them"
                )
            self.entries[kind][entry_name] = Entry(kind, entry_name, factory, plugin)
            info.registered.setdefault(kind, []).append(entry_name)

        return register

    def load_builtins(self) -> None:
        for module_name in BUILTIN_MODULES:
            module = importlib.import_module(module_name)
            self.add_plugin(module, module_name, _own_version(), builtin=True)

    def load_entry_points(self) -> None:
        if entry_points_disabled():
            return
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            version = ep.dist.version if ep.dist is not None else "?"
            label = ep.dist.name if ep.dist is not None else ep.name
            try:
                obj = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit too; shown by `igc plugins`, never fatal
                if label in self.plugins and not self.plugins[label].error:
                    label = f"{label} ({ep.name})"
                self.plugins[label] = PluginInfo(label, version, builtin=False,
                                                 error=crash_line(exc))
                continue
            if self.pm.is_registered(obj):
                continue  # a second entry point to the same module: one plugin, loaded once
            if label in self.plugins:  # one package, two plugin modules
                label = f"{label} ({ep.name})"
            self.add_plugin(obj, label, version, builtin=False,
                            distribution=ep.dist.name if ep.dist is not None else None)

    # -- lookup --------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def has(self, kind: str, name: str) -> bool:
        return name in self.entries[kind]

    def entry(self, kind: str, name: str) -> Entry:
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            raise UsageError(f"unknown {kind} {name!r}; known: {known}{self.failed_hint()}"
                             ) from None

    def distribution(self, kind: str, name: str) -> str | None:
        """The distribution (pip package) that registered `name`, or None for igc's built-ins
        and plugins added by hand. Entry-point plugins are named after their distribution."""
        entry = self.entries[kind].get(name)
        info = self.plugins.get(entry.plugin) if entry is not None else None
        return None if info is None or info.builtin else info.distribution

    def failed_hint(self) -> str:
        """For "unknown name" errors: the plugins that failed to load may be why."""
        failed = [p.name for p in self.plugins.values() if p.error]
        return (f" (plugins that failed to load, see `igc plugins`: {', '.join(failed)})"
                if failed else "")

    def create(self, kind: str, name: str, **options: Any) -> Any:
        """Instantiate a registered factory, passing only the options it accepts."""
        entry = self.entry(kind, name)
        reason = entry.unavailable_reason()
        if reason:
            from igc.errors import CodecUnavailable

            raise CodecUnavailable(f"{kind} {name!r} is unavailable: {reason}")
        try:
            made = entry.factory(**_accepted(entry.factory, options))
        except (IgcError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if self.plugins[entry.plugin].builtin:
                raise  # igc's own bug: the CLI asks for a report
            raise PluginError(f"{kind} {name!r} of plugin {entry.plugin!r} failed to start: "
                              f"{crash_line(exc)}") from None
        if getattr(made, "plugin", None) is None:
            # so that later messages (bench's result checks) can name who made it
            with contextlib.suppress(AttributeError, TypeError):
                made.plugin = entry.plugin
        return made


def crash_line(exc: BaseException) -> str:
    """One line for an exception raised by plugin code: its type and first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _accepted(factory: Any, options: dict[str, Any]) -> dict[str, Any]:
    import inspect

    options = {k: v for k, v in options.items() if v is not None}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return options
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params}


def entry_points_disabled() -> bool:
    """Whether $IGC_DISABLE_PLUGINS keeps installed plugins from loading."""
    return os.environ.get(DISABLE_ENV, "").strip() not in ("", "0")


def _own_version() -> str:
    """igc's installed version (its distribution's metadata: no import of the package above)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


_registry: Registry | None = None


def get_registry(reload: bool = False) -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None or reload:
        registry = Registry()
        registry.load_builtins()
        registry.load_entry_points()
        _registry = registry
    return _registry
