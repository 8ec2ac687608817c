"""One line per tox cell, from tox's ``--result-json``: verdict, time, Python, and
pytest's own closing line (or, for a skipped cell, the reason).

``tox p`` prints the output of failed cells only, so this is where the counts
of the passing ones show. Ends with ``cells: N passed, N failed, N skipped``;
exits 1 if a cell failed or none passed. Run from the repository root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SKIP_REASON_FILE = "skip-reason.txt"  # written by toxfile.py


def last_line(env: dict) -> str:
    for command in reversed(env.get("test") or []):
        lines = [line.strip() for line in command.get("output", "").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return ""


def main(result_json: str) -> int:
    report = json.loads(Path(result_json).read_text())
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for name, env in report["testenvs"].items():
        result = env.get("result")
        if name.startswith(".pkg") or result is None:
            continue
        if result["skipped"]:
            counts["skipped"] += 1
            verdict = "SKIP"
            reason = Path(".tox", name, SKIP_REASON_FILE)
            detail = reason.read_text().strip() if reason.is_file() else "see tox's log"
        elif result["success"]:
            counts["passed"] += 1
            verdict, detail = "OK", last_line(env)
        else:
            counts["failed"] += 1
            verdict, detail = f"FAIL ({result['exit_code']})", last_line(env)
        python = env.get("python", {}).get("version", "").split(" ")[0]
        print(f"{name:16s} {verdict:9s} {result['duration']:7.1f} s  py {python:8s} {detail}")
    print(f"cells: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] or not counts["passed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
