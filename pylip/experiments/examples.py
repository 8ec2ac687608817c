"""The paper's two experiments (Section IV), as the original drivers ran them.

``sin_example`` (Table II, Fig. 2: enforce ``L_des``, eq. 12) and
``classifier_example`` (Table I, Fig. 1: Lipschitz regularisation, eq. 9)
follow the original scripts step by step, so that the random streams, data,
hyperparameters and step counts are the same:

1. ``torch.manual_seed(seed)``; 100 inputs on ``[0, 10]``; targets (sine:
   ``sin(x)`` plus uniform noise; classifier: two unit steps);
2. a nominal net trained ``epochs_nom`` SGD steps; its certificate;
3. a second net trained ``epochs_L2`` steps with the L2 penalty ``lmbd``;
   its certificate gives ``T`` and (sine) ``L_des``;
4. a third net drawn, overwritten with the L2 net, and trained by ADMM
   (``it_ADMM`` iterations of ``epochs`` SGD steps and one Lipschitz step);
5. ``Lip2``: that net with its weights replaced by ``W_bar``;
6. certificates and MSEs of all four nets (sine: also on new noise drawn
   after ``torch.manual_seed(3)``, and on the clean curve ``sin(x) + 0.5``).

Every hyperparameter keeps the original's variable name; as in the original
scripts, ``epochs_nom`` defaults to ``100 * epochs`` and ``epochs_L2`` to
``50 * epochs`` (sine) or ``100 * epochs`` (classifier).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import original as compat
from ..errors import InputError
from ..train.training import MeinNetz, TrainingConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hyperparameters:
    """The original scripts' settings, under their variable names."""

    seed: int
    lr: float
    epochs: int
    epochs_nom: int
    epochs_L2: int
    rho: float
    mu: float
    lmbd: float
    it_ADMM: int
    ind_Lip: int

    def scaled(self, scale: float) -> Hyperparameters:
        """Every SGD step count times ``scale`` (at least one step each)."""
        if not scale > 0:
            raise InputError(f"scale must be > 0 (a factor on every SGD step count), got {scale}")

        def steps(n: int) -> int:
            return max(1, round(n * scale))

        return dataclasses.replace(
            self,
            epochs=steps(self.epochs),
            epochs_nom=steps(self.epochs_nom),
            epochs_L2=steps(self.epochs_L2),
        )


@dataclass(frozen=True)
class ExampleSpec:
    """What distinguishes the two scripts."""

    name: str
    table: str
    figure: str
    defaults: dict[str, Any]
    epochs_L2_factor: int
    noisy_sine: bool

    def hyperparameters(self, **overrides: Any) -> Hyperparameters:
        """Defaults edited by ``overrides``, with the original's derived step counts."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(Hyperparameters)}
        if unknown:
            raise InputError(
                f"unknown hyperparameter(s) {sorted(unknown)}; the original's are "
                f"{[f.name for f in dataclasses.fields(Hyperparameters)]}"
            )
        values = {**self.defaults, **{k: v for k, v in overrides.items() if v is not None}}
        epochs = int(values["epochs"])
        values.setdefault("epochs_nom", 100 * epochs)
        values.setdefault("epochs_L2", self.epochs_L2_factor * epochs)
        return Hyperparameters(**values)


SIN = ExampleSpec(
    name="sin_example",
    table="II",
    figure="2",
    defaults=dict(seed=2, lr=0.01, epochs=10_000, rho=2.0, mu=0.01, lmbd=0.01, it_ADMM=100, ind_Lip=2),
    epochs_L2_factor=50,
    noisy_sine=True,
)
CLASSIFIER = ExampleSpec(
    name="classifier_example",
    table="I",
    figure="1",
    defaults=dict(seed=2, lr=0.01, epochs=10_000, rho=2.0, mu=0.0008, lmbd=0.0005, it_ADMM=100, ind_Lip=1),
    epochs_L2_factor=100,
    noisy_sine=False,
)
SPECS = {spec.name: spec for spec in (SIN, CLASSIFIER)}


@dataclass
class NetResult:
    """One of the four trained networks."""

    name: str
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    bound: float
    T: np.ndarray
    mse: dict[str, float]
    prediction: np.ndarray


@dataclass
class ExampleResult:
    """Everything one run produced: the nets, their certificates and MSEs, the courses."""

    example: str
    hyper: Hyperparameters
    L_des: float
    input: np.ndarray
    target: np.ndarray
    nets: dict[str, NetResult]
    courses: dict[str, list[float]]
    timings: dict[str, float]
    target_test: np.ndarray | None = None
    clean: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ExampleSpec:
        return SPECS[self.example]

    def table(self) -> dict[str, dict[str, float]]:
        """Per net: the certified bound ``L`` and the MSEs (the paper's table columns)."""
        return {name: {**net.mse, "L": net.bound} for name, net in self.nets.items()}


def _data(spec: ExampleSpec) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = torch.linspace(0, 10, 100).view(100, 1)
    if spec.noisy_sine:
        target = torch.sin(inputs) + torch.rand(inputs.size())
    else:
        target = torch.zeros(inputs.size())
        target[10:15] += 1
        target[70:80] += 1
    return inputs, target


def run_example(
    spec: ExampleSpec,
    *,
    scale: float = 1.0,
    solver: str | None = None,
    log_certificate_every: int = 1,
    log_certificate_method: str = "auto",
    progress: bool = True,
    on_phase: Callable[[str], None] | None = None,
    **hyper_overrides: Any,
) -> ExampleResult:
    """Run one of the paper's examples with the original protocol (see module docstring)."""
    hyper = spec.hyperparameters(**hyper_overrides).scaled(scale)
    timings: dict[str, float] = {}
    torch.manual_seed(hyper.seed)
    inputs, target = _data(spec)
    base = TrainingConfig(
        inputs,
        target,
        lr=hyper.lr,
        epochs=hyper.epochs,
        it_ADMM=hyper.it_ADMM,
        rho=hyper.rho,
        mu=hyper.mu,
        ind_Lip=1,
        solver=solver,
        log_certificate_every=log_certificate_every,
        log_certificate_method=log_certificate_method,
        progress=progress,
    )
    net_dims = base.net_dims

    def phase(name: str) -> float:
        if on_phase is not None:
            on_phase(name)
        logger.info("%s: %s", spec.name, name)
        return time.perf_counter()

    start = phase(f"nominal training ({hyper.epochs_nom} SGD steps)")
    net = MeinNetz(base)
    L_course, MSE_course = net.train(hyper.epochs_nom)
    weights, biases = net.extract_weights()
    Lip = compat.build_T(weights, biases, net_dims, solver=solver)
    timings["nominal"] = time.perf_counter() - start

    start = phase(f"L2 training ({hyper.epochs_L2} SGD steps, lmbd = {hyper.lmbd})")
    net_L2 = MeinNetz(base)
    L_course_L2, MSE_course_L2 = net_L2.train(hyper.epochs_L2, lmbd=hyper.lmbd)
    weights_L2, biases_L2 = net_L2.extract_weights()
    Lip_L2 = compat.build_T(weights_L2, biases_L2, net_dims, solver=solver)
    timings["L2"] = time.perf_counter() - start

    L_des = float(Lip_L2["Lipschitz"])
    admm = dataclasses.replace(
        base, ind_Lip=hyper.ind_Lip, L_des=L_des if hyper.ind_Lip == 2 else None
    )
    start = phase(f"ADMM ({hyper.it_ADMM} iterations of {hyper.epochs} SGD steps + one Lipschitz step)")
    net_Lip = MeinNetz(admm)  # a third draw of the random stream, as in the original
    net_Lip.load_state_dict(net_L2.state_dict())
    parameters_Lip, L_course_Lip, MSE_course_Lip = net_Lip.train_Lipschitz(
        compat.initialize_parameters(weights_L2, biases_L2), Lip_L2["T"]
    )
    timings["ADMM"] = time.perf_counter() - start

    net_Lip2 = MeinNetz(admm)  # the original's type(net_Lip)(): a fourth draw
    net_Lip2.load_state_dict(net_Lip.state_dict())
    with torch.no_grad():  # W_bar crosses into float32 as the MATLAB engine's lists did
        net_Lip2.lin1.weight.copy_(torch.tensor(np.asarray(parameters_Lip["W0_bar"]).tolist()))
        net_Lip2.lin2.weight.copy_(torch.tensor(np.asarray(parameters_Lip["W1_bar"]).tolist()))
    start = phase("certificates of the ADMM nets")
    weights_Lip, biases_Lip = net_Lip.extract_weights()
    weights_Lip2, biases_Lip2 = net_Lip2.extract_weights()
    Lip_Lip = compat.build_T(weights_Lip, biases_Lip, net_dims, solver=solver)
    Lip_Lip2 = compat.build_T(weights_Lip2, biases_Lip2, net_dims, solver=solver)
    timings["certificates"] = time.perf_counter() - start

    evaluation = {"train": target}
    target_test = clean = None
    if spec.noisy_sine:
        torch.manual_seed(3)
        target_test = torch.sin(inputs) + torch.rand(inputs.size())
        clean = torch.sin(inputs) + 0.5
        evaluation.update(test=target_test, sine=clean)

    trained = {
        "nominal": (net, weights, biases, Lip),
        "L2": (net_L2, weights_L2, biases_L2, Lip_L2),
        "Lip": (net_Lip, weights_Lip, biases_Lip, Lip_Lip),
        "Lip2": (net_Lip2, weights_Lip2, biases_Lip2, Lip_Lip2),
    }
    nets = {}
    with torch.no_grad():
        for name, (model, w, b, certificate) in trained.items():
            nets[name] = NetResult(
                name=name,
                weights=w,
                biases=b,
                bound=float(certificate["Lipschitz"]),
                T=np.asarray(certificate["T"]),
                mse={k: float(model.evaluate_MSELoss(inputs, v)) for k, v in evaluation.items()},
                prediction=model(inputs).numpy().astype(np.float64).ravel(),
            )
    return ExampleResult(
        example=spec.name,
        hyper=hyper,
        L_des=L_des,
        input=inputs.numpy().astype(np.float64).ravel(),
        target=target.numpy().astype(np.float64).ravel(),
        target_test=None if target_test is None else target_test.numpy().astype(np.float64).ravel(),
        clean=None if clean is None else clean.numpy().astype(np.float64).ravel(),
        nets=nets,
        courses={
            "L_course": L_course,
            "L_course_L2": L_course_L2,
            "L_course_Lip": [v for it in L_course_Lip for v in it],
            "MSE_course": MSE_course,
            "MSE_course_L2": MSE_course_L2,
            "MSE_course_Lip": [v for it in MSE_course_Lip for v in it],
        },
        timings=timings,
        settings={
            "scale": scale,
            "solver": solver,
            "log_certificate_every": log_certificate_every,
            "log_certificate_method": log_certificate_method,
        },
    )


def sin_example(**kwargs: Any) -> ExampleResult:
    """The original ``sin_example.py`` (Table II, Fig. 2); keywords as :func:`run_example`."""
    return run_example(SIN, **kwargs)


def classifier_example(**kwargs: Any) -> ExampleResult:
    """The original ``classifier_example.py`` (Table I, Fig. 1); keywords as :func:`run_example`."""
    return run_example(CLASSIFIER, **kwargs)


def write_outputs(result: ExampleResult, out_dir: str | Path) -> list[Path]:
    """Save a run: the original's ``res`` .mat, a JSON summary and PNG figures."""
    from .. import io
    from . import figures

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        io.save_res_mat(result, folder / f"{result.example}_res.mat"),
        io.save_summary(result, folder / f"{result.example}.json"),
        figures.plot_fits(result, folder / f"{result.example}_fit.png"),
        figures.plot_courses(result, folder / f"{result.example}_courses.png"),
    ]


# -- side by side with the original's runs and the paper ---------------------------

PARITY_RTOL = 0.005  # 0.5 %: see reference/README.md
PAPER_ROWS = {"nominal": "nominal", "L2": "L2", "Lip": "Lipschitz-NN", "Lip2": "Lipschitz-NN"}
COLUMNS = {"train": "train_MSE", "test": "test_MSE", "sine": "sine_MSE", "L": "L"}


@dataclass(frozen=True)
class Cell:
    """One table cell: this run, the original's run, the paper, and the verdict."""

    net: str
    column: str
    value: float
    original: float
    paper: float | None

    @property
    def vs_original(self) -> float:
        return abs(self.value / self.original - 1)

    @property
    def vs_paper(self) -> float | None:
        return None if self.paper is None else abs(self.value / self.paper - 1)

    @property
    def original_vs_paper(self) -> float | None:
        return None if self.paper is None else abs(self.original / self.paper - 1)

    @property
    def ok(self) -> bool:
        """Within 0.5 % of the original's run, and no farther from the paper than it (+0.5 %)."""
        near_original = self.vs_original <= PARITY_RTOL
        if self.paper is None:
            return near_original
        return near_original and self.vs_paper <= self.original_vs_paper + PARITY_RTOL  # type: ignore[operator]


def compare(result: ExampleResult) -> list[Cell]:
    """Every bound and MSE of the four nets against the original's run and the paper."""
    from .reference_data import load_json

    original = load_json(f"original/{result.example}.json")
    paper_table = original["paper_values"]
    cells = []
    for name, net in result.nets.items():
        paper_row = paper_table.get(PAPER_ROWS[name])
        for key, value in {**net.mse, "L": net.bound}.items():
            reference = original["lipschitz_bounds"][name] if key == "L" else original["mse"][key][name]
            paper = None
            if paper_row is not None and COLUMNS[key] in paper_table["columns"]:
                paper = float(paper_row[paper_table["columns"].index(COLUMNS[key])])
            cells.append(Cell(name, key, float(value), float(reference), paper))
    return cells


def format_comparison(result: ExampleResult, cells: list[Cell], *, judged: bool = True) -> str:
    """The paper's table for this example with this run, the original's run and the paper.

    ``judged=False`` (a run with other settings than the original's) leaves the
    verdict column empty: the comparison is then for orientation only.
    """
    spec = result.spec
    lines = [
        f"Table {spec.table} ({spec.name}): this run | original's run (reference/) | paper "
        f"| rel. diff to original | to paper (original's own diff to paper)",
        f"{'net':8s} {'column':6s} {'this run':>11s} {'original':>11s} {'paper':>8s} "
        f"{'d(orig)':>9s} {'d(paper)':>18s}  ok",
    ]
    for c in cells:
        paper = f"{c.paper:8.4g}" if c.paper is not None else f"{'-':>8s}"
        to_paper = (
            f"{c.vs_paper:8.2%} ({c.original_vs_paper:6.2%})" if c.paper is not None else f"{'-':>18s}"
        )
        lines.append(
            f"{c.net:8s} {c.column:6s} {c.value:11.5g} {c.original:11.5g} {paper} "
            f"{c.vs_original:9.3%} {to_paper}  {('yes' if c.ok else 'NO') if judged else '-'}"
        )
    lines.append(
        f"ok: within {PARITY_RTOL:.1%} of the original's run, and no farther from the paper than the "
        f"original's run plus {PARITY_RTOL:.1%} (reference/README.md states why)"
    )
    return "\n".join(lines)
