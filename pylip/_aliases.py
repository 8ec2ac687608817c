"""The module paths of pylip's flat layout (before issue 15), and their aliases.

pylip's modules live in subpackages by concept (``lipsdp``, ``admm``, ``train``,
``experiments``; see the docs' architecture page). :data:`MOVED` maps every
module path of the old flat layout to its module today; it is the one table
both the alias finder below and the import rewriter of the layout change read.

An old path keeps importing: ``import pylip.mlp_training`` gives the very
module object ``pylip.train.mlp_training``. Paths in :data:`STAYING` are the
ones the README and the guides name as where a user-facing API lives; they stay
without a warning. The others were plumbing, and importing them by their old
path emits a :class:`DeprecationWarning` naming the new one.

``pylip.admm`` is not aliased: it is now the package of the Lipschitz steps,
which re-exports the old module's public names (the one-layer step itself is
``pylip.admm.step``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: Every module path of the flat layout -> its module today.
MOVED: dict[str, str] = {
    # weights -> a proven bound
    "pylip.activations": "pylip.lipsdp.activations",
    "pylip.lmi": "pylip.lipsdp.lmi",
    "pylip.certificate": "pylip.lipsdp.certificate",
    "pylip.reduced": "pylip.lipsdp.reduced",
    "pylip.engine": "pylip.lipsdp.engine",
    "pylip.solvers": "pylip.lipsdp.solvers",
    "pylip.proof": "pylip.lipsdp.proof",
    "pylip.repair": "pylip.lipsdp.repair",
    "pylip.margins": "pylip.lipsdp.margins",
    "pylip.local": "pylip.lipsdp.local",
    "pylip.memory": "pylip.lipsdp.memory",
    "pylip.sampling": "pylip.lipsdp.sampling",
    # the Lipschitz step (10b) of ADMM, one and many hidden layers
    "pylip.admm": "pylip.admm.step",
    "pylip.deep_admm": "pylip.admm.deep_step",
    "pylip.fast_step": "pylip.admm.fast_step",
    # the torch trainers and their kernels
    "pylip.training": "pylip.train.training",
    "pylip.mlp_training": "pylip.train.mlp_training",
    "pylip.sgd_kernel": "pylip.train.sgd_kernel",
    "pylip.cpu_arithmetic": "pylip.train.cpu_arithmetic",
    "pylip.threads": "pylip.train.threads",
    # the paper's examples and pylip's tasks
    "pylip.examples": "pylip.experiments.examples",
    "pylip.counterexample": "pylip.experiments.counterexample",
    "pylip.digits": "pylip.experiments.digits",
    "pylip.robustness": "pylip.experiments.robustness",
    "pylip.figures": "pylip.experiments.figures",
    "pylip.parity": "pylip.experiments.parity",
    "pylip.reference_data": "pylip.experiments.reference_data",
    "pylip.sweep": "pylip.experiments.sweep",
    "pylip.sweep_spec": "pylip.experiments.sweep_spec",
    "pylip.sweep_tasks": "pylip.experiments.sweep_tasks",
    "pylip.sweep_results": "pylip.experiments.sweep_results",
    "pylip.bulk_certify": "pylip.experiments.bulk_certify",
    "pylip.cluster": "pylip.experiments.cluster",
    # the original's names
    "pylip.compat": "pylip.original",
}

#: The old paths that stay without a warning (the README and the guides named them).
STAYING: frozenset[str] = frozenset(
    {
        "pylip.activations",
        "pylip.lmi",
        "pylip.certificate",
        "pylip.reduced",
        "pylip.solvers",
        "pylip.proof",
        "pylip.repair",
        "pylip.margins",
        "pylip.local",
        "pylip.sampling",
        "pylip.deep_admm",
        "pylip.fast_step",
        "pylip.training",
        "pylip.mlp_training",
        "pylip.examples",
        "pylip.counterexample",
        "pylip.digits",
        "pylip.robustness",
        "pylip.parity",
        "pylip.sweep",
        "pylip.compat",
    }
)

# Old paths that are real modules again (a package took the name): never aliased.
NOT_ALIASED: frozenset[str] = frozenset({"pylip.admm"})


def aliased(old: str) -> str | None:
    """The module an old path stands for, or None if ``old`` is no alias."""
    if old in NOT_ALIASED:
        return None
    return MOVED.get(old)


def _importer_stacklevel() -> int:
    """The ``stacklevel`` of the code that imported: past pylip's, importlib's and the import system's frames.

    :func:`warnings.warn` itself skips importlib's frames, so only pylip's are counted.
    """
    ours = (__file__, __file__.replace("_aliases.py", "__init__.py"), importlib.__file__)
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None:
        name = frame.f_code.co_filename
        if name not in ours and not name.startswith("<frozen importlib"):
            break
        frame = frame.f_back
        level += name in ours
    return level


class _AliasLoader(importlib.abc.Loader):
    """Gives the new module itself for an old path (one module object, two names)."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if self.old not in STAYING:
            warnings.warn(
                f"{self.old} moved to {self.new}; import it from there",
                DeprecationWarning,
                stacklevel=_importer_stacklevel(),
            )
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system just stamped the alias's spec on the module: give
        # it back its own, so that it stays the module it is under its new name.
        module.__spec__ = self._spec


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old flat-layout module paths (:data:`MOVED`) as their new modules."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = aliased(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, new))


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (once; pylip's ``__init__`` calls it).

    First, so that an old path means the new module even where a stale file of
    that name can still be found (an editable install of another checkout).
    """
    if not any(isinstance(finder, AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())


def module_attribute(name: str) -> ModuleType | None:
    """``pylip.<name>`` for an old module name (``pylip.engine``), imported on first use."""
    if aliased(f"pylip.{name}") is None:
        return None
    return importlib.import_module(f"pylip.{name}")
