"""Certified accuracy from a Lipschitz bound and the l2 PGD attack (pylip.robustness)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pylip import certify  # noqa: E402
from pylip.errors import InputError  # noqa: E402
from pylip.experiments import robustness as R  # noqa: E402

pytestmark = pytest.mark.torch


def linear_model(W: np.ndarray, b: np.ndarray) -> torch.nn.Module:
    model = torch.nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(W))
        model.bias.copy_(torch.as_tensor(b))
    return model


def exact_linear_radii(W: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance to the nearest other class region of a linear classifier (0 if misclassified).

    The class-y region is an intersection of half-spaces f_y >= f_j, so the
    distance to its complement is min_j (f_y - f_j) / ||w_y - w_j||.
    """
    logits = X @ W.T + b
    radii = np.empty(len(X))
    for i, (z, c) in enumerate(zip(logits, y)):
        radii[i] = min((z[c] - z[j]) / np.linalg.norm(W[c] - W[j]) for j in range(W.shape[0]) if j != c)
    return np.maximum(radii, 0.0)


def test_margin_formula_against_brute_force():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((40, 5))
    labels = rng.integers(0, 5, 40)
    margins = R.logit_margins(logits, labels).numpy()
    for i in range(40):
        others = [logits[i, j] for j in range(5) if j != labels[i]]
        assert margins[i] == pytest.approx(logits[i, labels[i]] - max(others), abs=1e-15)
    assert np.array_equal(margins > 0, logits.argmax(1) == labels)
    # a tie is not a correct classification, and not certified even at eps = 0
    tie = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(R.logit_margins(tie, [0])) == 0.0
    assert not bool(R.certified_mask(tie, [0], 1.0, 0.0)[0])


def test_certified_mask_is_margin_over_sqrt2_L_eps():
    rng = np.random.default_rng(2)
    logits = torch.as_tensor(rng.standard_normal((200, 4)) * 3)
    labels = torch.as_tensor(rng.integers(0, 4, 200))
    L, eps = 2.5, 0.3
    margins = R.logit_margins(logits, labels)
    expected = margins > math.sqrt(2) * L * eps
    assert torch.equal(R.certified_mask(logits, labels, L, eps), expected)
    acc = R.certified_accuracy(logits, labels, L, [0.0, eps, 100.0])
    assert acc[0.0] == pytest.approx(float((margins > 0).double().mean()))
    assert acc[eps] == pytest.approx(float(expected.double().mean()))
    assert acc[100.0] == 0.0
    assert acc[0.0] >= acc[eps] >= acc[100.0]
    radii = R.certified_radii(logits, labels, L)
    assert torch.equal(radii > eps, expected)


def test_certified_radius_never_exceeds_the_exact_one_of_a_linear_model():
    rng = np.random.default_rng(3)
    W, b = rng.standard_normal((4, 6)), rng.standard_normal(4)
    X = rng.standard_normal((300, 6))
    y = (X @ W.T + b).argmax(1)
    y[::7] = (y[::7] + 1) % 4  # some misclassified points
    L = float(np.linalg.norm(W, 2))  # the exact Lipschitz constant of x -> Wx + b
    certified = R.certified_radii(torch.as_tensor(X @ W.T + b), y, L).numpy()
    exact = exact_linear_radii(W, b, X, y)
    assert np.all(certified <= exact + 1e-12)
    assert np.all(certified[exact == 0] == 0)
    assert certified.max() > 0


@pytest.mark.parametrize("bounds", [None, (-1.0, 1.0)])
def test_pgd_iterates_stay_inside_the_ball(bounds):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    X = torch.rand(64, 5, dtype=torch.float64) * 1.6 - 0.8
    with torch.no_grad():
        y = model(X).argmax(1)
    eps = 0.7
    result = R.pgd_attack(model, X, y, eps, steps=25, step_size=0.5, restarts=3, bounds=bounds, seed=4)
    distance = (result.adversarial - X).norm(dim=1)
    assert float(distance.max()) <= eps * (1 + 1e-12)
    if bounds is not None:
        assert float(result.adversarial.min()) >= bounds[0] and float(result.adversarial.max()) <= bounds[1]
    with torch.no_grad():
        margins = R.logit_margins(model(result.adversarial), y)
    # the recorded worst iterate is a real point of the ball with the recorded margin
    assert torch.allclose(margins, result.min_margin)
    assert torch.equal(result.robust, result.min_margin > 0)
    assert result.accuracy < 1.0  # at this radius the attack breaks some points


@pytest.mark.parametrize("loss", ["margin", "cross_entropy"])
def test_pgd_finds_the_adversary_of_a_two_class_linear_model(loss):
    # two classes: the exact l2 distance to the boundary is |f_0 - f_1| / ||w_0 - w_1||
    rng = np.random.default_rng(5)
    W, b = rng.standard_normal((2, 8)), rng.standard_normal(2)
    X = rng.standard_normal((400, 8))
    y = (X @ W.T + b).argmax(1)
    model = linear_model(W, b)
    eps = 0.5
    exact = exact_linear_radii(W, b, X, y)
    result = R.pgd_attack(model, X, y, eps, steps=20, restarts=1, loss=loss)
    robust = result.robust.numpy()
    clearly_inside, clearly_outside = exact < 0.98 * eps, exact > 1.02 * eps
    assert clearly_inside.sum() > 20 and clearly_outside.sum() > 20
    assert not robust[clearly_inside].any()  # every breakable point is broken
    assert robust[clearly_outside].all()  # nothing else can be
    assert result.accuracy == pytest.approx(np.mean(exact > eps), abs=0.01)


def test_pgd_on_a_multiclass_linear_model_is_sound_and_strong():
    rng = np.random.default_rng(6)
    W, b = rng.standard_normal((4, 10)), rng.standard_normal(4)
    X = rng.standard_normal((500, 10))
    y = (X @ W.T + b).argmax(1)
    eps = 0.4
    exact = exact_linear_radii(W, b, X, y)
    result = R.pgd_attack(linear_model(W, b), X, y, eps, steps=40, restarts=3, seed=1)
    robust = result.robust.numpy()
    assert robust[exact > eps * (1 + 1e-9)].all()  # sound: no adversary exists there
    assert not robust[exact < 0.8 * eps].any()  # strong: finds the nearby ones
    # certified (with the exact Lipschitz constant) => survives the attack, point by point
    certified = R.certified_mask(torch.as_tensor(X @ W.T + b), y, float(np.linalg.norm(W, 2)), eps)
    assert certified.any()
    assert R.check_certified_subset(certified, result.robust) == 0


def test_certified_points_survive_the_attack_on_a_tanh_net():
    torch.manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 12), torch.nn.Tanh(),
        torch.nn.Linear(12, 4),
    ).double()
    X = torch.randn(300, 6, dtype=torch.float64)
    with torch.no_grad():
        logits = model(X)
    y = logits.argmax(1)
    y[::5] = (y[::5] + 1) % 4
    weights = [m.weight.detach().numpy() for m in model if isinstance(m, torch.nn.Linear)]
    L = certify(weights, activation="tanh").bound
    for eps in (0.05, 0.2, 1.0):
        certified = R.certified_mask(logits, y, L, eps)
        attack = R.pgd_attack(model, X, y, eps, steps=30, restarts=2, seed=0)
        assert R.check_certified_subset(certified, attack.robust) == 0
        assert float(certified.double().mean()) <= attack.accuracy
        assert attack.accuracy <= float((R.logit_margins(logits, y) > 0).double().mean())
    assert bool(R.certified_mask(logits, y, L, 0.05).any())


def test_subset_check_counts_violations():
    certified = torch.tensor([True, True, False, False])
    robust = torch.tensor([True, False, True, False])
    assert R.check_certified_subset(certified, robust) == 1
    with pytest.raises(InputError, match="differ in shape"):
        R.check_certified_subset(certified, robust[:3])


def test_attack_is_reproducible_with_a_seed():
    torch.manual_seed(8)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    X = torch.randn(50, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (50,))
    one = R.pgd_attack(model, X, y, 0.5, steps=10, restarts=3, seed=11)
    two = R.pgd_attack(model, X, y, 0.5, steps=10, restarts=3, seed=11)
    assert torch.equal(one.adversarial, two.adversarial) and torch.equal(one.robust, two.robust)
    batched = R.pgd_attack(model, X, y, 0.5, steps=10, restarts=1, seed=11, batch_size=7)
    whole = R.pgd_attack(model, X, y, 0.5, steps=10, restarts=1, seed=11)
    assert torch.allclose(batched.min_margin, whole.min_margin)
    assert R.attacked_accuracy(model, X, y, [0.0, 0.5], steps=10, seed=11) == {
        0.0: pytest.approx(float((R.logit_margins(model(X).detach(), y) > 0).double().mean())),
        0.5: pytest.approx(whole.accuracy),
    }


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, X, y: R.pgd_attack(m, X, y, -0.1), "eps must be a finite number >= 0"),
        (lambda m, X, y: R.pgd_attack(m, X, y, float("nan")), "eps must be a finite number >= 0"),
        (lambda m, X, y: R.pgd_attack(m, X, y, "big"), "eps must be a number"),
        (lambda m, X, y: R.pgd_attack(m, X, y, 0.1, steps=0), "steps must be an integer >= 1"),
        (lambda m, X, y: R.pgd_attack(m, X, y, 0.1, restarts=0), "restarts must be an integer >= 1"),
        (lambda m, X, y: R.pgd_attack(m, X, y, 0.1, loss="hinge"), "loss must be one of"),
        (lambda m, X, y: R.pgd_attack(m, X, y, 0.1, bounds=(1.0, 0.0)), "bounds must be"),
        (lambda m, X, y: R.pgd_attack(m, X, y, 0.1, bounds=(0.0, 0.1)), "outside bounds"),
        (lambda m, X, y: R.pgd_attack(m, X[0], y, 0.1), "X must be an n x d matrix"),
        (lambda m, X, y: R.pgd_attack(m, X, y[:3], 0.1), "labels must be a vector of 5"),
        (lambda m, X, y: R.pgd_attack(m, X, y + 3, 0.1), r"labels must lie in 0 \.\. 2"),
        (lambda m, X, y: R.pgd_attack(m, X, y.double(), 0.1), "integer class indices"),
        (lambda m, X, y: R.pgd_attack("model", X, y, 0.1), "torch.nn.Module"),
        (lambda m, X, y: R.certified_mask(m(X), y, 0.0, 0.1), "bound must be a finite number > 0"),
        (lambda m, X, y: R.certified_mask(m(X), y, 1.0, -1.0), "eps must be a finite number >= 0"),
        (lambda m, X, y: R.certified_accuracy(m(X), y, 1.0, []), "at least one radius"),
        (lambda m, X, y: R.logit_margins(m(X)[:, 0], y), "logits must be an n x c matrix"),
        (lambda m, X, y: R.logit_margins(m(X) * float("nan"), y), "NaN or inf"),
    ],
)
def test_bad_input_is_named(call, message):
    model = torch.nn.Linear(4, 3).double()
    X = torch.rand(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(InputError, match=message):
        with torch.no_grad():
            call(model, X, y)
