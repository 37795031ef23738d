"""Registration by definition: every core defined under ``medrobust/augment`` is registered, importing
``medrobust.augment`` alone registers all of them, and every registered core is in the shared contract."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

import test_contract
from contract_kwargs import CONTRACT_KWARGS

import medrobust.augment as A
from medrobust.augment import REGISTRY, BatchAugment


def augment_modules() -> list[str]:
    names = [A.__name__]
    names += [m.name for m in pkgutil.walk_packages(A.__path__, prefix=f"{A.__name__}.")]
    for name in names:
        importlib.import_module(name)
    return names


def defined_cores() -> dict[str, type[BatchAugment]]:
    """``qualified name -> class`` of every BatchAugment subclass defined (not just imported) in augment."""
    found = {}
    for name in augment_modules():
        for _, obj in inspect.getmembers(sys.modules[name], inspect.isclass):
            if issubclass(obj, BatchAugment) and obj.__module__ == name:
                found[f"{name}.{obj.__qualname__}"] = obj
    return found


def test_every_concrete_core_defined_in_augment_is_registered():
    cores = defined_cores()
    assert len(cores) > len(REGISTRY) // 2  # the walk found the modules
    missing = [q for q, cls in cores.items() if not cls.abstract and REGISTRY.get(cls.registry_name or "") is not cls]
    assert not missing, f"cores defined but not registered (decorate with @register(name), or declare the class " \
                        f"abstract=True if it is a base): {missing}"
    registered_abstract = [q for q, cls in cores.items() if cls.abstract and cls in REGISTRY.values()]
    assert not registered_abstract, f"abstract classes in the registry: {registered_abstract}"
    bases = {q.rsplit(".", 1)[1] for q, cls in cores.items() if cls.abstract}
    assert {"SeverityCore", "NaturalCorruption", "MRICorruption", "Compose"} <= bases


def test_importing_the_package_registers_every_core():
    """A fresh interpreter that only imports ``medrobust.augment`` has the same registry as one that
    imported every module of the package (so ``augment/__init__.py`` imports every defining module)."""
    code = "import json, medrobust.augment as A; print(json.dumps(sorted(A.REGISTRY)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    augment_modules()
    assert fresh == sorted(REGISTRY), f"registered only after importing their module: {sorted(set(REGISTRY) - set(fresh))}"


def test_every_registered_core_is_in_the_contract_and_can_be_built():
    augment_modules()
    assert set(REGISTRY) == set(test_contract.NAMES), \
        f"not in the contract's parametrisation: {sorted(set(REGISTRY) - set(test_contract.NAMES))}"
    for name, cls in REGISTRY.items():
        params = inspect.signature(cls.__init__).parameters.values()
        required = {p.name for p in params if p.name != "self" and p.default is inspect.Parameter.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        given = set(CONTRACT_KWARGS[name]()) if name in CONTRACT_KWARGS else set()
        assert required <= given, f"{name}: the contract cannot build it; add {sorted(required - given)} to " \
                                  "tests/augment/contract_kwargs.py"
        assert set(cls.data_args) <= set(inspect.signature(cls.__init__).parameters), f"{name}: unknown data_args"
        assert isinstance(test_contract.make(name), cls)


def test_augment_imports_nothing_from_the_rest_of_medrobust():
    """augment is pure: torch/NumPy/SciPy and itself (the layer test in tests/test_architecture.py checks
    the source; this checks what importing it loads)."""
    code = ("import sys, json, medrobust.augment; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('medrobust.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    outside = [m for m in loaded if not m.startswith("medrobust.augment")]
    assert not outside, f"importing medrobust.augment loads {outside}"
