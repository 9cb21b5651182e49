"""Named plug-ins of one kind: one registry class for backends, sensors, spaces, tasks, ...

Every extension point of hilnas is a class registered under a name with a decorator
(`@register_backend("litert")`, `@register_space("half")`, ...) and looked up by that name
from a configuration or a command line. Built-in plug-ins are imported lazily: a module per
name (`modules`, so a board never imports a backend it cannot run) or every module of a
package (`package`). A duplicate name is an error; an unknown one is a ConfigError that
lists the known names. It lives in the agent package because both sides use it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from device_agent.errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes of one kind by name (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        *,
        modules: Mapping[str, str] | None = None,
        package: str | None = None,
    ) -> None:
        self.kind = kind
        self.modules = dict(modules or {})
        self.package = package
        self._items: dict[str, T] = {}
        self._package_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: make the class available as `name` (and set its `name`)."""

        def decorator(cls: T) -> T:
            if name in self._items and self._items[name] is not cls:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return decorator

    def _load_package(self) -> None:
        if self.package is None or self._package_loaded:
            return
        self._package_loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name != "base":
                importlib.import_module(f"{self.package}.{info.name}")

    def get(self, name: str) -> T:
        """The class registered as `name`, importing its built-in module on first use."""
        if name not in self._items:
            if name in self.modules:
                importlib.import_module(self.modules[name])
            else:
                self._load_package()
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Every registered name, built-in ones included (without importing per-name ones)."""
        self._load_package()
        return sorted(set(self._items) | set(self.modules))
