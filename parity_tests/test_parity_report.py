"""`pylip parity-report`: the table users paste into issues, and its verdict."""

from __future__ import annotations

from pylip.cli import main
from pylip.experiments import parity
from pylip.lipsdp.solvers import default_solver


def test_report_for_the_default_solver(capsys):
    solver = default_solver().upper()
    assert main(["parity-report", "--solver", solver]) == 0
    out = capsys.readouterr().out
    assert f"| {solver} |" in out and "| tolerance |" in out and "ok |" in out
    assert parity.format_versions() in out


def test_the_report_names_the_versions_it_ran_with():
    from importlib.metadata import version

    line = parity.format_versions()
    for name in ("numpy", "scipy", "cvxpy", "clarabel"):
        assert f"{name} {version(name)}" in line
    assert parity.format_versions({"cvxpy": "1.4.0", "mosek": "-"}) == "Versions: cvxpy 1.4.0, mosek -"


def test_verdict_fails_when_a_deviation_exceeds_its_tolerance():
    result = parity.SolverParity("X")
    assert result.within_tolerance
    result.record("step_W_bar", 2 * parity.TOLERANCES["step_W_bar"])
    assert not result.within_tolerance
    table = parity.format_table([result], {"MOSEK": "no licence"})
    assert "EXCEEDS" in table and "skipped: no licence" in table
