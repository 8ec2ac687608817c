"""The package layout (issue 15): old flat module paths are the new modules; pylip works without torch."""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import pylip
from pylip import _aliases

ROOT = Path(pylip.__file__).resolve().parent.parent
ALIASED = sorted(old for old in _aliases.MOVED if _aliases.aliased(old))


def _import_or_skip(name: str):
    """Import ``name``; skip if a third-party extra it needs (torch, ...) is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("pylip"):
            pytest.skip(f"{name} needs {exc.name}")
        raise


def _module_file(name: str) -> Path:
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@pytest.mark.parametrize("old", ALIASED)
def test_old_module_path_is_the_new_module(old: str) -> None:
    new = _import_or_skip(_aliases.MOVED[old])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert importlib.import_module(old) is new
        assert getattr(pylip, old.rpartition(".")[2]) is new
    assert new.__name__ == new.__spec__.name == _aliases.MOVED[old]


@pytest.mark.parametrize("old", ALIASED)
def test_only_paths_not_meant_to_stay_warn(old: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _import_or_skip(_aliases.MOVED[old])
    monkeypatch.delitem(sys.modules, old, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module(old)
    moved = [w for w in caught if issubclass(w.category, DeprecationWarning) and old in str(w.message)]
    if old in _aliases.STAYING:
        assert moved == []
    else:
        assert len(moved) == 1
        assert _aliases.MOVED[old] in str(moved[0].message)
        assert moved[0].filename == __file__  # attributed to the importer, not to importlib


def test_every_old_path_has_a_module_and_no_file_is_left_at_it() -> None:
    for old, new in _aliases.MOVED.items():
        assert _module_file(new).is_file(), new
        if old not in _aliases.NOT_ALIASED:
            assert not _module_file(old).exists(), f"{old}: a file at the old path would shadow the alias"
    assert _aliases.STAYING <= set(_aliases.MOVED)


def _defined_at_top_level(path: Path) -> set[str]:
    """The public names a module's source defines itself (functions, classes, constants)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name for name in names if not name.startswith("_") and name != "logger"}


def test_the_admm_package_keeps_the_one_layer_steps_public_names() -> None:
    import pylip.admm
    import pylip.admm.step as step

    assert _defined_at_top_level(_module_file("pylip.admm.step")) == set(pylip.admm.__all__)
    for name in pylip.admm.__all__:
        assert getattr(pylip.admm, name) is getattr(step, name)


def test_unknown_attribute_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        pylip.no_such_module  # noqa: B018


def test_original_holds_the_originals_network_too() -> None:
    pytest.importorskip("torch")
    import pylip.original
    from pylip.train.training import MeinNetz

    assert pylip.original.MeinNetz is MeinNetz
    with pytest.raises(AttributeError, match="no attribute 'certify_split'"):
        pylip.original.certify_split  # noqa: B018
