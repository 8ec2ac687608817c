"""The sweep spec (``pylip sweep SPEC``): a TOML file, its schema and its validation.

A spec names a task, fixed settings and a grid; every grid point is one run
(:mod:`pylip.sweep`). Example (``examples/sweeps/digits_small.toml``)::

    task = "digits"            # "digits", "sin_example" or "classifier_example"
    out = "sweep-digits"       # output folder (optional; `--out` overrides it)
    plot_x = "L_des"           # x axis of the plots (optional; default L_des if it varies)

    [settings]                 # the same for every run (any parameter of the task)
    preset = "quick"
    eps = [0.1, 0.5]

    [grid]                     # the product of these lists is the set of runs
    L_des = [2.0, 4.0, 8.0]
    hidden = [[16], [16, 16]]  # hidden-layer widths: one list per architecture
    seed = {start = 0, stop = 3}   # a range: 0, 1, 2

    [[points]]                 # optional explicit runs, added to the product
    L_des = 3.0
    hidden = [32]
    seed = 0

A grid value is a list, or a range table: ``{start, stop, step}`` (``step``
defaults to 1; ``stop`` excluded, as Python's ``range``) or ``{start, stop,
num}`` (``num`` evenly spaced values, both ends included; ``log = true`` for a
geometric spacing). Every key of ``[settings]``, ``[grid]`` and
``[[points]]`` must be a parameter of the task (:data:`PARAMETERS`); a run's
parameters are the task's defaults, then ``[settings]``, then its grid values.

Parameters of ``digits`` (defaults from the preset, :class:`pylip.digits.DigitsSettings`):
``preset`` (``"full"``, ``"quick"``, ``"miniature"``), ``seed``, ``hidden``
(list of widths), ``mode`` (``"enforce"``: problem 12 with ``L_des``;
``"regularize"``: problem 9 with ``mu``), ``L_des``, ``mu``, ``rho``,
``T_update_every`` (0: ``T`` fixed; k: re-solved every k iterations, Remark 3),
``epochs``, ``lr``, ``batch_size``, ``l2``, ``admm_iterations``,
``epochs_per_iteration``, ``admm_lr``, ``n_train``, ``n_test``,
``test_fraction``, ``eps`` (list of l2 radii), ``pgd_steps``,
``pgd_restarts``, ``pgd_loss``, ``solver``.

Parameters of ``sin_example`` and ``classifier_example`` (the original
scripts' names, :class:`pylip.examples.Hyperparameters`; defaults the
script's): ``seed``, ``lr``, ``epochs``, ``epochs_nom``, ``epochs_L2``,
``rho``, ``mu``, ``lmbd``, ``it_ADMM``, ``ind_Lip``, and ``scale``, ``solver``,
``log_certificate_every`` (default 0 in sweeps: no certificate per logged step),
``log_certificate_method``. Their ``L_des`` is the L2 net's bound, as in the
original, so it is not a parameter.

:func:`load_spec` and :func:`validate_spec` raise :class:`pylip.errors.InputError`
naming the key and the fix before any run starts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

TASKS = ("digits", "sin_example", "classifier_example")
TOP_LEVEL_KEYS = ("task", "out", "plot_x", "settings", "grid", "points")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


@dataclass(frozen=True)
class Parameter:
    """One parameter of a task: its type (a check and its wording) and the allowed range."""

    kind: str  # "int", "number", "str", "widths", "radii", "solver"
    minimum: float | None = None
    strictly: bool = False  # minimum excluded
    choices: tuple[str, ...] = ()

    def check(self, key: str, value: Any) -> Any:
        """Return ``value`` (ints as floats for numbers) or raise :class:`InputError` naming ``key``."""
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "int": (_is_int, "an integer"),
            "number": (_is_number, "a finite number"),
            "str": (lambda v: isinstance(v, str), "a string"),
            "solver": (lambda v: isinstance(v, str), "a solver name (a string, e.g. \"CLARABEL\")"),
            "widths": (
                lambda v: isinstance(v, list) and bool(v) and all(_is_int(h) and h >= 1 for h in v),
                "a non-empty list of hidden-layer widths >= 1, e.g. [16] or [16, 16]",
            ),
            "radii": (
                lambda v: isinstance(v, list) and bool(v) and all(_is_number(e) and e > 0 for e in v),
                "a non-empty list of radii > 0, e.g. [0.1, 0.5]",
            ),
        }
        test, wording = checks[self.kind]
        if not test(value):
            raise InputError(f"{key} must be {wording}, got {value!r} ({type(value).__name__})")
        if self.choices and value not in self.choices:
            raise InputError(f"{key} must be one of {', '.join(map(repr, self.choices))}, got {value!r}")
        if self.minimum is not None and (value <= self.minimum if self.strictly else value < self.minimum):
            relation = ">" if self.strictly else ">="
            raise InputError(f"{key} must be {relation} {self.minimum:g}, got {value!r}")
        if self.kind == "number":
            return float(value)
        if self.kind == "radii":
            return [float(e) for e in value]
        return value


_POSITIVE = Parameter("number", 0.0, strictly=True)
_COUNT = Parameter("int", 1)

DIGITS_PARAMETERS: dict[str, Parameter] = {
    "preset": Parameter("str", choices=("full", "quick", "miniature")),
    "seed": Parameter("int", 0),
    "hidden": Parameter("widths"),
    "mode": Parameter("str", choices=("enforce", "regularize")),
    "L_des": _POSITIVE,
    "mu": Parameter("number", 0.0),
    "rho": _POSITIVE,
    "T_update_every": Parameter("int", 0),
    "epochs": _COUNT,
    "lr": _POSITIVE,
    "batch_size": _COUNT,
    "l2": Parameter("number", 0.0),
    "admm_iterations": _COUNT,
    "epochs_per_iteration": _COUNT,
    "admm_lr": _POSITIVE,
    "n_train": Parameter("int", 20),
    "n_test": Parameter("int", 20),
    "test_fraction": _POSITIVE,
    "eps": Parameter("radii"),
    "pgd_steps": _COUNT,
    "pgd_restarts": _COUNT,
    "pgd_loss": Parameter("str", choices=("margin", "cross_entropy")),
    "solver": Parameter("solver"),
}

EXAMPLE_PARAMETERS: dict[str, Parameter] = {
    "seed": Parameter("int", 0),
    "lr": _POSITIVE,
    "epochs": _COUNT,
    "epochs_nom": _COUNT,
    "epochs_L2": _COUNT,
    "rho": _POSITIVE,
    "mu": Parameter("number", 0.0),
    "lmbd": Parameter("number", 0.0),
    "it_ADMM": _COUNT,
    "ind_Lip": Parameter("int", 1),
    "scale": _POSITIVE,
    "solver": Parameter("solver"),
    "log_certificate_every": Parameter("int", 0),
    "log_certificate_method": Parameter("str", choices=("auto", "sdp", "closed_form")),
}

PARAMETERS: dict[str, dict[str, Parameter]] = {
    "digits": DIGITS_PARAMETERS,
    "sin_example": EXAMPLE_PARAMETERS,
    "classifier_example": EXAMPLE_PARAMETERS,
}


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec: the task, the fixed settings, and the runs' parameters (one dict per run).

    ``points`` holds only the values given in ``[grid]`` / ``[[points]]``
    (what varies); a run's full parameters are ``{**settings, **point}``.
    """

    task: str
    settings: dict[str, Any]
    points: list[dict[str, Any]]
    grid_keys: list[str]
    out: str | None = None
    plot_x: str | None = None
    source: str | None = field(default=None, compare=False)

    def parameters(self, point: dict[str, Any]) -> dict[str, Any]:
        """The run's parameters: the settings overlaid by the point."""
        return {**self.settings, **point}

    def run_key(self, point: dict[str, Any]) -> str:
        """The run's identity (16 hex digits): a hash of the task and the run's parameters."""
        return run_key(self.task, self.parameters(point))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready spec (the expanded points, not the ranges)."""
        return {"task": self.task, "settings": self.settings, "points": self.points,
                "grid_keys": self.grid_keys, "out": self.out, "plot_x": self.plot_x}


def run_key(task: str, parameters: dict[str, Any]) -> str:
    """A hash of the task and a run's parameters, independent of key order."""
    text = json.dumps({"task": task, "parameters": parameters}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise InputError(
            "reading a sweep spec on Python 3.10 needs tomli: pip install 'pylip[cluster]'"
        ) from None
    return tomli


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML spec (see the module docstring)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"sweep spec {str(file)!r} not found; give the path of a .toml file")
    toml = _toml_module()
    try:
        raw = toml.loads(file.read_text(encoding="utf-8"))
    except toml.TOMLDecodeError as exc:
        raise InputError(f"sweep spec {file}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"sweep spec {file}: not a text file (not UTF-8); give a .toml sweep spec") from None
    except OSError as exc:
        raise InputError(f"sweep spec {file}: cannot be read ({exc.strerror}); check permissions") from None
    spec = validate_spec(raw)
    return SweepSpec(**{**spec.__dict__, "source": str(file)})


def _expand(key: str, value: Any) -> list[Any]:
    """A grid entry as its list of values (a list, or a range table)."""
    if isinstance(value, list):
        if not value:
            raise InputError(f"grid.{key} is an empty list: give at least one value, e.g. {key} = [1.0]")
        return value
    if not isinstance(value, dict):
        raise InputError(
            f"grid.{key} must be a list of values or a range table ({{start, stop, step}} or "
            f"{{start, stop, num}}), got {value!r}; for one value write {key} = [{value!r}]"
        )
    unknown = set(value) - {"start", "stop", "step", "num", "log"}
    if unknown or "start" not in value or "stop" not in value:
        raise InputError(
            f"grid.{key}: a range table has start, stop and either step or num (log = true for a "
            f"geometric spacing), got keys {sorted(value)}"
        )
    start, stop = value["start"], value["stop"]
    if not (_is_number(start) and _is_number(stop)):
        raise InputError(f"grid.{key}: start and stop must be numbers, got {start!r} and {stop!r}")
    if "num" in value:
        num = value["num"]
        if not (_is_int(num) and num >= 1):
            raise InputError(f"grid.{key}.num must be an integer >= 1, got {num!r}")
        if value.get("log", False):
            if start <= 0 or stop <= 0:
                raise InputError(f"grid.{key}: log = true needs start and stop > 0")
            return [float(start * (stop / start) ** (i / max(num - 1, 1))) for i in range(num)]
        return [float(start + (stop - start) * i / max(num - 1, 1)) for i in range(num)]
    step = value.get("step", 1)
    if not (_is_number(step) and step > 0):
        raise InputError(f"grid.{key}.step must be a number > 0, got {step!r}")
    values: list[Any] = []
    while start + len(values) * step < stop - 1e-12 * abs(step):
        values.append(start + len(values) * step)
    if not values:
        raise InputError(f"grid.{key}: the range from {start} to {stop} is empty (stop is excluded)")
    return values


def _check_table(where: str, table: Any, parameters: dict[str, Parameter], task: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table of parameters, got {table!r}")
    unknown = sorted(set(table) - set(parameters))
    if unknown:
        raise InputError(
            f"{where}.{unknown[0]} is not a parameter of the task {task!r}; its parameters are "
            f"{', '.join(parameters)}"
            + (" (sin/classifier: L_des is the L2 net's bound, as in the original)"
               if "L_des" in unknown else "")
        )
    return {key: parameters[key].check(f"{where}.{key}", value) for key, value in table.items()}


def _check_run(task: str, parameters: dict[str, Any], where: str) -> None:
    """Checks across parameters (digits: the mode needs its L_des or mu)."""
    if task != "digits":
        return
    mode = parameters.get("mode", "enforce")
    if mode == "enforce" and "L_des" not in parameters:
        raise InputError(
            f"{where}: mode = 'enforce' (problem 12) needs L_des; add L_des to [grid] or [settings], "
            "or set mode = 'regularize' with mu > 0"
        )
    if mode == "regularize" and not parameters.get("mu", 0.0) > 0:
        raise InputError(f"{where}: mode = 'regularize' (problem 9) needs mu > 0 in [grid] or [settings]")


def validate_spec(raw: dict[str, Any]) -> SweepSpec:
    """Check a parsed spec and expand its grid; :class:`InputError` names the key and the fix."""
    if not isinstance(raw, dict):
        raise InputError(f"a sweep spec is a table (TOML document), got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r} at the top of the spec; the keys are {', '.join(TOP_LEVEL_KEYS)} "
            "(parameters go into [settings] or [grid])"
        )
    task = raw.get("task")
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    parameters = PARAMETERS[task]
    for key in ("out", "plot_x"):
        if key in raw and not isinstance(raw[key], str):
            raise InputError(f"{key} must be a string, got {raw[key]!r}")
    settings = _check_table("settings", raw.get("settings", {}), parameters, task)
    grid_raw = raw.get("grid", {})
    if not isinstance(grid_raw, dict):
        raise InputError(f"grid must be a table of lists, got {grid_raw!r}")
    grid = {key: _expand(key, value) for key, value in grid_raw.items()}
    explicit = raw.get("points", [])
    if not isinstance(explicit, list):
        raise InputError("points must be an array of tables ([[points]] entries)")
    if not grid and not explicit:
        raise InputError(
            "the grid is empty: add a [grid] table with at least one list (e.g. seed = [0]) "
            "or [[points]] entries"
        )
    points: list[dict[str, Any]] = []
    if grid:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            point = dict(zip(keys, values))
            points.append(_check_table("grid", point, parameters, task))
    points += [_check_table(f"points[{i}]", p, parameters, task) for i, p in enumerate(explicit)]
    grid_keys = list(dict.fromkeys([*grid, *(k for p in points for k in p)]))
    spec = SweepSpec(
        task=task, settings=settings, points=points, grid_keys=grid_keys,
        out=raw.get("out"), plot_x=raw.get("plot_x"),
    )
    seen: set[str] = set()
    unique = []
    for point in spec.points:
        _check_run(task, spec.parameters(point), f"grid point {point}")
        key = spec.run_key(point)
        if key not in seen:
            seen.add(key)
            unique.append(point)
    if spec.plot_x is not None and spec.plot_x not in {**settings, **{k: 1 for k in grid_keys}}:
        raise InputError(f"plot_x = {spec.plot_x!r} is not a parameter given in [grid] or [settings]")
    return SweepSpec(**{**spec.__dict__, "points": unique})
