"""The part both wrapper modules share: one generated class per registered core, made lazily."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from ..augment import REGISTRY

__all__ = ["GeneratedTransforms"]


class GeneratedTransforms:
    """``{core name: generated class}`` of one wrapper module, kept in step with the augment registry.

    ``make(name, core_class)`` builds one class; each is also put into the module's namespace and
    ``__all__``, so ``from medrobust.integrations.monai import RandConvd`` works, also for a core
    registered after the module was imported (through the module's ``__getattr__``, :meth:`hooks`).
    """

    def __init__(self, make: Callable[[str, type], type], namespace: MutableMapping[str, Any], exports: list[str]):
        self.make, self.namespace, self.exports = make, namespace, exports
        self.classes: dict[str, type] = {}

    def generate(self) -> dict[str, type]:
        """Make the classes of cores not seen yet; returns ``{core name: class}``."""
        for name, cls in sorted(REGISTRY.items()):
            if name not in self.classes:
                t = self.make(name, cls)
                self.classes[name] = t
                self.namespace[t.__name__] = t
                if t.__name__ not in self.exports:
                    self.exports.append(t.__name__)
        return self.classes

    def get(self, name: str) -> type:
        """The class of registry core ``name`` (``ValueError`` listing the names otherwise)."""
        classes = self.generate()
        if name.lower() not in classes:
            raise ValueError(f"unknown core {name!r}; choose one of {sorted(classes)}")
        return classes[name.lower()]

    def hooks(self, module: str) -> tuple[Callable[[str], Any], Callable[[], Sequence[str]]]:
        """The module-level ``__getattr__`` and ``__dir__`` that generate the classes of late cores."""

        def __getattr__(attr: str) -> Any:
            self.generate()
            if attr in self.namespace:
                return self.namespace[attr]
            raise AttributeError(f"module {module!r} has no attribute {attr!r}")

        def __dir__() -> Sequence[str]:
            self.generate()
            return sorted(self.namespace)

        return __getattr__, __dir__
