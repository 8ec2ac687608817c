"""Exceptions raised by pylip.

Every error names the offending field and says how to fix it; pylip never
answers bad input with a silent NaN, ``None`` or a wrong number.
"""

from __future__ import annotations


class PylipError(Exception):
    """Base class of all pylip errors."""


class InputError(PylipError, ValueError):
    """An argument has the wrong shape, type or value."""


class SolverError(PylipError, RuntimeError):
    """An SDP solver failed, is unknown, or cannot run here."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class CertificateError(PylipError, RuntimeError):
    """A Lipschitz certificate could not be established or verified."""


class TrainingError(PylipError, RuntimeError):
    """Training diverged (NaN or inf) or could not continue; the message names the iteration."""
