"""MeinNetz and ADMM training (paper Section III): the original's arithmetic, step for step."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tqdm")

import pylip  # noqa: E402
from pylip import original as compat  # noqa: E402
from pylip.admm.step import lmi7_matrix  # noqa: E402
from pylip.errors import InputError, SolverError  # noqa: E402
from pylip.train.cpu_arithmetic import mkl_runs_avx2  # noqa: E402
from pylip.train.training import MeinNetz, TrainingConfig, TrainingError  # noqa: E402

pytestmark = pytest.mark.torch

SIN_RUN = Path(__file__).resolve().parents[2] / "reference" / "original" / "sin_example.json"


def sine_data(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The sine example's data, drawn in the original script's order."""
    torch.manual_seed(seed)
    x = torch.linspace(0, 10, 100).view(-1, 1)
    return x, torch.sin(x) + torch.rand(100, 1)


def config(**overrides) -> TrainingConfig:
    x, y = sine_data()
    settings = {"progress": False, "log_certificate_method": "closed_form", "mu": 1e-3}
    settings.update(overrides)
    return TrainingConfig(x, y, **settings)


def net_from_seed(cfg: TrainingConfig, seed: int = 0) -> MeinNetz:
    torch.manual_seed(seed)
    return MeinNetz(cfg)


def perturbed_multipliers(net: MeinNetz, seed: int = 1) -> dict:
    """ADMM variables with W_bar != W and Y != 0, as float64 (as the Lipschitz step returns them)."""
    rng = np.random.default_rng(seed)
    weights, biases = net.extract_weights()
    parameters = compat.initialize_parameters(weights, biases)
    for i, w in enumerate(weights):
        parameters[f"W{i}_bar"] = w + 0.1 * rng.standard_normal(w.shape)
        parameters[f"Y{i}"] = 0.3 * rng.standard_normal(w.shape)
    return parameters


# --------------------------------------------------------------------------- a literal replica


class OriginalMeinNetz(torch.nn.Module):
    """The original driver's class as described in ORIGINAL_SPEC.md, reading "globals" from ``g``."""

    def __init__(self, g: SimpleNamespace) -> None:
        super().__init__()
        self.g = g
        self.lin1 = torch.nn.Linear(1, 10)
        self.lin2 = torch.nn.Linear(10, 1)

    def forward(self, x):
        return self.lin2(torch.tanh(self.lin1(x)))

    def l2_reg(self, lmbd):
        first = True
        for p in self.parameters():
            if first:
                reg = 0.5 * torch.sum(p**2)
                first = False
            else:
                reg = reg + 0.5 * p.norm(2) ** 2
        return lmbd * reg

    def Lip_reg(self, rho, parameters):  # noqa: N802
        i = 0
        for name, param in self.named_parameters():
            if "weight" in name:
                W_bar = torch.tensor(np.asarray(parameters[f"W{i}_bar"]).tolist())  # engine lists -> float32
                Y = torch.tensor(np.asarray(parameters[f"Y{i}"]).tolist())
                term = rho / 2 * torch.sum((param - W_bar) ** 2) + torch.trace(
                    torch.matmul(Y.t(), (param - W_bar))
                )
                reg = term if i == 0 else reg + term  # noqa: F821 (assigned at i == 0)
                i += 1
        return reg

    def evaluate_MSELoss(self, input, target):  # noqa: N802
        return 1 / len(target) * torch.sum((self(input) - target) ** 2)

    def train(self, epochs, lmbd=None, rho=None, parameters=None):
        g = self.g
        L_course, MSE_course = [], []
        for i in range(epochs):
            out = self(g.input)
            loss = torch.nn.MSELoss()(out, g.target)
            if lmbd is not None:
                loss += self.l2_reg(lmbd)
            if rho is not None:
                loss += self.Lip_reg(rho, parameters)
            if i % 1000 == 0:
                MSE = self.evaluate_MSELoss(g.input, g.target)
                weights = [layer.weight.detach().double().numpy() for layer in (self.lin1, self.lin2)]
                biases = [layer.bias.detach().double().numpy() for layer in (self.lin1, self.lin2)]
                L_course.append(g.build_T(weights, biases, [1, 10, 1])["Lipschitz"])
                MSE_course.append(MSE.item())
            self.zero_grad()
            loss.backward()
            optimizer = torch.optim.SGD(self.parameters(), lr=g.lr)
            optimizer.step()
        return L_course, MSE_course


def closed_form_build_T(weights, biases, net_dims):
    return {"Lipschitz": pylip.closed_form_bound(weights[0], weights[1])}


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert p.dtype == q.dtype == torch.float32
        assert torch.equal(p, q), f"{name} differs: max |diff| {(p - q).abs().max().item():.3e}"


# --------------------------------------------------------------------------- the loss terms


def test_l2_reg_is_half_lambda_sum_of_squares_of_all_parameters():
    net = net_from_seed(config())
    expected = 0.5 * 0.37 * sum(float((p.detach().double() ** 2).sum()) for p in net.parameters())
    assert net.l2_reg(0.37).item() == pytest.approx(expected, rel=1e-6)


def test_lip_reg_is_the_augmented_lagrangian_terms_of_10a():
    net = net_from_seed(config())
    parameters = perturbed_multipliers(net)
    rho, expected = 2.0, 0.0
    for i, layer in enumerate((net.lin1, net.lin2)):
        W = layer.weight.detach().double().numpy()
        W_bar = parameters[f"W{i}_bar"].astype(np.float32).astype(np.float64)  # read as float32
        Y = parameters[f"Y{i}"].astype(np.float32).astype(np.float64)
        expected += rho / 2 * np.sum((W - W_bar) ** 2) + np.trace(Y.T @ (W - W_bar))
    value = net.Lip_reg(rho, parameters)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_lip_reg_reads_multipliers_as_float32_like_the_matlab_engine_lists():
    net = net_from_seed(config())
    parameters = perturbed_multipliers(net)
    as_lists = {k: np.asarray(v).tolist() for k, v in parameters.items()}
    assert torch.equal(net.Lip_reg(2.0, parameters), net.Lip_reg(2.0, as_lists))


def test_lip_reg_is_zero_at_the_initial_admm_point():
    net = net_from_seed(config())
    parameters = compat.initialize_parameters(*net.extract_weights())
    assert net.Lip_reg(2.0, parameters).item() == 0.0


def test_evaluate_mse_and_extract_weights():
    cfg = config()
    net = net_from_seed(cfg)
    mse = torch.mean((net(cfg.input) - cfg.target) ** 2).item()
    assert net.evaluate_MSELoss(cfg.input, cfg.target).item() == pytest.approx(mse, rel=1e-6)
    weights, biases = net.extract_weights()
    assert [w.shape for w in weights] == [(10, 1), (1, 10)] and [b.shape for b in biases] == [(10,), (1,)]
    assert all(a.dtype == np.float64 for a in weights + biases)
    np.testing.assert_array_equal(weights[1], net.lin2.weight.detach().numpy())


def test_w_step_lowers_the_augmented_lagrangian():
    """Eq. (10a): SGD on MSE + Lip_reg decreases L_rho(W, W_bar_k, Y_k) (up to the constant mu L^2)."""
    cfg = config()
    net = net_from_seed(cfg)
    parameters = perturbed_multipliers(net)

    def lagrangian() -> float:
        with torch.no_grad():
            return (net.evaluate_MSELoss(cfg.input, cfg.target) + net.Lip_reg(cfg.rho, parameters)).item()

    before = lagrangian()
    net.train(200, rho=cfg.rho, parameters=parameters)
    assert lagrangian() < before - 1e-3


# --------------------------------------------------------------------------- parity with the original loop


def compiled_is_exact() -> bool:
    """The compiled kernel replays torch 2.13's AVX2 CPU kernels with MKL's tanh."""
    from pylip.train import sgd_kernel

    return (
        torch.__version__.startswith("2.13.")
        and torch.backends.cpu.get_cpu_capability() == "AVX2"
        and sgd_kernel.mkl_tanh() is not None
    )


@pytest.mark.parametrize("engine", ["torch", "compiled"])
@pytest.mark.parametrize("variant", ["nominal", "l2", "admm"])
def test_sgd_loop_matches_the_original_loop_bit_for_bit(variant, engine):
    """Fresh optim.SGD per step + backward vs one in-place update: identical float32 weights.

    The compiled engine is exact where it replays this torch's kernels (torch
    2.13, AVX2, MKL tanh); elsewhere see the next test.
    """
    if engine == "compiled" and not compiled_is_exact():
        pytest.skip("the compiled engine is bit-exact only with torch 2.13 on AVX2 with MKL's tanh")
    cfg = config(log_certificate_method="closed_form", engine=engine)
    mine = net_from_seed(cfg)
    original = OriginalMeinNetz(
        SimpleNamespace(input=cfg.input, target=cfg.target, lr=0.01, build_T=closed_form_build_T)
    )
    original.load_state_dict(mine.state_dict())
    kwargs = {
        "nominal": {},
        "l2": {"lmbd": 0.01},
        "admm": {"rho": 2.0, "parameters": perturbed_multipliers(mine)},
    }[variant]
    courses = mine.train(2001, **kwargs)
    expected = original.train(2001, **kwargs)
    assert courses == expected  # logged at steps 0, 1000, 2000: the same floats
    assert len(courses[1]) == 3
    assert_same_state(mine, original)


@pytest.mark.parametrize("tanh", ["mkl", "rounded"])
def test_compiled_engine_agrees_with_torch_to_rounding_level(tanh, monkeypatch):
    """Any build: with float64 tanh rounded to float32 (no MKL) the weights stay within 1e-5."""
    from pylip.train import sgd_kernel

    if tanh == "rounded":
        monkeypatch.setattr(sgd_kernel, "tanh_kind", lambda: sgd_kernel.TANH_ROUNDED)
    parameters = None
    results = []
    for engine in ("torch", "compiled"):
        net = net_from_seed(config(engine=engine))
        parameters = parameters or perturbed_multipliers(net)
        net.train(1500, lmbd=0.01)
        net.train(1500, rho=2.0, parameters=parameters)
        results.append(torch.cat([p.detach().ravel() for p in net.parameters()]))
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)


def test_compiled_engine_is_refused_where_it_does_not_apply():
    with pytest.raises(InputError, match="engine='compiled' covers float32 1-n_h-1 tanh"):
        config(engine="compiled", activation="relu")
    with pytest.raises(InputError, match="engine must be one of"):
        config(engine="jax")
    assert not config(engine="auto", activation="relu").compiled_engine
    assert config(engine="torch").compiled_engine is False


def test_sdp_logging_is_the_originals_build_T():
    cfg = config(log_certificate_method="sdp", engine="torch")  # both sides in torch's arithmetic
    mine = net_from_seed(cfg)
    original = OriginalMeinNetz(
        SimpleNamespace(input=cfg.input, target=cfg.target, lr=0.01, build_T=compat.build_T)
    )
    original.load_state_dict(mine.state_dict())
    assert mine.train(1001) == original.train(1001)
    assert_same_state(mine, original)


@pytest.mark.skipif(not SIN_RUN.exists(), reason="reference/original/sin_example.json not present")
def test_reproduces_the_authors_recorded_sine_run():
    """The first courses of the original's own run, exactly under its torch (2.13 CPU).

    Nominal and L2 nets from ``torch.manual_seed(2)`` in the script's order; the
    first ADMM W step from the recorded L2 net (W_bar = W, Y = 0, no SDP yet).
    The recording is torch 2.13's arithmetic on an AVX2 CPU: exact there. Elsewhere
    (another torch release, an AVX-512 CPU) kernels round differently: then to 1e-5.
    """
    run = json.loads(SIN_RUN.read_text())
    courses = run["courses"]

    def same(values, recorded):
        return values == recorded if exact else values == pytest.approx(recorded, rel=1e-5)

    cfg = config(log_certificate_method="sdp", log_certificate_every=2)  # seeds 2, draws the targets
    nominal, l2 = MeinNetz(cfg), MeinNetz(cfg)  # first and second draw, as the script
    exact = torch.__version__.startswith("2.13.") and torch.backends.cpu.get_cpu_capability() == "AVX2"

    L_course, MSE_course = nominal.train(2001)
    assert same(MSE_course, courses["MSE_course"][:3])
    assert L_course[0] == pytest.approx(courses["L_course"][0], rel=1e-6)
    assert math.isnan(L_course[1])
    assert same(l2.train(1001, lmbd=0.01)[1], courses["MSE_course_L2"][:2])

    stored = run["nets"]["L2"]
    with torch.no_grad():
        for layer, w, b in ((l2.lin1, stored["W0"], stored["b0"]), (l2.lin2, stored["W1"], stored["b1"])):
            layer.weight.copy_(torch.tensor(w))
            layer.bias.copy_(torch.tensor(b))
    parameters = compat.initialize_parameters(*l2.extract_weights())
    _, MSE_Lip = l2.train(1001, rho=2.0, parameters=parameters)
    assert same(MSE_Lip, courses["MSE_course_Lip"][:2])


@pytest.mark.skipif(not SIN_RUN.exists(), reason="reference/original/sin_example.json not present")
def test_compiled_kernel_replays_the_recorded_nominal_course_on_avx512_cpus_too():
    """With MKL in its AVX2 mode (conftest, as the ``pylip`` command) the kernel's tanh is the recording's.

    Measured on an AVX-512 CPU: the nominal course equals the recording bit for bit;
    torch's own AVX-512 kernels give 0.32385706901550293 for its third entry, the
    recording 0.3238570988178253.
    """
    cfg = config(log_certificate_method="sdp", log_certificate_every=2)
    if not (torch.__version__.startswith("2.13.") and cfg.compiled_engine and mkl_runs_avx2()):
        pytest.skip("needs torch 2.13, the compiled kernel and MKL in its AVX2 mode")
    courses = json.loads(SIN_RUN.read_text())["courses"]
    assert MeinNetz(cfg).train(2001)[1] == courses["MSE_course"][:3]


# --------------------------------------------------------------------------- logging


def test_logging_happens_every_log_every_steps_before_the_update(caplog, capsys):
    cfg = config(log_every=100)
    net, twin = net_from_seed(cfg), net_from_seed(cfg)
    with caplog.at_level(logging.DEBUG, logger="pylip.train.training"):
        L_course, MSE_course = net.train(250)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["step 0", "step 100", "step 200"]
    assert "trivial bound" in caplog.records[0].getMessage()
    assert capsys.readouterr().out == ""  # logging, never print
    net_from_seed(dataclasses.replace(cfg, progress=True)).train(150)
    captured = capsys.readouterr()
    assert captured.out == "" and "/150 [" in captured.err  # the tqdm bar, on stderr
    firsts = [twin.train(100)[1][0] for _ in range(3)]  # each logs only before its step 0
    assert len(MSE_course) == 3 and MSE_course == firsts
    assert all(math.isfinite(v) for v in L_course)
    odd = net_from_seed(dataclasses.replace(cfg, log_every=7))
    assert len(odd.train(30)[1]) == 5  # steps 0, 7, 14, 21, 28
    assert net.train(0) == ([], [])


@pytest.mark.parametrize("every, computed", [(1, [0, 1, 2, 3, 4]), (2, [0, 2, 4]), (3, [0, 3]), (0, [])])
def test_logging_certificates_can_be_thinned(monkeypatch, every, computed):
    cfg = config(log_every=10, log_certificate_every=every)
    net = net_from_seed(cfg)
    calls = []
    original = pylip.training.closed_form_bound
    monkeypatch.setattr(
        pylip.training, "closed_form_bound", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    L_course, MSE_course = net.train(50)
    assert [j for j, v in enumerate(L_course) if not math.isnan(v)] == computed
    assert len(calls) == len(computed) and len(MSE_course) == 5
    assert all(math.isfinite(v) for v in MSE_course)


def test_auto_certificate_is_the_closed_form_for_one_input_and_output():
    net = net_from_seed(config(log_certificate_method="auto"))
    weights, biases = net.extract_weights()
    closed = pylip.closed_form_bound(*weights)
    assert net.logging_certificate(weights, biases) == closed
    assert closed == pytest.approx(compat.build_T(weights, biases, [1, 10, 1])["Lipschitz"], rel=1e-6)


def test_sdp_certificate_uses_the_activations_sector():
    net = net_from_seed(config(activation="sigmoid", log_certificate_method="sdp"))
    weights, biases = net.extract_weights()
    assert net.logging_certificate(weights, biases) == pytest.approx(
        pylip.closed_form_bound(*weights, beta=0.25), rel=1e-6
    )


def test_divergence_is_reported_not_logged():
    net = net_from_seed(config(lr=1e4, log_every=50))
    with pytest.raises(TrainingError, match=r"MSE is nan at SGD step \d+; lower TrainingConfig.lr"):
        net.train(1000)


# --------------------------------------------------------------------------- nn.Module semantics


def test_train_keeps_nn_module_meaning_for_booleans():
    net = net_from_seed(config())
    assert net.train(False) is net and not net.training and not net.lin1.training
    assert net.train() is net and net.training and net.lin2.training
    assert net.eval() is net and not net.training
    assert net.train(mode=True) is net and net.training
    assert net.train(np.bool_(False)) is net and not net.training
    before = [p.clone() for p in net.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # no SGD step was taken
    with pytest.raises(InputError, match="switches nn.Module's training mode"):
        net.train(True, lmbd=0.1)


def test_train_with_an_int_runs_sgd():
    net = net_from_seed(config())
    before = net.lin1.weight.clone()
    L_course, MSE_course = net.train(np.int64(3))
    assert len(MSE_course) == 1 and not torch.equal(before, net.lin1.weight)
    assert len(net.train(epochs=2)[1]) == 1  # by keyword, as the original's train_Lipschitz calls it
    for bad in (2.5, -1, "10"):
        with pytest.raises(InputError, match="epochs must be an integer"):
            net.train(bad)
    with pytest.raises(InputError, match="needs parameters"):
        net.train(5, rho=2.0)
    with pytest.raises(InputError, match="only used with rho"):
        net.train(5, parameters={})
    with pytest.raises(InputError, match="lmbd must be a number or None"):
        net.train(5, lmbd="0.01")
    with pytest.raises(InputError, match="rho must be finite"):
        net.train(5, rho=float("inf"), parameters={})


def test_construction_matches_pytorchs_default_initialisation():
    torch.manual_seed(5)
    lin1, lin2 = torch.nn.Linear(1, 10), torch.nn.Linear(10, 1)
    net = net_from_seed(config(), seed=5)
    assert torch.equal(net.lin1.weight, lin1.weight) and torch.equal(net.lin2.bias, lin2.bias)
    wide_config = config(dtype=torch.float64)
    torch.manual_seed(5)
    wide = MeinNetz(wide_config)
    assert wide.lin1.weight.dtype == torch.float64
    assert torch.equal(wide.lin1.weight, lin1.weight.double())
    assert MeinNetz().net_dims == [1, 10, 1] and MeinNetz(net_dims=[3, 5, 2]).net_dims == [3, 5, 2]
    relu = MeinNetz(activation="relu")
    x = torch.linspace(-1, 1, 7).view(-1, 1)
    assert torch.equal(relu(x), relu.lin2(torch.relu(relu.lin1(x))))
    with pytest.raises(InputError, match="differ from the config"):
        MeinNetz(config(), net_dims=[1, 5, 1])
    with pytest.raises(InputError, match="no TrainingConfig"):
        MeinNetz().train(5)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"lr": 0}, r"TrainingConfig.lr must be > 0"),
        ({"lr": float("nan")}, r"TrainingConfig.lr must be finite"),
        ({"epochs": 0}, r"TrainingConfig.epochs must be an integer >= 1"),
        ({"epochs": 10.0}, r"TrainingConfig.epochs must be an integer"),
        ({"it_ADMM": 0}, r"TrainingConfig.it_ADMM must be an integer >= 1"),
        ({"rho": -2.0}, r"TrainingConfig.rho must be > 0"),
        ({"mu": -1.0}, r"TrainingConfig.mu must be >= 0"),
        ({"ind_Lip": 3}, r"TrainingConfig.ind_Lip must be 1 .* or 2"),
        ({"ind_Lip": True}, r"TrainingConfig.ind_Lip must be 1"),
        ({"L_des": 2.0}, r"TrainingConfig.L_des is only used with ind_Lip=2"),
        ({"ind_Lip": 2}, r"TrainingConfig.L_des is required with ind_Lip=2"),
        ({"ind_Lip": 2, "L_des": 0.0}, r"TrainingConfig.L_des must be > 0"),
        ({"activation": "elu"}, r"TrainingConfig.activation must be one of tanh, relu, sigmoid"),
        ({"log_certificate_method": "fast"}, r"TrainingConfig.log_certificate_method must be one of"),
        ({"log_every": 0}, r"TrainingConfig.log_every must be an integer >= 1"),
        ({"log_certificate_every": -1}, r"TrainingConfig.log_certificate_every must be an integer >= 0"),
        ({"dtype": torch.float16}, r"TrainingConfig.dtype must be torch.float32 or torch.float64"),
        ({"n_x": 2}, r"TrainingConfig.n_x = 2 but input has 1 columns"),
        ({"n_h": 0}, r"TrainingConfig.n_h must be a positive integer"),
        ({"progress": "yes"}, r"TrainingConfig.progress must be True or False"),
    ],
)
def test_config_errors_name_the_field(overrides, match):
    with pytest.raises(InputError, match=match):
        config(**overrides)


def test_config_data_checks():
    x, y = sine_data()
    with pytest.raises(InputError, match="input has 100 samples but target has 99"):
        TrainingConfig(x, y[:99])
    with pytest.raises(InputError, match="TrainingConfig.target contains NaN"):
        TrainingConfig(x, torch.full_like(y, float("nan")))
    with pytest.raises(InputError, match=r"'closed_form' is exact only for one input and one output"):
        TrainingConfig(torch.ones(4, 2), torch.ones(4), log_certificate_method="closed_form")
    with pytest.raises(SolverError, match="unknown solver"):
        TrainingConfig(x, y, solver="NOPE")
    flat = TrainingConfig(x.view(-1).double().numpy(), y.view(-1).tolist())  # a flat vector is a column
    assert flat.input.shape == (100, 1) and flat.input.dtype == torch.float32
    assert torch.equal(flat.input, x) and flat.net_dims == [1, 10, 1] and flat.beta == 1.0
    assert TrainingConfig(x, y, activation="Sigmoid").beta == 0.25


def test_admm_needs_mu_in_mode_1_and_valid_admm_variables():
    cfg = config(mu=None)
    net = net_from_seed(cfg)
    parameters = compat.initialize_parameters(*net.extract_weights())
    T = np.eye(10)
    with pytest.raises(InputError, match=r"TrainingConfig.mu must be > 0 for ind_Lip=1"):
        net.train_Lipschitz(parameters, T)
    net.config = config()
    with pytest.raises(InputError, match=r"parameters has no field 'Y1'"):
        net.train_Lipschitz({k: v for k, v in parameters.items() if k != "Y1"}, T)
    with pytest.raises(InputError, match=r"parameters\['W1_bar'\] has shape \(10, 1\)"):
        net.train_Lipschitz({**parameters, "W1_bar": np.zeros((10, 1))}, T)
    with pytest.raises(InputError, match="non-positive diagonal entries"):
        net.train_Lipschitz(parameters, np.diag([0.0] + [1.0] * 9))


# --------------------------------------------------------------------------- ADMM (stand-in Lipschitz step)


def fake_step(fail_at: int | None = None, nan_at: int | None = None, record: list | None = None):
    """A stand-in for compat.solve_SDP: W_bar = W / 2, the dual update (10c), a fixed bound."""
    calls = []

    def solve_SDP(parameters, T, net_dims, rho, mu, ind_Lip, L_des, *, solver=None, beta=1.0):  # noqa: N802
        calls.append(1)
        if record is not None:
            record.append({"beta": beta, "ind_Lip": ind_Lip, "L_des": L_des, "mu": mu, "solver": solver})
        if len(calls) == fail_at:
            raise SolverError("CLARABEL returned status 'infeasible' on the step", status="infeasible")
        out = dict(parameters)
        for i in range(2):
            W = np.asarray(parameters[f"W{i}"])
            out[f"W{i}_bar"] = W / 2 if len(calls) != nan_at else np.full_like(W, np.nan)
            out[f"Y{i}"] = np.asarray(parameters[f"Y{i}"]) + rho * (W - out[f"W{i}_bar"])
        out["Lipschitz"] = 1.0
        return out

    return solve_SDP


def admm_setup(**overrides):
    cfg = config(epochs=20, it_ADMM=3, **overrides)
    net = net_from_seed(cfg)
    return net, compat.initialize_parameters(*net.extract_weights()), np.eye(10)


def test_train_lipschitz_is_w_step_then_lipschitz_step(monkeypatch):
    record: list = []
    monkeypatch.setattr(compat, "solve_SDP", fake_step(record=record))
    net, parameters, T = admm_setup()
    twin = net_from_seed(net.config)
    given = {k: v.copy() for k, v in parameters.items()}
    seen = []
    out, L_courses, MSE_courses = net.train_Lipschitz(parameters, T, callback=lambda k, p: seen.append(k))
    assert seen == [0, 1, 2] and len(L_courses) == len(MSE_courses) == 3
    assert all(len(course) == 1 for course in MSE_courses)  # one logged step per W step of 20
    assert record[0] == {"beta": 1.0, "ind_Lip": 1, "L_des": None, "mu": 1e-3, "solver": None}
    assert parameters.keys() == given.keys()  # the caller's dict is not modified
    assert all(np.array_equal(parameters[k], given[k]) for k in given)
    # by hand: three W steps with the stand-in's W_bar, Y in between
    current = compat.initialize_parameters(*twin.extract_weights())
    for _ in range(3):
        twin.train(20, rho=2.0, parameters=current)
        weights, _ = twin.extract_weights()
        current = {**current, "W0": weights[0], "W1": weights[1]}
        current = fake_step()(current, T, [1, 10, 1], 2.0, 1e-3, 1, None)
    assert_same_state(net, twin)
    np.testing.assert_array_equal(out["W1_bar"], current["W1_bar"])


def test_failed_lipschitz_step_names_iteration_and_status(monkeypatch):
    monkeypatch.setattr(compat, "solve_SDP", fake_step(fail_at=2))
    net, parameters, T = admm_setup()
    with pytest.raises(SolverError, match=r"ADMM iteration 2 of 3: .*status 'infeasible'") as info:
        net.train_Lipschitz(parameters, T)
    assert info.value.status == "infeasible"


def test_nan_stops_admm_with_the_iteration(monkeypatch):
    monkeypatch.setattr(compat, "solve_SDP", fake_step(nan_at=2))
    net, parameters, T = admm_setup()
    with pytest.raises(TrainingError, match=r"ADMM iteration 2 of 3: .*NaN or inf in W0_bar"):
        net.train_Lipschitz(parameters, T)
    net, parameters, T = admm_setup(lr=1e4)
    with pytest.raises(TrainingError, match=r"ADMM iteration 1 of 3, W step \(10a\): .*NaN or inf in lin1"):
        net.train_Lipschitz(parameters, T)


def test_sigmoid_passes_its_beta_to_the_lipschitz_step(monkeypatch):
    record: list = []
    monkeypatch.setattr(compat, "solve_SDP", fake_step(record=record))
    net, parameters, T = admm_setup(activation="sigmoid")
    net.train_Lipschitz(parameters, T)
    assert record[0]["beta"] == 0.25


# --------------------------------------------------------------------------- ADMM (the real Lipschitz step)


@pytest.fixture(scope="module")
def trained():
    """A briefly trained sine net and its certificate (T for the ADMM runs)."""
    cfg = config(epochs=200, it_ADMM=3)
    net = net_from_seed(cfg, seed=2)
    net.train(2000)
    weights, biases = net.extract_weights()
    return net.state_dict(), weights, biases, compat.build_T(weights, biases, cfg.net_dims)


def admm_run(trained, **overrides):
    state, weights, biases, certificate = trained
    net = MeinNetz(config(epochs=200, it_ADMM=3, **overrides))
    net.load_state_dict(state)
    bars = []
    out = net.train_Lipschitz(
        compat.initialize_parameters(weights, biases),
        certificate["T"],
        callback=lambda k, p: bars.append([p["W0_bar"], p["W1_bar"]]),
    )
    return out, bars


def test_admm_enforcing_a_bound_holds_it_at_every_iteration(trained):
    L_des = 0.7 * trained[3]["Lipschitz"]
    (out, L_courses, MSE_courses), bars = admm_run(trained, ind_Lip=2, L_des=L_des)
    assert len(bars) == 3 and out["Lipschitz"] == L_des
    T = trained[3]["T"]
    for W0_bar, W1_bar in bars:  # Theorem 8: LMI (7) at L_des with the fixed T, every iteration
        assert np.linalg.eigvalsh(lmi7_matrix(W0_bar, W1_bar, T, L_des**2)).max() <= 0.0
        assert pylip.certify([W0_bar, W1_bar]).bound <= L_des * (1 + 1e-7)
    assert all(math.isfinite(v) for course in MSE_courses for v in course)


def test_admm_regularisation_with_larger_mu_gives_a_smaller_bound(trained):
    (small, _, _), _ = admm_run(trained, mu=1e-3)
    (large, _, _), _ = admm_run(trained, mu=1.0)
    assert large["Lipschitz"] < 0.5 * small["Lipschitz"]
    assert pylip.certify([large["W0_bar"], large["W1_bar"]]).bound < pylip.certify(
        [small["W0_bar"], small["W1_bar"]]
    ).bound
