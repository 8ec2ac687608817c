"""Packaging: the wheel ships the MIT LICENSE; the minimum-versions cell tests the declared bounds."""

from __future__ import annotations

import configparser
import email
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "pylip")


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel built offline from a copy of the sources (the venv's setuptools, no isolation)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment: the wheel cannot be built offline")
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(out), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (built,) = out.glob("pylip-*.whl")
    return zipfile.ZipFile(built)


def test_license_file_is_mit_with_the_holder() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "pylip developers" in text
    assert _setup_cfg()["metadata"]["license"] == "MIT"


def test_wheel_ships_the_license(wheel: zipfile.ZipFile) -> None:
    licences = [n for n in wheel.namelist() if re.fullmatch(r"pylip-[^/]+\.dist-info/(licenses/)?LICENSE", n)]
    assert licences, f"no LICENSE in the wheel: {wheel.namelist()}"
    assert wheel.read(licences[0]).decode() == (ROOT / "LICENSE").read_text()


def test_wheel_metadata_names_mit(wheel: zipfile.ZipFile) -> None:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(name))
    assert "MIT" in (metadata.get("License-Expression") or metadata.get("License") or "")
    assert metadata.get_all("License-File") == ["LICENSE"]


def _lower_bounds() -> dict[str, str]:
    """``name -> version`` of every ``name>=version`` in install_requires and the test, solvers extras."""
    parser = _setup_cfg()
    lines = parser["options"]["install_requires"].splitlines()
    for extra in ("test", "solvers"):
        lines += parser["options.extras_require"][extra].splitlines()
    bounds = {}
    for line in filter(None, (line.strip() for line in lines)):
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][0-9.]*)", line)
        assert match, f"setup.cfg requirement {line!r} has no plain lower bound"
        bounds[match.group(1).lower()] = match.group(2)
    return bounds


def _minimum_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints-minimum.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def _padded(version: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (3 - len(parts))


def test_minimum_constraints_are_the_declared_lower_bounds() -> None:
    bounds, pins = _lower_bounds(), _minimum_pins()
    assert set(pins) == set(bounds)
    for name, bound in bounds.items():
        assert _padded(pins[name]) == _padded(bound), f"{name}: setup.cfg >={bound}, cell {pins[name]}"


def _tox_env_list() -> set[str]:
    """tox.ini's env_list with its brace factors expanded (``py311-{a,b}`` -> both cells)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    cells: set[str] = set()
    for entry in parser["tox"]["env_list"].split():
        expanded = [""]
        for literal, options in re.findall(r"([^{]*)(?:\{([^}]*)\})?", entry):
            choices = options.split(",") if options else [""]
            expanded = [head + literal + choice for head in expanded for choice in choices]
        cells.update(expanded)
    return cells


def test_ci_runs_the_minimum_and_newest_solver_cells() -> None:
    cells = _tox_env_list()
    for kind in ("minimum", "newest"):
        for solver in ("clarabel", "scs", "cvxopt"):
            assert f"py311-{kind}-{solver}" in cells, f"py311-{kind}-{solver} is not in tox.ini's env_list"
    assert "py310-scs" in cells and "lint" in cells  # the expansion itself


def test_wheel_ships_every_subpackage_of_the_layout(wheel: zipfile.ZipFile) -> None:
    shipped = set(wheel.namelist())
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "pylip").rglob("*.py")}
    assert sources <= shipped, sorted(sources - shipped)
