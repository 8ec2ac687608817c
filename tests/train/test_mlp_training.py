"""Multi-layer MLP training: nominal / L2 fit and ADMM under Lipschitz bounds (Section III, Remarks 3-4)."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tqdm")

import pylip  # noqa: E402
from pylip.admm import loop as admm_loop  # noqa: E402
from pylip.admm.deep_step import DeepLipschitzStep, certificate_max_eigenvalue  # noqa: E402
from pylip.errors import InputError, SolverError, TrainingError  # noqa: E402
from pylip.train.mlp_training import (  # noqa: E402
    ADMMConfig,
    FitConfig,
    fit,
    mlp,
    mlp_activation,
    mlp_weights,
    train_lipschitz,
)

pytestmark = pytest.mark.torch

RTOL_CERTIFY = 1e-6  # rounding allowed in the certify SDP solve
SIZES = (3, 6, 5, 3)


def blobs(n=120, seed=0):
    """Three Gaussian classes in 3-D (numpy, float32 inputs, int64 labels)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    X = centres[y] + 0.8 * rng.standard_normal((n, 3))
    return X.astype(np.float32), y.astype(np.int64)


@functools.cache
def _trained(seed, epochs):
    X, y = blobs()
    model = mlp(SIZES, seed=seed)
    fit(model, X, y, FitConfig(epochs=epochs, lr=1e-2, batch_size=32), progress=False)
    return model, X, y


def trained(seed=0, epochs=20):
    """A nominal net trained on blobs() (a fresh copy of a cached run)."""
    model, X, y = _trained(seed, epochs)
    return copy.deepcopy(model), X.copy(), y.copy()


def accuracy(model, X, y):
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("activation, cls", [("tanh", "Tanh"), ("relu", "ReLU"), ("sigmoid", "Sigmoid")])
def test_mlp_structure(activation, cls):
    model = mlp((4, 7, 6, 5, 2), activation=activation, seed=1)
    names = [type(m).__name__ for m in model]
    assert names == ["Linear", cls, "Linear", cls, "Linear", cls, "Linear"]
    assert [w.shape for w in mlp_weights(model)] == [(7, 4), (6, 7), (5, 6), (2, 5)]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert mlp_activation(model) == activation


def test_mlp_seed_reproduces_default_init_and_leaves_global_rng():
    state = torch.random.get_rng_state()
    a, b, c = mlp(SIZES, seed=3), mlp(SIZES, seed=3), mlp(SIZES, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for wa, wb, wc in zip(mlp_weights(a), mlp_weights(b), mlp_weights(c)):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)
    torch.manual_seed(3)
    reference = torch.nn.Linear(3, 6)
    np.testing.assert_array_equal(mlp_weights(a)[0], reference.weight.detach().numpy())


def test_mlp_weights_are_float64_copies():
    model = mlp(SIZES, seed=0)
    weights = mlp_weights(model)
    assert all(w.dtype == np.float64 for w in weights)
    weights[0][:] = 0.0
    assert np.abs(mlp_weights(model)[0]).sum() > 0


def test_bad_models_and_activations():
    with pytest.raises(InputError, match="activation"):
        mlp(SIZES, activation="gelu")
    with pytest.raises(InputError, match="layer_sizes"):
        mlp((3, 2))
    mixed = torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)
    )
    with pytest.raises(InputError, match="mixes"):
        mlp_activation(mixed)
    other = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.GELU(), torch.nn.Linear(3, 1))
    with pytest.raises(InputError, match="GELU"):
        mlp_activation(other)
    with pytest.raises(InputError, match="nn.Sequential"):
        mlp_weights(torch.nn.Linear(2, 3))


# --------------------------------------------------------------------------- fit


def test_fit_learns_and_is_reproducible():
    a, X, y = trained(seed=0)
    b, _, _ = _trained.__wrapped__(0, 20)  # trained again, not from the cache
    for wa, wb in zip(mlp_weights(a), mlp_weights(b)):
        np.testing.assert_array_equal(wa, wb)
    assert accuracy(a, X, y) > 0.8
    model = mlp(SIZES, seed=0)
    losses = fit(model, X, y, FitConfig(epochs=10, lr=1e-2, batch_size=None), progress=False)
    assert len(losses) == 10 and losses[-1] < losses[0]


def test_l2_shrinks_weights_and_mse_and_custom_optimizer():
    X, y = blobs()
    plain, decayed = mlp(SIZES, seed=0), mlp(SIZES, seed=0)
    fit(plain, X, y, FitConfig(epochs=15, lr=1e-2), progress=False)
    fit(decayed, X, y, FitConfig(epochs=15, lr=1e-2, l2=0.5), progress=False)
    norm = lambda m: sum(np.sum(w**2) for w in mlp_weights(m))  # noqa: E731
    assert norm(decayed) < norm(plain)
    targets = np.eye(3, dtype=np.float32)[y]
    model = mlp(SIZES, seed=0)
    losses = fit(
        model,
        torch.as_tensor(X),
        torch.as_tensor(targets),
        FitConfig(epochs=10, loss="mse", make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1)),
        progress=False,
    )
    assert losses[-1] < losses[0]


def test_fit_validates_data_and_config():
    X, y = blobs(30)
    model = mlp(SIZES, seed=0)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="X contains 1 NaN"):
        fit(model, bad, y, progress=False)
    with pytest.raises(InputError, match="X must be N x 3"):
        fit(model, X[:, :2], y, progress=False)
    with pytest.raises(InputError, match="integer class indices"):
        fit(model, X, y.astype(np.float32), progress=False)
    with pytest.raises(InputError, match=r"indices must lie in \[0, 2\]"):
        fit(model, X, y + 1, progress=False)
    with pytest.raises(InputError, match="one per row"):
        fit(model, X, y[:-1], progress=False)
    with pytest.raises(InputError, match="FitConfig.lr"):
        FitConfig(lr=0.0)
    with pytest.raises(InputError, match="FitConfig.optimizer"):
        FitConfig(optimizer="lbfgs")
    with pytest.raises(InputError, match="FitConfig.batch_size"):
        FitConfig(batch_size=0)


def test_diverging_fit_raises_training_error():
    X, y = blobs(30)
    targets = np.eye(3, dtype=np.float32)[y] * 1e3
    model = mlp(SIZES, activation="relu", seed=0)
    config = FitConfig(epochs=50, loss="mse", optimizer="sgd", lr=1e3)
    with pytest.raises(TrainingError, match="epoch"):
        fit(model, X, targets, config, progress=False)


# --------------------------------------------------------------------------- ADMM


def test_admm_config_validation():
    with pytest.raises(InputError, match="L_des is required"):
        ADMMConfig(mode="enforce")
    with pytest.raises(InputError, match="mu must be > 0"):
        ADMMConfig(mode="regularize")
    with pytest.raises(InputError, match="only used with mode='enforce'"):
        ADMMConfig(mode="regularize", mu=1e-3, L_des=1.0)
    with pytest.raises(InputError, match="T_update_every"):
        ADMMConfig(L_des=1.0, T_update_every=0)
    with pytest.raises(InputError, match="rho"):
        ADMMConfig(L_des=1.0, rho=-1.0)
    with pytest.raises(InputError, match="step_method must be one of"):
        ADMMConfig(L_des=1.0, step_method="dense")


def check_theorem_8(records, L_des, beta=1.0):
    for record in records:
        t = np.diag(record["T"])
        assert certificate_max_eigenvalue(record["W_bar"], t, L_des**2, beta) <= 0, record["iteration"]
        assert pylip.certify(record["W_bar"]).bound <= L_des * (1 + RTOL_CERTIFY), record["iteration"]


def test_enforce_keeps_L_des_after_every_iteration():
    """Theorem 8 for two hidden layers: the W_bar net is certified at L_des all along."""
    model, X, y = trained()
    nominal = pylip.certify(mlp_weights(model)).bound
    L_des = nominal / 3
    records = []
    result = train_lipschitz(
        model,
        X,
        y,
        ADMMConfig(L_des=L_des, iterations=4, rho=1.0),
        FitConfig(lr=1e-2, batch_size=32),
        progress=False,
        callback=records.append,
    )
    assert len(records) == len(result.history) == 4
    check_theorem_8(records, L_des)
    assert result.bound <= L_des
    final = mlp_weights(result.model)  # exactly the float32 weights of the returned net
    assert certificate_max_eigenvalue(final, np.diag(result.T), result.bound**2) <= 0
    assert pylip.certify(final).bound <= L_des * (1 + RTOL_CERTIFY)
    assert result.W_model is model
    assert not np.array_equal(final[0], mlp_weights(model)[0])
    for a, b in zip(result.model, model):  # biases from training
        if isinstance(a, torch.nn.Linear):
            assert torch.equal(a.bias, b.bias)
    assert [h["iteration"] for h in result.history] == [1, 2, 3, 4]
    assert all(h["bound"] == pytest.approx(L_des, rel=1e-12) for h in result.history)
    assert accuracy(result.model, X, y) > 0.5


@pytest.mark.parametrize("step_method, structured", [("structured", True), ("auto", False)])
def test_one_hidden_layer_takes_the_structured_step_on_request(monkeypatch, step_method, structured):
    """step_method="structured": one hidden layer's step (10b) by the barrier method; Theorem 8 holds."""
    from pylip.admm import deep_step

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return solve_deep_step(*args, **kwargs)

    solve_deep_step = deep_step.solve_deep_step
    monkeypatch.setattr(deep_step, "solve_deep_step", counted)
    X, y = blobs()
    model = mlp((3, 8, 3), seed=1)
    fit(model, X, y, FitConfig(epochs=10, lr=1e-2, batch_size=32), progress=False)
    L_des = pylip.certify(mlp_weights(model)).bound / 3
    records = []
    result = train_lipschitz(
        model, X, y, ADMMConfig(L_des=L_des, iterations=2, step_method=step_method), FitConfig(lr=1e-2),
        progress=False, callback=records.append,
    )
    assert bool(calls) == structured
    check_theorem_8(records, L_des)
    assert result.bound <= L_des


def test_the_original_one_layer_step_has_no_method_to_choose():
    from pylip.admm.family import lipschitz_step

    with pytest.raises(InputError, match="use formulation='layers'"):
        lipschitz_step((3, 8, 3), np.eye(8), formulation="auto", method="structured")


def test_two_runs_with_the_same_seed_are_identical():
    runs = []
    for _ in range(2):
        X, y = blobs()
        model = mlp(SIZES, seed=1)
        fit(model, X, y, FitConfig(epochs=5, lr=1e-2, batch_size=32), progress=False)
        L_des = pylip.certify(mlp_weights(model)).bound / 2
        result = train_lipschitz(
            model, X, y, ADMMConfig(L_des=L_des, iterations=2), FitConfig(lr=1e-2, seed=5), progress=False
        )
        runs.append((mlp_weights(result.model), mlp_weights(result.W_model), result.bound))
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][2] == runs[1][2]


def test_T_updates_never_break_enforcement():
    """Remark 3: the re-solved T certifies the old W_bar at L_des, and every later W_bar too."""
    model, X, y = trained(seed=2)
    L_des = pylip.certify(mlp_weights(model)).bound / 3
    records = []
    result = train_lipschitz(
        model,
        X,
        y,
        ADMMConfig(L_des=L_des, iterations=5, T_update_every=2),
        FitConfig(lr=1e-2, batch_size=32),
        progress=False,
        callback=records.append,
    )
    updated = [r["iteration"] for r in records if r["T_updated"]]
    assert updated == [3, 5]
    for i, record in enumerate(records):
        if record["T_updated"]:
            previous = records[i - 1]
            assert not np.allclose(record["T"], previous["T"])
            # the W_bar the new T was solved for satisfies the LMI at L_des with it
            assert certificate_max_eigenvalue(previous["W_bar"], np.diag(record["T"]), L_des**2) <= 0
    check_theorem_8(records, L_des)
    np.testing.assert_array_equal(result.T, records[-1]["T"])
    assert result.bound <= L_des


def test_T_update_guard_keeps_the_old_T(monkeypatch):
    """A re-solved T whose certificate exceeds L_des (solver rounding) is not taken."""
    model, X, y = trained(seed=3, epochs=5)
    L_des = pylip.certify(mlp_weights(model)).bound / 2
    real = admm_loop.certify
    calls = []

    def inflated(weights, **kwargs):
        cert = real(weights, **kwargs)
        calls.append(cert)
        if len(calls) == 1:  # the initial certificate stays as it is
            return cert
        return type(cert)(**{**cert.__dict__, "bound": 1.01 * L_des, "T": 2.0 * cert.T})

    monkeypatch.setattr(admm_loop, "certify", inflated)  # the T update's certificate (Remark 3)
    records = []
    train_lipschitz(
        model,
        X,
        y,
        ADMMConfig(L_des=L_des, iterations=3, T_update_every=1),
        progress=False,
        callback=records.append,
    )
    assert len(calls) == 3
    assert [r["T_rejected"] for r in records] == [False, True, True]
    assert not any(r["T_updated"] for r in records)
    for r in records:
        np.testing.assert_array_equal(r["T"], records[0]["T"])
    check_theorem_8(records, L_des)


def test_regularize_mode_lowers_the_bound():
    model, X, y = trained(seed=4)
    nominal = pylip.certify(mlp_weights(model)).bound
    result = train_lipschitz(
        model, X, y, ADMMConfig(mode="regularize", mu=0.05, iterations=3), FitConfig(lr=1e-2), progress=False
    )
    assert result.bound < nominal
    assert certificate_max_eigenvalue(mlp_weights(result.model), np.diag(result.T), result.bound**2) <= 0
    for h in result.history:
        assert h["bound_T"] <= h["bound"] * (1 + 1e-9)


def test_solver_failure_names_the_iteration(monkeypatch):
    model, X, y = trained(seed=0, epochs=2)
    L_des = pylip.certify(mlp_weights(model)).bound / 2
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SolverError("CLARABEL returned status 'infeasible'", status="infeasible")
        return original(self, *args, **kwargs)

    original = DeepLipschitzStep.solve
    monkeypatch.setattr(DeepLipschitzStep, "solve", failing)
    with pytest.raises(SolverError, match="ADMM iteration 2/3") as info:
        train_lipschitz(model, X, y, ADMMConfig(L_des=L_des, iterations=3), progress=False)
    assert info.value.status == "infeasible"


def test_train_lipschitz_validates_T_and_data():
    model, X, y = trained(seed=0, epochs=1)
    with pytest.raises(InputError, match="ADMMConfig.initial_T must be 11 x 11"):
        train_lipschitz(model, X, y, ADMMConfig(L_des=1.0, initial_T=np.eye(4)), progress=False)
    with pytest.raises(InputError, match="non-positive"):
        train_lipschitz(model, X, y, ADMMConfig(L_des=1.0, initial_T=np.zeros((11, 11))), progress=False)
    with pytest.raises(InputError, match="diagonal"):
        train_lipschitz(model, X, y, ADMMConfig(L_des=1.0, initial_T=np.ones((11, 11))), progress=False)


def test_initial_T_with_zero_entries_is_floored():
    """A certificate's T is only >= 0; its zero entries are raised so the fixed-T step stays feasible."""
    model, X, y = trained(seed=5, epochs=3)
    cert = pylip.certify(mlp_weights(model))
    T = cert.T.copy()
    T[0, 0] = 0.0
    result = train_lipschitz(
        model, X, y, ADMMConfig(L_des=cert.bound / 2, iterations=1, initial_T=T), progress=False
    )
    assert result.T[0, 0] == pytest.approx(1e-6 * T.max())
    np.testing.assert_array_equal(np.diag(result.T)[1:], np.diag(T)[1:])
    assert result.bound <= cert.bound / 2
    with pytest.raises(InputError, match="y must be a vector"):
        train_lipschitz(model, X, y[:, None], ADMMConfig(L_des=1.0), progress=False)
