"""One run of a sweep: a task's training, certificate and evaluation for one grid point.

:func:`run_point` is what a Dask worker (or the serial loop) executes. Its
result depends only on the task and the parameters: it seeds numpy and torch
from ``seed`` and pins torch to one thread (the order of floating-point sums
then does not depend on the machine's cores), so the same point gives the same
record on any worker. It returns a record (JSON-ready, see :mod:`pylip.sweep`)
and the returned net's weights and biases (``W0, ..., b0, ...``); it raises on
failure (the caller records the error).

* ``digits`` (:mod:`pylip.digits`): the L2 net of the architecture ``64 -
  hidden - 10`` (Adam, weight decay ``l2``), then ADMM from its weights and
  certificate's ``T`` (problem 12 with ``L_des``, or 9 with ``mu``; eq. 10),
  as the digits example trains its Lipschitz nets; the ``W_bar`` net is
  certified (LipSDP-Neuron, checked) and attacked (l2 PGD) at each radius.
* ``sin_example`` / ``classifier_example`` (:mod:`pylip.examples`): the
  original protocol with the point's hyperparameters; the record describes the
  ``Lip2`` net (``W_bar``): its checked LipSDP-Neuron bound and its MSEs.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ..errors import CertificateError

# digits parameters that are fields of DigitsSettings (the rest shape the Lipschitz net)
_DIGITS_FIELDS = (
    "seed", "epochs", "lr", "batch_size", "l2", "admm_iterations", "epochs_per_iteration", "rho",
    "admm_lr", "n_train", "n_test", "test_fraction", "eps", "pgd_steps", "pgd_restarts", "pgd_loss",
    "solver",
)
_EXAMPLE_SETTINGS = ("scale", "solver", "log_certificate_every", "log_certificate_method")


def pin_threads() -> None:
    """One BLAS / OpenMP / torch thread in this process (set at the start of every run)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    try:  # BLAS already loaded ignores the variables; threadpoolctl (with scikit-learn) limits it
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        pass
    else:
        threadpool_limits(1)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def _seed_everything(seed: int) -> None:
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


def _net_arrays(weights: list[np.ndarray], biases: list[np.ndarray]) -> dict[str, np.ndarray]:
    arrays = {f"W{i}": np.asarray(w, dtype=np.float64) for i, w in enumerate(weights)}
    arrays.update({f"b{i}": np.asarray(b, dtype=np.float64).ravel() for i, b in enumerate(biases)})
    return arrays


def _digits_settings(params: dict[str, Any]) -> Any:
    """The :class:`DigitsSettings` of a point (one depth, one Lipschitz net), validated."""
    from .digits import DigitsSettings, LipschitzRun

    base = DigitsSettings.preset_named(params.get("preset", "quick"))
    hidden = params.get("hidden", [base.hidden[0]])
    changes: dict[str, Any] = {k: params[k] for k in _DIGITS_FIELDS if k in params}
    if "eps" in changes:
        changes["eps"] = tuple(changes["eps"])
    run = LipschitzRun(len(hidden), float(params.get("L_des", 1.0)), params.get("T_update_every") or None)
    return DigitsSettings.preset_named(
        base.preset, depths=(len(hidden),), hidden=(hidden[0],), lipschitz=(run,), **changes
    ).validate()


def run_digits(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The L2 start net, ADMM with the point's bound or weight, then certificate and attack."""
    import copy

    import torch

    from ..lipsdp.certificate import certify
    from ..train import mlp_training as mt
    from . import digits

    settings = _digits_settings(params)
    _seed_everything(settings.seed)
    hidden = list(params.get("hidden", [settings.hidden[0]]))
    mode = params.get("mode", "enforce")
    data = digits.load_data(settings)
    sizes = [int(data.X_train.shape[1]), *hidden, int(data.y_train.max()) + 1]
    start = time.perf_counter()
    model = mt.mlp(sizes, activation=settings.activation, seed=settings.seed + len(hidden))
    fit = mt.FitConfig(
        epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, l2=settings.l2,
        seed=settings.seed,
    )
    mt.fit(model, data.X_train, data.y_train, fit, progress=False)
    start_cert = certify(mt.mlp_weights(model), form="neuron", activation=settings.activation,
                         solver=settings.solver)
    admm = mt.ADMMConfig(
        mode=mode, L_des=settings.lipschitz[0].L_des if mode == "enforce" else None,
        mu=float(params.get("mu", 0.0)), rho=settings.rho, iterations=settings.admm_iterations,
        epochs_per_iteration=settings.epochs_per_iteration,
        T_update_every=settings.lipschitz[0].T_update_every,
        solver=settings.solver, initial_T=start_cert.T,
    )
    step_fit = mt.FitConfig(
        epochs=settings.epochs_per_iteration, batch_size=settings.batch_size, lr=settings.admm_lr,
        seed=settings.seed,
    )
    trained = mt.train_lipschitz(copy.deepcopy(model), data.X_train, data.y_train, admm, step_fit,
                                 progress=False)
    train_time = time.perf_counter() - start
    weights = mt.mlp_weights(trained.model)
    cert, clean, certified, attacked, violations, certify_time, attack_time = digits.evaluate(
        trained.model, weights, settings.activation, data, settings
    )
    broken = {e: v for e, v in violations.items() if v}
    if broken:
        raise CertificateError(f"points certified but broken by the attack at radii {broken}")
    biases = [m.bias.detach().double().numpy() for m in trained.model if isinstance(m, torch.nn.Linear)]
    record = {
        "layer_sizes": sizes,
        "clean_accuracy": clean,
        "bound": cert.bound,
        "trivial_bound": cert.trivial_bound,
        "training_bound": float(trained.bound),
        "start_bound": start_cert.bound,
        "certified_accuracy": {digits.eps_key(e): v for e, v in certified.items()},
        "attacked_accuracy": {digits.eps_key(e): v for e, v in attacked.items()},
        "admm_iterations": len(trained.history),
        "T_updates": sum(bool(h.get("T_updated", False)) for h in trained.history),
        "n_train": int(data.X_train.shape[0]),
        "n_test": int(data.X_test.shape[0]),
        "timings": {"train": train_time, "certify": certify_time, "attack": attack_time},
    }
    return record, _net_arrays(weights, biases)


def run_example(task: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The original protocol of ``sin_example`` / ``classifier_example`` with the point's hyperparameters."""
    from ..lipsdp.certificate import certify
    from . import examples

    settings = {k: params[k] for k in _EXAMPLE_SETTINGS if k in params}
    settings.setdefault("log_certificate_every", 0)
    hyper = {k: v for k, v in params.items() if k not in _EXAMPLE_SETTINGS}
    start = time.perf_counter()
    result = examples.run_example(examples.SPECS[task], progress=False, **settings, **hyper)
    train_time = time.perf_counter() - start
    net = result.nets["Lip2"]
    start = time.perf_counter()
    cert = certify(net.weights, form="neuron", activation="tanh", solver=settings.get("solver"))
    record = {
        "layer_sizes": [int(net.weights[0].shape[1]), *(int(w.shape[0]) for w in net.weights)],
        "L_des": result.L_des if result.hyper.ind_Lip == 2 else None,
        "bound": cert.bound,
        "trivial_bound": cert.trivial_bound,
        "training_bound": net.bound,
        "start_bound": result.nets["L2"].bound,
        **{f"mse_{name}": value for name, value in net.mse.items()},
        "certified_accuracy": {},
        "attacked_accuracy": {},
        "timings": {"train": train_time, "certify": time.perf_counter() - start, "attack": 0.0},
    }
    return record, _net_arrays(net.weights, net.biases)


def run_point(task: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one grid point of ``task`` (threads pinned to 1, seeded); the record and the net's arrays."""
    pin_threads()
    start = time.perf_counter()
    if task == "digits":
        record, arrays = run_digits(params)
    else:
        record, arrays = run_example(task, params)
    record["wall_time"] = time.perf_counter() - start
    return record, arrays
