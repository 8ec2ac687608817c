"""Training thread defaults (issue 14): one torch / BLAS thread unless $PYLIP_THREADS says otherwise."""

from __future__ import annotations

import os

import pytest

from pylip.errors import InputError
from pylip.train.threads import limited_threads, training_threads, with_training_threads

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def test_default_is_one_thread_and_the_previous_count_is_restored(monkeypatch):
    monkeypatch.delenv("PYLIP_THREADS", raising=False)
    before = torch.get_num_threads()
    seen = with_training_threads(torch.get_num_threads)()
    assert seen == 1
    assert torch.get_num_threads() == before


def test_environment_variable_sets_the_count(monkeypatch):
    monkeypatch.setenv("PYLIP_THREADS", "2")
    assert training_threads() == 2
    with limited_threads():
        assert torch.get_num_threads() == 2
    monkeypatch.setenv("PYLIP_THREADS", "0")
    before = torch.get_num_threads()
    with limited_threads():
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("raw", ["-1", "two", "1.5"])
def test_bad_environment_values_are_refused(monkeypatch, raw):
    monkeypatch.setenv("PYLIP_THREADS", raw)
    with pytest.raises(InputError, match="PYLIP_THREADS"):
        training_threads()


def test_the_pylip_command_asks_mkl_for_the_recordings_avx2_arithmetic(monkeypatch):
    from pylip import cli
    from pylip.train.cpu_arithmetic import MKL_CBWR_ENV_VAR

    monkeypatch.delenv(MKL_CBWR_ENV_VAR, raising=False)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert os.environ[MKL_CBWR_ENV_VAR] == "AVX2"
    monkeypatch.setenv(MKL_CBWR_ENV_VAR, "COMPATIBLE")  # a user's own choice stands
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert os.environ[MKL_CBWR_ENV_VAR] == "COMPATIBLE"
