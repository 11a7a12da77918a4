"""Resource managers, chosen by name (`resource_manager` setting).

The registry maps a name to `(module, class)` and imports lazily (Libcloud's habit).
"""

from __future__ import annotations

import importlib

from cellar.domain.errors import BadRequest
from cellar.resource_managers.base import ResourceManager

_REGISTRY: dict[str, tuple[str, str]] = {
    "native": ("cellar.resource_managers.native", "NativeManager"),
    "orchestrator": ("cellar.resource_managers.orchestrator", "OrchestratorManager"),
    "migration": ("cellar.resource_managers.migration", "MigrationManager"),
}


def available() -> list[str]:
    """The names a deployment may choose for `resource_manager`."""
    return sorted(_REGISTRY)


def manager_class(name: str) -> type[ResourceManager]:
    try:
        module_name, class_name = _REGISTRY[name]
    except KeyError:
        raise BadRequest(
            "resource_manager", f"unknown manager {name!r}; choose one of {', '.join(available())}"
        ) from None
    cls: type[ResourceManager] = getattr(importlib.import_module(module_name), class_name)
    return cls
