"""The stored outputs of the original implementation, for the parity tests."""

from __future__ import annotations

from pylip.experiments.reference_data import (
    certificate_output,
    load_json,
    reference_dir,
    solve_sdp_arguments,
    solve_sdp_calls,
    unit_cases,
)

REFERENCE = reference_dir()


def case_ids() -> list[str]:
    return [case["name"] for case in unit_cases()]


__all__ = [
    "REFERENCE",
    "case_ids",
    "certificate_output",
    "load_json",
    "solve_sdp_arguments",
    "solve_sdp_calls",
    "unit_cases",
]
