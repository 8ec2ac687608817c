"""Activations by name: their sectors, slope and value ranges on intervals, certificates, single layers."""

import mpmath
import numpy as np
import pytest

import pylip
from pylip.lipsdp import proof
from pylip.lipsdp.activations import ACTIVATIONS, get_activation

NAMES = [*ACTIVATIONS, "swish", "leakyrelu:0.2", "leakyrelu:-0.3", "elu:0.5", "elu:2"]
GRID = np.linspace(-12.0, 12.0, 240_001)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_stays_in_the_sector(name):
    act = get_activation(name)
    slopes = act.derivative(GRID)
    assert slopes.min() >= act.alpha and slopes.max() <= act.beta
    # difference quotients (the slope restriction itself) as well
    quotients = np.diff(act.function(GRID)) / np.diff(GRID)
    assert quotients.min() >= act.alpha - 1e-9 and quotients.max() <= act.beta + 1e-9


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_silu_and_gelu_sectors_are_their_exact_slope_extremes(name):
    mpmath.mp.dps = 40
    if name == "silu":
        def slope(x):
            s = 1 / (1 + mpmath.e ** (-x))
            return s * (1 + x * (1 - s))
        critical = mpmath.findroot(lambda x: x * mpmath.tanh(x / 2) - 2, 2.4)
    else:
        def slope(x):
            return mpmath.ncdf(x) + x * mpmath.npdf(x)
        critical = mpmath.sqrt(2)
    assert abs(mpmath.diff(slope, critical)) < 1e-30
    high, low = slope(critical), slope(-critical)
    act = get_activation(name)
    # the sector contains the extremes and is within 1e-14 of them
    assert act.beta >= high and act.beta - high < 1e-14
    assert act.alpha <= low and low - act.alpha < 1e-14
    assert np.isclose(act.derivative(GRID).max(), float(high), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_interval_ranges_contain_the_sampled_ranges(name):
    act = get_activation(name)
    rng = np.random.default_rng(3)
    lo = rng.uniform(-5, 5, 300)
    hi = lo + rng.exponential(1.5, 300)
    hi[:20] = lo[:20]  # point intervals
    lo[20:25], hi[20:25] = 0.0, 0.0  # on relu's kink
    a, b = act.slope_range(lo, hi)
    v_lo, v_hi = act.value_range(lo, hi)
    for k in range(lo.size):
        z = np.linspace(lo[k], hi[k], 2001)
        inner = z[1:-1] if hi[k] > lo[k] else z
        d = act.derivative(inner)
        assert a[k] <= d.min() + 1e-12 and d.max() <= b[k] + 1e-12
        assert act.alpha <= a[k] <= b[k] <= act.beta
        values = act.function(z)
        assert v_lo[k] <= values.min() + 1e-12 and values.max() <= v_hi[k] + 1e-12
        # tight: attained on the interval, up to the grid's step times the steepest slope
        step = (hi[k] - lo[k]) / 2000 * max(abs(act.alpha), abs(act.beta)) + 1e-12
        assert values.min() - v_lo[k] <= step and v_hi[k] - values.max() <= step


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(pylip.InputError, match="tanh, relu, sigmoid, leakyrelu, elu, softplus, silu, gelu"):
        get_activation("mish")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [1, 2])
def test_new_activations_certify_above_a_sampled_lower_bound(name, depth):
    rng = np.random.default_rng(depth)
    sizes = [4, *([6] * depth), 3]
    weights = [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]
    cert = pylip.certify(weights, activation=name)
    act = get_activation(name)
    assert (cert.alpha, cert.beta) == (act.alpha, act.beta)
    cert.prove(weights)
    lower = pylip.sampled_lower_bound(weights, activation=name, n_samples=4000, scale=2.0)
    assert lower <= cert.bound


def test_single_layer_is_its_proven_spectral_norm():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((4, 7))
    cert = pylip.certify([W])
    norm = np.linalg.norm(W, 2)
    assert norm <= cert.bound <= norm * (1 + 1e-12)
    assert cert.verified and cert.prove([W]).holds
    assert proof.prove_spectral_norm_exact(W, cert.bound).holds
    assert not proof.prove_spectral_norm_exact(W, norm * (1 - 1e-12)).holds
    assert not proof.prove_spectral_norm(W, norm * (1 - 1e-12)).holds
    with pytest.raises(pylip.CertificateError):
        pylip.certify([W]).prove([2 * W])


def test_single_layer_of_huge_and_zero_scale():
    W = np.array([[3.0e150, 1.0e150], [0.0, 2.0e-150]])
    cert = pylip.certify([W])
    assert proof.prove_spectral_norm_exact(W, cert.bound).holds
    zero = pylip.certify([np.zeros((2, 3))])
    assert zero.bound == 0.0 and zero.prove([np.zeros((2, 3))]).holds


def test_cli_certifies_a_single_layer(tmp_path, capsys):
    from pylip.cli import main

    W = np.random.default_rng(1).standard_normal((3, 5))
    np.savez(tmp_path / "single.npz", W0=W)
    assert main(["certify", str(tmp_path / "single.npz")]) == 0
    out = capsys.readouterr().out
    assert f"{np.linalg.norm(W, 2):.5g}" in out and "proven" in out
