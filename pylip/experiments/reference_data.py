"""Locating and reading the stored outputs of the original implementation (``reference/``)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import InputError

REFERENCE_ENV_VAR = "PYLIP_REFERENCE"


def reference_dir() -> Path:
    """``$PYLIP_REFERENCE``, or the ``reference/`` folder of the source tree pylip runs from."""
    configured = os.environ.get(REFERENCE_ENV_VAR)
    folder = Path(configured) if configured else Path(__file__).resolve().parents[2] / "reference"
    if not (folder / "original" / "unit_cases.json").is_file():
        raise InputError(
            f"reference data not found in {folder}: run pylip from a clone of the repository "
            f"(pip install -e .), or point ${REFERENCE_ENV_VAR} at its reference/ folder"
        )
    return folder


@cache
def load_json(relative: str) -> Any:
    """A JSON file under ``reference/``."""
    return json.loads((reference_dir() / relative).read_text())


def unit_cases() -> list[dict[str, Any]]:
    """The recorded single calls of calculate_Lipschitz.m and solve_sdp.m."""
    return list(load_json("original/unit_cases.json")["cases"])


def certificate_output(case: dict[str, Any]) -> dict[str, Any]:
    """The original's calculate_Lipschitz result (its SDP part where the sampled checks crashed)."""
    full = case["outputs"]["calculate_Lipschitz"]
    return dict(full if full.get("error") is None else case["outputs"]["calculate_Lipschitz_sdp_part"])


def solve_sdp_calls() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every recorded solve_sdp call as ``(label, case, call)``."""
    calls = []
    for case in unit_cases():
        for call in case["outputs"]["solve_sdp"]:
            label = f"{case['name']}-ind{call['inputs']['ind_Lip']}-mu{call['inputs']['mu']:g}"
            calls.append((label, case, call))
    return calls


def solve_sdp_arguments(case: dict[str, Any], call: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(parameters, x)`` exactly as the original bridge built them for this call."""
    inputs = call["inputs"]
    parameters = {
        "W0": case["inputs"]["W0"],
        "W1": case["inputs"]["W1"],
        "b0": case["inputs"]["b0"],
        "b1": case["inputs"]["b1"],
        "Y0": inputs["Y0"],
        "Y1": inputs["Y1"],
        "W0_bar": inputs["W0_bar_in"],
        "W1_bar": inputs["W1_bar_in"],
        "Yb0": inputs["Yb0"],
        "Yb1": inputs["Yb1"],
    }
    x = {
        "T": certificate_output(case)["T"],
        "rho": inputs["rho"],
        "mu": inputs["mu"],
        "ind_Lip": inputs["ind_Lip"],
        "L_des": inputs["L_des"],
    }
    return parameters, x
