"""Loading the stored outputs of the original implementation (reference/)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parent.parent / "reference"


@cache
def load_json(relative: str) -> Any:
    return json.loads((REFERENCE / relative).read_text())


def unit_cases() -> list[dict[str, Any]]:
    return load_json("original/unit_cases.json")["cases"]


def certificate_output(case: dict[str, Any]) -> dict[str, Any]:
    """The original's calculate_Lipschitz result (or its SDP part where the checks crashed)."""
    full = case["outputs"]["calculate_Lipschitz"]
    return full if full.get("error") is None else case["outputs"]["calculate_Lipschitz_sdp_part"]


def case_ids() -> list[str]:
    return [case["name"] for case in unit_cases()]


def solve_sdp_calls() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every recorded solve_sdp call: (id, case, call)."""
    calls = []
    for case in unit_cases():
        for call in case["outputs"]["solve_sdp"]:
            label = f"{case['name']}-ind{call['inputs']['ind_Lip']}-mu{call['inputs']['mu']:g}"
            calls.append((label, case, call))
    return calls
